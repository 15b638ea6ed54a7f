package com.sparksegmentgemm.nativelib;

/**
 * Which native kernel family runs a call ({@code sgemm_backend} in segment_gemm.h; the order
 * matches its codes). A forced backend never falls back: a call it cannot run fails with
 * {@link Status#UNSUPPORTED} saying why.
 */
public enum Backend {
  /**
   * A small call (up to 1024 segments, d_in <= 512, d_out <= 16384, x_rows * d_in * d_out <= 2^22)
   * on the fused small-call kernel (one launch, CUDA cores); otherwise compute capability 9.0:
   * SM90 where it applies, 8.x: SM80 likewise, else PORTABLE.
   */
  AUTO,
  /** The SIMT kernel: any dtype, weight layout, size and architecture. */
  PORTABLE,
  /** CUTLASS 2.x grouped GEMM: compute capability 8.x or 9.0, fp16/bf16, d_in/d_out % 8 == 0. */
  SM80,
  /** CUTLASS 3.x pointer-array grouped GEMM (TMA, wgmma): compute capability 9.0, fp16/bf16, d_in/d_out % 8 == 0. */
  SM90;

  int code() {
    return ordinal();
  }
}
