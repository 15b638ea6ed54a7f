package com.sparksegmentgemm.spark;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.expr;

import com.sparksegmentgemm.CpuSegmentGemm;
import com.sparksegmentgemm.SegmentGemm;
import com.sparksegmentgemm.SegmentGemmInput;
import com.sparksegmentgemm.nativelib.DType;
import com.sparksegmentgemm.nativelib.Gpu;
import com.sparksegmentgemm.nativelib.SegmentGemmNative;
import java.io.Serializable;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.util.LongAccumulator;

/**
 * The demo job: generated embedding rows with skewed adapter ids, one segment GEMM per Spark
 * partition (rows grouped by adapter into segments, one weight matrix per adapter), on the GPU
 * when this JVM has one and on the CPU otherwise, written to Parquet and checked against the CPU
 * reference on a sample of rows. Later the columnar UDF and the spark-submit job replace the
 * per-partition grouping done here.
 */
public final class SegmentGemmDemo {

  /** What to run. */
  public record Options(String master, long rows, int adapters, int dIn, int dOut, DType dtype,
      int partitions, String engine, String output, int sample) implements Serializable {

    static Options parse(String[] args) {
      String master = "local[*]", engine = "auto", output = "target/demo-output";
      long rows = 200_000;
      int adapters = 32, dIn = 256, dOut = 256, partitions = 8;
      DType dtype = DType.BFLOAT16;
      for (int i = 0; i < args.length; i++) {
        String a = args[i];
        if (i + 1 >= args.length) throw new IllegalArgumentException(a + " needs a value\n" + USAGE);
        String v = args[++i];
        switch (a) {
          case "--master" -> master = v;
          case "--rows" -> rows = Long.parseLong(v);
          case "--adapters" -> adapters = Integer.parseInt(v);
          case "--d-in" -> dIn = Integer.parseInt(v);
          case "--d-out" -> dOut = Integer.parseInt(v);
          case "--dtype" -> dtype = DType.valueOf(v.toUpperCase(Locale.ROOT));
          case "--partitions" -> partitions = Integer.parseInt(v);
          case "--engine" -> engine = engine(v);
          case "--output" -> output = v;
          default -> throw new IllegalArgumentException("unknown option " + a + "\n" + USAGE);
        }
      }
      return new Options(master, rows, adapters, dIn, dOut, dtype, partitions, engine, output, 16);
    }

    private static String engine(String v) {
      if (!v.equals("auto") && !v.equals("gpu") && !v.equals("cpu")) {
        throw new IllegalArgumentException("--engine must be auto, gpu or cpu, not " + v);
      }
      return v;
    }
  }

  static final String USAGE = """
      usage: SegmentGemmDemo [--rows N] [--adapters N] [--d-in N] [--d-out N]
                             [--dtype float32|float16|bfloat16] [--partitions N]
                             [--engine auto|gpu|cpu] [--master URL] [--output DIR]
      defaults: 200000 rows, 32 adapters, 256 x 256, bfloat16, 8 partitions, auto
      (GPU when this JVM has one, else CPU), local[*], target/demo-output""";

  /** What happened. */
  public record Result(long rows, long gpuRows, long cpuRows, double seconds, double maxRelDiff,
      List<Row> sample) {}

  private SegmentGemmDemo() {}

  public static void main(String[] args) {
    if (java.util.Arrays.asList(args).contains("--help") || java.util.Arrays.asList(args).contains("-h")) {
      System.out.println(USAGE);
      return;
    }
    Options o;
    try {
      o = Options.parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println(e.getMessage());
      System.exit(2);
      return;
    }
    System.out.printf("Spark Segment GEMM demo: %,d rows x %d features -> %d outputs, %d adapters, %s, on %s%n",
        o.rows(), o.dIn(), o.dOut(), o.adapters(), o.dtype(), describeEngine(o.engine()));
    SparkSession spark = SparkSession.builder().master(o.master()).appName("segment-gemm-demo")
        .config("spark.ui.enabled", "false").getOrCreate();
    try {
      Result r = run(spark, o);
      System.out.printf("computed %,d rows in %.2f s (%,.0f rows/s): %,d on the GPU, %,d on the CPU%n",
          r.rows(), r.seconds(), r.rows() / r.seconds(), r.gpuRows(), r.cpuRows());
      System.out.printf("output: %s (Parquet: id, adapter_id, output array<float>[%d])%n",
          Path.of(o.output()).toAbsolutePath(), o.dOut());
      System.out.printf("checked %d sampled rows against the CPU reference: max relative difference %.2e%n",
          r.sample().size(), r.maxRelDiff());
      for (Row row : r.sample().subList(0, Math.min(3, r.sample().size()))) {
        List<Float> out = row.getList(2);
        System.out.printf("  id %d, adapter %d: [%.4f, %.4f, %.4f, ...]%n", row.getLong(0),
            row.getInt(1), out.get(0), out.get(1), out.get(2));
      }
    } finally {
      spark.stop();
    }
  }

  private static String describeEngine(String engine) {
    if (engine.equals("cpu")) return "the CPU (asked for)";
    return Gpu.isAvailable() ? SegmentGemmNative.deviceQuery(0).toString()
        : "the CPU (" + Gpu.unavailableReason().orElse("") + ")";
  }

  /** Runs the job and checks a sample of its output against {@link CpuSegmentGemm}. */
  public static Result run(SparkSession spark, Options o) {
    float[] weights = adapterWeights(o);
    JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
    Broadcast<float[]> bw = jsc.broadcast(weights);
    LongAccumulator gpuRows = spark.sparkContext().longAccumulator("segmentgemm.gpuRows");
    LongAccumulator cpuRows = spark.sparkContext().longAccumulator("segmentgemm.cpuRows");

    // Features are a deterministic function of the row id; adapter ids are skewed towards 0.
    Dataset<Row> input = spark.range(0, o.rows(), 1, o.partitions()).select(col("id"),
        expr(String.format("cast(floor(%d * pow((pmod(hash(id, 17), 1000003)) / 1000003.0, 2)) as int)",
            o.adapters())).as("adapter_id"),
        expr(String.format("transform(sequence(0, %d), k -> cast(pmod(hash(id, k), 2001) / 1000.0 - 1.0 as float))",
            o.dIn() - 1)).as("features"));
    StructType outSchema = new StructType().add("id", DataTypes.LongType, false)
        .add("adapter_id", DataTypes.IntegerType, false)
        .add("output", DataTypes.createArrayType(DataTypes.FloatType, false), false);

    long start = System.nanoTime();
    input.mapPartitions(new PartitionGemm(bw, o, gpuRows, cpuRows), Encoders.row(outSchema))
        .write().mode("overwrite").parquet(o.output());
    double seconds = (System.nanoTime() - start) / 1e9;

    Dataset<Row> written = spark.read().parquet(o.output());
    long rows = written.count();
    List<Row> sample = written.orderBy("id").limit(o.sample()).collectAsList();
    List<Row> sampleIn = input.where(col("id").lt(o.sample())).orderBy("id").collectAsList();
    double maxRel = 0;
    for (int i = 0; i < sample.size(); i++) {
      Row in = sampleIn.get(i);
      float[] x = toFloats(in.getList(2));
      float[] ref = CpuSegmentGemm.run(new SegmentGemmInput(o.dtype(), x, 1, o.dIn(), o.dOut(),
          weights, o.adapters(), false, 1, new long[] {1}, null, new long[] {in.getInt(1)}));
      float[] got = toFloats(sample.get(i).getList(2));
      double num = 0, den = 0;
      for (int n = 0; n < ref.length; n++) {
        num = Math.max(num, Math.abs(got[n] - ref[n]));
        den = Math.max(den, Math.abs(ref[n]));
      }
      maxRel = Math.max(maxRel, den == 0 ? num : num / den);
    }
    return new Result(rows, gpuRows.value(), cpuRows.value(), seconds, maxRel, sample);
  }

  /** The adapters' weights, (adapters, d_in, d_out) row-major, scaled so outputs stay O(1). */
  static float[] adapterWeights(Options o) {
    Random rnd = new Random(2026);
    float[] w = new float[Math.multiplyExact(o.adapters(), Math.multiplyExact(o.dIn(), o.dOut()))];
    double scale = 1.0 / Math.sqrt(Math.max(1, o.dIn()));
    for (int i = 0; i < w.length; i++) w[i] = (float) (rnd.nextGaussian() * scale);
    return w;
  }

  private static float[] toFloats(List<Float> values) {
    float[] out = new float[values.size()];
    for (int i = 0; i < out.length; i++) out[i] = values.get(i);
    return out;
  }

  /** One partition: group rows by adapter into segments, one segment GEMM, rows back in order. */
  static final class PartitionGemm implements MapPartitionsFunction<Row, Row>, Serializable {
    private static final long serialVersionUID = 1L;
    private final Broadcast<float[]> weights;
    private final Options o;
    private final LongAccumulator gpuRows;
    private final LongAccumulator cpuRows;

    PartitionGemm(Broadcast<float[]> weights, Options o, LongAccumulator gpuRows,
        LongAccumulator cpuRows) {
      this.weights = weights;
      this.o = o;
      this.gpuRows = gpuRows;
      this.cpuRows = cpuRows;
    }

    @Override
    public Iterator<Row> call(Iterator<Row> rows) {
      List<Row> in = new ArrayList<>();
      rows.forEachRemaining(in::add);
      int n = in.size(), dIn = o.dIn(), dOut = o.dOut(), adapters = o.adapters();
      // Counting sort by adapter: a stable order, and the segment lengths come with it.
      long[] lens = new long[adapters];
      for (Row r : in) {
        int a = r.getInt(1);
        if (a < 0 || a >= adapters) {
          throw new IllegalArgumentException("row " + r.getLong(0) + ": adapter_id " + a
              + " is not one of the " + adapters + " adapters");
        }
        lens[a]++;
      }
      int[] next = new int[adapters];
      for (int a = 1; a < adapters; a++) next[a] = next[a - 1] + (int) lens[a - 1];
      int[] sortedPos = new int[n];
      float[] x = new float[Math.multiplyExact(n, dIn)];
      for (int i = 0; i < n; i++) {
        Row r = in.get(i);
        List<Float> f = r.getList(2);
        if (f.size() != dIn) {
          throw new IllegalArgumentException("row " + r.getLong(0) + " (adapter " + r.getInt(1)
              + "): features have " + f.size() + " values, expected " + dIn);
        }
        int p = next[r.getInt(1)]++;
        sortedPos[i] = p;
        for (int k = 0; k < dIn; k++) x[p * dIn + k] = f.get(k);
      }
      SegmentGemmInput problem = new SegmentGemmInput(o.dtype(), x, n, dIn, dOut, weights.value(),
          adapters, false, adapters, lens, null, null);
      float[] y;
      if (!o.engine().equals("cpu") && (o.engine().equals("gpu") || Gpu.isAvailable())) {
        try (SegmentGemm gemm = new SegmentGemm()) {
          y = gemm.run(problem);
        }
        gpuRows.add(n);
      } else {
        y = CpuSegmentGemm.run(problem);
        cpuRows.add(n);
      }
      List<Row> out = new ArrayList<>(n);
      for (int i = 0; i < n; i++) {
        Float[] v = new Float[dOut];
        int base = sortedPos[i] * dOut;
        for (int j = 0; j < dOut; j++) v[j] = y[base + j];
        out.add(RowFactory.create(in.get(i).getLong(0), in.get(i).getInt(1), v));
      }
      return out.iterator();
    }
  }
}
