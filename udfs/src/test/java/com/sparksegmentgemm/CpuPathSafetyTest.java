package com.sparksegmentgemm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sparksegmentgemm.nativelib.DType;
import java.io.IOException;
import java.io.StringWriter;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.appender.WriterAppender;
import org.apache.logging.log4j.core.layout.PatternLayout;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import scala.collection.Seq;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The CPU path's behaviour on long runs and awkward values: flat host memory over 1,000
 * batches, a warning when finite features overflow the compute dtype, and bad-row messages that
 * name the column.
 */
class CpuPathSafetyTest {
  @TempDir
  Path dir;

  @AfterEach
  void forget() {
    AdapterRegistry.clear();
  }

  private static Seq<Float> seq(float... v) {
    List<Float> l = new ArrayList<>();
    for (float f : v) l.add(f);
    return CollectionConverters.asScala(l).toSeq();
  }

  /**
   * 1,000 batches through both CPU entry points (the Java API's CPU backend and the row UDF):
   * the heap after a full GC must not grow by more than 16 MiB between batch 100 and batch 1,000
   * (keeping one batch's 200 x 64 input floats a batch would add 46 MB).
   */
  @Test
  void hostMemoryStaysFlatOver1000Batches() throws IOException {
    Random rnd = new Random(13);
    int dIn = 64, dOut = 32, rows = 200, adapters = 8;
    Map<String, float[]> w = AdapterFiles.writeNumeric(dir, rnd, adapters, dIn, dOut);
    SegmentGemmRowUdf udf = new SegmentGemmRowUdf(
        SegmentGemmSettings.defaults(dir.toUri().toString()).withComputeDtype(DType.FLOAT32),
        AdapterWeights.Function.SEGMENT_GEMM);
    float[] weights = new float[adapters * dIn * dOut];
    for (int a = 0; a < adapters; a++) {
      System.arraycopy(w.get(Integer.toString(a)), 0, weights, a * dIn * dOut, dIn * dOut);
    }
    float[] x = Reference.gaussian(rnd, rows * dIn);
    long[] segLens = new long[adapters];
    Arrays.fill(segLens, rows / adapters);
    Seq<Float> row = seq(Arrays.copyOf(x, dIn));
    long baseline = 0;
    float checksum = 0;
    try (SegmentGemm gemm = new SegmentGemm(SegmentGemm.Backend.CPU)) {
      for (int batch = 1; batch <= 1000; batch++) {
        HostTensor y = gemm.run(new HostTensor(DType.FLOAT32, x, rows, dIn),
            new HostTensor(DType.FLOAT32, weights, adapters, dIn, dOut), adapters, false,
            segLens, null, null);
        checksum += y.values()[batch % y.values().length];
        for (int r = 0; r < 20; r++) checksum += udf.call(r % adapters, row)[0];
        if (batch == 100) baseline = heapAfterGc();
      }
    }
    long growth = heapAfterGc() - baseline;
    assertTrue(Float.isFinite(checksum));
    assertTrue(growth < 16L << 20, "heap grew by " + growth + " bytes over 900 batches");
  }

  private static long heapAfterGc() {
    for (int i = 0; i < 3; i++) System.gc();
    return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
  }

  @Test
  void finiteFeaturesThatOverflowFloat16AreAWarningNamingTheAdapter() throws IOException {
    Files.write(dir.resolve("big.npy"), AdapterFiles.npy(new float[] {1000f, 1f}, 2, 1));
    SegmentGemmRowUdf udf = new SegmentGemmRowUdf(
        SegmentGemmSettings.defaults(dir.toUri().toString()).withComputeDtype(DType.FLOAT16),
        AdapterWeights.Function.SEGMENT_GEMM);
    StringWriter log = new StringWriter();
    LoggerContext ctx = (LoggerContext) LogManager.getContext(false);
    org.apache.logging.log4j.core.Logger logger = ctx.getLogger(SegmentGemmRowUdf.class.getName());
    WriterAppender capture = WriterAppender.createAppender(
        PatternLayout.newBuilder().withPattern("%p %m%n").build(), null, log, "capture", false, true);
    capture.start();
    logger.addAppender(capture);
    try {
      assertEquals(2000f, udf.call("big", seq(2f, 0f))[0]);  // in range: no warning
      assertEquals("", log.toString());
      float[] y = udf.call("big", seq(100f, 1f));  // 100 000 > 65504
      assertEquals(Float.POSITIVE_INFINITY, y[0]);
      udf.call("big", seq(200f, 1f));
      String warned = log.toString();
      assertTrue(warned.startsWith("WARN segment_gemm: a row for adapter 'big' has finite "
          + "features but Inf or NaN outputs: the products overflowed FLOAT16 (largest finite "
          + "value 65504.0)"), warned);
      assertEquals(1, warned.split("\n").length, "once per task: " + warned);
    } finally {
      logger.removeAppender(capture);
      capture.stop();
    }
  }

  @Test
  void badRowsNameTheColumnAndTheNullValuesIndex() throws IOException {
    AdapterFiles.writeNumeric(dir, new Random(3), 2, 3, 2);
    SegmentGemmRowUdf udf = new SegmentGemmRowUdf(
        SegmentGemmSettings.defaults(dir.toUri().toString()), AdapterWeights.Function.SEGMENT_GEMM)
        .withArgumentNames("tenant", "emb");
    List<Float> withNull = new ArrayList<>(List.of(1f, 2f));
    withNull.add(1, null);
    String nul = assertThrows(BadRowException.class,
        () -> udf.call("1", CollectionConverters.asScala(withNull).toSeq())).getMessage();
    assertEquals("segment_gemm: column emb has a null value at index 1 for adapter '1' (set "
        + "spark.segmentgemm.onBadRow=null to return null for such rows)", nul);
    String len = assertThrows(BadRowException.class, () -> udf.call("0", seq(1f, 2f)))
        .getMessage();
    assertTrue(len.startsWith("segment_gemm: column emb has 2 values for adapter '0' but the "
        + "adapters expect d_in = 3"), len);
    String unknown = assertThrows(BadRowException.class, () -> udf.call(7L, seq(1f, 2f, 3f)))
        .getMessage();
    assertTrue(unknown.startsWith("segment_gemm: column tenant: unknown adapter '7'"), unknown);
    SegmentGemmRowUdf lenient = new SegmentGemmRowUdf(SegmentGemmSettings.defaults(
        dir.toUri().toString()).withOnBadRow(SegmentGemmConf.OnBadRow.NULL),
        AdapterWeights.Function.SEGMENT_GEMM);
    assertNull(lenient.call(7L, seq(1f, 2f, 3f)));
  }
}
