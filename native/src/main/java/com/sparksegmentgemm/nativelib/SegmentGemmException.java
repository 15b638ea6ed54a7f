package com.sparksegmentgemm.nativelib;

/** A failure reported by the native library: its status and message. */
public class SegmentGemmException extends RuntimeException {
  private static final long serialVersionUID = 1L;
  private final Status status;

  public SegmentGemmException(Status status, String message) {
    super(message);
    this.status = status;
  }

  /** Called from JNI with the native status code. */
  SegmentGemmException(int code, String message) {
    this(Status.fromCode(code), Status.fromCode(code) + ": " + message);
  }

  public Status status() {
    return status;
  }
}
