package com.sparksegmentgemm.nativelib;

/** Which native kernel family runs a call ({@code sgemm_backend} in segment_gemm.h). */
public enum Backend {
  /** The best kernel the device supports. */
  AUTO,
  /** The SIMT kernel: any dtype, weight layout, size and architecture. */
  PORTABLE;

  int code() {
    return ordinal();
  }
}
