package com.sparksegmentgemm;

import org.apache.spark.sql.SparkSession;

/**
 * The one Spark {@code local[2]} session the tests share (stopped at JVM exit). Public, and
 * shipped in this module's test jar, so spark-plugin's tests use the same fixture.
 */
public final class SharedSpark {
  private static SparkSession session;

  private SharedSpark() {}

  public static synchronized SparkSession get() {
    if (session == null) {
      session = SparkSession.builder().master("local[2]").appName("segment-gemm-tests")
          .config("spark.ui.enabled", "false")
          .config("spark.sql.shuffle.partitions", "4")
          .getOrCreate();
      SparkSession s = session;
      Runtime.getRuntime().addShutdownHook(new Thread(s::stop));
    }
    return session;
  }
}
