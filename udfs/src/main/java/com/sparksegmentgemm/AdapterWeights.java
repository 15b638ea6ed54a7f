package com.sparksegmentgemm;

import com.sparksegmentgemm.nativelib.DType;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * What one SQL function multiplies each adapter's rows by, as a chain of stages: one stage for
 * {@code segment_gemm} (the dense weight W), two for {@code lora_apply} (A, then B scaled by
 * alpha / r). Every adapter has one matrix per stage and all adapters share each stage's shape,
 * so that a stage over a batch is one segment GEMM. Ids are ordered by their UTF-8 bytes, the
 * order cuDF sorts strings in, so an id's index here is its index on the device.
 */
public final class AdapterWeights {
  /** The SQL functions, and the name their errors carry. */
  public enum Function {
    SEGMENT_GEMM("segment_gemm"), LORA_APPLY("lora_apply");

    private final String sqlName;

    Function(String sqlName) {
      this.sqlName = sqlName;
    }

    public String sqlName() {
      return sqlName;
    }
  }

  /**
   * One stage: {@code (d_in, d_out)} matrices, stored row-major or, when columnMajor, as
   * {@code (d_out, d_in)} (torch.nn.Linear's layout); values[adapter] as read, widened to float.
   */
  public record Stage(int dIn, int dOut, boolean columnMajor, float[][] values) {
    long elements() {
      return (long) dIn * dOut;
    }
  }

  private final Function function;
  private final String path;
  private final List<String> ids;
  private final Map<String, Integer> index = new HashMap<>();
  private final List<Stage> stages;
  private final java.util.function.Function<String, String> whyNot;
  private final Map<DType, float[][][]> rounded = new EnumMap<>(DType.class);

  /**
   * @param weights id -> one matrix per stage
   * @param whyNot  why an id that is not here cannot be used (the store knows other kinds)
   */
  AdapterWeights(Function function, String path, Map<String, float[][]> weights,
      int[] dIn, int[] dOut, boolean[] columnMajor,
      java.util.function.Function<String, String> whyNot) {
    this.function = function;
    this.path = path;
    this.whyNot = whyNot;
    List<String> sorted = new ArrayList<>(weights.keySet());
    sorted.sort(Comparator.comparing(id -> id.getBytes(StandardCharsets.UTF_8),
        Arrays::compareUnsigned));
    this.ids = List.copyOf(sorted);
    for (int i = 0; i < ids.size(); i++) index.put(ids.get(i), i);
    List<Stage> st = new ArrayList<>();
    for (int k = 0; k < dIn.length; k++) {
      float[][] values = new float[ids.size()][];
      for (int i = 0; i < ids.size(); i++) values[i] = weights.get(ids.get(i))[k];
      st.add(new Stage(dIn[k], dOut[k], columnMajor[k], values));
    }
    this.stages = List.copyOf(st);
  }

  public Function function() {
    return function;
  }

  /** Where the adapters were read from. */
  public String path() {
    return path;
  }

  /** Number of adapters. */
  public int size() {
    return ids.size();
  }

  /** Adapter ids, in index order (by UTF-8 bytes). */
  public List<String> ids() {
    return ids;
  }

  /** The index of an adapter, or -1. */
  public int indexOf(String id) {
    Integer i = index.get(id);
    return i == null ? -1 : i;
  }

  public List<Stage> stages() {
    return stages;
  }

  /** Features per row: the first stage's d_in. */
  public int dIn() {
    return stages.get(0).dIn();
  }

  /** Outputs per row: the last stage's d_out. */
  public int dOut() {
    return stages.get(stages.size() - 1).dOut();
  }

  /** The values of adapter i's matrix for stage k, as read. */
  public float[] weight(int i, int k) {
    return stages.get(k).values()[i];
  }

  /**
   * Adapter i's stage-k matrix rounded to dtype: what the CPU path multiplies by and what the
   * device cache uploads. Rounded once per dtype, on first use.
   */
  public float[] rounded(int i, int k, DType dtype) {
    if (dtype == DType.FLOAT32) return weight(i, k);
    float[][][] r;
    synchronized (rounded) {
      r = rounded.computeIfAbsent(dtype, d -> new float[stages.size()][ids.size()][]);
      if (r[k][i] != null) return r[k][i];
    }
    // Rounded outside the lock, so that threads (the device cache's parallel upload) round
    // different adapters at once; two threads rounding the same one store equal arrays.
    float[] v = CpuSegmentGemm.rounded(weight(i, k), dtype);
    synchronized (rounded) {
      if (r[k][i] == null) r[k][i] = v;
      return r[k][i];
    }
  }

  /**
   * y = x . W_1 . W_2 ... for rows of x already rounded to dtype, every stage's output rounded
   * to dtype as the GPU path's are (the CPU path of the UDF).
   */
  public float[] multiply(int adapter, float[] x, int rows, DType dtype) {
    float[] y = new float[Math.multiplyExact(rows, dOut())];
    multiply(adapter, x, 0, rows, dtype, y, 0);
    return y;
  }

  /**
   * {@link #multiply(int, float[], int, DType)} on rows of x from xOff, into y from yOff: one
   * sgemm per stage over all the rows (the batched CPU path's call for one adapter's rows).
   */
  public void multiply(int adapter, float[] x, int xOff, int rows, DType dtype, float[] y,
      int yOff) {
    float[] in = x;
    int inOff = xOff;
    for (int k = 0; k < stages.size(); k++) {
      Stage s = stages.get(k);
      boolean last = k == stages.size() - 1;
      // Intermediate rows (lora_apply's (rows, r)) live in an array of their own.
      float[] out = last ? y : new float[Math.multiplyExact(rows, s.dOut())];
      int outOff = last ? yOff : 0;
      CpuSegmentGemm.multiplyRounded(dtype, in, inOff, rows, rounded(adapter, k, dtype), 0,
          s.dIn(), s.dOut(), s.columnMajor(), out, outOff);
      in = out;
      inOff = outOff;
    }
  }

  /** Why id cannot be used by this function, for error messages. */
  public String whyNotUsable(String id) {
    String other = whyNot.apply(id);
    if (other != null) return other;
    List<String> sample = ids.subList(0, Math.min(5, ids.size()));
    return "unknown adapter '" + id + "': " + path + " has " + ids.size() + " adapters for "
        + function.sqlName() + " (" + String.join(", ", sample)
        + (ids.size() > sample.size() ? ", ..." : "") + ")";
  }
}
