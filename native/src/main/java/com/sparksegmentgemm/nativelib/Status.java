package com.sparksegmentgemm.nativelib;

/** The native library's status codes ({@code sgemm_status} in segment_gemm.h). */
public enum Status {
  OK,
  INVALID_ARGUMENT,
  WORKSPACE_TOO_SMALL,
  UNSUPPORTED,
  NO_DEVICE,
  CUDA_ERROR,
  INTERNAL_ERROR,
  /** A sticky CUDA error: the CUDA context is unusable ({@link SegmentGemmFatalException}). */
  CUDA_FATAL;

  static Status fromCode(int code) {
    Status[] all = values();
    return code >= 0 && code < all.length ? all[code] : INTERNAL_ERROR;
  }
}
