package com.sparksegmentgemm;

import ai.rapids.cudf.Cuda;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;

/**
 * What the UDFs of this JVM (an executor) have done, for Spark's metric system and the job's
 * summary: the Spark plugin publishes these counters (spark-plugin's
 * {@code SegmentGemmPlugin}, executor side); they live here because the UDFs update them. Counters only
 * grow; {@link #snapshot()} reads them all.
 */
public final class SegmentGemmMetrics {
  private static final LongAdder ROWS = new LongAdder();
  private static final LongAdder GPU_ROWS = new LongAdder();
  private static final LongAdder CPU_ROWS = new LongAdder();
  private static final LongAdder BATCHES = new LongAdder();
  private static final LongAdder SEGMENTS = new LongAdder();
  private static final LongAdder NATIVE_CALLS = new LongAdder();
  private static final LongAdder FEATURE_BYTES = new LongAdder();
  private static final LongAdder GPU_FEATURE_BYTES = new LongAdder();
  private static final LongAdder GPU_UDF_NANOS = new LongAdder();
  private static final LongAdder KERNEL_NANOS = new LongAdder();
  private static final LongAdder INPUT_WAIT_NANOS = new LongAdder();
  private static final LongAdder GROUP_NANOS = new LongAdder();
  private static final LongAdder ADAPTER_NANOS = new LongAdder();
  private static final LongAdder GATHER_NANOS = new LongAdder();
  private static final LongAdder SCATTER_NANOS = new LongAdder();
  private static final LongAdder CPU_UDF_NANOS = new LongAdder();
  private static final LongAdder GPU_UDF_BUSY_NANOS = new LongAdder();
  private static final AtomicInteger GPU_DEVICE = new AtomicInteger(-1);
  private static final Object BUSY = new Object();
  private static int active;       // GPU batches in progress (task threads overlap)
  private static long busySince;

  private SegmentGemmMetrics() {}

  /**
   * The counters at one moment. Times are summed over batches, which several task threads run
   * at once; gpuUdfBusyNanos is the wall time during which at least one GPU batch ran (the
   * union of their intervals; summed over executors by {@link #plus}). featureBytes counts both
   * paths, gpuFeatureBytes the GPU path's. gpuUdfNanos and the busy time start once a batch's
   * input is ready (inputWaitNanos, the upstream work the UDF waited for, is apart: see
   * {@link PhaseTimes}). device is the CUDA device of the last GPU batch, or -1.
   */
  public record Snapshot(long rows, long gpuRows, long cpuRows, long batches, long segments,
      long nativeCalls, long featureBytes, long gpuFeatureBytes, long gpuUdfNanos,
      long kernelNanos, long inputWaitNanos, long groupNanos, long adapterNanos,
      long gatherNanos, long scatterNanos, long cpuUdfNanos, long gpuUdfBusyNanos,
      int gpuDevice) {

    /** Sums of two executors' counters (the device of the other when this has none). */
    public Snapshot plus(Snapshot o) {
      return combine(o, Long::sum, gpuDevice >= 0 ? gpuDevice : o.gpuDevice);
    }

    /** This minus an earlier snapshot of the same counters. */
    public Snapshot minus(Snapshot o) {
      return combine(o, (a, b) -> a - b, gpuDevice);
    }

    /** Every counter (all fields but the device, the last) combined with o's by op. */
    private Snapshot combine(Snapshot o, java.util.function.LongBinaryOperator op, int device) {
      long[] v = toLongs();
      long[] w = o.toLongs();
      for (int i = 0; i < v.length - 1; i++) v[i] = op.applyAsLong(v[i], w[i]);
      v[v.length - 1] = device;
      return fromLongs(v);
    }

    public static final Snapshot ZERO = new Snapshot(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, -1);

    /** Every field, in declaration order (for messages of JDK types only). */
    public long[] toLongs() {
      return new long[] {rows, gpuRows, cpuRows, batches, segments, nativeCalls, featureBytes,
          gpuFeatureBytes, gpuUdfNanos, kernelNanos, inputWaitNanos, groupNanos, adapterNanos,
          gatherNanos, scatterNanos, cpuUdfNanos, gpuUdfBusyNanos, gpuDevice};
    }

    public static Snapshot fromLongs(long[] v) {
      if (v.length != 18) throw new IllegalArgumentException("a snapshot has 18 fields, not " + v.length);
      return new Snapshot(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10],
          v[11], v[12], v[13], v[14], v[15], v[16], (int) v[17]);
    }
  }

  /** A GPU batch starts (for the busy time). */
  static void gpuBatchStarted() {
    synchronized (BUSY) {
      if (active++ == 0) busySince = System.nanoTime();
    }
  }

  /** A GPU batch ends, done or failed. */
  static void gpuBatchEnded() {
    synchronized (BUSY) {
      if (--active == 0) GPU_UDF_BUSY_NANOS.add(System.nanoTime() - busySince);
    }
  }

  /** One batch of the GPU path: rows in, bytes of features read, phase times, wall time. */
  static void recordGpuBatch(long rows, long featureBytes, PhaseTimes t, long udfNanos) {
    ROWS.add(rows);
    GPU_ROWS.add(rows);
    BATCHES.increment();
    SEGMENTS.add(t.segments);
    NATIVE_CALLS.add(t.nativeCalls);
    FEATURE_BYTES.add(featureBytes);
    GPU_FEATURE_BYTES.add(featureBytes);
    GPU_UDF_NANOS.add(udfNanos);
    KERNEL_NANOS.add(t.kernelNs);
    INPUT_WAIT_NANOS.add(t.inputWaitNs);
    GROUP_NANOS.add(t.groupNs);
    ADAPTER_NANOS.add(t.adapterNs);
    GATHER_NANOS.add(t.gatherNs);
    SCATTER_NANOS.add(t.scatterNs);
    GPU_DEVICE.set(Cuda.getDevice());
  }

  public static Snapshot snapshot() {
    return new Snapshot(ROWS.sum(), GPU_ROWS.sum(), CPU_ROWS.sum(), BATCHES.sum(),
        SEGMENTS.sum(), NATIVE_CALLS.sum(), FEATURE_BYTES.sum(), GPU_FEATURE_BYTES.sum(),
        GPU_UDF_NANOS.sum(),
        KERNEL_NANOS.sum(), INPUT_WAIT_NANOS.sum(), GROUP_NANOS.sum(), ADAPTER_NANOS.sum(),
        GATHER_NANOS.sum(), SCATTER_NANOS.sum(),
        CPU_UDF_NANOS.sum(), GPU_UDF_BUSY_NANOS.sum(), GPU_DEVICE.get());
  }

  /** Rows of the CPU path: one (the row UDF) or a batch (CpuBatchSegmentGemm). */
  static void recordCpuRows(long rows, long featureBytes, long nanos) {
    ROWS.add(rows);
    CPU_ROWS.add(rows);
    FEATURE_BYTES.add(featureBytes);
    CPU_UDF_NANOS.add(nanos);
  }
}
