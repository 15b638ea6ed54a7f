package com.sparksegmentgemm.spark;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sparksegmentgemm.SegmentGemmConf;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** docs/spark.md documents every spark.segmentgemm.* key SegmentGemmConf defines. */
class ConfigDocsTest {
  @Test
  void everyKeyIsInTheSparkDocs() throws IOException {
    String doc = Files.readString(Path.of("..", "docs", "spark.md"));
    for (SegmentGemmConf.Entry<?> e : SegmentGemmConf.ALL) {
      assertTrue(doc.contains("| `" + e.key() + "` |"), e.key() + " has a row in docs/spark.md");
    }
  }
}
