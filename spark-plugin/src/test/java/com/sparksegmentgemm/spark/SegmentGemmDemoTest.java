package com.sparksegmentgemm.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sparksegmentgemm.SharedSpark;
import com.sparksegmentgemm.nativelib.DType;
import com.sparksegmentgemm.nativelib.Gpu;
import java.nio.file.Path;
import java.util.List;
import org.apache.spark.sql.Row;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SegmentGemmDemoTest {

  /** An independent check of one output row: the dot products in double, from the same inputs. */
  private static void assertRow(Row out, SegmentGemmDemo.Options o, float[] weights, double tol) {
    long id = out.getLong(0);
    int adapter = out.getInt(1);
    List<Float> y = out.getList(2);
    assertEquals(o.dOut(), y.size());
    Row in = SharedSpark.get().sql(String.format(
        "select transform(sequence(0, %d), k -> cast(pmod(hash(%dL, k), 2001) / 1000.0 - 1.0 as float)) f",
        o.dIn() - 1, id)).first();
    List<Float> x = in.getList(0);
    for (int n = 0; n < o.dOut(); n++) {
      double acc = 0, abs = 0;
      for (int k = 0; k < o.dIn(); k++) {
        double p = (double) o.dtype().round(x.get(k))
            * o.dtype().round(weights[(adapter * o.dIn() + k) * o.dOut() + n]);
        acc += p;
        abs += Math.abs(p);
      }
      assertTrue(Math.abs(y.get(n) - acc) <= tol * abs + 1e-30,
          "row " + id + " output " + n + ": " + y.get(n) + " vs " + acc);
    }
  }

  @Test
  void demoComputesEveryRowAndMatchesTheReference(@TempDir Path dir) {
    for (DType dtype : new DType[] {DType.FLOAT32, DType.BFLOAT16}) {
      SegmentGemmDemo.Options o = SegmentGemmDemo.Options.parse(new String[] {
          "--rows", "3000", "--adapters", "7", "--d-in", "40", "--d-out", "24", "--partitions", "3",
          "--dtype", dtype.name(), "--output", dir.resolve(dtype.name()).toString()});
      SegmentGemmDemo.Result r = SegmentGemmDemo.run(SharedSpark.get(), o);
      assertEquals(3000, r.rows());
      assertEquals(3000, r.gpuRows() + r.cpuRows());
      assertEquals(Gpu.isAvailable() ? 3000 : 0, r.gpuRows());
      assertEquals(o.sample(), r.sample().size());
      float[] w = SegmentGemmDemo.adapterWeights(o);
      double tol = dtype == DType.FLOAT32 ? 1e-5 : 1e-2;
      for (Row row : r.sample()) assertRow(row, o, w, tol);
      assertTrue(r.maxRelDiff() <= (dtype == DType.FLOAT32 ? 1e-5 : 2e-2), "vs CPU: " + r.maxRelDiff());
      // Every adapter id seen in the output is a real one, and the skew shows.
      List<Row> counts = SharedSpark.get().read().parquet(o.output())
          .groupBy("adapter_id").count().orderBy("adapter_id").collectAsList();
      assertTrue(counts.size() > 1 && counts.size() <= 7);
      assertTrue(counts.get(0).getLong(1) > counts.get(counts.size() - 1).getLong(1));
    }
  }

  @Test
  void badOptionsAreClearErrors() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> SegmentGemmDemo.Options.parse(new String[] {"--engine", "tpu"}));
    assertTrue(e.getMessage().startsWith("--engine must be auto, gpu or cpu, not tpu"));
    e = assertThrows(IllegalArgumentException.class,
        () -> SegmentGemmDemo.Options.parse(new String[] {"--rows"}));
    assertTrue(e.getMessage().startsWith("--rows needs a value"));
  }
}
