package com.sparksegmentgemm;

import java.util.Collections;
import java.util.Set;
import java.util.TreeSet;

/**
 * Time per phase of {@link ColumnarSegmentGemm#evaluate}, with the segments and native calls
 * made: what benchmarks and {@link SegmentGemmMetrics} report. Input wait comes before the UDF's
 * own time: the batch's input is produced asynchronously on the task's stream (the RAPIDS
 * Accelerator's Parquet decode, for one), so the UDF first waits for that work, which is not its
 * own. The group phase is host wall time from then up to its one synchronisation (the rows per
 * adapter reach the host); adapters is host time in the device cache (uploads, and waits for
 * other threads' uploads or for a free slot); gather, kernels and scatter are the stream's time
 * between CUDA events, which includes waiting behind other streams' work on a shared GPU.
 */
public final class PhaseTimes {
  long inputWaitNs;
  long groupNs;
  long adapterNs;
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

  /** The counters now (without the plans): this minus nothing. */
  PhaseTimes copy() {
    return minus(new PhaseTimes());
  }

  /** This minus an earlier copy of it: what happened since. */
  PhaseTimes minus(PhaseTimes earlier) {
    PhaseTimes d = new PhaseTimes();
    d.inputWaitNs = inputWaitNs - earlier.inputWaitNs;
    d.groupNs = groupNs - earlier.groupNs;
    d.adapterNs = adapterNs - earlier.adapterNs;
    d.gatherNs = gatherNs - earlier.gatherNs;
    d.kernelNs = kernelNs - earlier.kernelNs;
    d.scatterNs = scatterNs - earlier.scatterNs;
    d.segments = segments - earlier.segments;
    d.nativeCalls = nativeCalls - earlier.nativeCalls;
    return d;
  }

  /**
   * Waiting for the batch's input: the work already on the task's stream when the UDF is called
   * (the upstream operator's, e.g. Parquet decode), not the UDF's own.
   */
  public long inputWaitNs() {
    return inputWaitNs;
  }

  /** Adapter lookup, validation, sort by adapter and the segment table. */
  public long groupNs() {
    return groupNs;
  }

  /**
   * The device cache: uploading adapters that were not resident, waiting for another thread's
   * upload of the same adapters or for a free slot.
   */
  public long adapterNs() {
    return adapterNs;
  }

  /** Gathering features in adapter order into x, in the compute dtype. */
  public long gatherNs() {
    return gatherNs;
  }

  /** Native segment GEMM calls (adapter uploads are {@link #adapterNs}). */
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
