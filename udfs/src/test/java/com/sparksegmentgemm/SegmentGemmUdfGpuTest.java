package com.sparksegmentgemm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.rapids.cudf.BaseDeviceMemoryBuffer;
import ai.rapids.cudf.ColumnVector;
import ai.rapids.cudf.ColumnView;
import ai.rapids.cudf.DeviceMemoryBuffer;
import ai.rapids.cudf.HostColumnVector;
import ai.rapids.cudf.HostMemoryBuffer;
import com.sparksegmentgemm.nativelib.DType;
import com.sparksegmentgemm.nativelib.Gpu;
import com.sparksegmentgemm.nativelib.GpuRequirement;
import com.sparksegmentgemm.nativelib.SegmentGemmNative;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * {@link SegmentGemmUdf#evaluateColumnar} on real cuDF columns, against the CPU path
 * ({@link SegmentGemmUdf#call}) on the same rows and both against the double-precision
 * reference. Skips, saying why, where there is no usable GPU.
 */
class SegmentGemmUdfGpuTest {
  private static final int D_IN = 24;
  private static final int D_OUT = 16;
  private static final HostColumnVector.DataType FEATURES = new HostColumnVector.ListType(true,
      new HostColumnVector.BasicType(true, ai.rapids.cudf.DType.FLOAT32));

  @TempDir static Path dir;
  /** Store (subdirectory) -> adapter id -> weight. */
  private static final Map<String, Map<String, float[]>> WEIGHTS = new HashMap<>();
  /** Store -> {d_in, d_out}. */
  private static final Map<String, int[]> DIMS = new HashMap<>();
  private static final Map<String, AdapterFiles.Lora> LORA = new HashMap<>();

  @BeforeAll
  static void setUp() throws IOException {
    Gpu.unavailableReason().ifPresentOrElse(
        r -> System.out.println("SegmentGemmUdfGpuTest: every test SKIPPED, no usable CUDA GPU here (" + r + ")"),
        () -> System.out.println("SegmentGemmUdfGpuTest on " + SegmentGemmNative.deviceQuery(0)));
    store("named", 40, D_IN, D_OUT, 1);
    store("many", 1000, D_IN, D_OUT, 2);
    // d_in > 512 and unaligned: beyond the small-call kernel and the tensor cores: portable.
    store("odd", 5, 601, 7, 3);
    WEIGHTS.put("numeric", AdapterFiles.writeNumeric(dir.resolve("numeric"), new Random(4), 10, D_IN, D_OUT));
    DIMS.put("numeric", new int[] {D_IN, D_OUT});
    // Sizes that leave the small-call kernel (rows x d_in x d_out > 2^22 MACs) for the
    // tensor-core tile classes of native/src/cuda/plan.cu.
    store("square", 200, 64, 64, 21);
    store("narrow", 8, 256, 32, 22);
  }

  private static void store(String name, int count, int dIn, int dOut, long seed) throws IOException {
    WEIGHTS.put(name, AdapterFiles.writeRandom(dir.resolve(name), new Random(seed), count, dIn, dOut));
    DIMS.put(name, new int[] {dIn, dOut});
  }

  /** Per test, so that each one is reported as skipped (a class-level skip counts none). */
  @BeforeEach
  void requireGpu() {
    GpuRequirement.assumeGpu();
  }

  @AfterAll
  static void tearDown() {
    AdapterRegistry.clear();
  }

  private static SegmentGemmSettings settings(String store, DType dtype) {
    return SegmentGemmSettings.defaults(dir.resolve(store).toUri().toString()).withComputeDtype(dtype);
  }

  private static List<String> ids(String store) {
    return new ArrayList<>(new java.util.TreeMap<>(WEIGHTS.get(store)).keySet());
  }

  private static ColumnVector idColumn(List<UdfCases.Input> rows) {
    Object first = rows.stream().map(UdfCases.Input::adapterId).filter(x -> x != null).findFirst()
        .orElse("");
    if (first instanceof Integer) {
      return ColumnVector.fromBoxedInts(rows.stream().map(r -> (Integer) r.adapterId()).toArray(Integer[]::new));
    }
    if (first instanceof Long) {
      return ColumnVector.fromBoxedLongs(rows.stream().map(r -> (Long) r.adapterId()).toArray(Long[]::new));
    }
    return ColumnVector.fromStrings(rows.stream().map(r -> (String) r.adapterId()).toArray(String[]::new));
  }

  @SuppressWarnings("unchecked")
  private static ColumnVector featureColumn(List<UdfCases.Input> rows) {
    return ColumnVector.fromLists(FEATURES, rows.stream().map(UdfCases.Input::features).toArray(List[]::new));
  }

  private static List<float[]> toRows(ColumnVector out) {
    List<float[]> rows = new ArrayList<>();
    try (HostColumnVector h = out.copyToHost()) {
      for (int r = 0; r < h.getRowCount(); r++) {
        rows.add(h.isNull(r) ? null : UdfCases.unboxed(h.getList(r)));
      }
    }
    return rows;
  }

  /** evaluateColumnar over rows, checked row by row against call() and the reference. */
  private static void checkBatch(String store, SegmentGemmSettings s, List<UdfCases.Input> rows,
      String what) {
    SegmentGemmUdf udf = new SegmentGemmUdf(s);
    try (ColumnVector ids = idColumn(rows);
         ColumnVector features = featureColumn(rows);
         ColumnVector out = udf.evaluateColumnar(rows.size(), ids, features)) {
      assertEquals(rows.size(), out.getRowCount(), what + ": one output row per input row");
      checkRows(udf, store, s, rows, toRows(out), what);
    }
  }

  private static void checkRows(SegmentGemmUdf udf, String store, SegmentGemmSettings s,
      List<UdfCases.Input> rows, List<float[]> gpu, String what) {
    Map<String, float[]> w = WEIGHTS.get(store);
    int dIn = DIMS.get(store)[0];
    int dOut = DIMS.get(store)[1];
    for (int i = 0; i < rows.size(); i++) {
      UdfCases.Input in = rows.get(i);
      float[] cpu = udf.call(in.adapterId(), in.features() == null ? null
          : scala.jdk.javaapi.CollectionConverters.asScala(in.features()).toSeq());
      String row = what + " row " + i;
      assertEquals(cpu == null, gpu.get(i) == null, row + ": CPU " + UdfCases.describe(cpu)
          + " vs GPU " + UdfCases.describe(gpu.get(i)));
      if (cpu == null) continue;
      UdfCases.check(in, gpu.get(i), w, dIn, dOut, s.computeDtype(), "GPU " + row);
      UdfCases.check(in, cpu, w, dIn, dOut, s.computeDtype(), "CPU " + row);
    }
  }

  @ParameterizedTest
  @EnumSource(DType.class)
  void loraApplyRunsBothStagesOnTheGpu(DType dtype) throws IOException {
    Path lora = dir.resolve("lora");
    if (!java.nio.file.Files.exists(lora)) LORA.putAll(AdapterFiles.writeLora(lora, new Random(5), 12, 64, 48, 16, 8));
    SegmentGemmSettings s = settings("lora", dtype);
    List<UdfCases.Input> rows = UdfCases.skewed(new Random(40 + dtype.ordinal()),
        new ArrayList<>(LORA.keySet()), 3000, 64, 0.05);
    SegmentGemmUdf udf = new SegmentGemmUdf(s, AdapterWeights.Function.LORA_APPLY);
    PhaseTimes times = new PhaseTimes();
    try (ColumnVector ids = idColumn(rows);
         ColumnVector features = featureColumn(rows);
         ColumnVector out = new ColumnarSegmentGemm(s, AdapterWeights.Function.LORA_APPLY, times)
             .evaluate(ids, features)) {
      assertEquals(2, times.nativeCalls(), "one native call per stage");
      List<float[]> gpu = toRows(out);
      double tol = Reference.tolerance(dtype);
      for (int i = 0; i < rows.size(); i++) {
        UdfCases.Input in = rows.get(i);
        float[] cpu = udf.call(in.adapterId(), in.features() == null ? null
            : scala.jdk.javaapi.CollectionConverters.asScala(in.features()).toSeq());
        assertEquals(cpu == null, gpu.get(i) == null, "row " + i);
        if (cpu == null) continue;
        AdapterFiles.Lora l = LORA.get((String) in.adapterId());
        AdapterFiles.checkLora(in.features(), gpu.get(i), l, 64, 48, dtype, tol, "GPU row " + i);
        AdapterFiles.checkLora(in.features(), cpu, l, 64, 48, dtype, tol, "CPU row " + i);
      }
    }
  }

  @ParameterizedTest
  @EnumSource(DType.class)
  void skewedBatchWithNulls(DType dtype) {
    List<UdfCases.Input> rows = UdfCases.skewed(new Random(20 + dtype.ordinal()), ids("named"),
        5000, D_IN, 0.05);
    checkBatch("named", settings("named", dtype), rows, "skewed " + dtype);
  }

  @ParameterizedTest
  @EnumSource(DType.class)
  void thousandAdaptersInOneNativeCall(DType dtype) {
    Random rnd = new Random(30 + dtype.ordinal());
    List<UdfCases.Input> rows = new ArrayList<>();
    for (String id : ids("many")) {
      for (int k = rnd.nextInt(3); k >= 0; k--) rows.add(new UdfCases.Input(id, UdfCases.features(rnd, D_IN)));
    }
    java.util.Collections.shuffle(rows, rnd);
    SegmentGemmSettings s = settings("many", dtype);
    PhaseTimes times = new PhaseTimes();
    try (ColumnVector ids = idColumn(rows);
         ColumnVector features = featureColumn(rows);
         ColumnVector out = new ColumnarSegmentGemm(s, AdapterWeights.Function.SEGMENT_GEMM, times).evaluate(ids, features)) {
      assertEquals(1, times.nativeCalls(), "1,000 adapters, one native call");
      // Every row computed: the result column is built without a validity mask; the phases
      // were timed (CUDA events around gather, kernels and scatter; host time for the input
      // wait, the group and the device cache).
      assertEquals(0, out.getNullCount());
      assertTrue(times.inputWaitNs() > 0 && times.groupNs() > 0 && times.adapterNs() > 0
          && times.gatherNs() > 0 && times.kernelNs() > 0 && times.scatterNs() > 0,
          "phase times " + times.inputWaitNs() + "/" + times.groupNs() + "/" + times.adapterNs()
          + "/" + times.gatherNs() + "/" + times.kernelNs() + "/" + times.scatterNs());
      checkRows(new SegmentGemmUdf(s), "many", s, rows, toRows(out), "1,000 adapters " + dtype);
    }
  }

  @Test
  void oneRow() {
    checkBatch("named", settings("named", DType.BFLOAT16),
        List.of(new UdfCases.Input("a7", UdfCases.features(new Random(5), D_IN))), "one row");
  }

  @Test
  void allRowsNullAndEmptyBatch() {
    Random rnd = new Random(6);
    checkBatch("named", settings("named", DType.FLOAT16), List.of(
        new UdfCases.Input(null, UdfCases.features(rnd, D_IN)), new UdfCases.Input("a1", null),
        new UdfCases.Input(null, null)), "all null");
    checkBatch("named", settings("named", DType.FLOAT16), List.of(), "empty batch");
  }

  @Test
  void intAdapterIds() {
    List<Integer> ints = List.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
    checkBatch("numeric", settings("numeric", DType.BFLOAT16),
        UdfCases.skewed(new Random(7), ints, 500, D_IN, 0.1), "INT ids");
  }

  @Test
  void longAdapterIds() {
    List<Long> longs = List.of(0L, 1L, 2L, 3L, 4L, 5L, 6L, 7L, 8L, 9L);
    checkBatch("numeric", settings("numeric", DType.FLOAT32),
        UdfCases.skewed(new Random(8), longs, 500, D_IN, 0.1), "LONG ids");
  }

  /** Views into the middle of larger columns: list offsets start at neither 0 nor a row boundary of the child. */
  @ParameterizedTest
  @EnumSource(DType.class)
  void slicedInputColumns(DType dtype) {
    List<UdfCases.Input> all = UdfCases.skewed(new Random(40 + dtype.ordinal()), ids("named"),
        600, D_IN, 0.05);
    SegmentGemmSettings s = settings("named", dtype);
    SegmentGemmUdf udf = new SegmentGemmUdf(s);
    try (ColumnVector ids = idColumn(all);
         ColumnVector features = featureColumn(all)) {
      ColumnView[] idViews = ids.splitAsViews(137, 451);
      ColumnView[] featureViews = features.splitAsViews(137, 451);
      try (ColumnView idMiddle = idViews[1];
           ColumnView featureMiddle = featureViews[1];
           ColumnView a = idViews[0]; ColumnView b = idViews[2];
           ColumnView c = featureViews[0]; ColumnView d = featureViews[2];
           ColumnVector out = new ColumnarSegmentGemm(s, AdapterWeights.Function.SEGMENT_GEMM, null).evaluate(idMiddle, featureMiddle)) {
        checkRows(udf, "named", s, all.subList(137, 451), toRows(out), "sliced view " + dtype);
      }
      try (ColumnVector idPart = ids.subVector(200, 590);
           ColumnVector featurePart = features.subVector(200, 590);
           ColumnVector out = udf.evaluateColumnar(390, idPart, featurePart)) {
        checkRows(udf, "named", s, all.subList(200, 590), toRows(out), "subVector " + dtype);
      }
    }
  }

  private static String gpuError(SegmentGemmSettings s, List<UdfCases.Input> rows) {
    SegmentGemmUdf udf = new SegmentGemmUdf(s);
    try (ColumnVector ids = idColumn(rows);
         ColumnVector features = featureColumn(rows)) {
      return assertThrows(BadRowException.class,
          () -> udf.evaluateColumnar(rows.size(), ids, features).close()).getMessage();
    }
  }

  @Test
  void unknownAdapterIsAnErrorNamingIt() {
    Random rnd = new Random(9);
    String m = gpuError(settings("named", DType.BFLOAT16), List.of(
        new UdfCases.Input("a1", UdfCases.features(rnd, D_IN)), new UdfCases.Input(null, null),
        new UdfCases.Input("zz", UdfCases.features(rnd, D_IN))));
    assertEquals("segment_gemm: column adapter_id (row 2 of the batch): unknown adapter 'zz': "
        + dir.resolve("named").toUri() + " has 40 adapters for segment_gemm (a0, a1, a10, a11, "
        + "a12, ...) (set spark.segmentgemm.onBadRow=null to return null for such rows)", m);
  }

  @Test
  void wrongLengthIsAnErrorNamingAdapterAndLengths() {
    Random rnd = new Random(10);
    String m = gpuError(settings("named", DType.FLOAT16), List.of(
        new UdfCases.Input("a1", UdfCases.features(rnd, D_IN)),
        new UdfCases.Input("a5", UdfCases.features(rnd, D_IN + 3))));
    assertEquals("segment_gemm: column features (row 1 of the batch) has 27 values for adapter "
        + "'a5' but the adapters expect d_in = 24 (set spark.segmentgemm.onBadRow=null to return "
        + "null for such rows)", m);
  }

  @Test
  void nullFeatureValueIsAnError() {
    List<Float> x = UdfCases.features(new Random(11), D_IN);
    x.set(4, null);
    String m = gpuError(settings("named", DType.FLOAT32), List.of(new UdfCases.Input("a2", x)));
    assertTrue(m.startsWith("segment_gemm: column features (row 0 of the batch) has a null value"),
        m);
    assertTrue(m.contains("for adapter 'a2'"), m);
  }

  @Test
  void badRowsAreNullWhenAsked() {
    Random rnd = new Random(12);
    List<Float> withNull = UdfCases.features(rnd, D_IN);
    withNull.set(0, null);
    List<UdfCases.Input> rows = List.of(
        new UdfCases.Input("a1", UdfCases.features(rnd, D_IN)),
        new UdfCases.Input("zz", UdfCases.features(rnd, D_IN)),
        new UdfCases.Input("a3", UdfCases.features(rnd, D_IN - 1)),
        new UdfCases.Input("a4", withNull),
        new UdfCases.Input("a5", UdfCases.features(rnd, D_IN)));
    SegmentGemmSettings s = settings("named", DType.BFLOAT16).withOnBadRow(SegmentGemmConf.OnBadRow.NULL);
    try (ColumnVector ids = idColumn(rows);
         ColumnVector features = featureColumn(rows);
         ColumnVector out = new SegmentGemmUdf(s).evaluateColumnar(rows.size(), ids, features)) {
      assertEquals(3, out.getNullCount(), "the three bad rows are null");
      List<float[]> got = toRows(out);
      for (int bad = 1; bad <= 3; bad++) assertNull(got.get(bad), "bad row " + bad);
      checkRows(new SegmentGemmUdf(s), "named", s, rows, got, "onBadRow=null");
    }
  }

  @ParameterizedTest
  @EnumSource(DType.class)
  void nanAndInfinityPropagateLikeTheCpuPath(DType dtype) {
    List<Float> nan = new ArrayList<>(java.util.Collections.nCopies(D_IN, 0f));
    List<Float> inf = new ArrayList<>(java.util.Collections.nCopies(D_IN, 0f));
    nan.set(3, Float.NaN);
    inf.set(5, Float.NEGATIVE_INFINITY);
    List<UdfCases.Input> rows = List.of(new UdfCases.Input("a2", nan), new UdfCases.Input("a2", inf));
    SegmentGemmUdf udf = new SegmentGemmUdf(settings("named", dtype));
    try (ColumnVector ids = idColumn(rows);
         ColumnVector features = featureColumn(rows);
         ColumnVector out = udf.evaluateColumnar(2, ids, features)) {
      List<float[]> gpu = toRows(out);
      for (int r = 0; r < 2; r++) {
        float[] cpu = udf.call("a2", scala.jdk.javaapi.CollectionConverters.asScala(rows.get(r).features()).toSeq());
        for (int n = 0; n < D_OUT; n++) {
          assertEquals(cpu[n], gpu.get(r)[n], dtype + " row " + r + " y[" + n + "]");
        }
      }
      for (float v : gpu.get(0)) assertTrue(Float.isNaN(v));
      for (float v : gpu.get(1)) assertTrue(Float.isInfinite(v) || Float.isNaN(v));
    }
  }

  @Test
  void unalignedSizesRunThePortableKernel() {
    List<UdfCases.Input> rows = UdfCases.skewed(new Random(13), ids("odd"), 300, 601, 0.05);
    assertPlan(plans("odd", settings("odd", DType.FLOAT16), rows, "601 -> 7"), "portable fp16 B=row",
        "601 -> 7 under AUTO");
  }

  @Test
  void smallDeviceCacheEvictsAndSplits() {
    // Room for 5 of the 40 adapters: the batch runs in parts, each within the pinned slots.
    SegmentGemmSettings s = settings("named", DType.BFLOAT16).withDeviceCacheBytes(5L * D_IN * D_OUT * 2);
    List<UdfCases.Input> rows = UdfCases.skewed(new Random(14), ids("named"), 2000, D_IN, 0.02);
    PhaseTimes times = new PhaseTimes();
    try (ColumnVector ids = idColumn(rows);
         ColumnVector features = featureColumn(rows);
         ColumnVector out = new ColumnarSegmentGemm(s, AdapterWeights.Function.SEGMENT_GEMM, times).evaluate(ids, features)) {
      assertTrue(times.nativeCalls() >= 8, times.nativeCalls() + " calls for 40 adapters in 5 slots");
      assertEquals(5, AdapterRegistry.deviceCache(s, AdapterWeights.Function.SEGMENT_GEMM).slots());
      checkRows(new SegmentGemmUdf(s), "named", s, rows, toRows(out), "5-slot cache");
    }
  }

  @Test
  void concurrentTasksShareASmallCache() throws Exception {
    // 8 task threads, 5 slots for 40 adapters: uploads (outside the cache's lock), evictions,
    // waits for a free slot and for another thread's upload of the same adapter all happen;
    // every batch must still match the reference.
    SegmentGemmSettings s = settings("named", DType.BFLOAT16).withDeviceCacheBytes(5L * D_IN * D_OUT * 2);
    AdapterRegistry.clear();
    java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(8);
    try {
      List<java.util.concurrent.Future<?>> done = new ArrayList<>();
      for (int t = 0; t < 8; t++) {
        int seed = 100 + t;
        done.add(pool.submit(() -> {
          for (int b = 0; b < 4; b++) {
            List<UdfCases.Input> rows = UdfCases.skewed(new Random(seed * 10L + b), ids("named"),
                500, D_IN, 0.02);
            checkBatch("named", s, rows, "thread " + seed + " batch " + b);
          }
          return null;
        }));
      }
      for (java.util.concurrent.Future<?> f : done) f.get(5, java.util.concurrent.TimeUnit.MINUTES);
    } finally {
      pool.shutdownNow();
    }
    DeviceAdapterCache cache = AdapterRegistry.deviceCache(s, AdapterWeights.Function.SEGMENT_GEMM);
    assertEquals(5, cache.slots());
    assertTrue(cache.loads() > 40, cache.loads() + " uploads: the 5 slots were reused");
  }

  @Test
  void smallGpuBatchBytesSplitsTheBatch() {
    SegmentGemmSettings s = settings("named", DType.FLOAT16).withGpuBatchBytes(100L * (D_IN + D_OUT) * 2);
    List<UdfCases.Input> rows = UdfCases.skewed(new Random(15), ids("named"), 1000, D_IN, 0.02);
    PhaseTimes times = new PhaseTimes();
    try (ColumnVector ids = idColumn(rows);
         ColumnVector features = featureColumn(rows);
         ColumnVector out = new ColumnarSegmentGemm(s, AdapterWeights.Function.SEGMENT_GEMM, times).evaluate(ids, features)) {
      assertTrue(times.nativeCalls() >= 10, times.nativeCalls() + " calls of <= 100 rows");
      checkRows(new SegmentGemmUdf(s), "named", s, rows, toRows(out), "100-row parts");
    }
  }

  @Test
  void forcedPortableBackend() {
    SegmentGemmSettings s = settings("named", DType.BFLOAT16).withBackend(SegmentGemm.Backend.PORTABLE);
    assertPlan(plans("named", s, UdfCases.skewed(new Random(16), ids("named"), 500, D_IN, 0.05),
        "PORTABLE"), "portable bf16 B=row", "forced PORTABLE");
  }

  /**
   * evaluate over rows, checked row by row against call() and the reference; returns the plans
   * (native/src/cuda/plan.cu's describe_plan) of its native calls, of which there must be one.
   */
  private static Set<String> plans(String store, SegmentGemmSettings s, List<UdfCases.Input> rows,
      String what) {
    PhaseTimes times = new PhaseTimes();
    try (ColumnVector ids = idColumn(rows);
         ColumnVector features = featureColumn(rows);
         ColumnVector out = new ColumnarSegmentGemm(s, AdapterWeights.Function.SEGMENT_GEMM, times)
             .evaluate(ids, features)) {
      checkRows(new SegmentGemmUdf(s), store, s, rows, toRows(out), what);
      assertEquals(1, times.nativeCalls(), what + ": one native call; plans " + times.plans());
    }
    return times.plans();
  }

  private static void assertPlan(Set<String> plans, String prefix, String what) {
    assertEquals(1, plans.size(), what + ": one plan, not " + plans);
    String plan = plans.iterator().next();
    assertTrue(plan.startsWith(prefix), what + ": plan '" + plan + "', expected '" + prefix + "...'");
  }

  /** Rows over the first `adapters` ids of a store, round robin (every segment the same length). */
  private static List<UdfCases.Input> evenRows(String store, int adapters, int n, long seed) {
    Random rnd = new Random(seed);
    List<String> ids = ids(store).subList(0, adapters);
    List<UdfCases.Input> rows = new ArrayList<>(n);
    for (int r = 0; r < n; r++) {
      rows.add(new UdfCases.Input(ids.get(r % adapters), UdfCases.features(rnd, DIMS.get(store)[0])));
    }
    return rows;
  }

  private static String dt(DType dtype) {
    return switch (dtype) {
      case FLOAT32 -> "fp32";
      case FLOAT16 -> "fp16";
      case BFLOAT16 -> "bf16";
    };
  }

  /**
   * Every kernel class through the UDF, each asserted by its plan (plan.cu: AUTO takes the small-call
   * kernel up to 1,024 segments, d_in <= 512 and 2^22 MACs; then, for 16-bit dtypes and sizes that
   * are multiples of 8, sm90's 64x32 tile for d_out <= 32, its 64x128 ping-pong tile for at most 64
   * rows per segment, its 128x256 cooperative tile for longer segments; else the portable kernel).
   */
  @ParameterizedTest
  @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
  void everyTensorCoreKernelClassThroughTheUdf(DType dtype) {
    String d = dt(dtype);
    SegmentGemmSettings square = settings("square", dtype);
    // 4 segments of 2,000 rows: 64 x 64, 32.8M MACs.
    assertPlan(plans("square", square, evenRows("square", 4, 8000, 50), "long segments " + d),
        "sm90 " + d + " B=row tile=128x256x64 cooperative, 4 problems", "long segments " + d);
    // 200 segments of 15 rows: 12.3M MACs, at most 64 rows per segment.
    assertPlan(plans("square", square, evenRows("square", 200, 3000, 51), "short segments " + d),
        "sm90 " + d + " B=row tile=64x128x64 ping-pong, 200 problems", "short segments " + d);
    // d_out = 32: 2,000 rows x 256 x 32 = 16.4M MACs.
    assertPlan(plans("narrow", settings("narrow", dtype), evenRows("narrow", 8, 2000, 52),
        "d_out 32 " + d), "sm90 " + d + " B=row tile=64x32x64 ping-pong, 8 problems", "d_out 32 " + d);
    // Forced SM80 (the Ampere kernels also run on Hopper), on sizes AUTO sends to the small kernel.
    assertPlan(plans("square", square.withBackend(SegmentGemm.Backend.SM80),
        evenRows("square", 4, 200, 53), "SM80 " + d), "sm80 " + d + " B=row tile=128x128x32 4-stage",
        "forced SM80 " + d);
    // The same small call under AUTO: the fused small-call kernel.
    assertPlan(plans("square", square, evenRows("square", 4, 200, 53), "small " + d),
        "small " + d + " B=row", "small call " + d);
  }

  /** float32 has no tensor-core kernel: the small-call kernel, else the portable one. */
  @Test
  void float32RunsTheSmallAndThePortableKernels() {
    SegmentGemmSettings s = settings("square", DType.FLOAT32);
    assertPlan(plans("square", s, evenRows("square", 4, 200, 54), "small fp32"), "small fp32 B=row",
        "small fp32 call");
    assertPlan(plans("square", s, evenRows("square", 4, 8000, 55), "large fp32"),
        "portable fp32 B=row", "fp32 beyond the small kernel");
  }

  @Test
  void cpuBackendUnderRapidsComputesOnTheHost() {
    SegmentGemmSettings s = settings("named", DType.FLOAT16).withBackend(SegmentGemm.Backend.CPU);
    checkBatch("named", s, UdfCases.skewed(new Random(17), ids("named"), 200, D_IN, 0.1), "CPU backend");
  }

  @ParameterizedTest
  @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
  void nativeRowConversionsAreBitExactWithDType(DType dtype) {
    List<Float> values = new ArrayList<>(List.of(0f, -0f, 1f, -1f, 0.1f, 65504f, 65519f, 65520f,
        1e5f, -1e5f, 6.1e-5f, 6e-8f, 3e-8f, 2.98e-8f, 1e-9f, Float.POSITIVE_INFINITY,
        Float.NEGATIVE_INFINITY, Float.NaN, 1 / 3f, 2049f, 2051f, 4097f, 3.0e38f, 1.00390625f,
        1.01171875f, Float.MIN_VALUE, Float.MAX_VALUE, -Float.MAX_VALUE));
    Random rnd = new Random(18);
    for (int i = 0; i < 5000; i++) {
      values.add((float) (rnd.nextGaussian() * Math.pow(10, rnd.nextInt(14) - 9)));
    }
    int n = values.size();
    // One list row per value, gathered in reverse order: exercises the offsets and the row map.
    List<List<Float>> rows = new ArrayList<>();
    for (Float v : values) rows.add(List.of(v));
    Integer[] reverse = new Integer[n];
    for (int i = 0; i < n; i++) reverse[i] = n - 1 - i;
    try (ColumnVector lists = ColumnVector.fromLists(new HostColumnVector.ListType(true,
             new HostColumnVector.BasicType(true, ai.rapids.cudf.DType.FLOAT32)),
             rows.toArray(new List[0]));
         ColumnVector order = ColumnVector.fromBoxedInts(reverse);
         ColumnView offsets = lists.getListOffsetsView();
         ColumnView child = lists.getChildColumnView(0);
         BaseDeviceMemoryBuffer offsetData = offsets.getData();
         BaseDeviceMemoryBuffer valueData = child.getData();
         BaseDeviceMemoryBuffer orderData = order.getData();
         DeviceMemoryBuffer bits = DeviceMemoryBuffer.allocate(2L * n);
         DeviceMemoryBuffer back = DeviceMemoryBuffer.allocate(4L * n);
         HostMemoryBuffer hb = HostMemoryBuffer.allocate(2L * n);
         HostMemoryBuffer hf = HostMemoryBuffer.allocate(4L * n)) {
      SegmentGemmNative.gatherFloatRows(valueData.getAddress(), offsetData.getAddress(),
          orderData.getAddress(), n, 1, dtype, bits.getAddress(), 0);
      // Scattering row r back to row n - 1 - r undoes the reversal.
      SegmentGemmNative.scatterRowsToFloat(bits.getAddress(), dtype, orderData.getAddress(), n, 1,
          back.getAddress(), 0);
      hb.copyFromDeviceBuffer(bits);
      hf.copyFromDeviceBuffer(back);
      for (int r = 0; r < n; r++) {
        float v = values.get(n - 1 - r);
        short got = hb.getShort(2L * r);
        float roundTrip = hf.getFloat(4L * (n - 1 - r));
        assertEquals(dtype.toBits(new float[] {v})[0], got, dtype + " bits of " + v);
        if (Float.isNaN(v)) {
          assertTrue(Float.isNaN(roundTrip), "NaN stays NaN");
          continue;
        }
        assertEquals(dtype.round(v), roundTrip, dtype + " value of " + v);
      }
    }
  }
}
