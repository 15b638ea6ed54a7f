package com.sparksegmentgemm.nativelib;

/**
 * Element types of x, the weights and y ({@code sgemm_dtype} in segment_gemm.h); accumulation is
 * always fp32. The conversions round to nearest, ties to even, as CUDA's {@code __float2half_rn}
 * and {@code __float2bfloat16_rn} and numpy's {@code astype} do (Java 17 has no float16 API).
 */
public enum DType {
  FLOAT32(4),
  FLOAT16(2),
  BFLOAT16(2);

  private final int bytes;

  DType(int bytes) {
    this.bytes = bytes;
  }

  int code() {
    return ordinal();
  }

  /** Bytes per element. */
  public int bytes() {
    return bytes;
  }

  /** The nearest value of this type, as a float. */
  public float round(float v) {
    return switch (this) {
      case FLOAT32 -> v;
      case FLOAT16 -> halfBitsToFloat(floatToHalfBits(v));
      case BFLOAT16 -> bf16BitsToFloat(floatToBf16Bits(v));
    };
  }

  /** The 16-bit encodings of values (FLOAT16 and BFLOAT16 only). */
  public short[] toBits(float[] values) {
    short[] out = new short[values.length];
    for (int i = 0; i < values.length; i++) {
      out[i] = switch (this) {
        case FLOAT16 -> floatToHalfBits(values[i]);
        case BFLOAT16 -> floatToBf16Bits(values[i]);
        case FLOAT32 -> throw new IllegalStateException("FLOAT32 has no 16-bit encoding");
      };
    }
    return out;
  }

  /** The values of 16-bit encodings (FLOAT16 and BFLOAT16 only). */
  public float[] fromBits(short[] bits) {
    float[] out = new float[bits.length];
    for (int i = 0; i < bits.length; i++) {
      out[i] = switch (this) {
        case FLOAT16 -> halfBitsToFloat(bits[i]);
        case BFLOAT16 -> bf16BitsToFloat(bits[i]);
        case FLOAT32 -> throw new IllegalStateException("FLOAT32 has no 16-bit encoding");
      };
    }
    return out;
  }

  static short floatToBf16Bits(float f) {
    int b = Float.floatToRawIntBits(f);
    if (Float.isNaN(f)) return (short) ((b >>> 16) | 0x40);  // stay NaN after truncation
    return (short) ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16);
  }

  static float bf16BitsToFloat(short s) {
    return Float.intBitsToFloat((s & 0xffff) << 16);
  }

  static short floatToHalfBits(float f) {
    int b = Float.floatToRawIntBits(f);
    int sign = (b >>> 16) & 0x8000;
    int exp = (b >>> 23) & 0xff;
    int mant = b & 0x7fffff;
    if (exp == 0xff) return (short) (sign | 0x7c00 | (mant != 0 ? 0x200 | (mant >>> 13) : 0));
    int e = exp - 127 + 15;
    if (e >= 0x1f) return (short) (sign | 0x7c00);  // overflow: infinity
    if (e <= 0) {  // a float16 subnormal, or zero
      if (e < -10) return (short) sign;
      int m = mant | 0x800000;
      int shift = 14 - e;
      int h = m >>> shift;
      int rem = m & ((1 << shift) - 1);
      int halfway = 1 << (shift - 1);
      if (rem > halfway || (rem == halfway && (h & 1) != 0)) h++;
      return (short) (sign | h);
    }
    int h = (e << 10) | (mant >>> 13);
    int rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1) != 0)) h++;  // a carry may reach infinity: right
    return (short) (sign | h);
  }

  static float halfBitsToFloat(short h) {
    int sign = (h & 0x8000) << 16;
    int e = (h >>> 10) & 0x1f;
    int m = h & 0x3ff;
    if (e == 0) {
      float v = m * 0x1p-24f;
      return sign != 0 ? -v : v;
    }
    if (e == 31) return Float.intBitsToFloat(sign | 0x7f800000 | (m << 13));
    return Float.intBitsToFloat(sign | ((e - 15 + 127) << 23) | (m << 13));
  }
}
