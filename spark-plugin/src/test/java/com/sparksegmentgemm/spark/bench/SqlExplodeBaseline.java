package com.sparksegmentgemm.spark.bench;

import java.util.Locale;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

/**
 * The e2e benchmark's plain-SQL baseline (impl sql_explode): segment_gemm written as Spark SQL
 * without our code: explode each row's features, join with the weights as rows
 * (adapter_id, k, w_row ARRAY&lt;FLOAT&gt; of d_out), explode the weight rows, sum the products
 * per (row, output), and gather them back into arrays. Float32 products, double sums.
 *
 * <pre>
 * spark-submit --class com.sparksegmentgemm.spark.bench.SqlExplodeBaseline JAR INPUT WEIGHTS OUTPUT
 * </pre>
 * Prints one line: {@code sql_explode: ROWS rows in SECONDS s}.
 */
public final class SqlExplodeBaseline {
  private SqlExplodeBaseline() {}

  static final String QUERY = """
      WITH x AS (
        SELECT id, adapter_id, k, xk FROM sqlx_input
        LATERAL VIEW posexplode(features) f AS k, xk),
      p AS (
        SELECT x.id, x.adapter_id, n, CAST(x.xk AS DOUBLE) * CAST(wn AS DOUBLE) AS prod
        FROM x JOIN sqlx_weights w ON x.adapter_id = w.adapter_id AND x.k = w.k
        LATERAL VIEW posexplode(w.w_row) e AS n, wn),
      y AS (
        SELECT id, adapter_id, n, CAST(sum(prod) AS FLOAT) AS yn FROM p GROUP BY id, adapter_id, n)
      SELECT id, adapter_id,
             transform(array_sort(collect_list(struct(n, yn))), s -> s.yn) AS output
      FROM y GROUP BY id, adapter_id""";

  /** The baseline's result over an input table and a weights table (not yet computed). */
  public static Dataset<Row> query(SparkSession spark, Dataset<Row> input, Dataset<Row> weights) {
    input.createOrReplaceTempView("sqlx_input");
    weights.createOrReplaceTempView("sqlx_weights");
    return spark.sql(QUERY);
  }

  public static void main(String[] args) {
    if (args.length != 3) {
      System.err.println("usage: SqlExplodeBaseline INPUT WEIGHTS OUTPUT (Parquet paths)");
      System.exit(2);
    }
    SparkSession spark = SparkSession.builder().appName("sql-explode-baseline").getOrCreate();
    try {
      Dataset<Row> in = spark.read().parquet(args[0]);
      long start = System.nanoTime();
      query(spark, in, spark.read().parquet(args[1])).write().mode("overwrite").parquet(args[2]);
      double seconds = (System.nanoTime() - start) / 1e9;
      long rows = spark.read().parquet(args[2]).count();
      System.out.printf(Locale.ROOT, "sql_explode: %d rows in %.3f s%n", rows, seconds);
      query(spark, in, spark.read().parquet(args[1])).explain();
    } finally {
      spark.stop();
    }
  }
}
