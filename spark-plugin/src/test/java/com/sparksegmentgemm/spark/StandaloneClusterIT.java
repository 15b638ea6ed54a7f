package com.sparksegmentgemm.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sparksegmentgemm.SharedSpark;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The shaded jar on a real Spark standalone cluster: a master and two workers started with
 * Spark's own scripts (dev/spark-cluster, Spark from the pyspark package), each worker owning
 * one GPU address (a resources file: there is no GPU here, but Spark assigns addresses all the
 * same, as on a multi-GPU host), the job submitted with spark-submit --master spark://... and
 * one GPU per executor, its output equal to a spark-submit --master local[2] run of the same
 * jar, and checked against the double-precision reference. The cluster is stopped even when the
 * test fails.
 */
class StandaloneClusterIT {
  private static final Path ROOT = Path.of(System.getProperty("repo.root", ".")).toAbsolutePath();
  private static final Path JAR = Path.of(System.getProperty("shaded.jar", "missing.jar"));

  @TempDir
  static Path dir;

  private record Run(int code, String output) {}

  private static Run exec(Path log, String... command) throws IOException, InterruptedException {
    ProcessBuilder pb = new ProcessBuilder(command).directory(ROOT.toFile())
        .redirectErrorStream(true).redirectOutput(log.toFile());
    pb.environment().put("SPARK_LOCAL_IP", "127.0.0.1");
    Process p = pb.start();
    if (!p.waitFor(10, TimeUnit.MINUTES)) {
      p.destroyForcibly();
      throw new IllegalStateException(String.join(" ", command) + " timed out; log " + log);
    }
    return new Run(p.exitValue(), Files.readString(log));
  }

  private static String lastLine(String s) {
    String[] lines = s.strip().split("\n");
    return lines[lines.length - 1].strip();
  }

  private static Run submit(String sparkHome, String master, SegmentGemmDemo.Options o,
      Path out, String name, String... conf) throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>(List.of(sparkHome + "/bin/spark-submit", "--master", master));
    cmd.addAll(List.of(conf));
    cmd.addAll(List.of(
        "--conf", "spark.driver.extraJavaOptions=--add-modules=jdk.incubator.vector",
        "--conf", "spark.executor.extraJavaOptions=--add-modules=jdk.incubator.vector",
        "--conf", "spark.executor.memory=1g", "--conf", "spark.ui.enabled=false",
        "--class", SegmentGemmJob.class.getName(), JAR.toString(),
        "--input", o.input().toString(), "--adapters", o.adapterDir().toString(),
        "--output", out.toString(), "--compute-dtype", "bfloat16", "--progress-seconds", "5"));
    Run r = exec(dir.resolve(name + ".log"), cmd.toArray(new String[0]));
    assertEquals(0, r.code(), name + " run failed:\n" + r.output());
    return r;
  }

  @Test
  void jobOnAStandaloneClusterEqualsLocalModeAndTheReference() throws Exception {
    assertTrue(Files.isRegularFile(JAR), "the shaded jar " + JAR);
    SparkSession spark = SharedSpark.get();
    SegmentGemmDemo.Options o = SegmentGemmDemo.Options.parse(new String[] {"--rows", "20000",
        "--adapters", "12", "--d-in", "64", "--d-out", "48", "--partitions", "4", "--dtype",
        "bfloat16", "--dir", dir.resolve("data").toString()});
    SegmentGemmDemo.Weights w = SegmentGemmDemo.generate(spark, o);
    Run install = exec(dir.resolve("install.log"), "dev/install-spark.sh",
        System.getProperty("spark.version", "4.1.3"));
    assertEquals(0, install.code(), install.output());
    String sparkHome = lastLine(install.output());

    Path local = dir.resolve("out-local");
    Run localRun = submit(sparkHome, "local[2]", o, local, "local");

    // The driver plugin checks spark.segmentgemm.* as Spark starts, whoever set them.
    List<String> bad = List.of(sparkHome + "/bin/spark-submit", "--master", "local[1]",
        "--conf", "spark.segmentgemm.computDtype=fp16", "--class", SegmentGemmJob.class.getName(),
        JAR.toString(), "--input", o.input().toString(), "--output", dir.resolve("never").toString());
    Run badConf = exec(dir.resolve("bad-conf.log"), bad.toArray(new String[0]));
    assertEquals(SegmentGemmJob.BAD_ARGUMENTS, badConf.code(), badConf.output());
    assertTrue(badConf.output().contains("SegmentGemmJob: unknown configuration key "
        + "spark.segmentgemm.computDtype"), badConf.output());
    Path clusterDir = dir.resolve("cluster");
    Run cluster;
    try {
      Run start = exec(dir.resolve("start.log"), "dev/spark-cluster", "start", "--workers", "2",
          "--cores-per-worker", "1", "--memory-per-worker", "2g", "--gpus-per-worker", "1",
          "--dir", clusterDir.toString());
      assertEquals(0, start.code(), "cluster start failed:\n" + start.output());
      String master = lastLine(start.output());
      assertTrue(master.startsWith("spark://127.0.0.1:"), master);
      cluster = submit(sparkHome, master, o, o.output(), "cluster",
          "--conf", "spark.executor.resource.gpu.amount=1",
          "--conf", "spark.task.resource.gpu.amount=1",
          // Both executors registered before the first task, so that both get work (standalone
          // mode counts registration against spark.cores.max only).
          "--conf", "spark.cores.max=2",
          "--conf", "spark.scheduler.minRegisteredResourcesRatio=1.0",
          "--conf", "spark.scheduler.maxRegisteredResourcesWaitingTime=120s");
    } finally {
      Run stop = exec(dir.resolve("stop.log"), "dev/spark-cluster", "stop", "--dir",
          clusterDir.toString());
      assertEquals(0, stop.code(), "cluster stop failed:\n" + stop.output());
    }
    System.out.println("StandaloneClusterIT, local[2]:\n" + summaryLines(localRun.output())
        + "\nStandaloneClusterIT, 2 workers:\n" + summaryLines(cluster.output()));

    // The cluster's executors (not the local driver) did the work, on the CPU, each with the
    // GPU address of its own worker.
    Matcher m = Pattern.compile("executor (\\d+) on [^:]+: ([0-9,]+) rows .*\\(Spark assigned GPU (\\d)\\)")
        .matcher(cluster.output());
    long rows = 0;
    java.util.Set<String> gpus = new java.util.TreeSet<>();
    while (m.find()) {
      rows += Long.parseLong(m.group(2).replace(",", ""));
      gpus.add(m.group(3));
    }
    assertEquals(java.util.Set.of("0", "1"), gpus, "one GPU address per executor:\n" + cluster.output());
    assertEquals(20000, rows, "our metrics count every row once");
    assertTrue(cluster.output().contains("segment_gemm: 20,000 rows in "), cluster.output());

    List<Row> a = spark.read().parquet(local.toString()).orderBy("id").collectAsList();
    List<Row> b = spark.read().parquet(o.output().toString()).orderBy("id").collectAsList();
    assertEquals(20000, a.size());
    assertEquals(a, b, "the cluster's output equals local mode's");
    double worst = SegmentGemmDemo.check(spark, o, w, new PrintStream(new ByteArrayOutputStream(),
        true, StandardCharsets.UTF_8));
    assertTrue(worst <= 1, "within the bfloat16 tolerance: " + worst);
  }

  private static String summaryLines(String log) {
    StringBuilder s = new StringBuilder();
    for (String line : log.split("\n")) {
      if (line.startsWith("segment_gemm: ") || line.startsWith("  executor ")) {
        s.append(line).append('\n');
      }
    }
    return s.toString().strip();
  }
}
