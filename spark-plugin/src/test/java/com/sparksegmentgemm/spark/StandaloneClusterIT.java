package com.sparksegmentgemm.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.sparksegmentgemm.SharedSpark;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.CleanupMode;
import org.junit.jupiter.api.io.TempDir;

/**
 * The shaded jar on a real Spark standalone cluster: a master and two workers started with
 * Spark's own scripts (dev/spark-cluster, Spark from the pyspark package), each worker owning
 * one GPU address (a resources file: there is no GPU here, but Spark assigns addresses all the
 * same, as on a multi-GPU host), the job submitted with spark-submit --master spark://... and
 * one GPU per executor. Each cluster run's output must equal a spark-submit --master local[2]
 * run of the same jar bit for bit (the same CPU code on the same input splits, whichever
 * executor or task attempt runs them), file for file, and agree with the double-precision
 * reference. One cluster serves every test and is stopped even when a test fails.
 */
class StandaloneClusterIT {
  private static final Path ROOT = Path.of(System.getProperty("repo.root", ".")).toAbsolutePath();
  private static final Path JAR = Path.of(System.getProperty("shaded.jar", "missing.jar"));
  private static final long ROWS = 20_000;
  /**
   * Input files, one task each (see ONE_TASK_PER_FILE): enough that the cluster's two 1-core
   * executors each run several tasks in turn, so an executor can be lost while tasks are done,
   * running and still queued.
   */
  private static final int FILES = 24;
  /**
   * An opened file costs a whole split, so Spark packs no two input files into one task, in
   * local mode and on the cluster alike (it would otherwise pack by the number of cores).
   */
  private static final List<String> ONE_TASK_PER_FILE = List.of(
      "--conf", "spark.sql.files.maxPartitionBytes=16m",
      "--conf", "spark.sql.files.openCostInBytes=16m");
  private static final List<String> CLUSTER_CONF = List.of(
      "--conf", "spark.executor.resource.gpu.amount=1",
      "--conf", "spark.task.resource.gpu.amount=1",
      // Both executors registered before the first task, so that both get work (standalone
      // mode counts registration against spark.cores.max only).
      "--conf", "spark.cores.max=2",
      "--conf", "spark.scheduler.minRegisteredResourcesRatio=1.0",
      "--conf", "spark.scheduler.maxRegisteredResourcesWaitingTime=120s");

  /** Kept when a test fails: the cluster's logs and each executor's stderr are under cluster/. */
  @TempDir(cleanup = CleanupMode.ON_SUCCESS)
  static Path dir;

  private static SparkSession spark;
  private static SegmentGemmDemo.Options data;
  private static SegmentGemmDemo.Weights weights;
  private static String sparkHome;
  private static Path clusterDir;
  private static String master;
  /** The clean run every cluster run must equal. */
  private static Path localOutput;

  private record Run(int code, String output) {}

  /** A command running in the background, its stdout and stderr going to a log file. */
  private record Started(String name, Process process, Path log) {
    Run await() throws IOException, InterruptedException {
      if (!process.waitFor(10, TimeUnit.MINUTES)) {
        process.destroyForcibly();
        throw new IllegalStateException(name + " timed out; log " + log);
      }
      return new Run(process.exitValue(), output());
    }

    /** Waits and asserts exit code 0. */
    Run succeeded() throws IOException, InterruptedException {
      Run r = await();
      assertEquals(0, r.code(), name + " failed:\n" + r.output());
      return r;
    }

    String output() throws IOException {
      return Files.readString(log);
    }
  }

  private static Started start(String name, List<String> command) throws IOException {
    Path log = dir.resolve(name + ".log");
    ProcessBuilder pb = new ProcessBuilder(command).directory(ROOT.toFile())
        .redirectErrorStream(true).redirectOutput(log.toFile());
    pb.environment().put("SPARK_LOCAL_IP", "127.0.0.1");
    return new Started(name, pb.start(), log);
  }

  private static Run exec(String name, String... command)
      throws IOException, InterruptedException {
    return start(name, List.of(command)).await();
  }

  private static String lastLine(String s) {
    String[] lines = s.strip().split("\n");
    return lines[lines.length - 1].strip();
  }

  /** spark-submit of the job over the generated data, in the background. */
  private static Started submit(String masterUrl, Path out, String name, List<String> conf)
      throws IOException {
    List<String> cmd = new ArrayList<>(List.of(sparkHome + "/bin/spark-submit", "--master",
        masterUrl));
    cmd.addAll(conf);
    cmd.addAll(ONE_TASK_PER_FILE);
    cmd.addAll(List.of(
        "--conf", "spark.driver.extraJavaOptions=--add-modules=jdk.incubator.vector",
        "--conf", "spark.executor.extraJavaOptions=--add-modules=jdk.incubator.vector",
        "--conf", "spark.executor.memory=1g", "--conf", "spark.ui.enabled=false",
        "--class", SegmentGemmJob.class.getName(), JAR.toString(),
        "--input", data.input().toString(), "--adapters", data.adapterDir().toString(),
        "--output", out.toString(), "--compute-dtype", "bfloat16", "--progress-seconds", "5"));
    return start(name, cmd);
  }

  @BeforeAll
  static void generateRunLocallyAndStartTheCluster() throws Exception {
    assertTrue(Files.isRegularFile(JAR), "the shaded jar " + JAR);
    spark = SharedSpark.get();
    data = SegmentGemmDemo.Options.parse(new String[] {"--rows", Long.toString(ROWS),
        "--adapters", "12", "--d-in", "64", "--d-out", "48", "--partitions",
        Integer.toString(FILES), "--dtype", "bfloat16", "--dir", dir.resolve("data").toString()});
    weights = SegmentGemmDemo.generate(spark, data);
    Run install = exec("install", "dev/install-spark.sh",
        System.getProperty("spark.version", "4.1.3"));
    assertEquals(0, install.code(), install.output());
    sparkHome = lastLine(install.output());

    // The cluster starts while the local run runs: both spend much of their time waiting.
    clusterDir = dir.resolve("cluster");
    Started starting = start("start", List.of("dev/spark-cluster", "start", "--workers", "2",
        "--cores-per-worker", "1", "--memory-per-worker", "2g", "--gpus-per-worker", "1",
        "--dir", clusterDir.toString()));
    localOutput = dir.resolve("out-local");
    Run local;
    Run start;
    try {
      local = submit("local[2]", localOutput, "local", List.of()).await();
    } finally {
      start = starting.await();  // before any stop, even when the local run could not start
    }
    assertEquals(0, local.code(), "local run failed:\n" + local.output());
    assertEquals(FILES, fileNames(localOutput).stream().filter(f -> f.endsWith(".parquet"))
        .count(), "one task, so one output file, per input file");
    assertEquals(0, start.code(), "cluster start failed:\n" + start.output());
    master = lastLine(start.output());
    assertTrue(master.startsWith("spark://127.0.0.1:"), master);
  }

  /** Runs even when the set-up failed: a failed start has stopped what it started already. */
  @AfterAll
  static void stopTheCluster() throws Exception {
    if (clusterDir == null) return;
    Run stop = exec("stop", "dev/spark-cluster", "stop", "--dir", clusterDir.toString());
    assertEquals(0, stop.code(), "cluster stop failed:\n" + stop.output());
  }

  @Test
  void unknownConfigurationKeyFailsAsSparkStarts() throws Exception {
    // The driver plugin checks spark.segmentgemm.* as Spark starts, whoever set them.
    Run bad = exec("bad-conf", sparkHome + "/bin/spark-submit", "--master", "local[1]",
        "--conf", "spark.segmentgemm.computDtype=fp16", "--class", SegmentGemmJob.class.getName(),
        JAR.toString(), "--input", data.input().toString(), "--output",
        dir.resolve("never").toString());
    assertEquals(SegmentGemmJob.BAD_ARGUMENTS, bad.code(), bad.output());
    assertTrue(bad.output().contains("SegmentGemmJob: unknown configuration key "
        + "spark.segmentgemm.computDtype"), bad.output());
  }

  @Test
  void jobOnAStandaloneClusterEqualsLocalModeAndTheReference() throws Exception {
    Run cluster = submit(master, data.output(), "cluster", CLUSTER_CONF).succeeded();
    System.out.println("StandaloneClusterIT, 2 workers:\n" + summaryLines(cluster.output()));

    // The cluster's executors (not the local driver) did the work, on the CPU, each with the
    // GPU address of its own worker.
    Matcher m = Pattern.compile("executor (\\d+) on [^:]+: ([0-9,]+) rows .*\\(Spark assigned GPU (\\d)\\)")
        .matcher(cluster.output());
    long rows = 0;
    Set<String> gpus = new TreeSet<>();
    while (m.find()) {
      rows += Long.parseLong(m.group(2).replace(",", ""));
      gpus.add(m.group(3));
    }
    assertEquals(Set.of("0", "1"), gpus, "one GPU address per executor:\n" + cluster.output());
    assertEquals(ROWS, rows, "our metrics count every row once");
    assertTrue(cluster.output().contains(String.format("segment_gemm: %,d rows in ", ROWS)),
        cluster.output());

    assertSameOutputAsLocal(data.output());
    double worst = SegmentGemmDemo.check(spark, data, weights, new PrintStream(
        new ByteArrayOutputStream(), true, StandardCharsets.UTF_8));
    assertTrue(worst <= 1, "within the bfloat16 tolerance: " + worst);
  }

  /**
   * Issue 13: kill -9 one executor while it runs a task, with tasks done and tasks queued; the
   * other executor and the one the worker launches instead finish the job, and the output is
   * the clean run's: no rows lost or doubled, no file of the lost attempt left behind.
   */
  @Test
  void jobSurvivesLosingAnExecutorMidJob() throws Exception {
    Path out = dir.resolve("out-lost-executor");
    Started job = submit(master, out, "lost-executor", CLUSTER_CONF);
    String executor;
    String app;
    try {
      String id = await(job, "the application id", () -> {
        Matcher m = Pattern.compile("app ID (app-[0-9-]+)").matcher(job.output());
        return m.find() ? Optional.of(m.group(1)) : Optional.empty();
      });
      app = id;
      Path victim = await(job, "an executor running a task with a quarter of the tasks done",
          () -> executorRunningATask(id, FILES / 4));
      executor = victim.getFileName().toString();
      ProcessHandle jvm = executorProcess(victim, id);
      assertTrue(jvm.destroyForcibly(), "SIGKILL to executor " + executor);
      jvm.onExit().get(30, TimeUnit.SECONDS);
    } catch (Throwable t) {
      job.process().destroyForcibly();
      throw t;
    }
    Run r = job.succeeded();
    System.out.println("StandaloneClusterIT, executor " + executor + " killed mid-job:\n"
        + summaryLines(r.output()));
    // Proof that the kill landed: the driver lost the executor and the task it was running.
    assertTrue(r.output().contains("Lost executor " + executor + " on "), r.output());
    assertTrue(r.output().contains("ExecutorLostFailure (executor " + executor + " exited"),
        r.output());
    // The master launched an executor in its place (spark.deploy.maxExecutorRetries allows 10
    // failures in a row); whichever executors ran the remaining tasks, the job completed.
    Matcher added = Pattern.compile("Executor added: " + app + "/(\\d+) ").matcher(r.output());
    Set<String> executors = new TreeSet<>();
    while (added.find()) executors.add(added.group(1));
    assertEquals(3, executors.size(), "two executors and the one in place of " + executor + ": "
        + executors + "\n" + r.output());
    assertTrue(r.output().contains(String.format("segment_gemm: %,d rows in ", ROWS)),
        r.output());
    assertSameOutputAsLocal(out);
  }

  private interface Probe<T> {
    Optional<T> get() throws IOException;
  }

  /**
   * Polls until the probe answers; fails if the job ends first, or after five minutes (a hang:
   * on a loaded machine executors alone can take half a minute to start).
   */
  private static <T> T await(Started job, String what, Probe<T> probe) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(5);
    while (true) {
      Optional<T> v = probe.get();
      if (v.isPresent()) return v.get();
      if (!job.process().isAlive()) {
        fail(job.name() + " ended before " + what + ":\n" + job.output());
      }
      if (System.nanoTime() > deadline) fail("no " + what + " within 5 minutes:\n" + job.output());
      Thread.sleep(50);
    }
  }

  private static final Pattern TASK = Pattern.compile(
      "Executor: (Running|Finished) task \\S+ in stage \\S+ \\(TID (\\d+)\\)");

  /**
   * The folder of one of the application's executors (work/worker/app/executor, where the worker
   * runs it and its log goes) that runs a task right now, once at least doneAtLeast tasks have
   * finished on any executor.
   */
  private static Optional<Path> executorRunningATask(String app, int doneAtLeast)
      throws IOException {
    Map<Path, Set<String>> running = new TreeMap<>();
    int done = 0;
    try (Stream<Path> workers = Files.list(clusterDir.resolve("work"))) {
      for (Path appDir : workers.map(w -> w.resolve(app)).filter(Files::isDirectory).toList()) {
        try (Stream<Path> executors = Files.list(appDir)) {
          for (Path e : executors.filter(p -> Files.isRegularFile(p.resolve("stderr"))).toList()) {
            Set<String> tids = new TreeSet<>();
            Matcher m = TASK.matcher(Files.readString(e.resolve("stderr")));
            while (m.find()) {
              if (m.group(1).equals("Running")) {
                tids.add(m.group(2));
              } else {
                tids.remove(m.group(2));
                done++;
              }
            }
            running.put(e, tids);
          }
        }
      }
    }
    if (done < doneAtLeast) return Optional.empty();
    return running.entrySet().stream().filter(e -> !e.getValue().isEmpty())
        .map(Map.Entry::getKey).findFirst();
  }

  /**
   * The executor JVM of our cluster that runs in this folder: the worker starts it there, so
   * its working directory tells it from every other process on the machine.
   */
  private static ProcessHandle executorProcess(Path folder, String app) throws IOException {
    Path real = folder.toRealPath();
    List<ProcessHandle> found = ProcessHandle.allProcesses().filter(p -> {
      Path proc = Path.of("/proc", Long.toString(p.pid()));
      try {
        String cmd = Files.readString(proc.resolve("cmdline"), StandardCharsets.ISO_8859_1);
        return cmd.contains("org.apache.spark.executor.CoarseGrainedExecutorBackend")
            && cmd.contains(app) && Files.readSymbolicLink(proc.resolve("cwd")).equals(real);
      } catch (IOException e) {
        return false;  // a process that ended meanwhile
      }
    }).toList();
    assertEquals(1, found.size(), "one executor JVM in " + real + ": " + found);
    return found.get(0);
  }

  /**
   * The files (the job's UUID in their names masked) and rows of out equal the local run's,
   * rows bit for bit (List.equals compares Floats by their bits).
   */
  private static void assertSameOutputAsLocal(Path out) throws IOException {
    assertEquals(fileNames(localOutput), fileNames(out), "the files of " + out);
    List<Row> a = spark.read().parquet(localOutput.toString()).orderBy("id").collectAsList();
    List<Row> b = spark.read().parquet(out.toString()).orderBy("id").collectAsList();
    assertEquals(ROWS, a.size());
    assertEquals(a.get(0).schema(), b.get(0).schema());
    assertEquals(a.size(), b.size(), "rows of " + out);
    for (int i = 0; i < a.size(); i++) {
      List<Object> x = values(a.get(i));
      List<Object> y = values(b.get(i));
      if (!x.equals(y)) assertEquals(x, y, "row " + i + " of " + out + " (ordered by id)");
    }
  }

  private static List<Object> values(Row r) {
    return List.of(r.getLong(r.fieldIndex("id")), r.getString(r.fieldIndex("adapter_id")),
        r.getList(r.fieldIndex("output")));
  }

  private static List<String> fileNames(Path out) throws IOException {
    try (Stream<Path> files = Files.list(out)) {
      return files.map(p -> p.getFileName().toString().replaceAll(
          "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>"))
          .sorted().toList();
    }
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
