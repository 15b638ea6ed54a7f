package com.sparksegmentgemm;

import java.util.Collections;
import java.util.Set;
import java.util.TreeSet;

/**
 * Time per phase of {@link ColumnarSegmentGemm#evaluate}, with the segments and native calls
 * made: what benchmarks and {@link SegmentGemmMetrics} report. The group phase is host wall
 * time up to its one synchronisation (the rows per adapter reach the host); gather, kernels and
 * scatter are the stream's time between CUDA events, which includes waiting behind other streams'
 * work on a shared GPU.
 */
public final class PhaseTimes {
  long groupNs;
  long gatherNs;
  long kernelNs;
  long scatterNs;
  long segments;
  int nativeCalls;
  private final Set<String> plans = new TreeSet<>();

  /** A native call ran on this kernel plan (as {@code sgemm_describe_plan} words it). */
  synchronized void plan(String plan) {
    plans.add(plan);
  }

  /**
   * The kernel plans of every native call made through this instance, e.g. "sm90 bf16 B=row
   * tile=..., 3 problems", "small ...", "portable ...": what tests assert to know which kernel ran.
   */
  public synchronized Set<String> plans() {
    return Collections.unmodifiableSet(new TreeSet<>(plans));
  }

  PhaseTimes copy() {
    PhaseTimes c = new PhaseTimes();
    c.groupNs = groupNs;
    c.gatherNs = gatherNs;
    c.kernelNs = kernelNs;
    c.scatterNs = scatterNs;
    c.segments = segments;
    c.nativeCalls = nativeCalls;
    return c;
  }

  /** This minus an earlier copy of it: what happened since. */
  PhaseTimes minus(PhaseTimes earlier) {
    PhaseTimes d = new PhaseTimes();
    d.groupNs = groupNs - earlier.groupNs;
    d.gatherNs = gatherNs - earlier.gatherNs;
    d.kernelNs = kernelNs - earlier.kernelNs;
    d.scatterNs = scatterNs - earlier.scatterNs;
    d.segments = segments - earlier.segments;
    d.nativeCalls = nativeCalls - earlier.nativeCalls;
    return d;
  }

  /** Adapter lookup, validation, sort by adapter and the segment table. */
  public long groupNs() {
    return groupNs;
  }

  /** Gathering features in adapter order into x, in the compute dtype. */
  public long gatherNs() {
    return gatherNs;
  }

  /**
   * Native segment GEMM calls. Adapter uploads into the device cache are not in any phase: they
   * happen before a part's timer starts (the job's summary shows them as "other").
   */
  public long kernelNs() {
    return kernelNs;
  }

  /** Converting y to float and putting rows back in their original order. */
  public long scatterNs() {
    return scatterNs;
  }

  /** Segments (adapter groups) over all batches. */
  public long segments() {
    return segments;
  }

  public int nativeCalls() {
    return nativeCalls;
  }
}
