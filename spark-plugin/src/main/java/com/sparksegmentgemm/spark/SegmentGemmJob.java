package com.sparksegmentgemm.spark;

import static org.apache.spark.sql.functions.col;

import com.sparksegmentgemm.AdapterRegistry;
import com.sparksegmentgemm.AdapterWeights;
import com.sparksegmentgemm.BadRowException;
import com.sparksegmentgemm.SegmentGemmConf;
import com.sparksegmentgemm.SegmentGemmMetrics;
import com.sparksegmentgemm.SegmentGemmRowUdf;
import com.sparksegmentgemm.SegmentGemmSettings;
import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkStageInfo;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.NumericType;
import org.apache.spark.sql.types.StringType;
import org.apache.spark.sql.types.StructField;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The spark-submit job: reads a table with an adapter id column and a features column, applies
 * {@code segment_gemm} or {@code lora_apply} with the adapters under a path, and writes Parquet.
 *
 * <pre>
 * spark-submit --class com.sparksegmentgemm.spark.SegmentGemmJob segment-gemm-spark-*-all.jar \
 *   --input s3a://bucket/embeddings --adapters s3a://bucket/adapters --output s3a://bucket/out
 * </pre>
 *
 * Exit codes: 0 done, 2 bad arguments (flags, settings, an output path that overlaps an input),
 * 3 bad input (a missing path or column, a column of the wrong type, bad adapters, a bad row, an
 * output that exists under --mode error), 1 any other failure. {@code --help} lists the flags.
 *
 * <p>The result is written to a hidden staging folder beside the output and moved into place
 * only when the write succeeded ({@link #commit}): a failed run leaves no output folder under
 * --mode error and leaves the previous output as it was under --mode overwrite.
 */
public final class SegmentGemmJob {
  private static final Logger LOG = LoggerFactory.getLogger(SegmentGemmJob.class);
  static final String USAGE = """
      usage: SegmentGemmJob --input PATH --output PATH [options]
        --input PATH            table to read (any Hadoop file system)
        --input-format F        parquet (default), csv or json
        --output PATH           where to write the Parquet result
        --mode M                error (default: fail if the output exists) or overwrite (replace
                                it, only once the new result is complete)
        --adapters PATH         adapter directory, or one .safetensors/.npy file (sets
                                spark.segmentgemm.adapters.path)
        --function F            segment_gemm (default) or lora_apply
        --lora-module NAME      lora_apply: which module of the PEFT adapters (spark.segmentgemm.lora.module)
        --compute-dtype D       bfloat16 (default), float16 or float32 (spark.segmentgemm.computeDtype)
        --id-column C           adapter id column (default adapter_id): STRING, INT or LONG
        --features-column C     features column (default features): an array of numbers, or for
                                CSV a string of numbers separated by commas, semicolons or spaces
        --output-column C       result column (default output), ARRAY<FLOAT>; must not name an
                                input column
        --keep-features         also write the features column (dropped by default)
        --explain               print the physical plan (shows whether the UDF runs on the GPU)
        --conf KEY=VALUE        any Spark or spark.segmentgemm.* setting (repeatable)
        --master URL            when not run by spark-submit (default local[*])
        --gpu auto|on|off       local runs: enable the RAPIDS Accelerator when this machine has a
                                GPU and the RAPIDS jar is on the classpath (auto, the default),
                                always (on) or never (off); on a cluster, set spark.plugins yourself
        --progress-seconds N    how often to print progress (default 10; 0: never)
        --help                  this text""";

  /** Exit code for bad arguments. */
  static final int BAD_ARGUMENTS = 2;
  /** Exit code for bad input. */
  static final int BAD_INPUT = 3;

  /** The parsed flags. */
  public record Options(String input, String inputFormat, String output, SaveMode mode,
      String adapters, AdapterWeights.Function function, String loraModule, String computeDtype,
      String idColumn, String featuresColumn, String outputColumn, boolean keepFeatures,
      Map<String, String> conf, String master, String gpu, int progressSeconds,
      boolean explain) {

    public static Options parse(String... args) {
      Map<String, String> v = new LinkedHashMap<>();
      Map<String, String> conf = new LinkedHashMap<>();
      boolean keep = false;
      boolean explain = false;
      for (int i = 0; i < args.length; i++) {
        String a = args[i];
        if (a.equals("--keep-features") || a.equals("--explain")) {
          keep |= a.equals("--keep-features");
          explain |= a.equals("--explain");
          continue;
        }
        if (!FLAGS.contains(a)) throw new IllegalArgumentException("unknown option " + a);
        if (i + 1 >= args.length) throw new IllegalArgumentException(a + " needs a value");
        String value = args[++i];
        if (a.equals("--conf")) {
          int eq = value.indexOf('=');
          if (eq <= 0) throw new IllegalArgumentException("--conf needs KEY=VALUE, not " + value);
          conf.put(value.substring(0, eq), value.substring(eq + 1));
        } else {
          v.put(a, value);
        }
      }
      for (String required : List.of("--input", "--output")) {
        if (!v.containsKey(required)) throw new IllegalArgumentException(required + " is required");
      }
      String format = choice(v, "--input-format", "parquet", "parquet", "csv", "json");
      SaveMode mode = choice(v, "--mode", "error", "error", "overwrite").equals("error")
          ? SaveMode.ErrorIfExists : SaveMode.Overwrite;
      AdapterWeights.Function function = choice(v, "--function", "segment_gemm", "segment_gemm",
          "lora_apply").equals("segment_gemm") ? AdapterWeights.Function.SEGMENT_GEMM
          : AdapterWeights.Function.LORA_APPLY;
      String gpu = choice(v, "--gpu", "auto", "auto", "on", "off");
      int progress;
      try {
        progress = Integer.parseInt(v.getOrDefault("--progress-seconds", "10"));
      } catch (NumberFormatException e) {
        progress = -1;
      }
      if (progress < 0) {
        throw new IllegalArgumentException("--progress-seconds needs a number of seconds (0 or "
            + "more), not " + v.get("--progress-seconds"));
      }
      if (v.containsKey("--adapters")) {
        conf.put(SegmentGemmConf.ADAPTERS_PATH.key(), absolute(v.get("--adapters")));
      }
      if (v.containsKey("--compute-dtype")) {
        conf.put(SegmentGemmConf.COMPUTE_DTYPE.key(), v.get("--compute-dtype"));
      }
      if (v.containsKey("--lora-module")) conf.put(SegmentGemmConf.LORA_MODULE.key(), v.get("--lora-module"));
      // Bad spark.segmentgemm.* values fail here, before Spark starts.
      SegmentGemmConf.validate(conf);
      return new Options(v.get("--input"), format, v.get("--output"), mode,
          v.get("--adapters"), function, v.get("--lora-module"), v.get("--compute-dtype"),
          v.getOrDefault("--id-column", "adapter_id"),
          v.getOrDefault("--features-column", "features"),
          v.getOrDefault("--output-column", "output"), keep, Map.copyOf(conf),
          v.get("--master"), gpu, progress, explain);
    }

    private static final List<String> FLAGS = List.of("--input", "--input-format", "--output",
        "--mode", "--adapters", "--function", "--lora-module", "--compute-dtype", "--id-column",
        "--features-column", "--output-column", "--conf", "--master", "--gpu",
        "--progress-seconds");

    /**
     * A local path made absolute: executors on a cluster resolve relative paths against their
     * own working directories. Paths with a scheme (file:, hdfs:, s3a:, ...) stay as they are.
     */
    private static String absolute(String path) {
      if (path.matches("^[A-Za-z][A-Za-z0-9+.-]*:.*")) return path;
      return java.nio.file.Path.of(path).toAbsolutePath().normalize().toString();
    }

    private static String choice(Map<String, String> v, String flag, String dflt,
        String... allowed) {
      String s = v.getOrDefault(flag, dflt).toLowerCase(Locale.ROOT);
      if (!Arrays.asList(allowed).contains(s)) {
        throw new IllegalArgumentException(flag + " must be " + String.join(", ", allowed)
            + ", not " + v.get(flag));
      }
      return s;
    }
  }

  /** What a run did; udf is what our executors' counters say about this run. */
  public record Result(long rows, double seconds, long featureBytes, int dIn,
      SegmentGemmMetrics.Snapshot udf, String output) {
    public double rowsPerSecond() {
      if (rows == 0) throw new IllegalStateException("no rate: the job computed no rows");
      return rows / seconds;
    }

    /** GB/s (1e9 bytes) of features (4 bytes a value) through the whole job. */
    public double gbPerSecond() {
      if (rows == 0) throw new IllegalStateException("no rate: the job computed no rows");
      return featureBytes / seconds / 1e9;
    }
  }

  /** A problem with the input table or the adapters (exit code 3). */
  static final class BadInputException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    BadInputException(String message, Throwable cause) {
      super(message, cause);
    }
  }

  /** A bad combination of flags found once Spark runs (exit code 2). */
  static final class BadArgumentsException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    BadArgumentsException(String message) {
      super(message);
    }
  }

  private SegmentGemmJob() {}

  public static void main(String[] args) {
    System.exit(run(args, System.out, System.err));
  }

  static boolean wantsHelp(String[] args) {
    return Arrays.asList(args).contains("--help") || Arrays.asList(args).contains("-h");
  }

  /** The whole command line: parse, start Spark, run, print; returns the exit code. */
  static int run(String[] args, PrintStream out, PrintStream err) {
    if (wantsHelp(args)) {
      out.println(USAGE);
      return 0;
    }
    Options o;
    try {
      o = Options.parse(args);
    } catch (IllegalArgumentException e) {
      err.println("SegmentGemmJob: " + e.getMessage());
      err.println("run with --help for the options");
      return BAD_ARGUMENTS;
    }
    SparkSession spark;
    try {
      spark = session(o);
    } catch (IllegalArgumentException e) {
      err.println("SegmentGemmJob: " + e.getMessage());
      return BAD_ARGUMENTS;
    }
    try {
      return execute(spark, o, out, err);
    } finally {
      spark.stop();
    }
  }

  /**
   * The job on a running session (which it leaves running): runs, prints the summary or one
   * line naming what was wrong; returns the exit code.
   */
  static int execute(SparkSession spark, Options o, PrintStream out, PrintStream err) {
    if (!spark.conf().contains(SegmentGemmConf.ADAPTERS_PATH.key())) {
      err.println("SegmentGemmJob: no adapters: give --adapters PATH (or set "
          + SegmentGemmConf.ADAPTERS_PATH.key() + ")");
      return BAD_ARGUMENTS;
    }
    try {
      Result r = run(spark, o, out);
      out.println(summary(o, r));
      for (SegmentGemmPlugin.ExecutorReport e : SegmentGemmPlugin.executorReports().values()) {
        out.println(executorLine(e));
      }
      return 0;
    } catch (BadArgumentsException e) {
      err.println("SegmentGemmJob: " + oneLine(e.getMessage()));
      return BAD_ARGUMENTS;
    } catch (BadInputException e) {
      err.println("SegmentGemmJob: " + oneLine(e.getMessage()));
      return BAD_INPUT;
    } catch (RuntimeException e) {
      err.println("SegmentGemmJob failed: " + rootMessage(e));
      e.printStackTrace(err);
      return 1;
    }
  }

  /**
   * The session: spark-submit's settings, plus --master/--conf, our plugin in spark.plugins, and
   * for local runs with --gpu auto|on the RAPIDS Accelerator.
   */
  static SparkSession session(Options o) {
    SparkSession.Builder b = SparkSession.builder().appName("segment-gemm-job");
    org.apache.spark.SparkConf given = new org.apache.spark.SparkConf();
    String master = o.master() != null ? o.master() : given.get("spark.master", "local[*]");
    b.master(master);
    Map<String, String> conf = new LinkedHashMap<>(o.conf());
    List<String> plugins = new ArrayList<>();
    for (String p : conf.getOrDefault("spark.plugins", given.get("spark.plugins", "")).split(",")) {
      if (!p.isBlank()) plugins.add(p.trim());
    }
    if (master.startsWith("local") && useGpu(o.gpu())
        && !plugins.contains(SegmentGemmPlugin.RAPIDS_PLUGIN)) {
      plugins.add(0, SegmentGemmPlugin.RAPIDS_PLUGIN);
      conf.putIfAbsent("spark.rapids.sql.enabled", "true");
    }
    if (!plugins.contains(SegmentGemmPlugin.class.getName())) {
      plugins.add(SegmentGemmPlugin.class.getName());
    }
    conf.put("spark.plugins", SegmentGemmPlugin.withPluginOrder(String.join(",", plugins)));
    withIoDefaults(conf, given);
    conf.forEach(b::config);
    return b.getOrCreate();
  }

  /**
   * The job's own defaults for its Parquet I/O under the RAPIDS Accelerator, where neither
   * spark-submit nor --conf sets them (no effect without it). The RAPIDS Accelerator's
   * multithreaded Parquet reader with 32 host threads: on an H200 with 16 cores (2026-12-03,
   * spark-plugin/bench/floor_sweep.sh, case a) it cut the job's time from 4.99 s to 3.76 s against
   * its default reader (COALESCING for local files), and the other settings tried (no output
   * compression, 4 concurrent GPU tasks, asynchronous output write, no chunked reader) did less
   * (docs/benchmarks.md#e2e-floor).
   */
  static final Map<String, String> IO_DEFAULTS = Map.of(
      "spark.rapids.sql.format.parquet.reader.type", "MULTITHREADED",
      "spark.rapids.sql.multiThreadedRead.numThreads", "32");

  /** Adds to conf (the job's --conf) each of IO_DEFAULTS that neither it nor given sets. */
  static void withIoDefaults(Map<String, String> conf, org.apache.spark.SparkConf given) {
    IO_DEFAULTS.forEach((k, v) -> {
      if (!given.contains(k)) conf.putIfAbsent(k, v);
    });
  }

  private static boolean useGpu(String mode) {
    if (mode.equals("off")) return false;
    boolean rapidsOnClasspath;
    try {
      Class.forName(SegmentGemmPlugin.RAPIDS_PLUGIN, false,
          Thread.currentThread().getContextClassLoader());
      rapidsOnClasspath = true;
    } catch (ClassNotFoundException e) {
      rapidsOnClasspath = false;
    }
    if (mode.equals("on")) {
      if (!rapidsOnClasspath) {
        throw new IllegalArgumentException("--gpu on needs the RAPIDS Accelerator jar "
            + "(spark-submit --jars rapids-4-spark_2.13-<version>-cuda13.jar)");
      }
      return true;
    }
    return rapidsOnClasspath && com.sparksegmentgemm.nativelib.Gpu.isAvailable();
  }

  /** Reads, computes, writes; prints progress to out. */
  public static Result run(SparkSession spark, Options o, PrintStream out) {
    AdapterWeights weights = adapters(spark, o);
    Dataset<Row> in = read(spark, o);
    checkColumns(in, o);
    Configuration hadoop = spark.sparkContext().hadoopConfiguration();
    Path output = qualified(o.output(), hadoop);
    refuseOverlap("--input", o.input(), output, hadoop);
    String adaptersPath = spark.conf().get(SegmentGemmConf.ADAPTERS_PATH.key());
    refuseOverlap("the adapters path", adaptersPath, output, hadoop);
    Dataset<Row> result = apply(in, o);
    if (o.explain()) out.println("physical plan:\n" + result.queryExecution().executedPlan().treeString());
    FileSystem fs = fileSystem(output, hadoop);
    if (o.mode() == SaveMode.ErrorIfExists && exists(fs, output)) {
      throw new BadInputException("output " + o.output() + " already exists (--mode error); "
          + "remove it or give --mode overwrite", null);
    }
    Path staging = sibling(output, "staging");
    SegmentGemmMetrics.Snapshot before = SegmentGemmPlugin.totals();
    long start = System.nanoTime();
    Thread progress = progress(spark, out, o.progressSeconds(), start);
    boolean written = false;
    try {
      result.write().mode(SaveMode.ErrorIfExists).parquet(staging.toString());
      commit(fs, staging, output, o.mode());
      written = true;
    } catch (Exception e) {
      BadRowException bad = badRow(e);
      if (bad != null) throw new BadInputException(firstBadRow(spark, in, o, weights, bad), e);
      // Scala throws AnalysisException (a checked exception to javac) for a bad plan.
      if (e instanceof org.apache.spark.sql.AnalysisException) {
        throw new BadInputException(e.getMessage(), e);
      }
      throw e instanceof RuntimeException r ? r : new IllegalStateException(e);
    } finally {
      if (progress != null) progress.interrupt();
      if (!written) deleteQuietly(fs, staging);
    }
    double seconds = (System.nanoTime() - start) / 1e9;
    long rows = spark.read().parquet(o.output()).count();  // Parquet footers: no data scan
    SegmentGemmMetrics.Snapshot udf = awaitReports(before, rows);
    return new Result(rows, seconds, (long) weights.dIn() * 4 * rows, weights.dIn(), udf,
        o.output());
  }

  /**
   * Moves the complete result from staging to output. Under --mode overwrite an existing output
   * is first renamed aside (and put back if the second rename fails), then deleted: at no moment
   * is the previous output lost before the new one is in place. Each rename is atomic where the
   * file system's directory rename is (HDFS, local); on object stores (S3) a rename copies, so
   * the swap is not atomic there, though a failed run still leaves the previous output intact.
   */
  static void commit(FileSystem fs, Path staging, Path output, SaveMode mode) throws IOException {
    Path old = null;
    if (fs.exists(output)) {
      if (mode != SaveMode.Overwrite) {
        throw new BadInputException("output " + output + " appeared while the job ran (--mode "
            + "error); it was left as it is", null);
      }
      old = sibling(output, "replaced");
      if (!fs.rename(output, old)) throw new IOException("cannot move " + output + " aside to " + old);
    }
    if (!fs.rename(staging, output)) {
      if (old != null && !fs.rename(old, output)) {
        throw new IOException("cannot move " + staging + " to " + output + ", nor the previous "
            + "output back from " + old + ", where it is");
      }
      throw new IOException("cannot move " + staging + " to " + output);
    }
    if (old != null && !fs.delete(old, true)) {
      LOG.warn("the previous output, moved aside to {}, could not be deleted", old);
    }
  }

  /** A hidden folder beside path (Hadoop's readers skip names starting with '.'). */
  private static Path sibling(Path path, String what) {
    return new Path(path.getParent(), "." + path.getName() + "." + what + "-"
        + java.util.UUID.randomUUID());
  }

  private static Path qualified(String path, Configuration hadoop) {
    Path p = new Path(path);
    return fileSystem(p, hadoop).makeQualified(p);
  }

  private static FileSystem fileSystem(Path p, Configuration hadoop) {
    try {
      return p.getFileSystem(hadoop);
    } catch (IOException e) {
      throw new BadInputException("cannot open the file system of " + p + ": " + e.getMessage(), e);
    }
  }

  private static boolean exists(FileSystem fs, Path p) {
    try {
      return fs.exists(p);
    } catch (IOException e) {
      throw new BadInputException("cannot check the output " + p + ": " + e.getMessage(), e);
    }
  }

  private static void deleteQuietly(FileSystem fs, Path p) {
    try {
      if (fs.exists(p)) fs.delete(p, true);
    } catch (IOException e) {
      LOG.warn("could not delete the staging folder {}: {}", p, e.toString());
    }
  }

  /**
   * Refuses an output that is, contains or lies inside what the job reads: --mode overwrite
   * would delete the input (or the adapters), and Spark's lazy reads would see a half-written
   * output.
   */
  static void refuseOverlap(String what, String read, Path output, Configuration hadoop) {
    String r = qualified(read, hadoop).toString();
    String w = output.toString();
    if (r.equals(w) || r.startsWith(w + "/") || w.startsWith(r + "/")) {
      throw new BadArgumentsException("--output " + output + " overlaps " + what + " " + r
          + "; write the result elsewhere");
    }
  }

  /** The id column's type, and an output column that would replace an input column. */
  static void checkColumns(Dataset<Row> in, Options o) {
    String id = column(in, o.idColumn());
    DataType t = in.schema().apply(id).dataType();
    if (!(t instanceof StringType || t == DataTypes.IntegerType || t == DataTypes.LongType
        || t == DataTypes.ShortType || t == DataTypes.ByteType)) {
      throw new BadInputException("column '" + id + "' of " + o.input() + " is " + t.sql()
          + "; the adapter id must be STRING, INT or LONG", null);
    }
    String clash = column(in, o.outputColumn());
    if (clash != null) {
      throw new BadArgumentsException("--output-column '" + o.outputColumn() + "' names the "
          + "input's column '" + clash + "', which the result would replace (or, for the "
          + "features column, drop); give another name");
    }
  }

  /** The BadRowException a failed write was caused by, or null. */
  static BadRowException badRow(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
      if (t instanceof BadRowException b) return b;
    }
    return null;
  }

  /**
   * One line naming the first bad row of the input: its other columns' values and its file,
   * and what is wrong with it, found by a second pass that returns null for bad rows (only when
   * a task failed on one). The task's own message when that pass finds none.
   */
  static String firstBadRow(SparkSession spark, Dataset<Row> in, Options o, AdapterWeights w,
      BadRowException failure) {
    try {
      String idName = column(in, o.idColumn());
      String featuresName = column(in, o.featuresColumn());
      SegmentGemmSettings settings = SegmentGemmConf.settings(spark.conf())
          .withOnBadRow(SegmentGemmConf.OnBadRow.NULL);
      Column features = featuresAsArray(in.schema().apply(featuresName), o);
      Column id = quoted(idName);
      Column y = new SegmentGemmRowUdf(settings, o.function()).function().apply(id, features);
      List<String> shown = new ArrayList<>(Arrays.stream(in.columns())
          .filter(c -> !c.equals(featuresName) && !c.equals(idName)).limit(3).toList());
      shown.add(idName);
      List<Column> cols = new ArrayList<>();
      for (String c : shown) cols.add(quoted(c));
      cols.add(quoted(featuresName));
      cols.add(features.as("__features"));
      cols.add(functions.input_file_name().as("__file"));
      List<Row> bad = in.select(cols.toArray(new Column[0]))
          .filter(id.isNotNull().and(quoted(featuresName).isNotNull()).and(y.isNull()))
          .limit(1).collectAsList();
      if (bad.isEmpty()) return failure.getMessage();
      Row r = bad.get(0);
      StringBuilder where = new StringBuilder(" of the row with ");
      for (int i = 0; i < shown.size(); i++) {
        where.append(i == 0 ? "" : ", ").append(shown.get(i)).append(" = ")
            .append(abbreviate(String.valueOf(r.get(i))));
      }
      String file = r.getString(shown.size() + 2);
      if (!file.isEmpty()) where.append(" in ").append(file);
      String adapter = String.valueOf(r.get(shown.indexOf(idName)));
      Object raw = r.get(shown.size());
      if (raw instanceof String text) {
        String token = badToken(text);
        if (token != null) {
          return o.function().sqlName() + ": column " + featuresName + where + " holds '"
              + abbreviate(token) + "', which is not a number";
        }
      }
      // The row's fault, named as the UDFs' one row check names it, with where it is.
      try {
        SegmentGemmRowUdf.readRow(w, settings.computeDtype(), idName, featuresName, adapter,
            r.getSeq(shown.size() + 1), new float[w.dIn()], 0, where.toString());
      } catch (BadRowException e) {
        return e.getMessage();
      }
      return failure.getMessage();
    } catch (RuntimeException e) {
      LOG.warn("could not find the bad row: {}", e.toString());
      return failure.getMessage();
    }
  }

  private static String abbreviate(String s) {
    return s.length() <= 40 ? s : s.substring(0, 37) + "...";
  }

  /**
   * Our executors' counters for this run: executors report after each task, just after Spark
   * learns that the task finished, so the last reports may trail the job by a moment.
   */
  static SegmentGemmMetrics.Snapshot awaitReports(SegmentGemmMetrics.Snapshot before,
      long rows) {
    long deadline = System.nanoTime() + 10_000_000_000L;
    SegmentGemmMetrics.Snapshot d = SegmentGemmPlugin.totals().minus(before);
    while (d.rows() < rows && !SegmentGemmPlugin.executorReports().isEmpty()
        && System.nanoTime() < deadline) {
      try {
        Thread.sleep(20);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
      d = SegmentGemmPlugin.totals().minus(before);
    }
    return d;
  }

  /**
   * The adapters, read here on the driver first: a bad directory fails the job before any task
   * starts, and the summary knows d_in. Executors read them once each (AdapterRegistry).
   */
  private static AdapterWeights adapters(SparkSession spark, Options o) {
    try {
      return AdapterRegistry.weights(SegmentGemmConf.settings(spark.conf()), o.function());
    } catch (RuntimeException e) {
      throw new BadInputException("adapters: " + e.getMessage(), e);
    }
  }

  /** The input table, with a clear error for a missing path or column. */
  static Dataset<Row> read(SparkSession spark, Options o) {
    Dataset<Row> in;
    try {
      in = switch (o.inputFormat()) {
        case "csv" -> spark.read().option("header", "true").csv(o.input());
        case "json" -> spark.read().json(o.input());
        default -> spark.read().parquet(o.input());
      };
    } catch (Exception e) {  // AnalysisException for a missing path: checked to javac
      throw new BadInputException("cannot read " + o.inputFormat() + " input " + o.input() + ": "
          + rootMessage(e), e);
    }
    for (String c : List.of(o.idColumn(), o.featuresColumn())) {
      if (column(in, c) == null) {
        throw new BadInputException("input " + o.input() + " has no column '" + c + "' (its "
            + "columns: " + String.join(", ", in.columns()) + ")", null);
      }
    }
    return in;
  }

  /**
   * The input's name for a column: the same name, else (unless spark.sql.caseSensitive) the one
   * column whose name differs only in case, as Spark resolves names; null if there is none.
   */
  static String column(Dataset<Row> in, String name) {
    if (Arrays.asList(in.columns()).contains(name)) return name;
    if (Boolean.parseBoolean(in.sparkSession().conf().get("spark.sql.caseSensitive", "false"))) {
      return null;
    }
    List<String> like = Arrays.stream(in.columns()).filter(c -> c.equalsIgnoreCase(name)).toList();
    return like.size() == 1 ? like.get(0) : null;
  }

  /** A column name quoted for SQL text: taken literally (dots and all). */
  private static String quotedName(String name) {
    return "`" + name.replace("`", "``") + "`";
  }

  /** A column reference that takes the name literally. */
  private static Column quoted(String name) {
    return col(quotedName(name));
  }

  /**
   * The input with the function's output column, features dropped unless kept: the SQL function
   * (the RAPIDS Accelerator runs it on the GPU a batch at a time), or without the Accelerator
   * the CPU path a batch of spark.segmentgemm.cpuBatchRows rows at a time (CpuBatches; 0: the
   * SQL function row by row).
   */
  static Dataset<Row> apply(Dataset<Row> in, Options o) {
    String featuresName = column(in, o.featuresColumn());
    StructField f = in.schema().apply(featuresName);
    Column features = featuresAsArray(f, o);
    Column id = quoted(column(in, o.idColumn()));
    Column y = o.function() == AdapterWeights.Function.SEGMENT_GEMM
        ? SegmentGemmFunctions.segment_gemm(id, features)
        : SegmentGemmFunctions.lora_apply(id, features);
    // Analysed here on every path, so that an id or features column of a type the functions do
    // not take fails alike on both.
    Dataset<Row> out = in.withColumn(o.outputColumn(), y);
    SparkSession spark = in.sparkSession();
    int batchRows = SegmentGemmConf.CPU_BATCH_ROWS.get(
        scala.jdk.javaapi.CollectionConverters.asJava(spark.conf().getAll()));
    if (batchRows > 0 && !SegmentGemmPlugin.rapidsEnabled(spark.sparkContext().getConf())) {
      out = CpuBatches.withOutput(in, id, features, o.outputColumn(),
          o.keepFeatures() ? null : featuresName, o.function(),
          SegmentGemmConf.settings(spark.conf()), batchRows);
    }
    return o.keepFeatures() ? out : out.drop(featuresName);
  }

  private static Column featuresAsArray(StructField f, Options o) {
    DataType t = f.dataType();
    if (t instanceof ArrayType a && a.elementType() instanceof NumericType) return quoted(f.name());
    if (t instanceof StringType) {
      // CSV has no arrays: "[0.1, 0.2 ...]" or "0.1;0.2;..." as text. A token that is not a
      // decimal number (Java's float syntax, 1.5f or 0x1p3, included) becomes a null value, a
      // bad row that the job then names with the token.
      Column tokens = functions.filter(functions.split(functions.regexp_replace(quoted(f.name()),
          "[\\[\\]]", ""), "[,;\\s]+"), v -> v.notEqual(""));
      return functions.transform(tokens, v -> functions.when(v.rlike(NUMBER), v.cast("float")));
    }
    throw new BadInputException("column '" + f.name() + "' of " + o.input() + " is "
        + t.sql() + "; features must be an array of numbers (or, in CSV, a string of them)",
        null);
  }

  /** A decimal number as CSV writes one, or NaN / Inf / Infinity with an optional sign. */
  static final String NUMBER =
      "^[+-]?(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+)?|(?i)nan|inf|infinity)$";

  /** The first token of a CSV features string that is not a number, or null. */
  static String badToken(String text) {
    for (String token : text.replaceAll("[\\[\\]]", "").split("[,;\\s]+")) {
      if (!token.isEmpty() && !token.matches(NUMBER)) return token;
    }
    return null;
  }

  /** A daemon thread printing the active stages' task counts every period, or null. */
  private static Thread progress(SparkSession spark, PrintStream out, int seconds, long start) {
    if (seconds <= 0) return null;
    Thread t = new Thread(() -> {
      try {
        while (true) {
          Thread.sleep(seconds * 1000L);
          var tracker = spark.sparkContext().statusTracker();
          StringBuilder line = new StringBuilder(String.format("progress: %.0f s",
              (System.nanoTime() - start) / 1e9));
          for (int id : tracker.getActiveStageIds()) {
            scala.Option<SparkStageInfo> s = tracker.getStageInfo(id);
            if (s.isDefined()) {
              line.append(String.format(", stage %d: %d/%d tasks done", id,
                  s.get().numCompletedTasks(), s.get().numTasks()));
            }
          }
          out.println(line);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }, "segment-gemm-progress");
    t.setDaemon(true);
    t.start();
    return t;
  }

  static String summary(Options o, Result r) {
    if (r.rows() == 0) {
      return String.format(Locale.ROOT, "%s: 0 rows (the input is empty; nothing computed) in "
          + "%.2f s -> %s", o.function().sqlName(), r.seconds(), r.output());
    }
    SegmentGemmMetrics.Snapshot u = r.udf();
    String where = u.gpuRows() > 0 && u.cpuRows() == 0 ? "GPU"
        : u.cpuRows() > 0 && u.gpuRows() == 0 ? "CPU"
        : u.rows() == 0 ? "no rows seen by the UDF" : "GPU and CPU";
    String udf;
    if (u.rows() == 0) {
      udf = where;
    } else if (u.gpuRows() > 0) {
      // Task threads overlap: GB/s over the wall time during which some GPU batch ran on an
      // executor (summed over executors: a per-executor rate); phases are summed over batches.
      // The UDF's time starts once a batch's input exists: the wait for the upstream work that
      // produces it (Parquet decode) is shown apart.
      double busy = u.gpuUdfBusyNanos() / 1e9;
      udf = String.format(Locale.ROOT, "%s: UDF busy %.2f s, %.2f GB/s of features per "
          + "executor; summed over %,d batches: input wait %.2f s, then UDF %.2f s = group %.2f "
          + "+ adapters %.2f + gather %.2f + kernels %.2f + scatter %.2f + other %.2f s; %,d "
          + "native calls over %,d segments", where,
          busy, busy == 0 ? 0 : u.gpuFeatureBytes() / busy / 1e9, u.batches(),
          u.inputWaitNanos() / 1e9, u.gpuUdfNanos() / 1e9,
          u.groupNanos() / 1e9, u.adapterNanos() / 1e9, u.gatherNanos() / 1e9,
          u.kernelNanos() / 1e9, u.scatterNanos() / 1e9, (u.gpuUdfNanos() - u.groupNanos()
              - u.adapterNanos() - u.gatherNanos() - u.kernelNanos() - u.scatterNanos()) / 1e9,
          u.nativeCalls(), u.segments());
    } else {
      double cpu = u.cpuUdfNanos() / 1e9;
      udf = String.format(Locale.ROOT, "%s: UDF %.2f s summed over task threads, %.3f GB/s of "
          + "features per thread", where, cpu, cpu == 0 ? 0 : u.featureBytes() / cpu / 1e9);
    }
    return String.format(Locale.ROOT,
        "%s: %,d rows in %.2f s, %,.0f rows/s, %.3f GB/s of features (d_in %d) [%s] -> %s",
        o.function().sqlName(), r.rows(), r.seconds(), r.rowsPerSecond(), r.gbPerSecond(),
        r.dIn(), udf, r.output());
  }

  /** One executor's share, as our plugin reported it. */
  static String executorLine(SegmentGemmPlugin.ExecutorReport e) {
    SegmentGemmMetrics.Snapshot m = e.metrics();
    return String.format(Locale.ROOT, "  executor %s on %s: %,d rows (%,d on the GPU, %,d on the "
        + "CPU), %,d batches, %,d native calls; %s%s", e.executorId(), e.host(), m.rows(),
        m.gpuRows(), m.cpuRows(), m.batches(), m.nativeCalls(), e.device(),
        e.assignedGpu().isEmpty() ? "" : " (Spark assigned GPU " + e.assignedGpu() + ")");
  }

  /**
   * A message on one line: parsers (Jackson, Spark's analyzer) put the place of an error on
   * lines of its own.
   */
  static String oneLine(String message) {
    return String.valueOf(message).strip().replaceAll("\\s*\\R\\s*", " ");
  }

  static String rootMessage(Throwable e) {
    Throwable t = e;
    while (t.getCause() != null && t.getCause() != t) t = t.getCause();
    return t == e ? String.valueOf(e.getMessage()) : e.getMessage() + " (cause: " + t + ")";
  }
}
