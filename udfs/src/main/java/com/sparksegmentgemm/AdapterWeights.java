package com.sparksegmentgemm;

import com.sparksegmentgemm.nativelib.DType;
import com.sparksegmentgemm.nativelib.Fp8;
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
  /** [stage][adapter] fp8 matrices and their decoded values (the CPU path's), made on first use. */
  private Fp8Matrix[][] fp8;
  private float[][][] fp8Values;

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
   * Adapter i's stage-k matrix quantised to fp8 e4m3 with one scale (amax / 448), as the device
   * cache keeps it under spark.segmentgemm.weightDtype=fp8e4m3: codes in the K-major
   * {@code (d_out, d_in)} layout the fp8 tensor cores read, whatever the stage's own layout.
   * Quantised once, on first use, outside the lock (as {@link #rounded}).
   */
  public Fp8Matrix fp8(int i, int k) {
    synchronized (rounded) {
      if (fp8 == null) fp8 = new Fp8Matrix[stages.size()][ids.size()];
      if (fp8[k][i] != null) return fp8[k][i];
    }
    Stage s = stages.get(k);
    float[] w = weight(i, k);
    float scale = Fp8.E4M3.scaleFor(w);
    float[] kMajor = w;
    if (!s.columnMajor()) {  // (d_in, d_out) -> (d_out, d_in)
      kMajor = new float[w.length];
      for (int r = 0; r < s.dIn(); r++) {
        for (int c = 0; c < s.dOut(); c++) kMajor[c * s.dIn() + r] = w[r * s.dOut() + c];
      }
    }
    Fp8Matrix m = new Fp8Matrix(Fp8.E4M3.quantize(kMajor, scale), scale);
    synchronized (rounded) {
      if (fp8[k][i] == null) fp8[k][i] = m;
      return fp8[k][i];
    }
  }

  /** An fp8 matrix: {@code codes} (e4m3, K-major) whose values times {@code scale} are the weights. */
  public record Fp8Matrix(byte[] codes, float scale) {}

  /**
   * The values the GPU multiplies by under fp8 weights, decode(code) * scale, in the stage's own
   * layout (the CPU path's weights under spark.segmentgemm.weightDtype=fp8e4m3), decoded once.
   */
  float[] fp8Values(int i, int k) {
    synchronized (rounded) {
      if (fp8Values == null) fp8Values = new float[stages.size()][ids.size()][];
      if (fp8Values[k][i] != null) return fp8Values[k][i];
    }
    float[] v = decodeFp8(i, k);
    synchronized (rounded) {
      if (fp8Values[k][i] == null) fp8Values[k][i] = v;
      return fp8Values[k][i];
    }
  }

  private float[] decodeFp8(int i, int k) {
    Stage s = stages.get(k);
    Fp8Matrix m = fp8(i, k);
    float[] v = new float[m.codes().length];
    for (int c = 0; c < s.dOut(); c++) {
      for (int r = 0; r < s.dIn(); r++) {
        float value = Fp8.E4M3.decode(m.codes()[c * s.dIn() + r]) * m.scale();
        v[s.columnMajor() ? c * s.dIn() + r : r * s.dOut() + c] = value;
      }
    }
    return v;
  }

  /**
   * y = x . W_1 . W_2 ... for rows of x already rounded to dtype, every stage's output rounded
   * to dtype as the GPU path's are (the CPU path of the UDF). fp8: by the fp8-rounded weights.
   */
  public float[] multiply(int adapter, float[] x, int rows, DType dtype, boolean fp8) {
    float[] y = new float[Math.multiplyExact(rows, dOut())];
    multiply(adapter, x, 0, rows, dtype, fp8, y, 0);
    return y;
  }

  /**
   * {@link #multiply(int, float[], int, DType, boolean)} on rows of x from xOff, into y from
   * yOff: one sgemm per stage over all the rows (the batched CPU path's call for one adapter's
   * rows).
   */
  public void multiply(int adapter, float[] x, int xOff, int rows, DType dtype, boolean fp8,
      float[] y, int yOff) {
    float[] in = x;
    int inOff = xOff;
    for (int k = 0; k < stages.size(); k++) {
      Stage s = stages.get(k);
      boolean last = k == stages.size() - 1;
      // Intermediate rows (lora_apply's (rows, r)) live in an array of their own.
      float[] out = last ? y : new float[Math.multiplyExact(rows, s.dOut())];
      int outOff = last ? yOff : 0;
      float[] w = fp8 ? fp8Values(adapter, k) : rounded(adapter, k, dtype);
      CpuSegmentGemm.multiplyRounded(dtype, in, inOff, rows, w, 0, s.dIn(), s.dOut(),
          s.columnMajor(), out, outOff);
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
