package com.sparksegmentgemm;

/**
 * A row segment_gemm or lora_apply cannot compute (unknown adapter, features of the wrong length,
 * a null feature value), under {@code spark.segmentgemm.onBadRow=error}. The CPU and GPU paths
 * build the same one-line messages here, naming the function, the column, the adapter and what
 * is wrong; {@code where} (for instance {@code " (row 17 of the batch)"}, or empty) says where
 * the row is, as far as the caller knows.
 */
public final class BadRowException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;
  private static final String HINT = " (set " + SegmentGemmConf.ON_BAD_ROW.key()
      + "=null to return null for such rows)";

  private BadRowException(AdapterWeights w, String message) {
    super(w.function().sqlName() + ": " + message + HINT);
  }

  /** @param idColumn the adapter id column (or expression) as the query names it */
  public static BadRowException unknownAdapter(AdapterWeights w, String idColumn, String id,
      String where) {
    return new BadRowException(w, "column " + idColumn + where + ": " + w.whyNotUsable(id));
  }

  /** @param featuresColumn the features column (or expression) as the query names it */
  public static BadRowException wrongLength(AdapterWeights w, String featuresColumn, String id,
      long actual, String where) {
    return new BadRowException(w, "column " + featuresColumn + where + " has " + actual
        + " values for adapter '" + id + "' but the adapters expect d_in = " + w.dIn());
  }

  /** @param index the position of the first null value, or -1 when unknown */
  public static BadRowException nullValue(AdapterWeights w, String featuresColumn, String id,
      int index, String where) {
    return new BadRowException(w, "column " + featuresColumn + where + " has a null value"
        + (index >= 0 ? " at index " + index : "") + " for adapter '" + id + "'");
  }
}
