package com.sparksegmentgemm.spark;

import static org.apache.spark.sql.functions.col;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.nvidia.spark.RapidsUDF;
import com.sparksegmentgemm.SegmentGemmMetrics;
import com.sparksegmentgemm.SegmentGemmUdf;
import com.sparksegmentgemm.nativelib.DType;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.expressions.ScalaUDF;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The SQL functions and their DataFrame twins in Spark local[2] with the plugin on (the
 * surefire configuration sets spark.plugins), on the CPU path here, against the demo's
 * double-precision reference.
 */
class SegmentGemmSqlTest extends SharedSessionTest {
  @TempDir
  static Path dir;


  /** Small generated data and adapters for a function and dtype, pointed at by the session. */
  static SegmentGemmDemo.Options generate(String function, DType dtype, String sub) {
    SegmentGemmDemo.Options o = SegmentGemmDemo.Options.parse(new String[] {"--rows", "1500",
        "--adapters", "9", "--d-in", "48", "--d-out", "40", "--rank", "8", "--partitions", "3",
        "--function", function, "--dtype", dtype.name(), "--dir", dir.resolve(sub).toString()});
    SegmentGemmDemo.generate(SPARK, o);
    SPARK.conf().set("spark.segmentgemm.adapters.path", o.adapterDir().toUri().toString());
    SPARK.conf().set("spark.segmentgemm.computeDtype", dtype.name().toLowerCase(Locale.ROOT));
    SPARK.read().parquet(o.input().toString()).createOrReplaceTempView("emb");
    return o;
  }

  private static double check(SegmentGemmDemo.Options o) {
    return SegmentGemmDemo.check(SPARK, o, SegmentGemmDemo.weights(o),
        new PrintStream(new ByteArrayOutputStream()));
  }

  @ParameterizedTest
  @EnumSource(value = DType.class, names = {"FLOAT32", "BFLOAT16"})
  void sqlSegmentGemmMatchesTheReference(DType dtype) {
    SegmentGemmDemo.Options o = generate("segment_gemm", dtype, "sql-" + dtype);
    SegmentGemmMetrics.Snapshot before = SegmentGemmPlugin.totals();
    Dataset<Row> q = SPARK.sql("SELECT id, adapter_id, segment_gemm(adapter_id, features) AS output FROM emb");
    q.write().mode("overwrite").parquet(o.output().toString());
    assertTrue(check(o) <= 1, "within the " + dtype + " tolerance");
    // Our executor plugin saw every row, on the CPU here (no GPU, no RAPIDS in this JVM).
    SegmentGemmMetrics.Snapshot d = SegmentGemmJob.awaitReports(before, 1500);
    assertEquals(1500, d.rows());
    assertEquals(1500, d.cpuRows());
    assertEquals(4L * 48 * 1500, d.featureBytes());
    assertTrue(SegmentGemmPlugin.executorReports().containsKey("driver"),
        "local mode's executor reports: " + SegmentGemmPlugin.executorReports().keySet());
  }

  @Test
  void theExpressionIsOneTheRapidsAcceleratorRunsColumnar() {
    generate("segment_gemm", DType.BFLOAT16, "plan");
    Dataset<Row> q = SPARK.sql("SELECT segment_gemm(adapter_id, features) FROM emb");
    var project = (org.apache.spark.sql.catalyst.plans.logical.Project) q.queryExecution().analyzed();
    List<ScalaUDF> udfs = new java.util.ArrayList<>();
    for (var e : scala.jdk.javaapi.CollectionConverters.asJava(project.projectList())) {
      if (e instanceof org.apache.spark.sql.catalyst.expressions.Alias a
          && a.child() instanceof ScalaUDF u) {
        udfs.add(u);
      }
    }
    assertEquals(1, udfs.size());
    // What the RAPIDS Accelerator looks for (GpuScalaUDF.getRapidsUDFInstance): the function
    // itself is a RapidsUDF.
    assertTrue(udfs.get(0).function() instanceof RapidsUDF);
    assertTrue(udfs.get(0).function() instanceof SegmentGemmUdf);
    assertEquals("segment_gemm", udfs.get(0).udfName().get());
  }

  @Test
  void dataFrameFunctionsAndNumericArraysGiveTheSameRows() {
    SegmentGemmDemo.Options o = generate("segment_gemm", DType.FLOAT16, "df");
    Dataset<Row> emb = SPARK.table("emb");
    List<Row> sql = SPARK.sql("SELECT id, segment_gemm(adapter_id, features) y FROM emb ORDER BY id")
        .collectAsList();
    List<Row> df = emb.select(col("id"), SegmentGemmFunctions.segment_gemm(col("adapter_id"),
        col("features")).as("y")).orderBy("id").collectAsList();
    List<Row> dbl = SPARK.sql("SELECT id, segment_gemm(adapter_id, transform(features, v -> "
        + "cast(v AS double))) y FROM emb ORDER BY id").collectAsList();
    assertEquals(o.rows(), sql.size());
    assertEquals(sql, df);
    assertEquals(sql, dbl, "array<double> features are cast to array<float>");
  }

  @ParameterizedTest
  @EnumSource(value = DType.class, names = {"FLOAT32", "BFLOAT16"})
  void loraApplyMatchesTheReference(DType dtype) {
    SegmentGemmDemo.Options o = generate("lora_apply", dtype, "lora-" + dtype);
    SPARK.sql("SELECT id, adapter_id, lora_apply(adapter_id, features) AS output FROM emb")
        .write().mode("overwrite").parquet(o.output().toString());
    assertTrue(check(o) <= 1, "within the " + dtype + " tolerance");
  }

  @Test
  void badCallsAreClearErrors() {
    generate("segment_gemm", DType.BFLOAT16, "errors");
    String arity = assertThrows(Exception.class,
        () -> SPARK.sql("SELECT segment_gemm(adapter_id) FROM emb")).getMessage();
    assertTrue(arity.contains("segment_gemm takes 2 arguments (adapter_id, features), not 1"), arity);
    String type = assertThrows(Exception.class,
        () -> SPARK.sql("SELECT segment_gemm(adapter_id, 'x') FROM emb")).getMessage();
    assertTrue(type.contains("features must be ARRAY<FLOAT> (or an array of numbers), not STRING"), type);
    String unknown = assertThrows(Exception.class, () -> SPARK.sql(
        "SELECT segment_gemm('tenant_999', features) FROM emb").collectAsList()).getMessage();
    assertTrue(unknown.contains("segment_gemm: column adapter_id: unknown adapter 'tenant_999'"),
        unknown);
    String lora = assertThrows(Exception.class, () -> SPARK.sql(
        "SELECT lora_apply(adapter_id, features) FROM emb").collectAsList()).getMessage();
    assertTrue(lora.contains("include no LoRA adapter"), lora);
  }

  @Test
  void installAndUseAdaptersWorkOnARunningSession() {
    SegmentGemmDemo.Options o = generate("segment_gemm", DType.BFLOAT16, "install");
    SegmentGemmFunctions.install(SPARK);
    SegmentGemmFunctions.install(SPARK);
    assertTrue(SPARK.catalog().functionExists("segment_gemm"));
    assertTrue(SPARK.catalog().functionExists("lora_apply"));
    SPARK.conf().unset("spark.segmentgemm.adapters.path");
    List<String> ids = SegmentGemmFunctions.useAdapters(SPARK, o.adapterDir().toString());
    assertEquals(9, ids.size());
    assertEquals("tenant_000", ids.get(0));
    assertEquals(o.rows(), SPARK.sql("SELECT segment_gemm(adapter_id, features) FROM emb").count());
    assertThrows(RuntimeException.class,
        () -> SegmentGemmFunctions.useAdapters(SPARK, dir.resolve("nothing-here").toString()));
  }

  @Test
  void thePluginAddsItsExtensionOnce() {
    String ours = SegmentGemmExtensions.class.getName();
    assertEquals(ours, SegmentGemmPlugin.withExtension(""));
    assertEquals("a.B," + ours, SegmentGemmPlugin.withExtension("a.B"));
    assertEquals("a.B," + ours, SegmentGemmPlugin.withExtension("a.B, " + ours + ","));
    assertTrue(SPARK.sparkContext().conf().get("spark.sql.extensions").contains(ours));
  }

  @Test
  void ourExecutorPluginStopsBeforeTheRapidsAccelerators() {
    String ours = SegmentGemmPlugin.class.getName();
    String rapids = SegmentGemmPlugin.RAPIDS_PLUGIN;
    assertEquals(ours + "," + rapids, SegmentGemmPlugin.withPluginOrder(rapids + "," + ours));
    assertEquals("a.B," + ours + "," + rapids + ",c.D",
        SegmentGemmPlugin.withPluginOrder("a.B, " + rapids + "," + ours + ",c.D," + ours));
    assertEquals(ours + "," + rapids, SegmentGemmPlugin.withPluginOrder(ours + "," + rapids));
    assertEquals(rapids, SegmentGemmPlugin.withPluginOrder(rapids));
    assertEquals(ours, SegmentGemmPlugin.withPluginOrder(ours));
  }

  @Test
  void executorReportsTravelAsJdkTypes() {
    SegmentGemmMetrics.Snapshot m = new SegmentGemmMetrics.Snapshot(1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
        11, 12, 13, 14, 15, 16, 17, 1);
    SegmentGemmPlugin.ExecutorReport r = new SegmentGemmPlugin.ExecutorReport("7", "host-a", "1",
        "GPU 1", 42, m);
    Object wire = r.toWire();
    assertTrue(wire instanceof String[], "no application class on the wire");
    assertEquals(r, SegmentGemmPlugin.ExecutorReport.fromWire(wire));
    assertEquals(null, SegmentGemmPlugin.ExecutorReport.fromWire("something else"));
  }
}
