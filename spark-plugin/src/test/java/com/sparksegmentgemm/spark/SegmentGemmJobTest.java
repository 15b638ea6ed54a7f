package com.sparksegmentgemm.spark;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.expr;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sparksegmentgemm.nativelib.DType;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.apache.spark.sql.Row;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The spark-submit job's flags, formats, errors and summary, in Spark local[2]. */
class SegmentGemmJobTest extends SharedSessionTest {
  @TempDir
  static Path dir;


  private record Cli(int code, String out, String err) {}

  private static Cli cli(String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int code = SegmentGemmJob.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
    return new Cli(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  /** Runs the job's body on the shared session (the command line would stop it). */
  private static SegmentGemmJob.Result job(String... args) {
    SegmentGemmJob.Options o = SegmentGemmJob.Options.parse(args);
    o.conf().forEach((k, v) -> SPARK.conf().set(k, v));
    return SegmentGemmJob.run(SPARK, o, new PrintStream(new ByteArrayOutputStream()));
  }

  @Test
  void ioDefaultsFillOnlyWhatNobodySet() {
    String reader = "spark.rapids.sql.format.parquet.reader.type";
    String threads = "spark.rapids.sql.multiThreadedRead.numThreads";
    java.util.Map<String, String> none = new java.util.HashMap<>();
    SegmentGemmJob.withIoDefaults(none, new org.apache.spark.SparkConf(false));
    assertEquals(java.util.Map.of(reader, "MULTITHREADED", threads, "32"), none);
    // --conf wins, and so does spark-submit's conf (which the builder would otherwise override).
    java.util.Map<String, String> byFlag = new java.util.HashMap<>(java.util.Map.of(reader, "COALESCING"));
    SegmentGemmJob.withIoDefaults(byFlag, new org.apache.spark.SparkConf(false).set(threads, "8"));
    assertEquals(java.util.Map.of(reader, "COALESCING"), byFlag);
  }

  @Test
  void helpAndBadArgumentsExitWithoutStartingSpark() {
    Cli help = cli("--help");
    assertEquals(0, help.code());
    assertTrue(help.out().startsWith("usage: SegmentGemmJob --input PATH --output PATH"));
    for (String[] bad : new String[][] {
        {"--input", "a"},
        {"--input", "a", "--output", "b", "--function", "fft"},
        {"--input", "a", "--output", "b", "--frobnicate", "1"},
        {"--input", "a", "--output", "b", "--conf", "spark.segmentgemm.computDtype=fp16"},
        {"--input", "a", "--output", "b", "--compute-dtype", "int8"}}) {
      Cli c = cli(bad);
      assertEquals(SegmentGemmJob.BAD_ARGUMENTS, c.code(), String.join(" ", bad));
      assertTrue(c.err().contains("run with --help"), c.err());
    }
    assertTrue(cli("--input", "a").err().contains("--output is required"));
    assertTrue(cli("--input", "a", "--output", "b", "--conf", "spark.segmentgemm.computDtype=x")
        .err().contains("unknown configuration key spark.segmentgemm.computDtype"));
    assertTrue(cli("--input", "a", "--output", "b", "--compute-dtype", "int8")
        .err().contains("spark.segmentgemm.computeDtype = 'int8' is invalid"));
    // A relative adapters path is made absolute here, where it was meant.
    assertEquals(Path.of("rel/adapters").toAbsolutePath().toString(), SegmentGemmJob.Options
        .parse("--input", "a", "--output", "b", "--adapters", "rel/adapters").conf()
        .get("spark.segmentgemm.adapters.path"));
    assertEquals("s3a://b/adapters", SegmentGemmJob.Options.parse("--input", "a", "--output", "b",
        "--adapters", "s3a://b/adapters").conf().get("spark.segmentgemm.adapters.path"));
  }

  @Test
  void parquetCsvAndJsonInputsGiveTheSameOutput() {
    SegmentGemmDemo.Options o = SegmentGemmDemo.Options.parse(new String[] {"--rows", "1200",
        "--adapters", "6", "--d-in", "32", "--d-out", "24", "--partitions", "2", "--dtype",
        "bfloat16", "--dir", dir.resolve("formats").toString()});
    SegmentGemmDemo.generate(SPARK, o);
    String adapters = o.adapterDir().toString();
    SegmentGemmJob.Result r = job("--input", o.input().toString(), "--adapters", adapters,
        "--output", o.output().toString(), "--compute-dtype", "bfloat16");
    assertEquals(1200, r.rows());
    assertEquals(32, r.dIn());
    assertEquals(1200, r.udf().rows());
    assertTrue(SegmentGemmDemo.check(SPARK, o, SegmentGemmDemo.weights(o),
        new PrintStream(new ByteArrayOutputStream())) <= 1);
    String line = SegmentGemmJob.summary(SegmentGemmJob.Options.parse("--input", "x", "--output",
        o.output().toString()), r);
    assertTrue(line.matches("segment_gemm: 1,200 rows in [0-9.]+ s, [0-9,]+ rows/s, [0-9.]+ GB/s "
        + "of features \\(d_in 32\\) \\[CPU: UDF [0-9.]+ s summed over task threads, [0-9.]+ GB/s of features per thread\\] -> .*"), line);

    List<Row> expected = SPARK.read().parquet(o.output().toString()).orderBy("id").collectAsList();
    SPARK.read().parquet(o.input().toString())
        .withColumn("features", expr("concat('[', concat_ws(', ', features), ']')"))
        .write().option("header", "true").csv(dir.resolve("in-csv").toString());
    SPARK.read().parquet(o.input().toString()).write().json(dir.resolve("in-json").toString());
    // Column names resolve as Spark resolves them (case-insensitively by default, dots literal).
    String dotted = dir.resolve("dotted").toString();
    SPARK.read().parquet(o.input().toString()).withColumnRenamed("adapter_id", "meta.Adapter")
        .write().parquet(dotted);
    String dottedOut = dir.resolve("out-dotted").toString();
    job("--input", dotted, "--adapters", adapters, "--output", dottedOut, "--compute-dtype",
        "bfloat16", "--id-column", "meta.adapter", "--features-column", "FEATURES");
    assertEquals(expected.stream().map(row -> row.get(2)).toList(), SPARK.read().parquet(dottedOut)
        .orderBy("id").select("output").collectAsList().stream().map(row -> row.get(0)).toList());
    for (String format : List.of("csv", "json")) {
      String out = dir.resolve("out-" + format).toString();
      job("--input", dir.resolve("in-" + format).toString(), "--input-format", format,
          "--adapters", adapters, "--output", out, "--compute-dtype", "bfloat16");
      List<Row> got = SPARK.read().parquet(out).select(col("id").cast("long"), col("adapter_id"),
          col("output")).orderBy("id").collectAsList();
      assertEquals(expected, got, format);
    }
  }

  @Test
  void badInputNamesThePathOrColumn() {
    SegmentGemmDemo.Options o = SegmentGemmDemo.Options.parse(new String[] {"--rows", "100",
        "--adapters", "3", "--d-in", "8", "--d-out", "8", "--partitions", "1",
        "--dir", dir.resolve("bad").toString()});
    SegmentGemmDemo.generate(SPARK, o);
    String adapters = o.adapterDir().toString();
    String missing = assertThrows(SegmentGemmJob.BadInputException.class, () -> job("--input",
        dir.resolve("nope").toString(), "--adapters", adapters, "--output",
        dir.resolve("o1").toString())).getMessage();
    assertTrue(missing.startsWith("cannot read parquet input " + dir.resolve("nope")), missing);
    String column = assertThrows(SegmentGemmJob.BadInputException.class, () -> job("--input",
        o.input().toString(), "--adapters", adapters, "--output", dir.resolve("o2").toString(),
        "--features-column", "embedding")).getMessage();
    assertEquals("input " + o.input() + " has no column 'embedding' (its columns: id, "
        + "adapter_id, features)", column);
    String noAdapters = assertThrows(SegmentGemmJob.BadInputException.class, () -> job("--input",
        o.input().toString(), "--adapters", dir.resolve("none").toString(), "--output",
        dir.resolve("o3").toString())).getMessage();
    assertTrue(noAdapters.startsWith("adapters: "), noAdapters);
    job("--input", o.input().toString(), "--adapters", adapters, "--output", o.output().toString(),
        "--mode", "overwrite");
    String exists = assertThrows(SegmentGemmJob.BadInputException.class, () -> job("--input",
        o.input().toString(), "--adapters", adapters, "--output", o.output().toString()))
        .getMessage();
    assertTrue(exists.contains("already exists"), exists);
    assertFalse(exists.isBlank());
  }
}
