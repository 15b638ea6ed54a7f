package com.sparksegmentgemm;

import com.sparksegmentgemm.nativelib.DType;
import dev.ludovic.netlib.blas.BLAS;

/**
 * The segment GEMM on the CPU: the exact semantics of the native library, the oracle for every
 * GPU test, and the CPU fallback of the UDF.
 *
 * <p>Inputs are rounded to the input's {@link DType}, each segment is one BLAS {@code sgemm}
 * (fp32 accumulation, as the GPU kernels do; netlib picks a native BLAS when one is installed and
 * a vectorised Java one otherwise, as Spark ML does), and outputs are rounded to the dtype.
 */
public final class CpuSegmentGemm {
  private CpuSegmentGemm() {}

  /** Returns y, {@code (xRows, dOut)} row-major. */
  public static float[] run(SegmentGemmInput in) {
    long[] indptr = in.validate();
    float[] x = rounded(in.x(), in.dtype());
    float[] w = rounded(in.weights(), in.dtype());
    int dIn = in.dIn(), dOut = in.dOut();
    float[] y = new float[Math.multiplyExact(Math.toIntExact(in.xRows()), dOut)];
    BLAS blas = BLAS.getInstance();
    for (int s = 0; s < in.batchSize(); s++) {
      int row0 = (int) indptr[s];
      int rows = (int) (indptr[s + 1] - indptr[s]);
      if (rows == 0 || dOut == 0) continue;
      int wOff = Math.multiplyExact(in.weightOf(s), dIn * dOut);
      if (dIn == 0) continue;  // y stays 0: an empty sum
      // Row-major Y_s = X_s . W is column-major Y_s^T = W^T . X_s^T, which is what sgemm computes:
      // W^T is W read column-major (d_out x d_in, ld d_out) for row-major weights, and the
      // transpose of the column-major (d_in x d_out, ld d_in) array for column-major ones.
      if (in.weightColumnMajor()) {
        blas.sgemm("T", "N", dOut, rows, dIn, 1f, w, wOff, dIn, x, row0 * dIn, dIn, 0f, y,
            row0 * dOut, dOut);
      } else {
        blas.sgemm("N", "N", dOut, rows, dIn, 1f, w, wOff, dOut, x, row0 * dIn, dIn, 0f, y,
            row0 * dOut, dOut);
      }
    }
    return rounded(y, in.dtype());
  }

  private static float[] rounded(float[] values, DType dtype) {
    if (dtype == DType.FLOAT32) return values;
    float[] out = new float[values.length];
    for (int i = 0; i < values.length; i++) out[i] = dtype.round(values[i]);
    return out;
  }
}
