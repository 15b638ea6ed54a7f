package com.sparksegmentgemm;

import ai.rapids.cudf.BaseDeviceMemoryBuffer;
import ai.rapids.cudf.BinaryOp;
import ai.rapids.cudf.ColumnVector;
import ai.rapids.cudf.ColumnView;
import ai.rapids.cudf.Cuda;
import ai.rapids.cudf.DeviceMemoryBuffer;
import ai.rapids.cudf.HostColumnVector;
import ai.rapids.cudf.HostMemoryBuffer;
import ai.rapids.cudf.OrderByArg;
import ai.rapids.cudf.OutOfBoundsPolicy;
import ai.rapids.cudf.RmmException;
import ai.rapids.cudf.Scalar;
import ai.rapids.cudf.Table;
import com.nvidia.spark.rapids.jni.GpuSplitAndRetryOOM;
import com.sparksegmentgemm.nativelib.DType;
import com.sparksegmentgemm.nativelib.SegmentGemmNative;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The GPU path of {@link SegmentGemmUdf} (segment_gemm and lora_apply): one cuDF batch
 * {@code (adapter id, features)} in, one LIST&lt;FLOAT&gt; column out, everything on the device and on the calling thread's default
 * stream (the one cuDF and the RAPIDS Accelerator use):
 * <ol>
 *   <li>group: adapter ids (STRING, or INT/LONG as their decimal strings) are looked up in the
 *       device cache's sorted id column (cuDF lower bound + equality); then one native pass
 *       ({@code sgemm_group_rows}) validates the rows (null inputs, unknown adapters, wrong
 *       lengths, null values), sorts the computed ones by adapter (stable), and lays out the
 *       result's offsets and validity; only the rows per adapter, the computed rows and the first
 *       bad row come to the host, in one copy: the group phase's one synchronisation;</li>
 *   <li>gather: features' rows are gathered in that order into one contiguous
 *       {@code (rows, d_in)} x in the compute dtype (one native pass,
 *       {@code sgemm_gather_float_rows}, rounding as {@link DType} does);</li>
 *   <li>kernel: one native call per stage over every segment (lora_apply's two stages pass their
 *       intermediate rows in device memory; more calls only when the batch exceeds
 *       {@code gpuBatchBytes}, the workspace cap, or the device cache's slots; a batch that does
 *       not fit in GPU memory goes back to the RAPIDS Accelerator's retry framework, which
 *       spills, retries and splits it, see {@link #splitAndRetry});</li>
 *   <li>scatter: y is widened to float and each row written straight to its place in the
 *       result's child values, in the original row order (one native pass,
 *       {@code sgemm_scatter_rows_to_float}); the LIST column is built around those values with
 *       the group pass's offsets and validity, without a copy; rows that were null or bad come
 *       out null and empty.</li>
 * </ol>
 * Before these, the batch's input is waited for (the upstream work on the stream: timed apart, not
 * the UDF's own). Gather, kernels and scatter are enqueued back to back and checked once, at the
 * end (the batch's last synchronisation); their times come from CUDA events between them.
 */
public final class ColumnarSegmentGemm {
  /** What the UDF returns: ARRAY&lt;FLOAT&gt; with non-null elements, as a cuDF type. */
  static final HostColumnVector.ListType RESULT_TYPE = new HostColumnVector.ListType(true,
      new HostColumnVector.BasicType(false, ai.rapids.cudf.DType.FLOAT32));

  private final SegmentGemmSettings settings;
  private final AdapterWeights weights;
  private final String name;
  private final DeviceAdapterCache cache;
  private final PhaseTimes times;
  private final Cuda.Stream stream = Cuda.DEFAULT_STREAM;
  private final DType dtype;
  private final int dIn;
  private final int dOut;
  private final String idColumn;
  private final String featuresColumn;
  /** Whether the caller gave a PhaseTimes (tests, benchmarks), which then gets the plans. */
  private final boolean recordPlans;

  /**
   * @param times where to add phase times and the kernel plans, or null; the phases are timed
   *     either way for {@link SegmentGemmMetrics} (by CUDA events, no extra synchronisation),
   *     the plans only asked for when times is given
   */
  public ColumnarSegmentGemm(SegmentGemmSettings settings, AdapterWeights.Function function,
      PhaseTimes times) {
    this(settings, function, times, "adapter_id", "features");
  }

  /**
   * @param idColumn the adapter id argument as the query names it, for bad-row messages
   * @param featuresColumn the features argument as the query names it, likewise
   */
  public ColumnarSegmentGemm(SegmentGemmSettings settings, AdapterWeights.Function function,
      PhaseTimes times, String idColumn, String featuresColumn) {
    this.idColumn = idColumn;
    this.featuresColumn = featuresColumn;
    this.settings = settings;
    this.cache = AdapterRegistry.deviceCache(settings, function);
    this.weights = cache.adapters();
    this.name = function.sqlName();
    this.times = times == null ? new PhaseTimes() : times;
    this.recordPlans = times != null;
    this.dtype = settings.computeDtype();
    this.dIn = weights.dIn();
    this.dOut = weights.dOut();
  }

  /**
   * segment_gemm of every row; the caller owns the returned column. The inputs may be views
   * into larger columns (sliced: list offsets need not start at 0).
   */
  public ColumnVector evaluate(ColumnView ids, ColumnView features) {
    PhaseTimes before = times.copy();
    waitForInput(ids.getRowCount());
    long begin = System.nanoTime();
    ColumnVector result;
    SegmentGemmMetrics.gpuBatchStarted();
    try {
      result = evaluateTimed(ids, features);
    } catch (RmmException e) {
      throw splitAndRetry(e);
    } catch (OutOfMemoryError e) {
      // cuDF reports a failed device allocation as an OutOfMemoryError thrown from its native
      // code; a Java heap exhaustion stays what it is.
      StackTraceElement[] at = e.getStackTrace();
      if (at.length == 0 || !at[0].getClassName().startsWith("ai.rapids.cudf.")) throw e;
      throw splitAndRetry(e);
    } finally {
      SegmentGemmMetrics.gpuBatchEnded();
    }
    SegmentGemmMetrics.recordGpuBatch(ids.getRowCount(), (long) ids.getRowCount() * dIn * 4,
        times.minus(before), System.nanoTime() - begin);
    return result;
  }

  /**
   * Waits for the work already on the stream: what produced the batch (the upstream operator's
   * asynchronous kernels and copies). Done apart so that the UDF's own time, and the busy time,
   * start when its input exists; an empty batch has nothing to wait for.
   */
  private void waitForInput(long rows) {
    if (rows == 0) return;
    long t = System.nanoTime();
    stream.sync();
    times.inputWaitNs += System.nanoTime() - t;
  }

  private ColumnVector evaluateTimed(ColumnView ids, ColumnView features) {
    checkTypes(ids, features);
    int rows = Math.toIntExact(ids.getRowCount());
    if (features.getRowCount() != rows) {
      throw new IllegalArgumentException(name + ": " + idColumn + " has " + rows
          + " rows but " + featuresColumn + " has " + features.getRowCount());
    }
    // Empty batches are ordinary (filters, skew, small files): the declared type, no GPU work.
    if (rows == 0) return allNull(0);
    long t = System.nanoTime();
    int adapters = (int) cache.ids().getRowCount();
    try (ColumnVector featureColumn = owned(features);
         Table source = new Table(featureColumn);
         Lookup lookup = lookup(ids);
         Grouped g = group(lookup, featureColumn, rows, adapters)) {
      if (g.firstBad >= 0 && settings.onBadRow() == SegmentGemmConf.OnBadRow.ERROR) {
        throw badRow(g.firstBad, lookup, featureColumn);
      }
      int n = g.n;
      if (n == 0) return allNull(rows);
      if ((long) n * dOut > Integer.MAX_VALUE) {
        throw new IllegalArgumentException(name + ": " + n + " rows x d_out " + dOut
            + " output values exceed one cuDF list column; use smaller batches"
            + " (spark.rapids.sql.batchSizeBytes)");
      }
      Segments segments = g.segments();
      times.segments += segments.adapter().length;
      times.groupNs += System.nanoTime() - t;
      DeviceMemoryBuffer out = DeviceMemoryBuffer.allocate((long) n * dOut * 4);
      try {
        compute(source, g.order, g.dest, n, segments, out);
        return g.asLists(out, rows, dOut);  // takes out
      } catch (RuntimeException | Error e) {
        out.close();
        throw e;
      }
    }
  }

  /**
   * Each row's adapter index in the device cache's sorted ids (lower bound) and whether the id
   * there is the row's (equality): STRING ids as they are, INT/LONG ids as their decimal strings.
   */
  private record Lookup(ColumnVector idStr, ColumnVector position, ColumnVector found)
      implements AutoCloseable {
    @Override
    public void close() {
      try (idStr; position; found) {
        // closes each (null ones are skipped)
      }
    }
  }

  private Lookup lookup(ColumnView ids) {
    ColumnVector idStr = null;
    ColumnVector pos = null;
    ColumnVector found = null;
    try {
      idStr = ids.getType().equals(ai.rapids.cudf.DType.STRING)
          ? owned(ids) : ids.castTo(ai.rapids.cudf.DType.STRING);
      try (Table known = new Table(cache.ids());
           Table query = new Table(idStr)) {
        pos = known.lowerBound(query, OrderByArg.asc(0));
        try (Table atPos = known.gather(pos, OutOfBoundsPolicy.NULLIFY)) {
          found = atPos.getColumn(0).equalTo(idStr);
        }
      }
      return new Lookup(idStr, pos, found);
    } catch (RuntimeException | Error e) {
      try (ColumnVector a = idStr; ColumnVector b = pos; ColumnVector c = found) {
        throw e;
      }
    }
  }

  /**
   * A batch's segments in sorted row order: the adapter index of each, and the first sorted row
   * of each with the end appended (start[i] .. start[i + 1] are segment i's rows).
   */
  private record Segments(int[] adapter, long[] start) {}

  /**
   * The group phase's results, on the device: the computed rows in adapter order, each one's
   * result row, the result column's offsets and validity; and on the host the rows per adapter,
   * the computed rows and the first bad row (sgemm_group_rows, then one copy to the host).
   */
  private static final class Grouped implements AutoCloseable {
    final DeviceMemoryBuffer order;
    final DeviceMemoryBuffer dest;
    private DeviceMemoryBuffer offsets;
    private DeviceMemoryBuffer valid;
    final int[] counts;
    final int n;
    final int firstBad;

    Grouped(DeviceMemoryBuffer order, DeviceMemoryBuffer dest, DeviceMemoryBuffer offsets,
        DeviceMemoryBuffer valid, int[] counts, int n, int firstBad) {
      this.order = order;
      this.dest = dest;
      this.offsets = offsets;
      this.valid = valid;
      this.counts = counts;
      this.n = n;
      this.firstBad = firstBad;
    }

    /** The adapters that have rows, in sorted order, and where their rows start. */
    Segments segments() {
      int k = 0;
      for (int c : counts) if (c > 0) k++;
      int[] adapter = new int[k];
      long[] start = new long[k + 1];
      int s = 0;
      for (int a = 0; a < counts.length; a++) {
        if (counts[a] == 0) continue;
        adapter[s] = a;
        start[s + 1] = start[s] + counts[a];
        s++;
      }
      return new Segments(adapter, start);
    }

    /**
     * The result LIST&lt;FLOAT32&gt; column around child (the computed rows' float32 values in
     * row order, n * width of them), with this pass's offsets and validity: no copy. It owns
     * child, the offsets and the validity from then on.
     */
    ColumnVector asLists(DeviceMemoryBuffer child, int rows, int width) {
      try (ColumnView values = ColumnView.fromDeviceBuffer(child, 0, ai.rapids.cudf.DType.FLOAT32,
          n * width)) {
        DeviceMemoryBuffer validity = n == rows ? null : valid;
        ColumnVector lists = new ColumnVector(ai.rapids.cudf.DType.LIST, rows,
            Optional.of((long) (rows - n)), null, validity, offsets, List.of(child),
            new long[] {values.getNativeView()});
        offsets = null;
        if (validity != null) valid = null;
        return lists;
      }
    }

    @Override
    public void close() {
      try (DeviceMemoryBuffer a = order; DeviceMemoryBuffer b = dest;
           DeviceMemoryBuffer c = offsets; DeviceMemoryBuffer d = valid) {
        // closes what the result did not take
      }
    }
  }

  /**
   * Classifies every row (null inputs, unknown adapters, wrong lengths, null values), sorts the
   * computed ones by adapter and lays out the result, in one native pass; the rows per adapter
   * come to the host in one copy, the group phase's only synchronisation.
   */
  private Grouped group(Lookup lookup, ColumnVector features, int rows, int adapters) {
    long validBytes = (rows + 511L) / 512 * 64;  // cuDF pads validity masks to 64 bytes
    long wsBytes = SegmentGemmNative.groupRowsWorkspaceSize(rows, adapters);
    List<AutoCloseable> temps = new ArrayList<>();
    DeviceMemoryBuffer order = null, dest = null, offsets = null, valid = null;
    try {
      ColumnVector present = null;
      if (lookup.idStr().getNullCount() > 0 || features.getNullCount() > 0) {
        try (ColumnVector idOk = lookup.idStr().isNotNull();
             ColumnVector featuresOk = features.isNotNull()) {
          present = and(idOk, featuresOk);
        }
        temps.add(present);
      }
      ColumnVector hasNull = null;
      try (ColumnView values = features.getChildColumnView(0)) {
        if (values.getNullCount() > 0) {
          hasNull = features.listContainsNulls();
          temps.add(hasNull);
        }
      }
      DeviceMemoryBuffer summary = DeviceMemoryBuffer.allocate(4L * (adapters + 2));
      temps.add(summary);
      DeviceMemoryBuffer ws = DeviceMemoryBuffer.allocate(Math.max(1, wsBytes));
      temps.add(ws);
      order = DeviceMemoryBuffer.allocate(4L * rows);
      dest = DeviceMemoryBuffer.allocate(4L * rows);
      offsets = DeviceMemoryBuffer.allocate(4L * (rows + 1));
      valid = DeviceMemoryBuffer.allocate(validBytes);
      try (ColumnView listOffsets = features.getListOffsetsView();
           BaseDeviceMemoryBuffer offsetData = listOffsets.getData();
           BaseDeviceMemoryBuffer posData = lookup.position().getData();
           BaseDeviceMemoryBuffer foundData = lookup.found().getData();
           BaseDeviceMemoryBuffer presentData = present == null ? null : present.getData();
           BaseDeviceMemoryBuffer hasNullData = hasNull == null ? null : hasNull.getData()) {
        SegmentGemmNative.groupRows(posData.getAddress(), foundData.getAddress(),
            presentData == null ? 0 : presentData.getAddress(), offsetData.getAddress(),
            hasNullData == null ? 0 : hasNullData.getAddress(), rows, dIn, adapters, dOut,
            order.getAddress(), dest.getAddress(), offsets.getAddress(), valid.getAddress(),
            summary.getAddress(), ws.getAddress(), ws.getLength(), stream.getStream());
      }
      int[] counts = new int[adapters];
      int n;
      int firstBad;
      try (HostMemoryBuffer host = HostMemoryBuffer.allocate(summary.getLength())) {
        host.copyFromDeviceBuffer(summary, stream);  // waits for the pass
        host.getInts(counts, 0, 0, adapters);
        n = host.getInt(4L * adapters);
        firstBad = host.getInt(4L * (adapters + 1));
      }
      Grouped g = new Grouped(order, dest, offsets, valid, counts, n, firstBad);
      order = dest = offsets = valid = null;
      return g;
    } finally {
      try (DeviceMemoryBuffer a = order; DeviceMemoryBuffer b = dest;
           DeviceMemoryBuffer c = offsets; DeviceMemoryBuffer d = valid) {
        for (AutoCloseable r : temps) close(r);
      }
    }
  }

  private static void close(AutoCloseable r) {
    try {
      r.close();
    } catch (Exception e) {
      throw e instanceof RuntimeException re ? re : new IllegalStateException(e);
    }
  }

  private void checkTypes(ColumnView ids, ColumnView features) {
    ai.rapids.cudf.DType idType = ids.getType();
    if (!idType.equals(ai.rapids.cudf.DType.STRING) && !idType.equals(ai.rapids.cudf.DType.INT32)
        && !idType.equals(ai.rapids.cudf.DType.INT64)) {
      throw new IllegalArgumentException(name + ": adapter_id must be STRING, INT or LONG, not "
          + idType);
    }
    boolean listOfFloat = features.getType().equals(ai.rapids.cudf.DType.LIST);
    if (listOfFloat) {
      try (ColumnView c = features.getChildColumnView(0)) {
        listOfFloat = c.getType().equals(ai.rapids.cudf.DType.FLOAT32);
      }
    }
    if (!listOfFloat) {
      throw new IllegalArgumentException(name + ": features must be ARRAY<FLOAT>, not "
          + features.getType());
    }
  }

  /**
   * The error for the first bad row (the only path that copies row data to the host): its
   * adapter id, whether that is known, and its length.
   */
  private BadRowException badRow(int row, Lookup lookup, ColumnVector features) {
    try (ColumnVector at = ColumnVector.fromInts(row);
         ColumnVector lens = features.countElements();
         Table all = new Table(lookup.idStr(), lookup.found(), lens);
         Table one = all.gather(at);
         HostColumnVector id = one.getColumn(0).copyToHost();
         HostColumnVector isKnown = one.getColumn(1).copyToHost();
         HostColumnVector len = one.getColumn(2).copyToHost()) {
      String where = " (row " + row + " of the batch)";
      String adapter = id.getJavaString(0);
      if (isKnown.isNull(0) || !isKnown.getBoolean(0)) {
        return BadRowException.unknownAdapter(weights, idColumn, adapter, where);
      }
      if (len.getInt(0) != dIn) {
        return BadRowException.wrongLength(weights, featuresColumn, adapter, len.getInt(0), where);
      }
      return BadRowException.nullValue(weights, featuresColumn, adapter, -1, where);
    }
  }

  /**
   * A column reference the caller closes: a new reference to a ColumnVector, or a copy of a
   * plain view (a cuDF Table holds ColumnVectors only).
   */
  private static ColumnVector owned(ColumnView v) {
    return v instanceof ColumnVector c ? c.incRefCount() : v.copyToColumnVector();
  }

  /**
   * Fills out ((n, d_out) float32, rows in result order) with one native call per stage and part
   * (a part: as many segments as fit gpuBatchBytes, the workspace cap and the device cache's
   * slots; usually the whole batch). Nothing waits between a part's passes: the part ends with
   * one check (a stream synchronisation), after which its adapter slots may be reused.
   */
  private void compute(Table features, DeviceMemoryBuffer order, DeviceMemoryBuffer dest, int n,
      Segments segments, DeviceMemoryBuffer out) {
    int[] adapter = segments.adapter();
    long[] start = segments.start();
    long rowBytes = (long) dIn * dtype.bytes();
    for (AdapterWeights.Stage st : weights.stages()) {
      rowBytes += (long) st.dOut() * dtype.bytes();
      // fp8 adapters: each stage's x is also quantised, one byte a value, in the float workspace.
      if (cache.fp8()) rowBytes += st.dIn();
    }
    long maxRows = Math.max(1, settings.gpuBatchBytes() / Math.max(1, rowBytes));
    SegmentGemm taskGemm = TaskGemms.forCurrentTask(settings.backend());
    try (SegmentGemm ownGemm = taskGemm == null ? new SegmentGemm(settings.backend()) : null) {
      SegmentGemm gemm = taskGemm != null ? taskGemm : ownGemm;
      long row = 0;
      int seg = 0;
      while (row < n) {
        long want = Math.min(n, row + maxRows);
        int lastSeg = seg;
        while (start[lastSeg + 1] < want) lastSeg++;
        long t = System.nanoTime();
        try (DeviceAdapterCache.Lease lease = cache.acquire(adapter, seg, lastSeg + 1)) {
          times.adapterNs += System.nanoTime() - t;
          int k = fitWorkspace(lease.count(), want - row);
          long end = Math.min(want, start[seg + k]);
          runPart(gemm, features, order, dest, row, end, seg, k, start, lease, out);
          row = end;
          while (seg < adapter.length && start[seg + 1] <= row) seg++;
        }
      }
    }
  }

  /** How many of k segments one call may take within the workspace cap (at least one). */
  private int fitWorkspace(int k, long rows) {
    while (k > 1 && workspaceBytes(k, rows) > settings.workspaceBytes()) k = (k + 1) / 2;
    return k;
  }

  /**
   * The float workspace of k segments, less (fp8) the quantised copy of x: that grows with the
   * rows, not k, and is counted in gpuBatchBytes with the rows (compute), so halving k could
   * never bring it under the cap.
   */
  private long workspaceBytes(int k, long rows) {
    long most = 0;
    for (AdapterWeights.Stage st : weights.stages()) {
      long quantised = cache.fp8() ? rows * st.dIn() : 0;
      most = Math.max(most, SegmentGemmNative.workspaceSize(dtype, rows, st.dIn(), st.dOut(),
          cache.slots(), k, true, cache.fp8()).floatBytes() - quantised);
    }
    return most;
  }

  /**
   * One native call per stage over sorted rows [row, end), segments seg .. seg + k - 1
   * (clipped); a stage's output is the next one's x, in device memory. Gather, stages and scatter
   * are enqueued back to back, timed by CUDA events between them, and checked once at the end.
   */
  private void runPart(SegmentGemm gemm, Table features, DeviceMemoryBuffer order,
      DeviceMemoryBuffer dest, long row, long end, int seg, int k, long[] start,
      DeviceAdapterCache.Lease lease, DeviceMemoryBuffer out) {
    long rows = end - row;
    int batch = 0;
    long[] index = new long[2 * k + 1];  // seg_indptr (batch + 1), then weight_indices (batch)
    for (int i = 0; i < k && start[seg + i] < end; i++) {
      index[i + 1] = Math.min(end, start[seg + i + 1]) - row;
      batch++;
    }
    for (int i = 0; i < batch; i++) index[batch + 1 + i] = lease.slot(i);
    int e = dtype.bytes();
    long indexBytes = 8L * (2 * batch + 1);
    try (PhaseMarks marks = new PhaseMarks();
         HostMemoryBuffer hostIndex = HostMemoryBuffer.allocate(indexBytes);
         DeviceMemoryBuffer deviceIndex = DeviceMemoryBuffer.allocate(indexBytes)) {
      marks.mark(0, stream);
      hostIndex.setLongs(0, index, 0, batch + 1);
      hostIndex.setLongs(8L * (batch + 1), index, batch + 1, batch);
      // Asynchronous from the (pinned, under RAPIDS) host buffer, which lives until the check.
      deviceIndex.copyFromHostBufferAsync(hostIndex, stream);
      try (DeviceMemoryBuffer segIndptr = deviceIndex.slice(0, 8L * (batch + 1));
           DeviceMemoryBuffer weightIndices = deviceIndex.slice(8L * (batch + 1), 8L * batch)) {
        DeviceMemoryBuffer x = DeviceMemoryBuffer.allocate(rows * dIn * e);
        try {
          gather(features, order, row, end, x);
          marks.mark(1, stream);
          List<AdapterWeights.Stage> stages = weights.stages();
          for (int stage = 0; stage < stages.size(); stage++) {
            AdapterWeights.Stage st = stages.get(stage);
            try (DeviceMemoryBuffer in = x) {
              x = null;
              DeviceMemoryBuffer y = DeviceMemoryBuffer.allocate(rows * st.dOut() * e);
              x = y;
              // fp8 slots are K-major whatever the adapters' own layout (AdapterWeights.fp8).
              boolean colMajor = cache.fp8() || st.columnMajor();
              DeviceMemoryBuffer scales = cache.fp8() ? cache.scales(stage) : null;
              gemm.enqueue(dtype, in, rows, st.dIn(), st.dOut(), cache.weights(stage),
                  cache.slots(), colMajor, y, batch, null, segIndptr, weightIndices, scales,
                  stream);
              if (recordPlans) {
                times.plan(gemm.describePlan(dtype, in, rows, st.dIn(), st.dOut(),
                    cache.weights(stage), cache.slots(), colMajor, y, batch, null, segIndptr,
                    weightIndices, scales));
              }
            }
            times.nativeCalls++;
          }
          marks.mark(2, stream);
          scatter(x, dest, row, end, out);
          marks.mark(3, stream);
        } finally {
          if (x != null) x.close();  // stream-ordered: freed after the scatter that reads it
        }
        gemm.check(stream);  // the part's one synchronisation
      }
      float[] ms = marks.read();
      times.gatherNs += (long) (ms[0] * 1e6);
      times.kernelNs += (long) (ms[1] * 1e6);
      times.scatterNs += (long) (ms[2] * 1e6);
    }
  }

  /**
   * x[0 .. end - row) = features[order[row .. end)] in the compute dtype: one native pass that
   * reads the list column's child values through its offsets and rounds as DType does.
   */
  private void gather(Table source, DeviceMemoryBuffer order, long row, long end,
      DeviceMemoryBuffer x) {
    if (end <= row || dIn == 0) return;
    ColumnVector lists = source.getColumn(0);
    try (ColumnView offsets = lists.getListOffsetsView();
         ColumnView values = lists.getChildColumnView(0);
         BaseDeviceMemoryBuffer offsetData = offsets.getData();
         BaseDeviceMemoryBuffer valueData = values.getData()) {
      SegmentGemmNative.gatherFloatRows(valueData.getAddress(), offsetData.getAddress(),
          order.getAddress() + row * Integer.BYTES, end - row, dIn, dtype, x.getAddress(),
          stream.getStream());
    }
  }

  /** out rows dest[row .. end) = float32 of y's rows (one native pass). */
  private void scatter(DeviceMemoryBuffer y, DeviceMemoryBuffer dest, long row, long end,
      DeviceMemoryBuffer out) {
    SegmentGemmNative.scatterRowsToFloat(y.getAddress(), dtype,
        dest.getAddress() + row * Integer.BYTES, end - row, dOut, out.getAddress(),
        stream.getStream());
  }

  /**
   * Four CUDA events on the stream around a part's gather, stages and scatter (sgemm_timer):
   * phase times without a synchronisation of their own, read after the part's check.
   */
  private static final class PhaseMarks implements AutoCloseable {
    private final long timer = SegmentGemmNative.timerCreate(4);

    void mark(int i, Cuda.Stream stream) {
      SegmentGemmNative.timerMark(timer, i, stream.getStream());
    }

    /** Milliseconds of gather, stages and scatter. */
    float[] read() {
      float[] ms = new float[3];
      SegmentGemmNative.timerRead(timer, ms);
      return ms;
    }

    @Override
    public void close() {
      SegmentGemmNative.timerDestroy(timer);
    }
  }

  /** rows null rows of the result type LIST&lt;FLOAT32&gt; (none for an empty batch). */
  private static ColumnVector allNull(int rows) {
    if (rows == 0) return ColumnVector.fromLists(RESULT_TYPE);
    // listFromNull takes the ELEMENT type: a null LIST<FLOAT32> scalar is made from FLOAT32
    // (passing the list type made LIST<LIST<FLOAT32>>, which RAPIDS rejects for ARRAY<FLOAT>).
    try (Scalar nullList = Scalar.listFromNull(RESULT_TYPE.getChild(0))) {
      return ColumnVector.fromScalar(nullList, rows);
    }
  }

  /**
   * A device allocation that failed outside the RAPIDS Accelerator's allocator (plain RMM reports
   * it as OutOfMemoryError or RmmException), as the RAPIDS Accelerator's split-and-retry signal.
   * Under the RAPIDS Accelerator the allocator throws GpuRetryOOM / GpuSplitAndRetryOOM itself,
   * and those pass through untouched. Either way the batch goes back to RAPIDS' retry framework:
   * GpuProjectExec keeps a spillable copy of its input, spills, retries, and on a split signal
   * halves the batch by rows and calls this UDF on each half (spark-rapids
   * basicPhysicalOperators.scala, GpuProjectExec.runWithSplitRetry; it walks the cause chain,
   * so the SparkException GpuUserDefinedFunction wraps this in is recognised). Nothing here
   * retries on its own: everything this batch allocated is closed on the way out, and the task's
   * native handle (its workspaces) is released too.
   */
  private RuntimeException splitAndRetry(Throwable e) {
    TaskGemms.releaseCurrentTask();
    GpuSplitAndRetryOOM oom = new GpuSplitAndRetryOOM(name + ": GPU out of memory: "
        + e.getMessage());
    oom.initCause(e);
    return oom;
  }

  private static ColumnVector and(ColumnView a, ColumnView b) {
    return a.binaryOp(BinaryOp.LOGICAL_AND, b, ai.rapids.cudf.DType.BOOL8);
  }
}
