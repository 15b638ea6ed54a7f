package com.sparksegmentgemm.nativelib;

import java.util.Optional;

/**
 * Whether this JVM can run the GPU path: the native library loads, a CUDA driver answers and at
 * least one device is present. The answer is computed once; {@link #unavailableReason()} says why
 * not, for logs and for test skips.
 */
public final class Gpu {
  private static volatile Optional<String> reason;

  private Gpu() {}

  public static boolean isAvailable() {
    return unavailableReason().isEmpty();
  }

  /** Empty when a GPU is usable; otherwise why not (no library, no driver, no device). */
  public static Optional<String> unavailableReason() {
    Optional<String> r = reason;
    if (r == null) {
      r = probe();
      reason = r;
    }
    return r;
  }

  private static Optional<String> probe() {
    try {
      NativeLib.ensureLoaded();
      int count = SegmentGemmNative.deviceCount();
      return count > 0 ? Optional.empty() : Optional.of("no CUDA device found");
    } catch (UnsatisfiedLinkError | SegmentGemmException e) {
      return Optional.of(e.getMessage());
    }
  }
}
