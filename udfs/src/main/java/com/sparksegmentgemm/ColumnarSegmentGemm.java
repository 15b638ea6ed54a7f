package com.sparksegmentgemm;

import ai.rapids.cudf.BaseDeviceMemoryBuffer;
import ai.rapids.cudf.BinaryOp;
import ai.rapids.cudf.ColumnVector;
import ai.rapids.cudf.ColumnView;
import ai.rapids.cudf.Cuda;
import ai.rapids.cudf.DeviceMemoryBuffer;
import ai.rapids.cudf.GroupByAggregation;
import ai.rapids.cudf.HostColumnVector;
import ai.rapids.cudf.NullPolicy;
import ai.rapids.cudf.OrderByArg;
import ai.rapids.cudf.OutOfBoundsPolicy;
import ai.rapids.cudf.RmmException;
import ai.rapids.cudf.Scalar;
import ai.rapids.cudf.ScanAggregation;
import ai.rapids.cudf.ScanType;
import ai.rapids.cudf.Table;
import com.nvidia.spark.rapids.jni.GpuSplitAndRetryOOM;
import com.sparksegmentgemm.nativelib.DType;
import com.sparksegmentgemm.nativelib.SegmentGemmNative;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * The GPU path of {@link SegmentGemmUdf} (segment_gemm and lora_apply): one cuDF batch
 * {@code (adapter id, features)} in, one LIST&lt;FLOAT&gt; column out, everything on the device and on the calling thread's default
 * stream (the one cuDF and the RAPIDS Accelerator use):
 * <ol>
 *   <li>group: adapter ids (STRING, or INT/LONG as their decimal strings) are looked up in the
 *       device cache's sorted id column (lower bound + equality), rows are validated (null
 *       inputs, unknown adapters, wrong lengths, null values), and a sort by adapter index gives
 *       the row order; only the per-adapter row counts come to the host, once per batch;</li>
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
 *       {@code sgemm_scatter_rows_to_float}); rows that were null or bad come out null and
 *       empty.</li>
 * </ol>
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
   *     either way for {@link SegmentGemmMetrics} (the stream is synchronised at each phase
   *     boundary), the plans only asked for when times is given
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
    long begin = System.nanoTime();
    PhaseTimes before = times.copy();
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
    try (ColumnVector key = adapterKeys(ids, features);
         ColumnVector order = sortOrder(key);
         ColumnVector featureColumn = owned(features);
         Table source = new Table(featureColumn)) {
      int n = rows - (int) key.getNullCount();
      if (n == 0) return allNull(rows);
      if ((long) n * dOut > Integer.MAX_VALUE) {
        throw new IllegalArgumentException(name + ": " + n + " rows x d_out " + dOut
            + " output values exceed one cuDF list column; use smaller batches"
            + " (spark.rapids.sql.batchSizeBytes)");
      }
      long[][] segments = segments(key);
      times.segments += segments[0].length;
      try (ColumnVector rank = validRank(key);
           ColumnVector dest = destinations(rank, order, n)) {
        t = lap(t, 0);
        DeviceMemoryBuffer out = DeviceMemoryBuffer.allocate((long) n * dOut * 4);
        try (ColumnVector child = new ColumnVector(ai.rapids.cudf.DType.FLOAT32, (long) n * dOut,
            Optional.of(0L), out, null, null)) {
          compute(source, order, dest, n, segments, out);
          t = System.nanoTime();
          ColumnVector result = asLists(child, rank, key, n);
          lap(t, 3);
          return result;
        }
      }
    }
  }

  /** For each row, how many computed (non-null key) rows come before it: its place in the output. */
  private static ColumnVector validRank(ColumnVector key) {
    try (ColumnVector valid = key.isNotNull();
         ColumnVector ones = valid.castTo(ai.rapids.cudf.DType.INT32)) {
      return ones.scan(ScanAggregation.sum(), ScanType.EXCLUSIVE, NullPolicy.INCLUDE);
    }
  }

  /** Output row of each of the first n sorted rows (the computed ones): rank[order[r]]. */
  private static ColumnVector destinations(ColumnVector rank, ColumnVector order, int n) {
    try (ColumnVector head = order.subVector(0, n);
         Table ranks = new Table(rank);
         Table gathered = ranks.gather(head)) {
      return gathered.getColumn(0).incRefCount();
    }
  }

  /**
   * The result LIST column in the original row order: the computed rows' values lie in child in
   * that order already (scattered there by the native widening pass), so offsets are rank * d_out,
   * and rows whose key is null are null (and empty).
   */
  private ColumnVector asLists(ColumnVector child, ColumnVector rank, ColumnVector key, int n) {
    try (Scalar width = Scalar.fromInt(dOut);
         ColumnVector starts = rank.mul(width, ai.rapids.cudf.DType.INT32);
         ColumnVector end = ColumnVector.fromInts(n * dOut);
         ColumnVector offsets = ColumnVector.concatenate(starts, end);
         ColumnVector lists = child.makeListFromOffsets(key.getRowCount(), offsets)) {
      return lists.mergeAndSetValidity(BinaryOp.BITWISE_AND, key);
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
   * Each row's adapter index (INT32), or null for a row that yields null: a null input, or a bad
   * row under onBadRow=null. Under onBadRow=error a bad row throws, naming its adapter.
   */
  private ColumnVector adapterKeys(ColumnView ids, ColumnView features) {
    try (ColumnVector idStr = ids.getType().equals(ai.rapids.cudf.DType.STRING)
             ? owned(ids) : ids.castTo(ai.rapids.cudf.DType.STRING);
         Table known = new Table(cache.ids());
         Table query = new Table(idStr);
         ColumnVector pos = known.lowerBound(query, OrderByArg.asc(0));
         Table atPos = known.gather(pos, OutOfBoundsPolicy.NULLIFY);
         ColumnVector found = falseIfNull(atPos.getColumn(0).equalTo(idStr));
         ColumnVector lens = features.countElements();
         ColumnVector lenOk = falseIfNull(eq(lens, dIn));
         ColumnVector hasNullValue = falseIfNull(features.listContainsNulls());
         ColumnVector noNullValue = hasNullValue.not();
         ColumnVector foundAndLen = and(found, lenOk);
         ColumnVector ok = and(foundAndLen, noNullValue);
         ColumnVector idPresent = ids.isNotNull();
         ColumnVector featPresent = features.isNotNull();
         ColumnVector present = and(idPresent, featPresent);
         ColumnVector notOk = ok.not();
         ColumnVector bad = and(present, notOk)) {
      if (settings.onBadRow() == SegmentGemmConf.OnBadRow.ERROR && any(bad)) {
        throw firstBadRow(bad, idStr, found, lens);
      }
      try (Scalar none = Scalar.fromNull(ai.rapids.cudf.DType.INT32)) {
        return ok.ifElse(pos, none);
      }
    }
  }

  /** The error for the first bad row (the only path that copies row data to the host). */
  private BadRowException firstBadRow(ColumnView bad, ColumnVector idStr, ColumnVector found,
      ColumnVector lens) {
    try (Scalar zero = Scalar.fromInt(0);
         ColumnVector index = ColumnVector.sequence(zero, (int) bad.getRowCount());
         ColumnVector lensOrZero = lens.replaceNulls(zero);
         Table all = new Table(index, idStr, found, lensOrZero);
         Table badRows = all.filter(bad);
         ColumnVector firstIndex = ColumnVector.fromInts(0);
         Table first = badRows.gather(firstIndex);
         HostColumnVector row = first.getColumn(0).copyToHost();
         HostColumnVector id = first.getColumn(1).copyToHost();
         HostColumnVector isKnown = first.getColumn(2).copyToHost();
         HostColumnVector len = first.getColumn(3).copyToHost()) {
      String where = " (row " + row.getInt(0) + " of the batch)";
      String adapter = id.getJavaString(0);
      if (!isKnown.getBoolean(0)) {
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

  private static ColumnVector sortOrder(ColumnVector key) {
    try (Table t = new Table(key)) {
      return t.sortOrder(OrderByArg.asc(0, false));  // nulls last: the computed rows come first
    }
  }

  /**
   * The segments in sorted row order, from one small copy to the host: {adapter index per
   * segment, first sorted row per segment (with the end appended)}.
   */
  private static long[][] segments(ColumnVector key) {
    try (Table keys = new Table(key);
         Table counts = keys.groupBy(0).aggregate(GroupByAggregation.count().onColumn(0));
         Table sorted = counts.orderBy(OrderByArg.asc(0, false));
         ColumnVector c64 = sorted.getColumn(1).castTo(ai.rapids.cudf.DType.INT64);
         HostColumnVector adapters = sorted.getColumn(0).copyToHost();
         HostColumnVector count = c64.copyToHost()) {
      int groups = (int) adapters.getRowCount();
      int valid = groups - (int) adapters.getNullCount();  // the null key is a group too
      long[] adapter = new long[valid];
      long[] start = new long[valid + 1];
      for (int g = 0; g < valid; g++) {
        adapter[g] = adapters.getInt(g);
        start[g + 1] = start[g] + count.getLong(g);
      }
      return new long[][] {adapter, start};
    }
  }

  /** Fills out ((n, d_out) float32, sorted row order) with one native call per part. */
  private void compute(Table features, ColumnVector order, ColumnVector dest, int n,
      long[][] segments, DeviceMemoryBuffer out) {
    int[] adapter = Arrays.stream(segments[0]).mapToInt(a -> (int) a).toArray();
    long[] start = segments[1];
    long rowBytes = (long) dIn * dtype.bytes();
    for (AdapterWeights.Stage st : weights.stages()) rowBytes += (long) st.dOut() * dtype.bytes();
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
        try (DeviceAdapterCache.Lease lease = cache.acquire(adapter, seg, lastSeg + 1)) {
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

  private long workspaceBytes(int k, long rows) {
    long most = 0;
    for (AdapterWeights.Stage st : weights.stages()) {
      most = Math.max(most, SegmentGemmNative.workspaceSize(dtype, rows, st.dIn(), st.dOut(),
          cache.slots(), k, true).floatBytes());
    }
    return most;
  }

  /**
   * One native call per stage over sorted rows [row, end), segments seg .. seg + k - 1
   * (clipped); a stage's output is the next one's x, in device memory.
   */
  private void runPart(SegmentGemm gemm, Table features, ColumnVector order, ColumnVector dest,
      long row, long end, int seg, int k, long[] start, DeviceAdapterCache.Lease lease,
      DeviceMemoryBuffer out) {
    long t = System.nanoTime();
    long rows = end - row;
    int batch = 0;
    long[] indptr = new long[k + 1];
    long[] slots = new long[k];
    for (int i = 0; i < k && start[seg + i] < end; i++) {
      indptr[i + 1] = Math.min(end, start[seg + i + 1]) - row;
      slots[i] = lease.slot(i);
      batch++;
    }
    int e = dtype.bytes();
    try (DeviceTensor segIndptr = DeviceTensor.fromLongs(Arrays.copyOf(indptr, batch + 1));
         DeviceTensor weightIndices = DeviceTensor.fromLongs(Arrays.copyOf(slots, batch))) {
      DeviceMemoryBuffer x = DeviceMemoryBuffer.allocate(rows * dIn * e);
      try {
        gather(features, order, row, end, x);
        t = lap(t, 1);
        List<AdapterWeights.Stage> stages = weights.stages();
        for (int stage = 0; stage < stages.size(); stage++) {
          AdapterWeights.Stage st = stages.get(stage);
          try (DeviceMemoryBuffer in = x) {
            x = null;
            DeviceMemoryBuffer y = DeviceMemoryBuffer.allocate(rows * st.dOut() * e);
            x = y;
            gemm.run(dtype, in, rows, st.dIn(), st.dOut(), cache.weights(stage), cache.slots(),
                st.columnMajor(), y, batch, null, segIndptr.buffer(), weightIndices.buffer(),
                stream);
            if (recordPlans) {
              times.plan(gemm.describePlan(dtype, in, rows, st.dIn(), st.dOut(),
                  cache.weights(stage), cache.slots(), st.columnMajor(), y, batch, null,
                  segIndptr.buffer(), weightIndices.buffer()));
            }
          }
          times.nativeCalls++;
        }
        t = lap(t, 2);
        scatter(x, dest, row, end, out);
        lap(t, 3);
      } finally {
        if (x != null) x.close();
      }
    }
  }

  /**
   * x[0 .. end - row) = features[order[row .. end)] in the compute dtype: one native pass that
   * reads the list column's child values through its offsets and rounds as DType does.
   */
  private void gather(Table source, ColumnVector order, long row, long end,
      DeviceMemoryBuffer x) {
    if (end <= row || dIn == 0) return;
    ColumnVector lists = source.getColumn(0);
    try (ColumnView offsets = lists.getListOffsetsView();
         ColumnView values = lists.getChildColumnView(0);
         BaseDeviceMemoryBuffer offsetData = offsets.getData();
         BaseDeviceMemoryBuffer valueData = values.getData();
         BaseDeviceMemoryBuffer orderData = order.getData()) {
      SegmentGemmNative.gatherFloatRows(valueData.getAddress(), offsetData.getAddress(),
          orderData.getAddress() + row * Integer.BYTES, end - row, dIn, dtype, x.getAddress(),
          stream.getStream());
    }
  }

  /** out rows dest[row .. end) = float32 of y's rows (one native pass). */
  private void scatter(DeviceMemoryBuffer y, ColumnVector dest, long row, long end,
      DeviceMemoryBuffer out) {
    try (BaseDeviceMemoryBuffer destData = dest.getData()) {
      SegmentGemmNative.scatterRowsToFloat(y.getAddress(), dtype,
          destData.getAddress() + row * Integer.BYTES, end - row, dOut, out.getAddress(),
          stream.getStream());
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

  private long lap(long since, int phase) {
    stream.sync();
    long now = System.nanoTime();
    long d = now - since;
    switch (phase) {
      case 0 -> times.groupNs += d;
      case 1 -> times.gatherNs += d;
      case 2 -> times.kernelNs += d;
      default -> times.scatterNs += d;
    }
    return now;
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

  private static boolean any(ColumnView mask) {
    try (Scalar s = mask.any()) {
      return s.isValid() && s.getBoolean();
    }
  }

  private static ColumnVector falseIfNull(ColumnVector mask) {
    try (mask; Scalar f = Scalar.fromBool(false)) {
      return mask.replaceNulls(f);
    }
  }

  private static ColumnVector eq(ColumnView v, int value) {
    try (Scalar s = Scalar.fromInt(value)) {
      return v.equalTo(s);
    }
  }

  private static ColumnVector and(ColumnView a, ColumnView b) {
    return a.binaryOp(BinaryOp.LOGICAL_AND, b, ai.rapids.cudf.DType.BOOL8);
  }
}
