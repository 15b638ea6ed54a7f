package com.sparksegmentgemm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import com.sparksegmentgemm.nativelib.DType;
import java.util.Random;

/**
 * Test oracle and inputs: a plain double-precision loop over the segments (independent of BLAS
 * and of the native code), tolerances per dtype, and generators of random ragged problems.
 */
final class Reference {
  private Reference() {}

  /**
   * Tolerance on |actual - expected| as a fraction of sum_k |x_k * w_k| (the scale of the dot
   * product's rounding error): fp32 accumulation over k terms plus the output's rounding.
   * float32 1e-5; float16 2e-3 (output rounding 2^-11 plus fp32 sums); bfloat16 1e-2 (2^-8).
   */
  static double tolerance(DType dtype) {
    return switch (dtype) {
      case FLOAT32 -> 1e-5;
      case FLOAT16 -> 2e-3;
      case BFLOAT16 -> 1e-2;
    };
  }

  /** y in double, from the inputs rounded to dtype; also returns sum |x w| per element. */
  static double[][] compute(SegmentGemmInput in) {
    long[] indptr = in.validate();
    int dIn = in.dIn(), dOut = in.dOut();
    int rows = (int) in.xRows();
    double[] y = new double[rows * dOut];
    double[] scale = new double[rows * dOut];
    for (int s = 0; s < in.batchSize(); s++) {
      int w = in.weightOf(s);
      for (long r = indptr[s]; r < indptr[s + 1]; r++) {
        for (int n = 0; n < dOut; n++) {
          double acc = 0, abs = 0;
          for (int k = 0; k < dIn; k++) {
            double xv = in.dtype().round(in.x()[(int) r * dIn + k]);
            int wi = in.weightColumnMajor() ? (w * dOut + n) * dIn + k : (w * dIn + k) * dOut + n;
            double wv = in.dtype().round(in.weights()[wi]);
            acc += xv * wv;
            abs += Math.abs(xv * wv);
          }
          y[(int) r * dOut + n] = acc;
          scale[(int) r * dOut + n] = abs;
        }
      }
    }
    return new double[][] {y, scale};
  }

  static void assertClose(SegmentGemmInput in, float[] actual, String what) {
    double[][] ref = compute(in);
    double[] y = ref[0], scale = ref[1];
    assertEquals(y.length, actual.length, what + ": output size");
    double tol = tolerance(in.dtype());
    for (int i = 0; i < y.length; i++) {
      double err = Math.abs(actual[i] - y[i]);
      // The smallest normal of the type bounds the rounding of results near zero.
      double bound = tol * scale[i] + 1e-30;
      if (!(err <= bound)) {
        fail(String.format("%s: y[%d][%d] = %s, expected %s (|err| %.3g > %.3g) for %s", what,
            i / Math.max(1, in.dOut()), i % Math.max(1, in.dOut()), actual[i], y[i], err, bound, in));
      }
    }
  }

  /** FlashInfer's documentation example: seq lens [1,2,3,4], x 10 x 128, weights 4 x 256 x 128 column-major. */
  static SegmentGemmInput docExample(DType dtype, boolean withWeightIndices, long seed) {
    Random rnd = new Random(seed);
    int numWeights = 4, dIn = 128, dOut = 256;
    return new SegmentGemmInput(dtype, gaussian(rnd, 10 * dIn), 10, dIn, dOut,
        gaussian(rnd, numWeights * dOut * dIn), numWeights, true, 4, new long[] {1, 2, 3, 4},
        null, withWeightIndices ? new long[] {0, 1, 0, 1} : null);
  }

  /** A random ragged problem: segment lengths in [0, maxLen] (zeros included), mixed options. */
  static SegmentGemmInput random(Random rnd, DType dtype, int batch, int maxLen, int dIn, int dOut,
      int numWeights, boolean columnMajor, boolean withIndices, boolean useIndptr) {
    long[] lens = new long[batch];
    long rows = 0;
    for (int i = 0; i < batch; i++) {
      lens[i] = rnd.nextInt(5) == 0 ? 0 : rnd.nextInt(maxLen + 1);
      rows += lens[i];
    }
    long[] indptr = null;
    if (useIndptr) {
      indptr = new long[batch + 1];
      for (int i = 0; i < batch; i++) indptr[i + 1] = indptr[i] + lens[i];
    }
    long[] idx = null;
    if (withIndices) {
      idx = new long[batch];
      for (int i = 0; i < batch; i++) idx[i] = rnd.nextInt(numWeights);
    }
    int nw = withIndices ? numWeights : batch;
    return new SegmentGemmInput(dtype, gaussian(rnd, (int) rows * dIn), rows, dIn, dOut,
        gaussian(rnd, nw * dIn * dOut), nw, columnMajor, batch, useIndptr ? null : lens, indptr,
        idx);
  }

  static float[] gaussian(Random rnd, int n) {
    float[] a = new float[n];
    for (int i = 0; i < n; i++) a[i] = (float) rnd.nextGaussian();
    return a;
  }
}
