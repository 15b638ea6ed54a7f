package com.sparksegmentgemm.nativelib;

/**
 * A failure reported by the native library: its status, message and, for a CUDA failure, the
 * CUDA error code. A sticky CUDA error (the context is unusable) is the subclass
 * {@link SegmentGemmFatalException}.
 */
public class SegmentGemmException extends RuntimeException {
  private static final long serialVersionUID = 1L;
  private final Status status;
  private final int cudaError;

  public SegmentGemmException(Status status, String message) {
    this(status, message, 0);
  }

  /**
   * @param cudaError the {@code cudaError_t} behind a CUDA failure
   *     ({@code sgemm_last_cuda_error}), 0 when there is none
   */
  public SegmentGemmException(Status status, String message, int cudaError) {
    super(message);
    this.status = status;
    this.cudaError = cudaError;
  }

  /**
   * The exception for a native status code, as JNI throws it: a {@link SegmentGemmFatalException}
   * for {@link Status#CUDA_FATAL}, else a SegmentGemmException; the message is prefixed with the
   * status name.
   */
  static SegmentGemmException fromNative(int code, String message, int cudaError) {
    Status status = Status.fromCode(code);
    String text = status + ": " + message;
    return status == Status.CUDA_FATAL
        ? new SegmentGemmFatalException(text, cudaError)
        : new SegmentGemmException(status, text, cudaError);
  }

  public Status status() {
    return status;
  }

  /** The CUDA runtime's {@code cudaError_t} behind this failure, or 0 if it was not a CUDA error. */
  public int cudaError() {
    return cudaError;
  }
}
