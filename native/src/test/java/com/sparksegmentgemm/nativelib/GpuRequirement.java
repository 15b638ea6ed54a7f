package com.sparksegmentgemm.nativelib;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.Optional;
import org.junit.jupiter.api.Assumptions;

/**
 * The one place where a GPU test decides what a missing GPU means: a visible skip by default (CI
 * has no GPU), a failure under {@code -Dsegmentgemm.test.requireGpu=true} (dev/gpu-check sets it,
 * so that a test that silently skipped on the GPU machine cannot pass the GPU check). Shared with
 * the other modules' tests through this module's test jar.
 */
public final class GpuRequirement {
  /** The system property that turns the skip into a failure. */
  public static final String PROPERTY = "segmentgemm.test.requireGpu";

  private GpuRequirement() {}

  /** Whether this run must have a GPU. */
  public static boolean required() {
    return Boolean.getBoolean(PROPERTY);
  }

  /**
   * Returns when a usable GPU is present; otherwise skips the calling test (an aborted
   * assumption) or, when {@link #required()}, fails it, saying why either way.
   */
  public static void assumeGpu() {
    Optional<String> reason = Gpu.unavailableReason();
    if (reason.isEmpty()) return;
    String why = "no usable CUDA GPU: " + reason.get();
    if (required()) fail(why + " (" + PROPERTY + "=true: this run requires a GPU)");
    Assumptions.abort(why);
  }
}
