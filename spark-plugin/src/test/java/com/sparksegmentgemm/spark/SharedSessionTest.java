package com.sparksegmentgemm.spark;

import com.sparksegmentgemm.AdapterRegistry;
import com.sparksegmentgemm.SegmentGemmConf;
import com.sparksegmentgemm.SharedSpark;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterEach;

/**
 * Tests on the shared local[2] session (with our plugin: the surefire configuration sets
 * spark.plugins); after each test the session forgets the adapters it was pointed at.
 */
abstract class SharedSessionTest {
  static final SparkSession SPARK = SharedSpark.get();

  @AfterEach
  void forgetAdapters() {
    for (SegmentGemmConf.Entry<?> e : SegmentGemmConf.ALL) SPARK.conf().unset(e.key());
    AdapterRegistry.clear();
  }
}
