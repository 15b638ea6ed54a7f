package com.sparksegmentgemm.spark.bench;

import static org.apache.spark.sql.functions.coalesce;
import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.lit;
import static org.apache.spark.sql.functions.slice;
import static org.apache.spark.sql.functions.transform;

import java.util.Locale;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;

/**
 * The e2e benchmark's I/O floor (impl io_floor): the job's read and write with no math. It reads
 * the same Parquet input and writes its features column back as the output column (id,
 * adapter_id, output ARRAY&lt;FLOAT&gt;: the job's output schema), as Parquet, under whatever
 * Spark and RAPIDS settings spark-submit gives it: e2e.sh runs it through the same launcher and
 * confs as the job, so the difference between the two is what the UDF costs.
 *
 * <pre>
 * spark-submit --class com.sparksegmentgemm.spark.bench.IoFloor TESTS_JAR INPUT OUTPUT [WIDTH]
 * </pre>
 * WIDTH (the job's d_out, when it is smaller than d_in: case c's 256 &rarr; 32) writes the
 * first WIDTH features of each row, so that the floor writes as many bytes as the job does
 * (the RAPIDS Accelerator runs {@code slice} on the GPU: GpuSlice).
 * Prints one line, timed as SegmentGemmJob times its write: {@code io_floor: ROWS rows in SECONDS s}.
 */
public final class IoFloor {
  private IoFloor() {}

  /**
   * The input with its features as the output column, the job's columns in its order and its
   * output type: ARRAY&lt;FLOAT&gt; with non-null elements, as segment_gemm declares (a Parquet
   * writer spends work on nullable elements that the job's output does not have). Spark cannot
   * cast nullable elements to non-null ones, so a null element becomes 0: the floor's output
   * values are not the point, its bytes are.
   */
  public static Dataset<Row> query(Dataset<Row> input) {
    return query(input, 0);
  }

  /** {@link #query(Dataset)} with each row's first {@code width} features (all when 0). */
  public static Dataset<Row> query(Dataset<Row> input, int width) {
    Column features = width > 0 ? slice(col("features"), 1, width) : col("features");
    Column nonNull = transform(features, x -> coalesce(x, lit(0f)));
    return input.select(col("id"), col("adapter_id"), nonNull.as("output"));
  }

  public static void main(String[] args) {
    if (args.length != 2 && args.length != 3) {
      System.err.println("usage: IoFloor INPUT OUTPUT [WIDTH] (Parquet paths; WIDTH: features kept)");
      System.exit(2);
    }
    int width = args.length == 3 ? Integer.parseInt(args[2]) : 0;
    if (width < 0) {
      System.err.println("IoFloor: WIDTH must be positive, not " + width);
      System.exit(2);
    }
    SparkSession spark = SparkSession.builder().appName("io-floor").getOrCreate();
    try {
      Dataset<Row> out = query(spark.read().parquet(args[0]), width);
      long start = System.nanoTime();
      out.write().mode(SaveMode.Overwrite).parquet(args[1]);
      double seconds = (System.nanoTime() - start) / 1e9;
      long rows = spark.read().parquet(args[1]).count();  // Parquet footers: no data scan
      System.out.printf(Locale.ROOT, "io_floor: %,d rows in %.3f s%n", rows, seconds);
      System.out.println("physical plan:\n" + out.queryExecution().executedPlan().treeString());
    } finally {
      spark.stop();
    }
  }
}
