package com.sparksegmentgemm;

import static org.apache.spark.sql.functions.col;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sparksegmentgemm.nativelib.DType;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The UDF's CPU path in Spark local[2] over DataFrames, against the double-precision reference:
 * many adapters with skewed frequencies, nulls, empty partitions, each adapter-id type, bad rows.
 */
class SegmentGemmUdfCpuTest {
  private static final int D_IN = 24;
  private static final int D_OUT = 16;
  private static final int ADAPTERS = 40;

  @TempDir static Path dir;
  private static Map<String, float[]> weights;
  private static SparkSession spark;

  private static final Map<String, AdapterFiles.Lora> LORA = new HashMap<>();

  @BeforeAll
  static void setUp() throws IOException {
    weights = AdapterFiles.writeRandom(dir.resolve("named"), new Random(3), ADAPTERS, D_IN, D_OUT);
    weights.putAll(AdapterFiles.writeNumeric(dir.resolve("numeric"), new Random(4), 10, D_IN, D_OUT));
    spark = SharedSpark.get();
  }

  @AfterAll
  static void tearDown() {
    AdapterRegistry.clear();
  }

  private static SegmentGemmSettings settings(String sub, DType dtype) {
    return SegmentGemmSettings.defaults(dir.resolve(sub).toUri().toString()).withComputeDtype(dtype);
  }

  private static Dataset<Row> frame(List<UdfCases.Input> rows, DataType idType, int partitions) {
    StructType schema = new StructType()
        .add("row_id", DataTypes.LongType, false)
        .add("adapter_id", idType, true)
        .add("features", DataTypes.createArrayType(DataTypes.FloatType, true), true);
    List<Row> data = new ArrayList<>();
    for (int i = 0; i < rows.size(); i++) {
      data.add(RowFactory.create((long) i, rows.get(i).adapterId(), rows.get(i).features()));
    }
    return spark.createDataFrame(data, schema).repartition(partitions);
  }

  /** Output row by row_id. */
  private static Map<Long, float[]> run(Dataset<Row> df, SegmentGemmUdf udf) {
    Map<Long, float[]> out = new HashMap<>();
    for (Row r : df.select(col("row_id"), udf.function().apply(col("adapter_id"), col("features")))
        .collectAsList()) {
      out.put(r.getLong(0), r.isNullAt(1) ? null : UdfCases.unboxed(r.getList(1)));
    }
    return out;
  }

  @ParameterizedTest
  @EnumSource(DType.class)
  void manyAdaptersSkewedWithNullsAndEmptyPartitions(DType dtype) {
    List<String> ids = new ArrayList<>();
    for (int a = 0; a < ADAPTERS; a++) ids.add("a" + a);
    List<UdfCases.Input> rows = UdfCases.skewed(new Random(10 + dtype.ordinal()), ids, 3000, D_IN, 0.05);
    // A few rows over 64 partitions: most partitions are empty.
    List<UdfCases.Input> few = rows.subList(0, 7);
    SegmentGemmUdf udf = new SegmentGemmUdf(settings("named", dtype));
    Map<Long, float[]> out = run(frame(rows, DataTypes.StringType, 8), udf);
    assertEquals(rows.size(), out.size());
    for (int i = 0; i < rows.size(); i++) {
      UdfCases.check(rows.get(i), out.get((long) i), weights, D_IN, D_OUT, dtype, dtype + " row " + i);
    }
    Map<Long, float[]> sparse = run(frame(few, DataTypes.StringType, 64), udf);
    for (int i = 0; i < few.size(); i++) {
      UdfCases.check(few.get(i), sparse.get((long) i), weights, D_IN, D_OUT, dtype, "sparse row " + i);
    }
  }

  @Test
  void intAndLongAdapterIdsMatchDecimalStems() {
    Random rnd = new Random(5);
    List<Integer> ints = List.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
    List<Long> longs = List.of(0L, 1L, 2L, 3L, 4L, 5L, 6L, 7L, 8L, 9L);
    SegmentGemmUdf udf = new SegmentGemmUdf(settings("numeric", DType.FLOAT32));
    List<UdfCases.Input> intRows = UdfCases.skewed(rnd, ints, 400, D_IN, 0.1);
    Map<Long, float[]> out = run(frame(intRows, DataTypes.IntegerType, 3), udf);
    for (int i = 0; i < intRows.size(); i++) {
      UdfCases.check(intRows.get(i), out.get((long) i), weights, D_IN, D_OUT, DType.FLOAT32, "INT row " + i);
    }
    List<UdfCases.Input> longRows = UdfCases.skewed(rnd, longs, 400, D_IN, 0.1);
    out = run(frame(longRows, DataTypes.LongType, 3), udf);
    for (int i = 0; i < longRows.size(); i++) {
      UdfCases.check(longRows.get(i), out.get((long) i), weights, D_IN, D_OUT, DType.FLOAT32, "LONG row " + i);
    }
  }

  @Test
  void sqlRegistration() {
    List<UdfCases.Input> rows = UdfCases.skewed(new Random(6), List.of("a1", "a2"), 20, D_IN, 0);
    new SegmentGemmUdf(settings("named", DType.BFLOAT16)).register(spark, "segment_gemm");
    frame(rows, DataTypes.StringType, 2).createOrReplaceTempView("embeddings");
    for (Row r : spark.sql("SELECT row_id, segment_gemm(adapter_id, features) FROM embeddings")
        .collectAsList()) {
      int i = (int) r.getLong(0);
      UdfCases.check(rows.get(i), UdfCases.unboxed(r.getList(1)), weights, D_IN, D_OUT,
          DType.BFLOAT16, "SQL row " + i);
    }
  }

  /** The message of t and of its causes (Spark wraps a UDF's exception). */
  private static String messages(Throwable t) {
    StringBuilder sb = new StringBuilder();
    for (Throwable c = t; c != null; c = c.getCause()) sb.append(c.getMessage()).append(" | ");
    return sb.toString();
  }

  @Test
  void badRowsFailNamingTheAdapterAndLengths() {
    SegmentGemmUdf udf = new SegmentGemmUdf(settings("named", DType.FLOAT16));
    Random rnd = new Random(7);
    List<List<UdfCases.Input>> cases = List.of(
        List.of(new UdfCases.Input("a1", UdfCases.features(rnd, D_IN)),
            new UdfCases.Input("nope", UdfCases.features(rnd, D_IN))),
        List.of(new UdfCases.Input("a3", UdfCases.features(rnd, D_IN - 1))),
        List.of(new UdfCases.Input("a4", Arrays.asList(new Float[D_IN]))));
    String[] expected = {
        "segment_gemm: column adapter_id: unknown adapter 'nope': " + dir.resolve("named").toUri() + " has 40 adapters for segment_gemm (a0, a1, a10, a11, a12, ...)",
        "segment_gemm: column features has 23 values for adapter 'a3' but the adapters expect d_in = 24 (set spark.segmentgemm.onBadRow=null",
        "segment_gemm: column features has a null value at index 0 for adapter 'a4' (set spark.segmentgemm.onBadRow=null"};
    for (int c = 0; c < cases.size(); c++) {
      Dataset<Row> df = frame(cases.get(c), DataTypes.StringType, 1);
      String m = messages(assertThrows(Exception.class, () -> run(df, udf)));
      assertTrue(m.contains(expected[c]), m);
    }
  }

  @Test
  void badRowsAreNullWhenAsked() {
    SegmentGemmUdf udf = new SegmentGemmUdf(settings("named", DType.FLOAT32)
        .withOnBadRow(SegmentGemmConf.OnBadRow.NULL));
    Random rnd = new Random(8);
    List<UdfCases.Input> rows = List.of(
        new UdfCases.Input("a1", UdfCases.features(rnd, D_IN)),
        new UdfCases.Input("nope", UdfCases.features(rnd, D_IN)),
        new UdfCases.Input("a3", UdfCases.features(rnd, D_IN + 2)),
        new UdfCases.Input("a4", Arrays.asList(new Float[D_IN])),
        new UdfCases.Input("a5", UdfCases.features(rnd, D_IN)));
    Map<Long, float[]> out = run(frame(rows, DataTypes.StringType, 2), udf);
    UdfCases.check(rows.get(0), out.get(0L), weights, D_IN, D_OUT, DType.FLOAT32, "good row 0");
    for (long bad = 1; bad <= 3; bad++) assertNull(out.get(bad), "bad row " + bad);
    UdfCases.check(rows.get(4), out.get(4L), weights, D_IN, D_OUT, DType.FLOAT32, "good row 4");
  }

  @ParameterizedTest
  @EnumSource(DType.class)
  void nanAndInfinityPropagate(DType dtype) {
    SegmentGemmUdf udf = new SegmentGemmUdf(settings("named", dtype));
    Float[] nan = new Float[D_IN];
    Float[] inf = new Float[D_IN];
    Arrays.fill(nan, 0f);
    Arrays.fill(inf, 0f);
    nan[3] = Float.NaN;
    inf[5] = Float.POSITIVE_INFINITY;
    float[] yNan = udf.call("a2", scala.jdk.javaapi.CollectionConverters.asScala(Arrays.asList(nan)).toSeq());
    float[] yInf = udf.call("a2", scala.jdk.javaapi.CollectionConverters.asScala(Arrays.asList(inf)).toSeq());
    float[] w = weights.get("a2");
    for (int n = 0; n < D_OUT; n++) {
      assertTrue(Float.isNaN(yNan[n]), "NaN . w is NaN");
      float wn = dtype.round(w[5 * D_OUT + n]);
      assertEquals(wn > 0 ? Float.POSITIVE_INFINITY : wn < 0 ? Float.NEGATIVE_INFINITY : Float.NaN,
          yInf[n], "+Inf . w[5][" + n + "] = " + wn);
    }
  }

  @Test
  void udfIsSerializableWithItsSettings() throws IOException, ClassNotFoundException {
    SegmentGemmUdf udf = new SegmentGemmUdf(settings("named", DType.FLOAT16)
        .withOnBadRow(SegmentGemmConf.OnBadRow.NULL));
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
      out.writeObject(udf);
    }
    try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes.toByteArray()))) {
      SegmentGemmUdf copy = (SegmentGemmUdf) in.readObject();
      assertEquals(udf.settings(), copy.settings());
    }
  }

  @ParameterizedTest
  @EnumSource(DType.class)
  void loraApplyRowByRowInSpark(DType dtype) throws IOException {
    Path lora = dir.resolve("lora");
    if (!java.nio.file.Files.exists(lora)) {
      LORA.putAll(AdapterFiles.writeLora(lora, new Random(6), 7, D_IN, D_OUT, 4, 8));
    }
    List<UdfCases.Input> rows = UdfCases.skewed(new Random(50 + dtype.ordinal()),
        new ArrayList<>(LORA.keySet()), 800, D_IN, 0.05);
    SegmentGemmUdf udf = new SegmentGemmUdf(settings("lora", dtype),
        AdapterWeights.Function.LORA_APPLY);
    Map<Long, float[]> out = run(frame(rows, DataTypes.StringType, 4), udf);
    for (int i = 0; i < rows.size(); i++) {
      UdfCases.Input in = rows.get(i);
      if (in.adapterId() == null || in.features() == null) {
        org.junit.jupiter.api.Assertions.assertNull(out.get((long) i));
        continue;
      }
      AdapterFiles.checkLora(in.features(), out.get((long) i), LORA.get((String) in.adapterId()),
          D_IN, D_OUT, dtype, Reference.tolerance(dtype), dtype + " row " + i);
    }
    String dense = org.junit.jupiter.api.Assertions.assertThrows(BadRowException.class,
        () -> udf.call("a1", scala.jdk.javaapi.CollectionConverters.asScala(
            UdfCases.features(new Random(1), D_IN)).toSeq())).getMessage();
    org.junit.jupiter.api.Assertions.assertTrue(dense.startsWith("lora_apply: column adapter_id: unknown adapter 'a1'"),
        dense);
  }
}
