package com.sparksegmentgemm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import com.sparksegmentgemm.nativelib.DType;
import com.sparksegmentgemm.nativelib.Fp8;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * spark.segmentgemm.weightDtype=fp8e4m3 on the CPU path (no GPU needed): the adapters are
 * quantised per matrix to e4m3 in the K-major layout the GPU uploads, and the CPU path
 * multiplies by exactly those values, for row-major and column-major adapter files.
 */
class Fp8WeightsCpuTest {
  @TempDir static Path dir;

  @AfterAll
  static void clear() {
    AdapterRegistry.clear();
  }

  @Test
  void cpuPathMultipliesByTheFp8Weights() throws IOException {
    int dIn = 32, dOut = 24;
    for (boolean columnMajor : new boolean[] {false, true}) {
      Path store = dir.resolve(columnMajor ? "col" : "row");
      // values far from 1 (x 1e-3): the scale must carry them
      Map<String, float[]> raw = AdapterFiles.writeRandom(store, new Random(3), 4,
          columnMajor ? dOut : dIn, columnMajor ? dIn : dOut);
      SegmentGemmSettings s = SegmentGemmConf.settings(Map.of(
          "spark.segmentgemm.adapters.path", store.toUri().toString(),
          "spark.segmentgemm.adapters.weightColumnMajor", String.valueOf(columnMajor),
          "spark.segmentgemm.weightDtype", "fp8e4m3"));
      AdapterWeights w = AdapterRegistry.weights(s, AdapterWeights.Function.SEGMENT_GEMM);
      Random rnd = new Random(4);
      for (int a = 0; a < w.size(); a++) {
        AdapterWeights.Fp8Matrix q = w.fp8(a, 0);
        float[] orig = raw.get(w.ids().get(a));
        float[] nk = Fp8Reference.decode(Fp8.E4M3, q.codes(), q.scale());
        // every code is the nearest e4m3 value of the adapter's own value / scale
        assertEquals(Fp8.E4M3.scaleFor(orig), q.scale());
        for (int c = 0; c < dOut; c++) {
          for (int r = 0; r < dIn; r++) {
            float v = orig[columnMajor ? c * dIn + r : r * dOut + c];
            assertEquals(Fp8.E4M3.encode(v / q.scale()), q.codes()[c * dIn + r], "code of " + v);
          }
        }
        float[] x = new float[3 * dIn];
        for (int i = 0; i < x.length; i++) x[i] = DType.BFLOAT16.round((float) rnd.nextGaussian());
        float[] y = w.multiply(a, x, 3, DType.BFLOAT16, true);
        Fp8Reference.assertClose(Fp8Reference.multiplyKMajor(x, nk, 3, dOut, dIn), y, 0,
            Fp8Reference.KERNEL_TOL, (columnMajor ? "column" : "row") + "-major adapter " + a);
        assertNotEquals(java.util.Arrays.toString(w.multiply(a, x, 3, DType.BFLOAT16, false)),
            java.util.Arrays.toString(y), "fp8 weights change the result");
      }
    }
  }
}
