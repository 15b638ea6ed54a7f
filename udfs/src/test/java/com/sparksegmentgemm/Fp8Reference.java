package com.sparksegmentgemm;

import static org.junit.jupiter.api.Assertions.fail;

import com.sparksegmentgemm.nativelib.Fp8;

/**
 * The oracle of the fp8 tests: double-precision products of operands given as values (already
 * dequantised), with sum |a b| per element as the scale of the allowed error, as {@link Reference}
 * does for the 16-bit paths.
 */
final class Fp8Reference {
  private Fp8Reference() {}

  /** The kernels' own error over dequantised fp8 operands: fp32 sums and one bf16 rounding. */
  static final double KERNEL_TOL = 1.5e-2;
  /**
   * Quantising one operand to e4m3 (3 mantissa bits: relative error at most 2^-4 per value) on
   * top of {@link #KERNEL_TOL}: the CPU path keeps x in the compute dtype, the GPU quantises it.
   */
  static final double ONE_OPERAND_TOL = 0.0625 + KERNEL_TOL;
  /** Both operands quantised (x and weights), against the exact 16-bit product. */
  static final double BOTH_OPERANDS_TOL = 2 * 0.0625 + KERNEL_TOL;

  /** y (rows, n) = a (rows, k) . b, b given as (n, k) (K-major); also returns sum |a b|. */
  static double[][] multiplyKMajor(float[] a, float[] bNk, int rows, int n, int k) {
    double[] y = new double[rows * n];
    double[] scale = new double[rows * n];
    for (int r = 0; r < rows; r++) {
      for (int c = 0; c < n; c++) {
        double acc = 0, abs = 0;
        for (int i = 0; i < k; i++) {
          double p = (double) a[r * k + i] * bNk[c * k + i];
          acc += p;
          abs += Math.abs(p);
        }
        y[r * n + c] = acc;
        scale[r * n + c] = abs;
      }
    }
    return new double[][] {y, scale};
  }

  static float[] decode(Fp8 f, byte[] codes, float scale) {
    float[] v = new float[codes.length];
    for (int i = 0; i < v.length; i++) v[i] = f.decode(codes[i]) * scale;
    return v;
  }

  /** |actual - y| <= tol * scale + tiny, element by element. */
  static void assertClose(double[][] ref, float[] actual, int offset, double tol, String what) {
    double[] y = ref[0], scale = ref[1];
    for (int i = 0; i < y.length; i++) {
      double err = Math.abs(actual[offset + i] - y[i]);
      double bound = tol * scale[i] + 1e-30;
      if (!(err <= bound)) {
        fail(String.format("%s: element %d = %s, expected %s (|err| %.3g > %.3g)", what, i,
            actual[offset + i], y[i], err, bound));
      }
    }
  }
}
