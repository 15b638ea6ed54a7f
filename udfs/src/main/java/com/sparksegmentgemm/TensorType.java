package com.sparksegmentgemm;

import com.sparksegmentgemm.nativelib.DType;

/** Element types of a {@link DeviceTensor}: the three GEMM dtypes and int64 for segment data. */
public enum TensorType {
  FLOAT32(4),
  FLOAT16(2),
  BFLOAT16(2),
  INT64(8);

  private final int bytes;

  TensorType(int bytes) {
    this.bytes = bytes;
  }

  public int bytes() {
    return bytes;
  }

  /** The tensor type holding values of a GEMM dtype. */
  public static TensorType of(DType dtype) {
    return switch (dtype) {
      case FLOAT32 -> FLOAT32;
      case FLOAT16 -> FLOAT16;
      case BFLOAT16 -> BFLOAT16;
    };
  }

  /** The GEMM dtype of a floating-point tensor type. */
  public DType gemmDtype() {
    return switch (this) {
      case FLOAT32 -> DType.FLOAT32;
      case FLOAT16 -> DType.FLOAT16;
      case BFLOAT16 -> DType.BFLOAT16;
      case INT64 -> throw new IllegalArgumentException("INT64 is not a GEMM dtype");
    };
  }
}
