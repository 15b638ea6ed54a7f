package com.sparksegmentgemm;

import com.sparksegmentgemm.nativelib.DType;
import dev.ludovic.netlib.blas.BLAS;

/**
 * The segment GEMM on the CPU: the exact semantics of the native library, the oracle for every
 * GPU test, and the CPU path of the UDF.
 *
 * <p>Inputs are rounded to the input's {@link DType}, each segment is one BLAS {@code sgemm}
 * (fp32 accumulation, as the GPU kernels do; through netlib, on the OpenBLAS this project ships
 * where it loads, see {@link CpuBlas}), and outputs are rounded to the dtype.
 */
public final class CpuSegmentGemm {
  private CpuSegmentGemm() {}

  /** Returns y, {@code (xRows, dOut)} row-major. */
  public static float[] run(SegmentGemmInput in) {
    long[] indptr = in.validate();
    float[] x = rounded(in.x(), in.dtype());
    float[] w = rounded(in.weights(), in.dtype());
    int dIn = in.dIn(), dOut = in.dOut();
    if (in.xRows() * dOut > Integer.MAX_VALUE - 8) {
      throw new IllegalArgumentException("x_rows * d_out = " + in.xRows() + " * " + dOut + " = "
          + in.xRows() * dOut + " output values exceed one Java array (2^31 - 1) on the CPU "
          + "backend; split the call into fewer rows");
    }
    float[] y = new float[(int) in.xRows() * dOut];
    for (int s = 0; s < in.batchSize(); s++) {
      int row0 = (int) indptr[s];
      int rows = (int) (indptr[s + 1] - indptr[s]);
      multiplyRounded(in.dtype(), x, row0 * dIn, rows, w, Math.multiplyExact(in.weightOf(s),
          dIn * dOut), dIn, dOut, in.weightColumnMajor(), y, row0 * dOut);
    }
    return y;
  }

  /**
   * The host twin of {@link SegmentGemm#run(DeviceTensor, DeviceTensor, long, boolean,
   * DeviceTensor, DeviceTensor, DeviceTensor, ai.rapids.cudf.Cuda.Stream)}: same arguments, on
   * host tensors and arrays; y has the dtype and {@code (rows, d_out)} shape.
   */
  public static HostTensor run(HostTensor x, HostTensor weights, long batchSize,
      boolean weightColumnMajor, long[] segLens, long[] segIndptr, long[] weightIndices) {
    SegmentGemmInput in = SegmentGemmInput.of(x, weights, batchSize, weightColumnMajor, segLens,
        segIndptr, weightIndices);
    return new HostTensor(in.dtype(), run(in), in.xRows(), in.dOut());
  }

  /**
   * {@code y[yOff ..] = rows of x . W} for inputs already rounded to dtype (x rows from xOff, W
   * from wOff in the weight layout), with y rounded to dtype: one segment of {@link #run}, and the
   * UDF's row-at-a-time CPU path, which rounds each adapter's weights once.
   */
  static void multiplyRounded(DType dtype, float[] x, int xOff, int rows, float[] w, int wOff,
      int dIn, int dOut, boolean weightColumnMajor, float[] y, int yOff) {
    if (rows == 0 || dOut == 0) return;
    if (dIn == 0) {  // an empty sum
      java.util.Arrays.fill(y, yOff, yOff + rows * dOut, 0f);
      return;
    }
    // Row-major Y_s = X_s . W is column-major Y_s^T = W^T . X_s^T, which is what sgemm computes:
    // W^T is W read column-major (d_out x d_in, ld d_out) for row-major weights, and the
    // transpose of the column-major (d_in x d_out, ld d_in) array for column-major ones.
    BLAS blas = CpuBlas.get();
    if (weightColumnMajor) {
      blas.sgemm("T", "N", dOut, rows, dIn, 1f, w, wOff, dIn, x, xOff, dIn, 0f, y, yOff, dOut);
    } else {
      blas.sgemm("N", "N", dOut, rows, dIn, 1f, w, wOff, dOut, x, xOff, dIn, 0f, y, yOff, dOut);
    }
    if (dtype != DType.FLOAT32) {
      for (int i = yOff, end = yOff + rows * dOut; i < end; i++) y[i] = dtype.round(y[i]);
    }
  }

  /** values rounded to dtype (the same array for FLOAT32). */
  static float[] rounded(float[] values, DType dtype) {
    if (dtype == DType.FLOAT32) return values;
    float[] out = new float[values.length];
    for (int i = 0; i < values.length; i++) out[i] = dtype.round(values[i]);
    return out;
  }
}
