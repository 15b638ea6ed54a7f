package com.sparksegmentgemm.spark;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.expr;

import com.sparksegmentgemm.AdapterWeights;
import com.sparksegmentgemm.SafetensorsWriter;
import com.sparksegmentgemm.nativelib.DType;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

/**
 * The README's main command (dev/run-demo): writes generated embeddings (Parquet) and adapters
 * (real safetensors files, or PEFT LoRA folders for {@code --function lora_apply}), runs
 * {@link SegmentGemmJob} over them on an embedded local Spark (the RAPIDS Accelerator and the GPU
 * when this machine has them, the CPU otherwise), prints where the output went and a sample of
 * it, and checks sampled rows against a double-precision reference computed here from the
 * generated weights.
 */
public final class SegmentGemmDemo {

  /** What to generate and run. */
  public record Options(long rows, int adapters, int dIn, int dOut, int rank, DType dtype,
      int partitions, AdapterWeights.Function function, String gpu, String master, Path dir,
      int sample) {

    static Options parse(String[] args) {
      long rows = 200_000;
      int adapters = 32, dIn = 256, dOut = 256, rank = 16, partitions = 8;
      DType dtype = DType.BFLOAT16;
      AdapterWeights.Function function = AdapterWeights.Function.SEGMENT_GEMM;
      String gpu = "auto", master = "local[*]", dir = "spark-plugin/target/demo";
      for (int i = 0; i < args.length; i++) {
        String a = args[i];
        if (i + 1 >= args.length) throw new IllegalArgumentException(a + " needs a value");
        String v = args[++i];
        try {
          switch (a) {
            case "--rows" -> rows = Long.parseLong(v);
            case "--adapters" -> adapters = Integer.parseInt(v);
            case "--d-in" -> dIn = Integer.parseInt(v);
            case "--d-out" -> dOut = Integer.parseInt(v);
            case "--rank" -> rank = Integer.parseInt(v);
            case "--dtype" -> dtype = DType.valueOf(v.toUpperCase(Locale.ROOT));
            case "--partitions" -> partitions = Integer.parseInt(v);
            case "--function" -> function = Arrays.stream(AdapterWeights.Function.values())
                .filter(f -> f.sqlName().equals(v)).findFirst().orElseThrow(
                    () -> new IllegalArgumentException("--function must be segment_gemm or "
                        + "lora_apply, not " + v));
            case "--gpu" -> {
              if (!List.of("auto", "on", "off").contains(v)) {
                throw new IllegalArgumentException("--gpu must be auto, on or off, not " + v);
              }
              gpu = v;
            }
            case "--master" -> master = v;
            case "--dir" -> dir = v;
            default -> throw new IllegalArgumentException("unknown option " + a);
          }
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException(a + " needs a number, not " + v);
        }
      }
      if (rows < 1 || adapters < 1 || dIn < 1 || dOut < 1 || rank < 1 || partitions < 1) {
        throw new IllegalArgumentException("rows, adapters, sizes, rank and partitions must be "
            + "positive");
      }
      return new Options(rows, adapters, dIn, dOut, rank, dtype, partitions, function, gpu,
          master, Path.of(dir).toAbsolutePath(), 16);
    }

    Path input() {
      return dir.resolve("input");
    }

    Path adapterDir() {
      return dir.resolve("adapters");
    }

    Path output() {
      return dir.resolve("output");
    }

    /** The job's command line for this demo. */
    String[] jobArgs() {
      return new String[] {"--input", input().toString(), "--adapters", adapterDir().toString(),
          "--output", output().toString(), "--mode", "overwrite", "--function",
          function.sqlName(), "--compute-dtype", dtype.name().toLowerCase(Locale.ROOT),
          "--master", master, "--gpu", gpu, "--progress-seconds", "5"};
    }
  }

  static final String USAGE = """
      usage: SegmentGemmDemo [--rows N] [--adapters N] [--d-in N] [--d-out N] [--rank R]
                             [--dtype float32|float16|bfloat16] [--partitions N]
                             [--function segment_gemm|lora_apply] [--gpu auto|on|off]
                             [--master URL] [--dir DIR]
      defaults: 200000 rows, 32 adapters, 256 -> 256 (LoRA rank 16), bfloat16, 8 partitions,
      segment_gemm, the GPU when there is one, local[*], spark-plugin/target/demo""";

  /** Generated adapters: per adapter, one matrix per stage (LoRA: A, B), and the LoRA scaling. */
  record Weights(float[][][] stages, double[] scaling) {}

  private SegmentGemmDemo() {}

  public static void main(String[] args) {
    System.exit(run(args, System.out, System.err));
  }

  static int run(String[] args, PrintStream out, PrintStream err) {
    if (SegmentGemmJob.wantsHelp(args)) {
      out.println(USAGE);
      return 0;
    }
    Options o;
    SegmentGemmJob.Options job;
    try {
      o = Options.parse(args);
      job = SegmentGemmJob.Options.parse(o.jobArgs());
    } catch (IllegalArgumentException e) {
      err.println("SegmentGemmDemo: " + e.getMessage() + "\n" + USAGE);
      return SegmentGemmJob.BAD_ARGUMENTS;
    }
    out.printf("Spark Segment GEMM demo: %s over %,d rows x %d features, %d adapters, %s%n",
        o.function().sqlName(), o.rows(), o.dIn(), o.adapters(), o.dtype());
    // The adapters first: the plugin reads them as each executor starts.
    Weights w;
    try {
      w = writeAdapters(o);
    } catch (UncheckedIOException e) {
      err.println("SegmentGemmDemo failed: " + SegmentGemmJob.rootMessage(e));
      return 1;
    }
    SparkSession spark = SegmentGemmJob.session(job);
    try {
      writeInput(spark, o);
      out.printf("generated: %s (Parquet) and %s (%d adapters as %s)%n", o.input(),
          o.adapterDir(), o.adapters(), o.function() == AdapterWeights.Function.SEGMENT_GEMM
              ? ".safetensors files" : "PEFT LoRA folders");
      SegmentGemmJob.Result r = SegmentGemmJob.run(spark, job, out);
      out.println(SegmentGemmJob.summary(job, r));
      double worst = check(spark, o, w, out);
      double tol = tolerance(o.dtype());
      out.printf("checked %d rows against a double-precision reference: worst error %.2e of "
          + "the tolerance bound (%s: %.0e x sum|x_k w_k|): %s%n", o.sample(), worst,
          o.dtype(), tol, worst <= 1 ? "OK" : "FAILED");
      return worst <= 1 ? 0 : 1;
    } catch (RuntimeException e) {
      err.println("SegmentGemmDemo failed: " + SegmentGemmJob.rootMessage(e));
      e.printStackTrace(err);
      return 1;
    } finally {
      spark.stop();
    }
  }

  static double tolerance(DType dtype) {
    return switch (dtype) {
      case FLOAT32 -> 1e-5;
      case FLOAT16 -> 2e-3;
      case BFLOAT16 -> 1e-2;
    };
  }

  static String adapterId(int a) {
    return String.format("tenant_%03d", a);
  }

  /** Writes the adapters and the input table; returns the adapters' values. */
  static Weights generate(SparkSession spark, Options o) {
    Weights w = writeAdapters(o);
    writeInput(spark, o);
    return w;
  }

  /** Writes the adapters (no Spark needed); returns their values. */
  static Weights writeAdapters(Options o) {
    Weights w = weights(o);
    try {
      deleteRecursively(o.adapterDir());
      Files.createDirectories(o.adapterDir());
      for (int a = 0; a < o.adapters(); a++) {
        if (o.function() == AdapterWeights.Function.SEGMENT_GEMM) {
          Files.write(o.adapterDir().resolve(adapterId(a) + ".safetensors"),
              SafetensorsWriter.write(Map.of("weight", w.stages()[a][0]),
                  Map.of("weight", new long[] {o.dIn(), o.dOut()})));
        } else {
          Path folder = Files.createDirectories(o.adapterDir().resolve(adapterId(a)));
          String m = "base_model.model.proj.";
          Files.write(folder.resolve("adapter_model.safetensors"), SafetensorsWriter.write(
              Map.of(m + "lora_A.weight", w.stages()[a][0], m + "lora_B.weight", w.stages()[a][1]),
              Map.of(m + "lora_A.weight", new long[] {o.rank(), o.dIn()},
                  m + "lora_B.weight", new long[] {o.dOut(), o.rank()})));
          Files.writeString(folder.resolve("adapter_config.json"), String.format(Locale.ROOT,
              "{\"peft_type\": \"LORA\", \"r\": %d, \"lora_alpha\": %d, \"target_modules\": "
              + "[\"proj\"], \"use_rslora\": false}", o.rank(), 2 * o.rank()),
              StandardCharsets.UTF_8);
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write the demo adapters under " + o.adapterDir(), e);
    }
    return w;
  }

  /** Writes the input table. */
  static void writeInput(SparkSession spark, Options o) {
    // Adapter ids skewed towards the first ones; features a deterministic function of the id.
    spark.range(0, o.rows(), 1, o.partitions()).select(col("id"),
        expr(String.format("format_string('tenant_%%03d', cast(floor(%d * pow(pmod(hash(id, 17), "
            + "1000003) / 1000003.0, 2)) as int))", o.adapters())).as("adapter_id"),
        features(o.dIn()).as("features"))
        .write().mode("overwrite").parquet(o.input().toString());
  }

  private static org.apache.spark.sql.Column features(int dIn) {
    return expr(String.format("transform(sequence(0, %d), k -> cast(pmod(hash(id, k), 2001) / "
        + "1000.0 - 1.0 as float))", dIn - 1));
  }

  /** Gaussian weights scaled so that outputs stay O(1); LoRA: A (r, d_in), B (d_out, r). */
  static Weights weights(Options o) {
    Random rnd = new Random(2026);
    boolean lora = o.function() == AdapterWeights.Function.LORA_APPLY;
    float[][][] st = new float[o.adapters()][][];
    double[] scaling = new double[o.adapters()];
    for (int a = 0; a < o.adapters(); a++) {
      if (lora) {
        st[a] = new float[][] {gaussian(rnd, o.rank() * o.dIn(), o.dIn()),
            gaussian(rnd, o.dOut() * o.rank(), o.rank())};
        scaling[a] = 2.0;  // lora_alpha = 2 r
      } else {
        st[a] = new float[][] {gaussian(rnd, o.dIn() * o.dOut(), o.dIn())};
        scaling[a] = 1.0;
      }
    }
    return new Weights(st, scaling);
  }

  private static float[] gaussian(Random rnd, int n, int fanIn) {
    float[] v = new float[n];
    double scale = 1.0 / Math.sqrt(fanIn);
    for (int i = 0; i < n; i++) v[i] = (float) (rnd.nextGaussian() * scale);
    return v;
  }

  /**
   * Prints three output rows and returns the worst error of o.sample() rows as a fraction of
   * its bound (tolerance x sum |products|); above 1 is a failure.
   */
  static double check(SparkSession spark, Options o, Weights w, PrintStream out) {
    List<Row> got = spark.read().parquet(o.output().toString())
        .where(col("id").lt(o.sample())).orderBy("id").collectAsList();
    List<Row> in = spark.read().parquet(o.input().toString())
        .where(col("id").lt(o.sample())).orderBy("id").collectAsList();
    if (got.size() != in.size()) {
      throw new IllegalStateException("the output has " + got.size() + " of the first "
          + in.size() + " rows");
    }
    out.printf("output: %s (Parquet: id, adapter_id, output array<float>[%d]); first rows:%n",
        o.output(), o.dOut());
    double worst = 0;
    for (int i = 0; i < got.size(); i++) {
      int a = Integer.parseInt(in.get(i).getString(1).substring("tenant_".length()));
      List<Float> x = in.get(i).getList(2);
      List<Float> y = got.get(i).getList(got.get(i).fieldIndex("output"));
      worst = Math.max(worst, rowError(o, w, a, x, y));
      if (i < 3) {
        out.printf("  id %d, %s: [%.4f, %.4f, %.4f, ...]%n", got.get(i).getLong(0),
            got.get(i).getString(1), y.get(0), y.get(1), y.get(2));
      }
    }
    return worst;
  }

  /** One row against the reference, in double from the same rounded inputs. */
  private static double rowError(Options o, Weights w, int a, List<Float> x, List<Float> y) {
    DType t = o.dtype();
    double tol = tolerance(t);
    double[] in = new double[o.dIn()];
    for (int k = 0; k < in.length; k++) in[k] = t.round(x.get(k));
    double[] ref;
    double[] abs;
    if (o.function() == AdapterWeights.Function.SEGMENT_GEMM) {
      float[] wt = w.stages()[a][0];
      ref = new double[o.dOut()];
      abs = new double[o.dOut()];
      for (int n = 0; n < o.dOut(); n++) {
        for (int k = 0; k < o.dIn(); k++) {
          double p = in[k] * t.round(wt[k * o.dOut() + n]);
          ref[n] += p;
          abs[n] += Math.abs(p);
        }
      }
    } else {
      // The GPU and CPU paths round x . A^T to the dtype before the second product.
      float[] am = w.stages()[a][0];
      float[] bm = w.stages()[a][1];
      double[] mid = new double[o.rank()];
      for (int j = 0; j < o.rank(); j++) {
        double s = 0;
        for (int k = 0; k < o.dIn(); k++) s += in[k] * t.round(am[j * o.dIn() + k]);
        mid[j] = t.round((float) s);
      }
      ref = new double[o.dOut()];
      abs = new double[o.dOut()];
      for (int n = 0; n < o.dOut(); n++) {
        for (int j = 0; j < o.rank(); j++) {
          double p = mid[j] * t.round((float) (bm[n * o.rank() + j] * w.scaling()[a]));
          ref[n] += p;
          abs[n] += Math.abs(p);
        }
      }
    }
    double worst = 0;
    for (int n = 0; n < o.dOut(); n++) {
      double bound = tol * abs[n] + 1e-30;
      worst = Math.max(worst, Math.abs(y.get(n) - ref[n]) / bound);
    }
    return worst;
  }

  private static void deleteRecursively(Path p) throws IOException {
    if (!Files.exists(p)) return;
    try (var walk = Files.walk(p)) {
      for (Path q : walk.sorted(java.util.Comparator.reverseOrder()).toList()) Files.delete(q);
    }
  }
}
