package com.sparksegmentgemm.nativelib;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * Fp8's conversions against the OCP 8-bit floating point specification (v1.0, tables 1 and 2)
 * and values torch.float8_e4m3fn / float8_e5m2 give: exact codes, ties to even, saturation, NaN.
 */
class Fp8Test {

  private static int code(Fp8 f, float v) {
    return f.encode(v) & 0xff;
  }

  @Test
  void e4m3KnownCodes() {
    assertEquals(0x38, code(Fp8.E4M3, 1f));
    assertEquals(0x30, code(Fp8.E4M3, 0.5f));
    assertEquals(0xc0, code(Fp8.E4M3, -2f));
    assertEquals(0x7e, code(Fp8.E4M3, 448f));
    assertEquals(0x01, code(Fp8.E4M3, 0x1p-9f));   // smallest subnormal
    assertEquals(0x08, code(Fp8.E4M3, 0x1p-6f));   // smallest normal
    assertEquals(0x00, code(Fp8.E4M3, 0x1p-11f));  // below half the smallest subnormal
    assertEquals(0x7e, code(Fp8.E4M3, 1e9f));      // saturates
    assertEquals(0xfe, code(Fp8.E4M3, Float.NEGATIVE_INFINITY));
    assertEquals(0x7f, code(Fp8.E4M3, Float.NaN));
    assertEquals(448f, Fp8.E4M3.max());
    assertTrue(Float.isNaN(Fp8.E4M3.decode((byte) 0x7f)));
    assertEquals(-0.001953125f, Fp8.E4M3.decode((byte) 0x81));
  }

  @Test
  void e4m3TiesGoToEven() {
    assertEquals(0x38, code(Fp8.E4M3, 1.0625f));  // between 1 (0x38) and 1.125 (0x39)
    assertEquals(0x3a, code(Fp8.E4M3, 1.1875f));  // between 1.125 (0x39) and 1.25 (0x3a)
    assertEquals(0x39, code(Fp8.E4M3, 1.07f));    // nearer 1.125
  }

  @Test
  void e5m2KnownCodes() {
    assertEquals(0x3c, code(Fp8.E5M2, 1f));
    assertEquals(0x7b, code(Fp8.E5M2, 57344f));
    assertEquals(0x7b, code(Fp8.E5M2, Float.POSITIVE_INFINITY));  // saturating, as __NV_SATFINITE
    assertEquals(0x01, code(Fp8.E5M2, 0x1p-16f));
    assertEquals(Float.POSITIVE_INFINITY, Fp8.E5M2.decode((byte) 0x7c));
    assertTrue(Float.isNaN(Fp8.E5M2.decode((byte) 0x7e)));
  }

  @Test
  void everyCodeRoundTrips() {
    for (Fp8 f : Fp8.values()) {
      for (int c = 0; c < 256; c++) {
        float v = f.decode((byte) c);
        if (Float.isNaN(v) || Float.isInfinite(v)) continue;
        int back = code(f, v);
        // +0 and -0 are distinct codes of equal value
        assertTrue(back == c || (v == 0 && (back & 0x7f) == 0), f + " code " + c + " -> " + v + " -> " + back);
      }
    }
  }

  /** The nearest code by brute force over every finite code, ties to the even code. */
  private static int nearest(Fp8 f, float v) {
    float a = Math.abs(v);
    int best = -1;
    double bestErr = Double.MAX_VALUE;
    for (int c = 0; c < 0x80; c++) {
      float d = f.decode((byte) c);
      if (Float.isNaN(d) || Float.isInfinite(d)) continue;
      double err = Math.abs((double) d - a);
      if (err < bestErr || (err == bestErr && c % 2 == 0)) {
        best = c;
        bestErr = err;
      }
    }
    if (a >= f.max()) best = f == Fp8.E4M3 ? 0x7e : 0x7b;
    return (v < 0 || (v == 0 && 1 / v < 0) ? 0x80 : 0) | best;
  }

  @Test
  void encodeIsTheNearestCodeOverEveryBinade() {
    java.util.Random rnd = new java.util.Random(1);
    for (Fp8 f : Fp8.values()) {
      for (int i = 0; i < 200_000; i++) {
        // log-uniform magnitudes from far below the subnormals to above the largest value
        float v = (float) (Math.exp(rnd.nextDouble() * 40 - 28) * (rnd.nextBoolean() ? 1 : -1));
        assertEquals(nearest(f, v), code(f, v), f + " " + v);
      }
      for (int c = 0; c < 0x7f; c++) {  // exact midpoints between neighbouring codes
        float lo = f.decode((byte) c), hi = f.decode((byte) (c + 1));
        if (Float.isNaN(hi) || Float.isInfinite(hi)) continue;
        float mid = (lo + hi) / 2;
        assertEquals(nearest(f, mid), code(f, mid), f + " midpoint " + mid);
      }
    }
  }

  @Test
  void scaleFillsTheRange() {
    float[] v = {0.5f, -3f, Float.NaN, 1f};
    assertEquals(3f / 448f, Fp8.E4M3.scaleFor(v));
    assertEquals(1f, Fp8.E4M3.scaleFor(new float[] {0, 0}));
    // a tiny amax: the scale stays a normal float, so zeros stay zeros (not 0 * inf = NaN)
    float tiny = Fp8.E4M3.scaleFor(new float[] {1e-37f, 0});
    assertEquals(Float.MIN_NORMAL, tiny);
    assertEquals(0, Fp8.E4M3.quantize(new float[] {0f}, tiny)[0]);
    byte[] q = Fp8.E4M3.quantize(v, 3f / 448f);
    assertEquals(-448f, Fp8.E4M3.decode(q[1]));
  }
}
