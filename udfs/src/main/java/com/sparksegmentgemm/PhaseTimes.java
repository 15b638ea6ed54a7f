package com.sparksegmentgemm;

/**
 * Wall time per phase of {@link ColumnarSegmentGemm#evaluate}, for benchmarks: when one is
 * passed, the GPU path waits for the stream at each phase boundary (never otherwise).
 */
public final class PhaseTimes {
  long groupNs;
  long gatherNs;
  long kernelNs;
  long scatterNs;
  int nativeCalls;

  /** Adapter lookup, validation, sort by adapter and the segment table. */
  public long groupNs() {
    return groupNs;
  }

  /** Gathering features in adapter order into x, in the compute dtype. */
  public long gatherNs() {
    return gatherNs;
  }

  /** Native segment GEMM calls (adapter uploads into the device cache included). */
  public long kernelNs() {
    return kernelNs;
  }

  /** Converting y to float and putting rows back in their original order. */
  public long scatterNs() {
    return scatterNs;
  }

  public int nativeCalls() {
    return nativeCalls;
  }
}
