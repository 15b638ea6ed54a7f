package com.sparksegmentgemm;

/**
 * A row segment_gemm cannot compute (unknown adapter, features of the wrong length, a null
 * feature value), under {@code spark.segmentgemm.onBadRow=error}. The CPU and GPU paths build
 * the same messages here; the GPU path adds the row's index in its batch.
 */
public final class BadRowException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;
  private static final String HINT = " (set " + SegmentGemmConf.ON_BAD_ROW.key()
      + "=null to return null for such rows)";

  private BadRowException(String message) {
    super("segment_gemm: " + message + HINT);
  }

  static BadRowException unknownAdapter(AdapterStore store, String id, String where) {
    return new BadRowException(store.whyNotUsable(id) + where);
  }

  static BadRowException wrongLength(String id, long actual, int expected, String where) {
    return new BadRowException("features for adapter '" + id + "' have " + actual
        + " values but the adapters expect d_in = " + expected + where);
  }

  static BadRowException nullValue(String id, String where) {
    return new BadRowException("features for adapter '" + id + "' contain a null value" + where);
  }
}
