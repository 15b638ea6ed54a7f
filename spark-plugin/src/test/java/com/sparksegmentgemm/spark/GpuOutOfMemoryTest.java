package com.sparksegmentgemm.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.rapids.cudf.ColumnVector;
import com.nvidia.spark.RapidsUDF;
import com.nvidia.spark.rapids.jni.RmmSpark;
import com.sparksegmentgemm.SegmentGemmConf;
import com.sparksegmentgemm.SegmentGemmRowUdf;
import com.sparksegmentgemm.SegmentGemmUdf;
import com.sparksegmentgemm.TestReference;
import com.sparksegmentgemm.nativelib.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import scala.collection.immutable.Seq;
import scala.jdk.javaapi.CollectionConverters;
import scala.runtime.AbstractFunction2;

/**
 * A batch that does not fit on the GPU is split and retried by the RAPIDS Accelerator, and the
 * result is still right (issue 13). The out-of-memory is RAPIDS' own fault injection
 * ({@code RmmSpark.forceSplitAndRetryOOM}) aimed at this UDF alone: the next GPU allocation of the
 * task thread, the UDF's first, throws {@code GpuSplitAndRetryOOM}. GpuProjectExec then halves its
 * input batch and calls the UDF on each half, until the halves are small enough to pass.
 *
 * <p>Why aimed, not a capped pool or the conf-wide injection: every Parquet scan, row-to-columnar
 * and coalesce of a job has retry blocks that cannot split, so a split injected everywhere
 * ({@code spark.rapids.sql.test.injectRetryOOM=split=true}) fails the scan first (seen on the
 * H200, 2026-12-03), and in a size-capped pool the scan or the concatenation after a split
 * needs more memory than the UDF (docs/reliability.md).
 *
 * <p>Runs under the RAPIDS Accelerator in the GPU check's badinput step (spark-submit,
 * {@code -Dsegmentgemm.test.rapids=true}), where the splits are asserted; elsewhere the same query
 * runs on the row path and only its values are checked.
 */
class GpuOutOfMemoryTest extends SharedSessionTest {
  static final int D_IN = 16;
  static final int D_OUT = 24;
  static final int ROWS = 256;
  /** Batches above this many rows get an out-of-memory: 128-row batches split twice, to 32. */
  static final int MAX_ROWS = 40;

  /** Row counts of the batches the GPU path computed, and the out-of-memories forced. */
  static final Queue<Integer> COMPUTED = new ConcurrentLinkedQueue<>();
  static final AtomicInteger FORCED = new AtomicInteger();

  @TempDir
  static Path root;

  /** segment_gemm whose GPU path meets a GPU out-of-memory on every batch above MAX_ROWS rows. */
  static final class SplitLargeBatches extends AbstractFunction2<Object, Seq<Float>, float[]>
      implements UDF2<Object, Seq<Float>, float[]>, RapidsUDF {
    private static final long serialVersionUID = 1L;
    private final SegmentGemmUdf inner;

    SplitLargeBatches(SegmentGemmUdf inner) {
      this.inner = inner;
    }

    @Override
    public float[] call(Object adapterId, Seq<Float> features) {
      return inner.call(adapterId, features);
    }

    @Override
    public float[] apply(Object adapterId, Seq<Float> features) {
      return call(adapterId, features);
    }

    @Override
    public ColumnVector evaluateColumnar(int numRows, ColumnVector... args) {
      if (numRows > MAX_ROWS) {
        FORCED.incrementAndGet();
        RmmSpark.forceSplitAndRetryOOM(RmmSpark.getCurrentThreadId(), 1,
            RmmSpark.OomInjectionType.GPU.ordinal(), 0);
      }
      ColumnVector out = inner.evaluateColumnar(numRows, args);
      COMPUTED.add(numRows);
      return out;
    }
  }

  @Test
  void aBatchThatMeetsAGpuOutOfMemoryIsSplitAndRetriedWithTheSameResult() throws IOException {
    Random rnd = new Random(13);
    Path adapters = Files.createDirectories(root.resolve("adapters"));
    Map<String, float[]> weights = new java.util.HashMap<>();
    for (int a = 0; a < 5; a++) {
      float[] w = TestReference.gaussian(rnd, D_IN * D_OUT);
      weights.put("a" + a, w);
      Files.write(adapters.resolve("a" + a + ".npy"), TestReference.npy(w, D_IN, D_OUT));
    }
    SPARK.conf().set(SegmentGemmConf.COMPUTE_DTYPE.key(), "float32");
    SegmentGemmFunctions.useAdapters(SPARK, adapters.toString());
    SegmentGemmUdf udf = new SegmentGemmUdf(SegmentGemmConf.settings(
        CollectionConverters.asJava(SPARK.conf().getAll())));
    SPARK.udf().register("segment_gemm_oom", new SplitLargeBatches(udf),
        SegmentGemmRowUdf.RETURN_TYPE);

    List<Row> rows = new ArrayList<>();
    List<List<Float>> features = new ArrayList<>();
    for (int i = 0; i < ROWS; i++) {
      List<Float> x = new ArrayList<>();
      for (float v : TestReference.gaussian(rnd, D_IN)) x.add(v);
      features.add(x);
      rows.add(RowFactory.create((long) i, "a" + rnd.nextInt(5), x));
    }
    StructType schema = new StructType().add("id", DataTypes.LongType)
        .add("adapter_id", DataTypes.StringType)
        .add("features", DataTypes.createArrayType(DataTypes.FloatType, false));
    COMPUTED.clear();
    FORCED.set(0);
    // Two partitions of 128 rows: each batch splits twice before its pieces fit.
    List<Row> out = SPARK.createDataFrame(rows, schema).repartition(2)
        .selectExpr("id", "adapter_id", "segment_gemm_oom(adapter_id, features) AS y")
        .collectAsList();

    assertEquals(ROWS, out.size());
    for (Row r : out) {
      int i = (int) r.getLong(0);
      List<Float> y = r.getList(2);
      float[] actual = new float[y.size()];
      for (int n = 0; n < actual.length; n++) actual[n] = y.get(n);
      TestReference.assertRowClose(features.get(i), weights.get(r.getString(1)), D_IN, D_OUT,
          DType.FLOAT32, actual, "row " + i);
    }
    if (Boolean.getBoolean(BadInputSuiteTest.UNDER_RAPIDS)) {
      List<Integer> computed = List.copyOf(COMPUTED);
      System.out.println("GpuOutOfMemoryTest under the RAPIDS Accelerator: " + FORCED.get()
          + " GPU out-of-memories forced, batches computed after the splits: " + computed);
      assertTrue(FORCED.get() > 0, "no batch above " + MAX_ROWS + " rows reached the GPU path");
      assertEquals(ROWS, computed.stream().mapToInt(Integer::intValue).sum(),
          "the split batches computed every row once: " + computed);
      assertTrue(computed.stream().allMatch(n -> n <= MAX_ROWS),
          "only batches of at most " + MAX_ROWS + " rows pass: " + computed);
    }
  }
}
