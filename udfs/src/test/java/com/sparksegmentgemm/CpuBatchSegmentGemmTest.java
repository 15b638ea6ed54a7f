package com.sparksegmentgemm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.sparksegmentgemm.nativelib.DType;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import scala.collection.Seq;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The batched CPU path against the row path (the same nulls, errors and counters) and, with the
 * row path, against the double-precision {@link Reference}: skewed adapters, nulls, bad rows,
 * both functions, every compute dtype, both weight layouts.
 */
class CpuBatchSegmentGemmTest {
  private static final int D_IN = 40;
  private static final int D_OUT = 24;

  @TempDir static Path dir;
  private static Map<String, float[]> dense;
  private static Map<String, AdapterFiles.Lora> lora;
  private static List<String> denseIds;

  @BeforeAll
  static void setUp() throws IOException {
    dense = AdapterFiles.writeRandom(dir.resolve("dense"), new Random(21), 30, D_IN, D_OUT);
    dense.putAll(AdapterFiles.writeNumeric(dir.resolve("numeric"), new Random(22), 5, D_IN,
        D_OUT));
    denseIds = new ArrayList<>(dense.keySet());
    denseIds.removeIf(id -> !id.startsWith("a"));
    lora = AdapterFiles.writeLora(dir.resolve("lora"), new Random(23), 9, D_IN, D_OUT, 4, 8);
  }

  @AfterAll
  static void tearDown() {
    AdapterRegistry.clear();
  }

  private static SegmentGemmSettings settings(String sub, DType dtype) {
    return SegmentGemmSettings.defaults(dir.resolve(sub).toUri().toString())
        .withComputeDtype(dtype);
  }

  @SuppressWarnings("unchecked")
  private static Seq<Float>[] seqs(List<UdfCases.Input> rows) {
    Seq<Float>[] out = new Seq[rows.size()];
    for (int i = 0; i < out.length; i++) {
      List<Float> f = rows.get(i).features();
      out[i] = f == null ? null : CollectionConverters.asScala(f).toIndexedSeq();
    }
    return out;
  }

  /** The batched path's features: NaN where a value is null (which firstNulls marks). */
  private static float[][] floats(List<UdfCases.Input> rows) {
    float[][] out = new float[rows.size()][];
    for (int i = 0; i < out.length; i++) {
      List<Float> f = rows.get(i).features();
      if (f == null) continue;
      out[i] = new float[f.size()];
      for (int j = 0; j < out[i].length; j++) out[i][j] = f.get(j) == null ? Float.NaN : f.get(j);
    }
    return out;
  }

  private static int[] firstNulls(List<UdfCases.Input> rows) {
    return rows.stream().mapToInt(r -> r.features() == null ? -1 : r.features().indexOf(null))
        .toArray();
  }

  private static Object[] ids(List<UdfCases.Input> rows) {
    return rows.stream().map(UdfCases.Input::adapterId).toArray();
  }

  /** The row path's answer for each row (null where it gives null). */
  private static float[][] rowPath(SegmentGemmRowUdf udf, List<UdfCases.Input> rows) {
    Seq<Float>[] x = seqs(rows);
    Object[] ids = ids(rows);
    float[][] out = new float[rows.size()][];
    for (int i = 0; i < out.length; i++) out[i] = udf.call(ids[i], x[i]);
    return out;
  }

  /**
   * The batched path's answers and the row path's: the same nulls and lengths, and the same
   * counters as the row path's per-row ones. Values are checked against the reference by the
   * callers, on both paths: netlib's Java11BLAS sums over k in one order whatever the number of
   * rows, so the two agree bit for bit there, but its VectorBLAS (the test JVM's, with the vector
   * module) and native BLAS sum one row (a GEMV) in another order than many (last-bit
   * differences from d_in of a few hundred on).
   */
  private static float[][][] bothPaths(SegmentGemmSettings s, AdapterWeights.Function f,
      List<UdfCases.Input> rows) {
    float[][] rowWise = rowPath(new SegmentGemmRowUdf(s, f), rows);
    SegmentGemmMetrics.Snapshot before = SegmentGemmMetrics.snapshot();
    float[][] batched = new CpuBatchSegmentGemm(s, f).evaluate(ids(rows), floats(rows),
        firstNulls(rows));
    SegmentGemmMetrics.Snapshot d = SegmentGemmMetrics.snapshot().minus(before);
    assertEquals(rows.size(), d.rows());
    assertEquals(rows.size(), d.cpuRows());
    assertEquals(4L * rows.stream().filter(r -> r.features() != null)
        .mapToInt(r -> r.features().size()).sum(), d.featureBytes());
    assertEquals(rows.size(), batched.length);
    for (int i = 0; i < rows.size(); i++) {
      assertEquals(rowWise[i] == null ? -1 : rowWise[i].length,
          batched[i] == null ? -1 : batched[i].length, f.sqlName() + " row " + i
          + ": the row path's null or length");
    }
    return new float[][][] {batched, rowWise};
  }

  /** Bad rows of each kind among good ones: unknown adapter, wrong length, a null value. */
  private static List<UdfCases.Input> withBadRows(Random rnd, List<UdfCases.Input> rows,
      String goodId) {
    List<UdfCases.Input> out = new ArrayList<>(rows);
    out.add(rnd.nextInt(out.size()), new UdfCases.Input("nope", UdfCases.features(rnd, D_IN)));
    out.add(rnd.nextInt(out.size()), new UdfCases.Input(goodId, UdfCases.features(rnd,
        D_IN + 1)));
    List<Float> withNull = new ArrayList<>(UdfCases.features(rnd, D_IN));
    withNull.set(7, null);
    out.add(rnd.nextInt(out.size()), new UdfCases.Input(goodId, withNull));
    return out;
  }

  private static boolean bad(UdfCases.Input in, int dIn, Map<String, ?> known) {
    return in.adapterId() != null && in.features() != null
        && (!known.containsKey(in.adapterId().toString()) || in.features().size() != dIn
            || in.features().contains(null));
  }

  @ParameterizedTest
  @EnumSource(DType.class)
  void segmentGemmSkewedWithNullsAndBadRows(DType dtype) {
    Random rnd = new Random(100 + dtype.ordinal());
    List<UdfCases.Input> rows = withBadRows(rnd, UdfCases.skewed(rnd, denseIds, 2500, D_IN,
        0.05), "a3");
    SegmentGemmSettings s = settings("dense", dtype).withOnBadRow(SegmentGemmConf.OnBadRow.NULL);
    for (float[][] y : bothPaths(s, AdapterWeights.Function.SEGMENT_GEMM, rows)) {
      int badRows = 0;
      for (int i = 0; i < rows.size(); i++) {
        if (bad(rows.get(i), D_IN, dense)) {
          assertNull(y[i], "bad row " + i);
          badRows++;
        } else {
          UdfCases.check(rows.get(i), y[i], dense, D_IN, D_OUT, dtype, dtype + " row " + i);
        }
      }
      assertEquals(3, badRows);
    }
  }

  @ParameterizedTest
  @EnumSource(DType.class)
  void columnMajorWeights(DType dtype) {
    // The same files read as (d_out, d_in): y = x . W^T, through sgemm's transposed operand.
    Random rnd = new Random(200 + dtype.ordinal());
    List<UdfCases.Input> rows = UdfCases.skewed(rnd, denseIds, 600, D_OUT, 0.02);
    SegmentGemmSettings c = new SegmentGemmSettings(dir.resolve("dense").toUri().toString(), true,
        dtype, SegmentGemmConf.OnBadRow.ERROR, 1L << 30, 128L << 20, 1L << 30,
        SegmentGemm.Backend.AUTO, "", false);
    for (float[][] y : bothPaths(c, AdapterWeights.Function.SEGMENT_GEMM, rows)) {
      for (int i = 0; i < rows.size(); i++) {
        UdfCases.Input in = rows.get(i);
        if (in.adapterId() == null || in.features() == null) {
          assertNull(y[i], "null row " + i);
          continue;
        }
        float[] x = UdfCases.unboxed(in.features());
        Reference.assertClose(new SegmentGemmInput(dtype, x, 1, D_OUT, D_IN,
            dense.get((String) in.adapterId()), 1, true, 1, new long[] {1}, null, null), y[i],
            "column-major row " + i);
      }
    }
  }

  @ParameterizedTest
  @EnumSource(DType.class)
  void loraApplySkewedWithNullsAndBadRows(DType dtype) {
    Random rnd = new Random(300 + dtype.ordinal());
    List<UdfCases.Input> rows = withBadRows(rnd, UdfCases.skewed(rnd,
        new ArrayList<>(lora.keySet()), 1500, D_IN, 0.05), "l2");
    SegmentGemmSettings s = settings("lora", dtype).withOnBadRow(SegmentGemmConf.OnBadRow.NULL);
    for (float[][] y : bothPaths(s, AdapterWeights.Function.LORA_APPLY, rows)) {
      for (int i = 0; i < rows.size(); i++) {
        UdfCases.Input in = rows.get(i);
        if (in.adapterId() == null || in.features() == null || bad(in, D_IN, lora)) {
          assertNull(y[i], "row " + i);
          continue;
        }
        AdapterFiles.checkLora(in.features(), y[i], lora.get((String) in.adapterId()), D_IN,
            D_OUT, dtype, Reference.tolerance(dtype), dtype + " row " + i);
      }
    }
  }

  @Test
  void intAndLongIdsAndLargerShapes() throws IOException {
    // Shapes past the BLAS's blocking, with up to hundreds of rows per adapter.
    int dIn = 300;
    int dOut = 260;
    Map<String, float[]> w = AdapterFiles.writeNumeric(dir.resolve("large"), new Random(24), 4,
        dIn, dOut);
    Random rnd = new Random(25);
    List<UdfCases.Input> rows = new ArrayList<>(UdfCases.skewed(rnd, List.of(0, 1, 2, 3), 400,
        dIn, 0.02));
    rows.addAll(UdfCases.skewed(rnd, List.of(0L, 1L, 2L, 3L), 400, dIn, 0.02));
    for (float[][] y : bothPaths(settings("large", DType.FLOAT32),
        AdapterWeights.Function.SEGMENT_GEMM, rows)) {
      for (int i = 0; i < rows.size(); i++) {
        UdfCases.check(rows.get(i), y[i], w, dIn, dOut, DType.FLOAT32, "row " + i);
      }
    }
  }

  @Test
  void emptyAndAllNullBatches() {
    SegmentGemmSettings s = settings("dense", DType.BFLOAT16);
    assertEquals(0, bothPaths(s, AdapterWeights.Function.SEGMENT_GEMM, List.of())[0].length);
    List<UdfCases.Input> nulls = List.of(new UdfCases.Input(null, UdfCases.features(
        new Random(1), D_IN)), new UdfCases.Input("a1", null));
    float[][] y = bothPaths(s, AdapterWeights.Function.SEGMENT_GEMM, nulls)[0];
    assertNull(y[0]);
    assertNull(y[1]);
  }

  @ParameterizedTest
  @EnumSource(AdapterWeights.Function.class)
  void underOnBadRowErrorTheFirstBadRowFailsAsOnTheRowPath(AdapterWeights.Function f) {
    Random rnd = new Random(400 + f.ordinal());
    String goodId = f == AdapterWeights.Function.SEGMENT_GEMM ? "a1" : "l1";
    List<Float> withNull = new ArrayList<>(UdfCases.features(rnd, D_IN));
    withNull.set(3, null);
    UdfCases.Input good = new UdfCases.Input(goodId, UdfCases.features(rnd, D_IN));
    UdfCases.Input unknown = new UdfCases.Input("nope", UdfCases.features(rnd, D_IN));
    UdfCases.Input wrongLength = new UdfCases.Input(goodId, UdfCases.features(rnd, D_IN - 2));
    UdfCases.Input nullValue = new UdfCases.Input(goodId, withNull);
    SegmentGemmSettings s = settings(f == AdapterWeights.Function.SEGMENT_GEMM ? "dense" : "lora",
        DType.FLOAT16);
    SegmentGemmRowUdf rowUdf = new SegmentGemmRowUdf(s, f);
    // Whichever bad row comes first in the batch is the one named, whatever its kind.
    for (List<UdfCases.Input> rows : List.of(List.of(good, nullValue, unknown, wrongLength),
        List.of(good, wrongLength, nullValue, unknown), List.of(unknown, good, wrongLength))) {
      UdfCases.Input first = rows.stream().filter(r -> r != good).findFirst().orElseThrow();
      String expected = assertThrows(BadRowException.class, () -> rowPath(rowUdf,
          List.of(first))).getMessage();
      String actual = assertThrows(BadRowException.class, () -> new CpuBatchSegmentGemm(s, f)
          .evaluate(ids(rows), floats(rows), firstNulls(rows))).getMessage();
      assertEquals(expected, actual);
    }
  }

  @Test
  void mismatchedInputsAreRejected() {
    assertEquals("2 adapter ids but 1 feature rows and 1 null positions",
        assertThrows(IllegalArgumentException.class, () -> new CpuBatchSegmentGemm(
            settings("dense", DType.FLOAT32), AdapterWeights.Function.SEGMENT_GEMM).evaluate(
            new Object[] {"a1", "a2"}, new float[1][], new int[] {-1})).getMessage());
  }
}
