package com.sparksegmentgemm;

import ai.rapids.cudf.BinaryOp;
import ai.rapids.cudf.ColumnVector;
import ai.rapids.cudf.ColumnView;
import ai.rapids.cudf.Scalar;
import com.sparksegmentgemm.nativelib.DType;

/**
 * float32 to and from float16/bfloat16 on the device, built from cuDF column operations (cuDF
 * has no 16-bit float type, and the native API converts nothing). Both directions are bit-exact
 * with {@link DType#round} and {@link DType#fromBits}: round to nearest, ties to even; overflow
 * to infinity; NaN stays NaN (as a quiet NaN); float16 subnormals are kept.
 *
 * <p>16-bit values travel as UINT16 columns of their bit patterns; float32 results as UINT32
 * columns of float32 bit patterns, which the caller copies into a FLOAT32 buffer byte for byte.
 * Each step is one cuDF kernel over the column; the caller owns every column returned.
 */
final class HalfFloatColumns {
  private HalfFloatColumns() {}

  /** The bit patterns of f (FLOAT32) rounded to dtype (FLOAT16 or BFLOAT16), as UINT16. */
  static ColumnVector fromFloat(ColumnView f, DType dtype) {
    try (ColumnView u = f.bitCastTo(ai.rapids.cudf.DType.UINT32);
         ColumnVector bits32 = dtype == DType.BFLOAT16 ? bf16Bits(f, u) : fp16Bits(f, u)) {
      return bits32.castTo(ai.rapids.cudf.DType.UINT16);
    }
  }

  /** The float32 bit patterns (as UINT32) of dtype values given by their UINT16 bit patterns. */
  static ColumnVector toFloatBits(ColumnView bits16, DType dtype) {
    try (ColumnVector h = bits16.castTo(ai.rapids.cudf.DType.UINT32)) {
      return dtype == DType.BFLOAT16 ? op(h, BinaryOp.SHIFT_LEFT, 16) : fp16ToFloatBits(h);
    }
  }

  /** bf16 = (u + 0x7fff + ((u >> 16) & 1)) >> 16, and a quiet NaN for NaN. */
  private static ColumnVector bf16Bits(ColumnView f, ColumnView u) {
    try (ColumnVector hi = op(u, BinaryOp.SHIFT_RIGHT_UNSIGNED, 16);
         ColumnVector lsb = op(hi, BinaryOp.BITWISE_AND, 1);
         ColumnVector biased = op(u, BinaryOp.ADD, 0x7fff);
         ColumnVector sum = biased.binaryOp(BinaryOp.ADD, lsb, ai.rapids.cudf.DType.UINT32);
         ColumnVector rounded = op(sum, BinaryOp.SHIFT_RIGHT_UNSIGNED, 16);
         ColumnVector quiet = op(hi, BinaryOp.BITWISE_OR, 0x40);
         ColumnVector nan = f.isNan()) {
      return nan.ifElse(quiet, rounded);
    }
  }

  /**
   * float16 bits from float32 bits u, on |u| = u & 0x7fffffff: normal results re-bias the
   * exponent and round the 13 dropped mantissa bits to even; results below 2^-14 are
   * rint(|f| * 2^24) (exact scaling, then one rounding: the subnormal's mantissa, or 0x400 when
   * it rounds up to the smallest normal); |f| >= 65520 rounds to infinity; NaN is 0x7e00.
   */
  private static ColumnVector fp16Bits(ColumnView f, ColumnView u) {
    try (ColumnVector sign16 = op(u, BinaryOp.SHIFT_RIGHT_UNSIGNED, 16);
         ColumnVector sign = op(sign16, BinaryOp.BITWISE_AND, 0x8000);
         ColumnVector a = op(u, BinaryOp.BITWISE_AND, 0x7fffffff);
         ColumnVector m = op(a, BinaryOp.SUB, 0x38000000);
         ColumnVector m13 = op(m, BinaryOp.SHIFT_RIGHT_UNSIGNED, 13);
         ColumnVector lsb = op(m13, BinaryOp.BITWISE_AND, 1);
         ColumnVector biased = op(m, BinaryOp.ADD, 0xfff);
         ColumnVector sum = biased.binaryOp(BinaryOp.ADD, lsb, ai.rapids.cudf.DType.UINT32);
         ColumnVector normal = op(sum, BinaryOp.SHIFT_RIGHT_UNSIGNED, 13);
         ColumnVector abs = f.abs();
         ColumnVector scaled = mul(abs, 0x1p24f);
         ColumnVector rint = scaled.rint();
         ColumnVector sub = rint.castTo(ai.rapids.cudf.DType.UINT32);
         ColumnVector isSub = cmp(a, BinaryOp.LESS, 0x38800000);
         ColumnVector finite = isSub.ifElse(sub, normal);
         ColumnVector isBig = cmp(a, BinaryOp.GREATER_EQUAL, 0x477ff000 + 0x1000);
         Scalar inf = Scalar.fromUnsignedInt(0x7c00);
         ColumnVector clamped = isBig.ifElse(inf, finite);
         ColumnVector nan = f.isNan();
         Scalar qnan = Scalar.fromUnsignedInt(0x7e00);
         ColumnVector magnitude = nan.ifElse(qnan, clamped)) {
      return magnitude.binaryOp(BinaryOp.BITWISE_OR, sign, ai.rapids.cudf.DType.UINT32);
    }
  }

  /**
   * float32 bits from float16 bits h: normal and infinite/NaN values shift the exponent and
   * mantissa into place (exponent + 112, or all ones); subnormals and zeros are m * 2^-24.
   */
  private static ColumnVector fp16ToFloatBits(ColumnView h) {
    try (ColumnVector hi = op(h, BinaryOp.BITWISE_AND, 0x8000);
         ColumnVector sign = op(hi, BinaryOp.SHIFT_LEFT, 16);
         ColumnVector mag = op(h, BinaryOp.BITWISE_AND, 0x7fff);
         ColumnVector shifted = op(mag, BinaryOp.SHIFT_LEFT, 13);
         ColumnVector normal = op(shifted, BinaryOp.ADD, 0x38000000);
         ColumnVector special = op(shifted, BinaryOp.BITWISE_OR, 0x7f800000);
         ColumnVector mant = op(h, BinaryOp.BITWISE_AND, 0x3ff);
         ColumnVector mantF = mant.castTo(ai.rapids.cudf.DType.FLOAT32);
         ColumnVector subF = mul(mantF, 0x1p-24f);
         ColumnView subBits = subF.bitCastTo(ai.rapids.cudf.DType.UINT32);
         ColumnVector isSub = cmp(mag, BinaryOp.LESS, 0x0400);
         ColumnVector isSpecial = cmp(mag, BinaryOp.GREATER_EQUAL, 0x7c00);
         ColumnVector finite = isSub.ifElse(subBits, normal);
         ColumnVector magnitude = isSpecial.ifElse(special, finite)) {
      return magnitude.binaryOp(BinaryOp.BITWISE_OR, sign, ai.rapids.cudf.DType.UINT32);
    }
  }

  /** v op c, as UINT32. */
  private static ColumnVector op(ColumnView v, BinaryOp op, int c) {
    try (Scalar s = Scalar.fromUnsignedInt(c)) {
      return v.binaryOp(op, s, ai.rapids.cudf.DType.UINT32);
    }
  }

  private static ColumnVector cmp(ColumnView v, BinaryOp op, int c) {
    try (Scalar s = Scalar.fromUnsignedInt(c)) {
      return v.binaryOp(op, s, ai.rapids.cudf.DType.BOOL8);
    }
  }

  private static ColumnVector mul(ColumnView v, float c) {
    try (Scalar s = Scalar.fromFloat(c)) {
      return v.binaryOp(BinaryOp.MUL, s, ai.rapids.cudf.DType.FLOAT32);
    }
  }
}
