package com.sparksegmentgemm;

import com.sparksegmentgemm.nativelib.DType;
import java.util.Arrays;

/**
 * The CPU path over a batch of rows, for callers that see more than one row at a time (the job's
 * {@code CpuBatches}): rows are checked exactly as {@link SegmentGemmRowUdf} checks them (one
 * shared {@link SegmentGemmRowUdf#readRow}), grouped by adapter (stably), gathered into one
 * {@code (rows, d_in)} matrix, multiplied by ONE {@code sgemm} per adapter and stage (instead of
 * one matrix-vector product per row, which re-reads the adapter's whole weight matrix for every
 * row), and scattered back in row order. Each stage's output is rounded to the compute dtype, as
 * on the row and GPU paths. Not thread-safe: one per task.
 */
public final class CpuBatchSegmentGemm {
  private final SegmentGemmSettings settings;
  private final AdapterWeights.Function function;
  private AdapterWeights weights;

  public CpuBatchSegmentGemm(SegmentGemmSettings settings, AdapterWeights.Function function) {
    this.settings = settings;
    this.function = function;
  }

  /**
   * y for each row i of (adapterIds[i], features[i]): null for a null id or null features, and
   * for a bad row under onBadRow=null; under onBadRow=error the first bad row in row order throws
   * the row path's {@link BadRowException}. firstNull[i] is the index of the first null value of
   * features[i], or -1 for none (as {@link SegmentGemmRowUdf#readRow} takes it). Counts every row
   * in {@link SegmentGemmMetrics}.
   */
  public float[][] evaluate(Object[] adapterIds, float[][] features, int[] firstNull) {
    if (adapterIds.length != features.length || features.length != firstNull.length) {
      throw new IllegalArgumentException(adapterIds.length + " adapter ids but "
          + features.length + " feature rows and " + firstNull.length + " null positions");
    }
    long start = System.nanoTime();
    // Read on first use, as the row path reads them: where the adapters are read from is the
    // executor's registry, once per JVM.
    if (weights == null) weights = AdapterRegistry.weights(settings, function);
    AdapterWeights w = weights;
    DType dtype = settings.computeDtype();
    boolean fp8 = settings.fp8Weights();
    int n = adapterIds.length;
    int dIn = w.dIn();
    int dOut = w.dOut();
    float[] x = new float[Math.multiplyExact(n, dIn)];  // rounded features, in row order
    int[] adapter = new int[n];
    int[] groupStart = new int[w.size() + 1];
    long featureBytes = 0;
    for (int r = 0; r < n; r++) {
      if (features[r] != null) featureBytes += 4L * features[r].length;
      try {
        adapter[r] = SegmentGemmRowUdf.readRow(w, dtype, "adapter_id", "features", adapterIds[r],
            features[r], firstNull[r], x, r * dIn, "");
      } catch (BadRowException e) {
        if (settings.onBadRow() == SegmentGemmConf.OnBadRow.ERROR) throw e;
        adapter[r] = -1;
      }
      if (adapter[r] >= 0) groupStart[adapter[r] + 1]++;
    }
    for (int a = 0; a < w.size(); a++) groupStart[a + 1] += groupStart[a];
    int rows = groupStart[w.size()];
    // A counting sort: each good row's position in the grouped matrix, rows of one adapter in
    // their input order.
    int[] next = Arrays.copyOf(groupStart, w.size());
    int[] position = new int[n];
    float[] grouped = new float[Math.multiplyExact(rows, dIn)];
    for (int r = 0; r < n; r++) {
      if (adapter[r] < 0) continue;
      int p = next[adapter[r]]++;
      position[r] = p;
      System.arraycopy(x, r * dIn, grouped, p * dIn, dIn);
    }
    float[] y = new float[Math.multiplyExact(rows, dOut)];
    for (int a = 0; a < w.size(); a++) {
      int count = groupStart[a + 1] - groupStart[a];
      if (count > 0) {
        w.multiply(a, grouped, groupStart[a] * dIn, count, dtype, fp8, y, groupStart[a] * dOut);
      }
    }
    float[][] out = new float[n][];
    for (int r = 0; r < n; r++) {
      if (adapter[r] >= 0) {
        out[r] = Arrays.copyOfRange(y, position[r] * dOut, (position[r] + 1) * dOut);
      }
    }
    SegmentGemmMetrics.recordCpuRows(n, featureBytes, System.nanoTime() - start);
    return out;
  }
}
