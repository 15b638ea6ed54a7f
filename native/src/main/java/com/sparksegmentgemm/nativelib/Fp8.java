package com.sparksegmentgemm.nativelib;

/**
 * The fp8 formats of the native fp8 kernels ({@code SGEMM_FLOAT8_E4M3}, {@code SGEMM_FLOAT8_E5M2}
 * in segment_gemm.h), with the host conversions: round to nearest, ties to even, saturating to
 * the largest finite value (CUDA's {@code __NV_SATFINITE}), NaN kept. E4M3 is the OCP "e4m3fn"
 * format (torch.float8_e4m3fn: no infinity, max 448), E5M2 the IEEE-like one (max 57344).
 */
public enum Fp8 {
  E4M3(3, 3, 7),
  E5M2(4, 2, 15);

  private final int code;
  /** Values of the codes 0 .. maxCode (non-negative, increasing); -code is code | 0x80. */
  private final float[] positive;
  private final int maxCode;
  private final int mantissaBits;
  private final int bias;
  private final byte nan;

  Fp8(int code, int mantissaBits, int bias) {
    this.code = code;
    this.mantissaBits = mantissaBits;
    this.bias = bias;
    // e4m3fn: 0x7f is NaN and 0x7e (448) the largest; e5m2: 0x7c is infinity, 0x7b (57344) max.
    this.maxCode = mantissaBits == 3 ? 0x7e : 0x7b;
    this.nan = (byte) (mantissaBits == 3 ? 0x7f : 0x7e);
    this.positive = new float[maxCode + 1];
    for (int c = 0; c <= maxCode; c++) {
      int e = c >>> mantissaBits;
      int m = c & ((1 << mantissaBits) - 1);
      positive[c] = e == 0
          ? (float) Math.scalb((double) m, 1 - bias - mantissaBits)
          : (float) Math.scalb(1.0 + m / (double) (1 << mantissaBits), e - bias);
    }
  }

  int code() {
    return code;
  }

  /** The largest finite value: 448 (E4M3), 57344 (E5M2). */
  public float max() {
    return positive[maxCode];
  }

  /** The encoding of the nearest value (ties to the even code), saturating; NaN stays NaN. */
  public byte encode(float v) {
    if (Float.isNaN(v)) return nan;
    int sign = (Float.floatToRawIntBits(v) >>> 24) & 0x80;
    float a = Math.abs(v);
    int c;
    if (a >= positive[maxCode]) {
      c = maxCode;
    } else if (a < positive[1 << mantissaBits]) {
      // Subnormal (or zero): a multiple of the smallest subnormal, rounded half to even.
      c = (int) Math.rint(a / positive[1]);
    } else {
      // Normal: round the float's 23-bit mantissa to mantissaBits, half to even (a carry into
      // the exponent is the next binade's code), then rebias the exponent.
      int bits = Float.floatToRawIntBits(a);
      int shift = 23 - mantissaBits;
      bits += (1 << (shift - 1)) - 1 + ((bits >>> shift) & 1);
      c = Math.min(maxCode, (bits >>> shift) - ((127 - bias) << mantissaBits));
    }
    return (byte) (sign | c);
  }

  /** The value of an encoding. */
  public float decode(byte b) {
    int c = b & 0x7f;
    if (c > maxCode) return c == 0x7c && this == E5M2 ? ((b & 0x80) != 0 ? Float.NEGATIVE_INFINITY
        : Float.POSITIVE_INFINITY) : Float.NaN;
    float v = positive[c];
    return (b & 0x80) != 0 ? -v : v;
  }

  /**
   * The dequantisation scale for values: the largest finite |v| over {@link #max()}, or 1 when
   * there is none (all zero), so that v / scale fills this format's range; never below the
   * smallest normal float (quantise multiplies by 1 / scale).
   */
  public float scaleFor(float[] values) {
    float amax = 0;
    for (float v : values) {
      float a = Math.abs(v);
      if (a <= Float.MAX_VALUE && a > amax) amax = a;
    }
    // At least the smallest normal float, so that 1 / scale stays finite (0 * inf would be NaN).
    return amax > 0 ? Math.max(amax / max(), Float.MIN_NORMAL) : 1f;
  }

  /** encode(values[i] / scale) for every i. */
  public byte[] quantize(float[] values, float scale) {
    byte[] out = new byte[values.length];
    float inv = 1f / scale;
    for (int i = 0; i < values.length; i++) out[i] = encode(values[i] * inv);
    return out;
  }
}
