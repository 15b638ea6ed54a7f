package com.sparksegmentgemm;

/**
 * A row segment_gemm or lora_apply cannot compute (unknown adapter, features of the wrong length, a null
 * feature value), under {@code spark.segmentgemm.onBadRow=error}. The CPU and GPU paths build
 * the same messages here; the GPU path adds the row's index in its batch.
 */
public final class BadRowException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;
  private static final String HINT = " (set " + SegmentGemmConf.ON_BAD_ROW.key()
      + "=null to return null for such rows)";

  private BadRowException(AdapterWeights w, String message) {
    super(w.function().sqlName() + ": " + message + HINT);
  }

  static BadRowException unknownAdapter(AdapterWeights w, String id, String where) {
    return new BadRowException(w, w.whyNotUsable(id) + where);
  }

  static BadRowException wrongLength(AdapterWeights w, String id, long actual, String where) {
    return new BadRowException(w, "features for adapter '" + id + "' have " + actual
        + " values but the adapters expect d_in = " + w.dIn() + where);
  }

  static BadRowException nullValue(AdapterWeights w, String id, String where) {
    return new BadRowException(w, "features for adapter '" + id + "' contain a null value"
        + where);
  }
}
