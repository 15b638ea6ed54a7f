package com.sparksegmentgemm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import com.sparksegmentgemm.nativelib.DType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Inputs of the UDF tests (CPU and GPU alike) and their check against the double-precision
 * {@link Reference}: one row is a one-row, one-segment problem over its adapter's weight.
 */
final class UdfCases {
  private UdfCases() {}

  /** One input row: adapter id (String, Integer, Long or null) and features (null allowed). */
  record Input(Object adapterId, List<Float> features) {}

  /**
   * n rows over the given adapter ids with skewed (Zipf-like, exponent 1.2) frequencies, a
   * fraction nullRate of null ids and of null features.
   */
  static List<Input> skewed(Random rnd, List<?> ids, int n, int dIn, double nullRate) {
    double[] cdf = new double[ids.size()];
    double sum = 0;
    for (int i = 0; i < cdf.length; i++) cdf[i] = sum += Math.pow(i + 1, -1.2);
    List<Input> rows = new ArrayList<>(n);
    for (int r = 0; r < n; r++) {
      double u = rnd.nextDouble() * sum;
      int a = 0;
      while (cdf[a] < u) a++;
      Object id = rnd.nextDouble() < nullRate ? null : ids.get(a);
      List<Float> x = rnd.nextDouble() < nullRate ? null : features(rnd, dIn);
      rows.add(new Input(id, x));
    }
    return rows;
  }

  static List<Float> features(Random rnd, int dIn) {
    List<Float> x = new ArrayList<>(dIn);
    for (float v : Reference.gaussian(rnd, dIn)) x.add(v);
    return x;
  }

  /** Checks one output row: null where an input is null, else within the dtype's tolerance. */
  static void check(Input in, float[] actual, Map<String, float[]> weights, int dIn, int dOut,
      DType dtype, String what) {
    if (in.adapterId() == null || in.features() == null) {
      assertNull(actual, what + ": a null input gives a null row");
      return;
    }
    float[] x = new float[dIn];
    for (int i = 0; i < dIn; i++) x[i] = in.features().get(i);
    float[] w = weights.get(in.adapterId().toString());
    SegmentGemmInput problem = new SegmentGemmInput(dtype, x, 1, dIn, dOut, w, 1, false, 1,
        new long[] {1}, null, null);
    assertEquals(dOut, actual == null ? -1 : actual.length, what + ": output length");
    Reference.assertClose(problem, actual, what + " adapter " + in.adapterId());
  }

  static float[] unboxed(List<?> values) {
    if (values == null) return null;
    float[] out = new float[values.size()];
    for (int i = 0; i < out.length; i++) out[i] = (Float) values.get(i);
    return out;
  }

  static String describe(float[] v) {
    return v == null ? "null" : Arrays.toString(v);
  }
}
