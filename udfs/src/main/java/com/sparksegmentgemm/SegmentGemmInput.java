package com.sparksegmentgemm;

import com.sparksegmentgemm.nativelib.DType;
import java.util.Arrays;

/**
 * One segment GEMM on host arrays, with FlashInfer's argument meanings: x is
 * {@code (xRows, dIn)} row-major; weights are {@code (numWeights, dIn, dOut)} row-major, or
 * {@code (numWeights, dOut, dIn)} when {@code weightColumnMajor}; segments come from
 * {@code segIndptr} ({@code batchSize + 1} entries, wins when both are given) or {@code segLens}
 * ({@code batchSize} entries); segment i uses weight {@code weightIndices[i]}, or i when
 * {@code weightIndices} is null. Values are floats; {@code dtype} says which type they are
 * computed in (inputs are rounded to it, products accumulate in fp32, outputs are rounded to it).
 */
public record SegmentGemmInput(DType dtype, float[] x, long xRows, int dIn, int dOut,
    float[] weights, int numWeights, boolean weightColumnMajor, long batchSize, long[] segLens,
    long[] segIndptr, long[] weightIndices) {

  /**
   * The input of FlashInfer's {@code run} on host tensors: x {@code (rows, d_in)}, weights
   * {@code (num_weights, d_in, d_out)}, or {@code (num_weights, d_out, d_in)} when
   * weightColumnMajor; both of one dtype.
   *
   * @throws IllegalArgumentException naming the tensor whose rank, dtype or shape is wrong
   */
  public static SegmentGemmInput of(HostTensor x, HostTensor weights, long batchSize,
      boolean weightColumnMajor, long[] segLens, long[] segIndptr, long[] weightIndices) {
    require(x.rank() == 2, "x must be 2-D (rows, d_in), not " + x);
    require(weights.rank() == 3, "weights must be 3-D " + (weightColumnMajor
        ? "(num_weights, d_out, d_in)" : "(num_weights, d_in, d_out)") + ", not " + weights);
    require(weights.dtype() == x.dtype(), "x is " + x.dtype() + " but weights are "
        + weights.dtype());
    int dIn = Math.toIntExact(x.dim(1));
    long wIn = weightColumnMajor ? weights.dim(2) : weights.dim(1);
    require(wIn == dIn, "x has d_in = " + dIn + " but weights " + weights
        + (weightColumnMajor ? " (column-major)" : "") + " have d_in = " + wIn);
    int dOut = Math.toIntExact(weightColumnMajor ? weights.dim(1) : weights.dim(2));
    return new SegmentGemmInput(x.dtype(), x.values(), x.dim(0), dIn, dOut, weights.values(),
        Math.toIntExact(weights.dim(0)), weightColumnMajor, batchSize, segLens, segIndptr,
        weightIndices);
  }

  /**
   * Checks shapes and segment data and returns the segment offsets ({@code batchSize + 1}).
   *
   * @throws IllegalArgumentException naming the field, index and value at fault
   */
  public long[] validate() {
    require(dtype != null, "dtype is null");
    require(dIn >= 0 && dOut >= 0, "negative dimension: d_in=" + dIn + " d_out=" + dOut);
    require(xRows >= 0, "x_rows=" + xRows + " is negative");
    require(numWeights >= 0, "num_weights=" + numWeights + " is negative");
    require(batchSize >= 0, "batch_size=" + batchSize + " is negative");
    require(x != null && x.length == xRows * dIn, "x has " + (x == null ? "no" : x.length)
        + " values but x_rows * d_in = " + xRows + " * " + dIn + " = " + xRows * dIn);
    long wantW = (long) numWeights * dIn * dOut;
    require(weights != null && weights.length == wantW, "weights have "
        + (weights == null ? "no" : weights.length) + " values but num_weights * d_in * d_out = "
        + numWeights + " * " + dIn + " * " + dOut + " = " + wantW);
    require(segLens != null || segIndptr != null, "one of seg_lens and seg_indptr must be given");
    long[] indptr;
    if (segIndptr != null) {
      require(segIndptr.length == batchSize + 1, "seg_indptr has " + segIndptr.length
          + " entries but batch_size + 1 = " + (batchSize + 1));
      require(segIndptr[0] == 0, "seg_indptr[0] = " + segIndptr[0] + " but must be 0");
      for (int i = 0; i < batchSize; i++) {
        if (segIndptr[i] > segIndptr[i + 1]) {
          throw new IllegalArgumentException("seg_indptr is not monotone: seg_indptr[" + i + "] = "
              + segIndptr[i] + " > seg_indptr[" + (i + 1) + "] = " + segIndptr[i + 1]);
        }
      }
      indptr = segIndptr;
    } else {
      require(segLens.length == batchSize, "seg_lens has " + segLens.length
          + " entries but batch_size = " + batchSize);
      indptr = new long[(int) batchSize + 1];
      for (int i = 0; i < batchSize; i++) {
        require(segLens[i] >= 0, "seg_lens[" + i + "] = " + segLens[i] + " is negative");
        require(segLens[i] <= xRows, "seg_lens[" + i + "] = " + segLens[i] + " exceeds the "
            + xRows + " rows of x");
        indptr[i + 1] = indptr[i] + segLens[i];
      }
    }
    require(indptr[(int) batchSize] == xRows, "the segments cover " + indptr[(int) batchSize]
        + " rows but x has " + xRows + " rows (sum of seg_lens, or seg_indptr[batch_size], must"
        + " equal x_rows)");
    if (weightIndices != null) {
      require(weightIndices.length == batchSize, "weight_indices has " + weightIndices.length
          + " entries but batch_size = " + batchSize);
      for (int i = 0; i < batchSize; i++) {
        if (weightIndices[i] < 0 || weightIndices[i] >= numWeights) {
          throw new IllegalArgumentException("weight_indices[" + i + "] = " + weightIndices[i]
              + " is out of range [0, " + numWeights + ")");
        }
      }
    } else {
      require(batchSize <= numWeights, "batch_size " + batchSize + " > num_weights " + numWeights
          + " without weight_indices (segment i uses weight i)");
    }
    return indptr;
  }

  /** The weight segment i uses. */
  public int weightOf(int segment) {
    return weightIndices == null ? segment : (int) weightIndices[segment];
  }

  private static void require(boolean ok, String message) {
    if (!ok) throw new IllegalArgumentException(message);
  }

  @Override
  public String toString() {
    return "SegmentGemmInput[" + dtype + ", x=(" + xRows + ", " + dIn + "), weights=(" + numWeights
        + ", " + (weightColumnMajor ? dOut + ", " + dIn + ") column-major" : dIn + ", " + dOut + ")")
        + ", batch_size=" + batchSize + (segIndptr != null ? ", seg_indptr" : ", seg_lens=")
        + (segIndptr != null ? "" : abbreviate(segLens))
        + (weightIndices != null ? ", weight_indices=" + abbreviate(weightIndices) : "") + "]";
  }

  private static String abbreviate(long[] a) {
    return a.length <= 8 ? Arrays.toString(a) : Arrays.toString(Arrays.copyOf(a, 8)) + "...";
  }
}
