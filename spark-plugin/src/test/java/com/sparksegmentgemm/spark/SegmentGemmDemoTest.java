package com.sparksegmentgemm.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.apache.spark.sql.Row;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The demo's steps (generate, run the job, check) on the shared session, for both functions. */
class SegmentGemmDemoTest extends SharedSessionTest {


  @Test
  void demoOfEachFunctionComputesEveryRowWithinTolerance(@TempDir Path dir) throws Exception {
    for (String function : List.of("segment_gemm", "lora_apply")) {
      SegmentGemmDemo.Options o = SegmentGemmDemo.Options.parse(new String[] {"--rows", "3000",
          "--adapters", "7", "--d-in", "40", "--d-out", "24", "--rank", "4", "--partitions", "3",
          "--function", function, "--dir", dir.resolve(function).toString()});
      SegmentGemmDemo.Weights w = SegmentGemmDemo.generate(SPARK, o);
      if (function.equals("lora_apply")) {
        assertTrue(Files.isRegularFile(o.adapterDir().resolve("tenant_000/adapter_config.json")));
      }
      SegmentGemmJob.Options job = SegmentGemmJob.Options.parse(o.jobArgs());
      job.conf().forEach((k, v) -> SPARK.conf().set(k, v));
      ByteArrayOutputStream progress = new ByteArrayOutputStream();
      SegmentGemmJob.Result r = SegmentGemmJob.run(SPARK, job, new PrintStream(progress));
      assertEquals(3000, r.rows());
      ByteArrayOutputStream printed = new ByteArrayOutputStream();
      double worst = SegmentGemmDemo.check(SPARK, o, w,
          new PrintStream(printed, true, StandardCharsets.UTF_8));
      assertTrue(worst <= 1, function + ": worst error " + worst + " of the bound");
      assertTrue(printed.toString(StandardCharsets.UTF_8).contains("  id 0, tenant_"));
      // The skew shows: the first adapter has more rows than the last one used.
      List<Row> counts = SPARK.read().parquet(o.output().toString())
          .groupBy("adapter_id").count().orderBy("adapter_id").collectAsList();
      assertTrue(counts.size() > 1 && counts.size() <= 7);
      assertTrue(counts.get(0).getLong(1) > counts.get(counts.size() - 1).getLong(1));
    }
  }

  @Test
  void badOptionsAreClearErrors() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> SegmentGemmDemo.Options.parse(new String[] {"--gpu", "tpu"}));
    assertEquals("--gpu must be auto, on or off, not tpu", e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> SegmentGemmDemo.Options.parse(new String[] {"--rows"}));
    assertEquals("--rows needs a value", e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> SegmentGemmDemo.Options.parse(new String[] {"--rows", "many"}));
    assertEquals("--rows needs a number, not many", e.getMessage());
  }
}
