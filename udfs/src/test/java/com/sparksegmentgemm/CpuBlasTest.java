package com.sparksegmentgemm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.ludovic.netlib.blas.BLAS;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The CPU path's BLAS: the bundled OpenBLAS on linux x86-64, and its sgemm against plain sums. */
class CpuBlasTest {
  @Test
  void linuxX8664RunsTheBundledOpenBlasThroughNetlib() {
    assumeTrue(System.getProperty("os.name").toLowerCase().startsWith("linux")
        && System.getProperty("os.arch").equals("amd64"), "the bundled OpenBLAS is linux x86-64's");
    BLAS blas = CpuBlas.get();
    assertEquals("JNIBLAS", blas.getClass().getSimpleName(),
        "netlib should load the bundled OpenBLAS, not fall back to Java");
    String path = System.getProperty("dev.ludovic.netlib.blas.nativeLibPath");
    assertTrue(path != null && path.endsWith("libopenblas.so.0"), String.valueOf(path));
  }

  @Test
  void sgemmMatchesDoubleSums() {
    int m = 37;
    int n = 29;
    int k = 301;
    Random rnd = new Random(3);
    float[] a = new float[m * k];  // row-major (m, k)
    float[] b = new float[k * n];  // row-major (k, n)
    for (int i = 0; i < a.length; i++) a[i] = (float) rnd.nextGaussian();
    for (int i = 0; i < b.length; i++) b[i] = (float) rnd.nextGaussian();
    float[] c = new float[m * n];
    // Row-major C = A . B is column-major C^T = B^T . A^T, as CpuSegmentGemm calls it.
    CpuBlas.get().sgemm("N", "N", n, m, k, 1f, b, 0, n, a, 0, k, 0f, c, 0, n);
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < n; j++) {
        double sum = 0;
        double mag = 0;
        for (int p = 0; p < k; p++) {
          sum += (double) a[i * k + p] * b[p * n + j];
          mag += Math.abs((double) a[i * k + p] * b[p * n + j]);
        }
        // fp32 accumulation over k terms: within k * 2^-24 of the sum of magnitudes.
        assertEquals(sum, c[i * n + j], mag * k * 0x1p-24, "C[" + i + "," + j + "]");
      }
    }
  }
}
