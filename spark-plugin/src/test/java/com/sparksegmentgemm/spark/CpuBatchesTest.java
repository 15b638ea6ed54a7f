package com.sparksegmentgemm.spark;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.expr;
import static org.apache.spark.sql.functions.lit;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sparksegmentgemm.BadRowException;
import com.sparksegmentgemm.nativelib.DType;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The job without the RAPIDS Accelerator (as here): its batched CPU path (CpuBatches) against
 * its row path (spark.segmentgemm.cpuBatchRows=0) and the demo's double-precision reference,
 * with nulls and bad rows, in Spark local[2].
 */
class CpuBatchesTest extends SharedSessionTest {
  @TempDir
  static Path dir;

  private static SegmentGemmDemo.Options demo(String function, DType dtype, String sub) {
    SegmentGemmDemo.Options o = SegmentGemmDemo.Options.parse(new String[] {"--rows", "1500",
        "--adapters", "9", "--d-in", "48", "--d-out", "40", "--rank", "8", "--partitions", "3",
        "--function", function, "--dtype", dtype.name(), "--dir", dir.resolve(sub).toString()});
    SegmentGemmDemo.generate(SPARK, o);
    return o;
  }

  private static SegmentGemmJob.Options options(SegmentGemmDemo.Options o, String input,
      String output, String... more) {
    List<String> args = new java.util.ArrayList<>(List.of("--input", input, "--adapters",
        o.adapterDir().toString(), "--output", output, "--mode", "overwrite", "--function",
        o.function().sqlName(), "--compute-dtype", o.dtype().name().toLowerCase(Locale.ROOT)));
    args.addAll(List.of(more));
    return SegmentGemmJob.Options.parse(args.toArray(new String[0]));
  }

  /** Runs the job's body on the shared session; returns the physical plan it ran. */
  private static String job(SegmentGemmJob.Options o, SegmentGemmJob.Result[] result) {
    o.conf().forEach((k, v) -> SPARK.conf().set(k, v));
    result[0] = SegmentGemmJob.run(SPARK, o, new PrintStream(new ByteArrayOutputStream()));
    return SegmentGemmJob.apply(SegmentGemmJob.read(SPARK, o), o).queryExecution()
        .executedPlan().toString();
  }

  /** Every row of the demo's output within the reference's tolerance (not just its sample). */
  private static double checkAll(SegmentGemmDemo.Options o, Path sub) {
    SegmentGemmDemo.Options all = new SegmentGemmDemo.Options(o.rows(), o.adapters(), o.dIn(),
        o.dOut(), o.rank(), o.dtype(), o.partitions(), o.function(), o.gpu(), o.master(), sub,
        Integer.MAX_VALUE);
    return SegmentGemmDemo.check(SPARK, all, SegmentGemmDemo.weights(o),
        new PrintStream(new ByteArrayOutputStream()));
  }

  @ParameterizedTest
  @CsvSource({"segment_gemm, FLOAT32", "segment_gemm, FLOAT16", "segment_gemm, BFLOAT16",
      "lora_apply, FLOAT32", "lora_apply, FLOAT16", "lora_apply, BFLOAT16"})
  void batchedAndRowPathsBothMatchTheReference(String function, DType dtype) {
    SegmentGemmDemo.Options o = demo(function, dtype, function + "-" + dtype);
    SegmentGemmJob.Result[] r = new SegmentGemmJob.Result[1];
    String batchedPlan = job(options(o, o.input().toString(), o.output().toString()), r);
    // The batches' rows, scanned (CpuBatches), not the SQL function.
    assertTrue(batchedPlan.contains("Scan ExistingRDD"), batchedPlan);
    assertFalse(batchedPlan.contains(function + "("), batchedPlan);
    assertEquals(1500, r[0].rows());
    assertEquals(1500, r[0].udf().rows());
    assertEquals(1500, r[0].udf().cpuRows());
    assertEquals(4L * 48 * 1500, r[0].udf().featureBytes());
    assertTrue(r[0].udf().cpuUdfNanos() > 0);
    String line = SegmentGemmJob.summary(options(o, "x", "y"), r[0]);
    assertTrue(line.contains(" [CPU: UDF "), line);
    assertTrue(checkAll(o, o.dir()) <= 1, "batched path within the " + dtype + " tolerance");

    Path rowDir = dir.resolve(function + "-" + dtype + "-rows");
    String rowPlan = job(options(o, o.input().toString(), rowDir.resolve("output").toString(),
        "--conf", "spark.segmentgemm.cpuBatchRows=0"), r);
    assertFalse(rowPlan.contains("ExistingRDD"), rowPlan);
    assertTrue(rowPlan.contains(function + "("), rowPlan);
    assertEquals(1500, r[0].udf().cpuRows());
    SPARK.read().parquet(o.input().toString()).write().parquet(rowDir.resolve("input").toString());
    assertTrue(checkAll(o, rowDir) <= 1, "row path within the " + dtype + " tolerance");
    // The same table: ids, adapters and column order.
    assertEquals(SPARK.read().parquet(o.output().toString()).schema(),
        SPARK.read().parquet(rowDir.resolve("output").toString()).schema());
  }

  /**
   * Numeric ids (naming the adapters by number) and kept features of another type (here
   * ARRAY&lt;DOUBLE&gt;, which the function casts) on both paths: the same values and the same
   * table, the output column appended.
   */
  @ParameterizedTest
  @ValueSource(strings = {"int", "bigint"})
  void numericIdsAndKeptDoubleFeaturesAsTheRowPath(String idType) throws IOException {
    SegmentGemmDemo.Options o = demo("segment_gemm", DType.BFLOAT16, "ids-" + idType);
    Path numbered = Files.createDirectories(dir.resolve("ids-" + idType + "-adapters"));
    try (Stream<Path> files = Files.list(o.adapterDir())) {
      for (Path f : files.toList()) {  // tenant_004.safetensors -> 4.safetensors
        String name = f.getFileName().toString();
        Files.copy(f, numbered.resolve(Integer.parseInt(name.substring("tenant_".length(),
            name.indexOf('.'))) + ".safetensors"));
      }
    }
    String input = dir.resolve("ids-" + idType + "-input").toString();
    SPARK.read().parquet(o.input().toString()).select(col("id"), lit("old").as("tag"),
        expr("CAST(substring(adapter_id, 8) AS " + idType + ")").as("adapter_id"),
        col("features").cast("array<double>").as("features")).write().parquet(input);
    StructType[] schemas = new StructType[2];
    for (int p = 0; p < 2; p++) {
      // Checked as the demo's output, against the demo's input (string ids, float features).
      Path sub = dir.resolve("ids-" + idType + "-" + p);
      String plan = job(options(o, input, sub.resolve("output").toString(), "--adapters",
          numbered.toString(), "--keep-features", "--conf", "spark.segmentgemm.cpuBatchRows="
          + (p == 0 ? 7 : 0)), new SegmentGemmJob.Result[1]);
      assertEquals(p == 0, plan.contains("Scan ExistingRDD"), plan);
      SPARK.read().parquet(o.input().toString()).write().parquet(sub.resolve("input").toString());
      assertTrue(checkAll(o, sub) <= 1, "cpuBatchRows=" + (p == 0 ? 7 : 0));
      schemas[p] = SPARK.read().parquet(sub.resolve("output").toString()).schema();
    }
    assertEquals(List.of("id", "tag", "adapter_id", "features", "output"),
        List.of(schemas[0].fieldNames()));
    assertEquals("array<float>", schemas[0].apply("output").dataType().simpleString());
    assertEquals(idType, schemas[0].apply("adapter_id").dataType().sql().toLowerCase(Locale.ROOT));
    assertEquals("array<double>", schemas[0].apply("features").dataType().simpleString());
    assertEquals(schemas[1], schemas[0], "the row path's table");
  }

  /**
   * The demo's input with bad rows and nulls: null features (id % 7 == 3), a null adapter
   * (% 13 == 2), an unknown adapter (% 11 == 5), features of the wrong length (% 17 == 1), a
   * null value (% 19 == 4).
   */
  private static Dataset<Row> withBadRows(SegmentGemmDemo.Options o) {
    return SPARK.read().parquet(o.input().toString())
        .withColumn("adapter_id", expr("CASE WHEN id % 13 = 2 THEN NULL WHEN id % 11 = 5 THEN "
            + "'nope' ELSE adapter_id END"))
        .withColumn("features", expr("CASE WHEN id % 7 = 3 THEN NULL WHEN id % 17 = 1 THEN "
            + "slice(features, 1, 10) WHEN id % 19 = 4 THEN transform(features, (v, i) -> "
            + "IF(i = 5, CAST(NULL AS FLOAT), v)) ELSE features END"));
  }

  private static boolean good(long id) {
    return id % 7 != 3 && id % 13 != 2 && id % 11 != 5 && id % 17 != 1 && id % 19 != 4;
  }

  @ParameterizedTest
  @EnumSource(value = DType.class, names = {"FLOAT32", "BFLOAT16"})
  void badRowsAndNullsUnderOnBadRowNull(DType dtype) {
    SegmentGemmDemo.Options o = demo("segment_gemm", dtype, "bad-" + dtype);
    String input = dir.resolve("bad-" + dtype + "-input").toString();
    withBadRows(o).write().parquet(input);
    Set<Long> expectedNull = new TreeSet<>();
    for (long id = 0; id < 1500; id++) if (!good(id)) expectedNull.add(id);
    SegmentGemmJob.Result[] r = new SegmentGemmJob.Result[1];
    // Batches of 7 rows: groups split across batches and partitions.
    for (String batchRows : List.of("7", "0")) {
      Path out = dir.resolve("bad-" + dtype + "-" + batchRows);
      job(options(o, input, out.resolve("all").toString(), "--conf",
          "spark.segmentgemm.onBadRow=null", "--conf", "spark.segmentgemm.cpuBatchRows="
          + batchRows), r);
      assertEquals(1500, r[0].udf().cpuRows());
      Dataset<Row> got = SPARK.read().parquet(out.resolve("all").toString());
      Set<Long> nulls = new TreeSet<>();
      for (Row row : got.where(col("output").isNull()).select("id").collectAsList()) {
        nulls.add(row.getLong(0));
      }
      assertEquals(expectedNull, nulls, "null rows with cpuBatchRows=" + batchRows);
      // The good rows against the reference, in a folder as the demo's check reads it.
      got.where(col("output").isNotNull()).write().parquet(out.resolve("output").toString());
      SPARK.read().parquet(o.input().toString()).join(got.where(col("output").isNotNull())
          .select("id"), new String[] {"id"}, "left_semi")
          .write().parquet(out.resolve("input").toString());
      assertTrue(checkAll(o, out) <= 1, "good rows with cpuBatchRows=" + batchRows);
    }
  }

  @org.junit.jupiter.api.Test
  void underOnBadRowErrorBothPathsFailOnTheSameRowAlike() {
    SegmentGemmDemo.Options o = demo("segment_gemm", DType.BFLOAT16, "error");
    // One partition, so that both paths meet the rows in one order. The first bad row from id
    // 0 on has the wrong length (id 1), from 40 on a null value (42), from 600 on an unknown
    // adapter (610), each after null rows.
    for (int from : new int[] {0, 40, 600}) {
      String input = dir.resolve("error-input-" + from).toString();
      withBadRows(o).where("id >= " + from).orderBy("id").coalesce(1).write().parquet(input);
      String[] messages = new String[2];
      for (int p = 0; p < 2; p++) {
        SegmentGemmJob.Options job = options(o, input, dir.resolve("error-out-" + from + "-" + p)
            .toString(), "--conf", "spark.segmentgemm.cpuBatchRows=" + (p == 0 ? 7 : 0));
        job.conf().forEach((k, v) -> SPARK.conf().set(k, v));
        Throwable e = assertThrows(RuntimeException.class, () -> SegmentGemmJob.run(SPARK, job,
            new PrintStream(new ByteArrayOutputStream())));
        while (e != null && !(e instanceof BadRowException)) e = e.getCause();
        assertTrue(e != null, "a BadRowException in the cause chain");
        messages[p] = e.getMessage();
      }
      assertEquals(messages[1], messages[0], "the batched path's error is the row path's");
      assertTrue(messages[0].startsWith("segment_gemm: "), messages[0]);
    }
  }
}
