package com.sparksegmentgemm;

import com.sparksegmentgemm.nativelib.DType;
import java.util.Arrays;

/**
 * A float tensor on the host: row-major values, the dtype they are computed in, and a shape. The
 * host twin of {@link DeviceTensor} for {@link CpuSegmentGemm#run(HostTensor, HostTensor, long,
 * boolean, long[], long[], long[])}.
 */
public record HostTensor(DType dtype, float[] values, long... shape) {
  public HostTensor {
    long n = 1;
    for (long d : shape) {
      if (d < 0) throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
      n = Math.multiplyExact(n, d);
    }
    if (values.length != n) {
      throw new IllegalArgumentException("a tensor of shape " + Arrays.toString(shape) + " has " + n
          + " values, not " + values.length);
    }
  }

  public int rank() {
    return shape.length;
  }

  public long dim(int i) {
    return shape[i];
  }

  @Override
  public String toString() {
    return "HostTensor[" + dtype + " " + Arrays.toString(shape) + "]";
  }
}
