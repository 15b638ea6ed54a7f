package com.sparksegmentgemm;

import com.sparksegmentgemm.nativelib.DType;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.RuntimeConfig;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Every {@code spark.segmentgemm.*} key, with its default and doc, in one place: the UDF, the
 * Spark plugin and the docs read them from here ({@link #ALL}). {@link #settings} turns a
 * configuration into the {@link SegmentGemmSettings} that travel with a UDF to the executors.
 */
public final class SegmentGemmConf {
  /** Every key starts with this. */
  public static final String PREFIX = "spark.segmentgemm.";

  private SegmentGemmConf() {}

  /** One key: its name, default (null when it must be set), doc, and how its value is read. */
  public record Entry<T>(String key, String defaultValue, String doc, Function<String, T> parse) {
    /** The value in conf, or the default; throws naming the key for a bad or missing value. */
    public T get(Map<String, String> conf) {
      String raw = conf.getOrDefault(key, defaultValue);
      if (raw == null) throw new IllegalArgumentException(key + " is not set: " + doc);
      try {
        return parse.apply(raw.trim());
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException(key + " = '" + raw + "' is invalid: " + e.getMessage(), e);
      }
    }
  }

  public static final Entry<DType> COMPUTE_DTYPE = new Entry<>("spark.segmentgemm.computeDtype",
      "bfloat16", "The dtype x and the weights are rounded to and the GEMM runs in: bfloat16, "
      + "float16 or float32 (float32 runs the exact-fp32 kernel, without tensor cores). Outputs "
      + "are values of this dtype, returned as FLOAT.", SegmentGemmConf::parseDtype);

  public static final Entry<Boolean> WEIGHT_DTYPE = new Entry<>("spark.segmentgemm.weightDtype",
      "compute", "How the GPU keeps the adapters: compute (in the compute dtype) or fp8e4m3 (one "
      + "byte per weight, one fp32 scale per adapter matrix, amax / 448; x is quantised to e4m3 "
      + "per native call and the product runs on the sm_90 fp8 tensor cores: half the weight "
      + "bytes, about 3% relative error against the 16-bit path, see docs/benchmarks.md#fp8). fp8e4m3 "
      + "needs a bfloat16 or float16 compute dtype, an H100/H200 and d_in a multiple of 16; the "
      + "CPU path then multiplies by the same fp8-rounded weights (x stays in the compute dtype).",
      v -> switch (v.toLowerCase(Locale.ROOT)) {
        case "compute" -> false;
        case "fp8e4m3", "float8_e4m3", "e4m3" -> true;
        default -> throw new IllegalArgumentException("expected compute or fp8e4m3");
      });

  public static final Entry<OnBadRow> ON_BAD_ROW = new Entry<>("spark.segmentgemm.onBadRow",
      "error", "What a row with an unknown adapter id, features of the wrong length or a null "
      + "feature value gives: error (fail the task, naming the adapter and lengths) or null (a "
      + "null output row).", v -> oneOf(OnBadRow.class, v));

  public static final Entry<String> ADAPTERS_PATH = new Entry<>("spark.segmentgemm.adapters.path",
      null, "Directory (any Hadoop file system: file:, hdfs:, s3a:, ...) of the adapters: "
      + ".safetensors and .npy files and PEFT adapter folders (hidden names, starting with . or "
      + "_, are skipped), or one .safetensors or .npy file; the adapter id is the file stem, or "
      + "the tensor name in a safetensors file holding several adapters.", v -> {
        if (v.isEmpty()) throw new IllegalArgumentException("empty path");
        return v;
      });

  public static final Entry<Boolean> WEIGHT_COLUMN_MAJOR = new Entry<>(
      "spark.segmentgemm.adapters.weightColumnMajor", "false", "false: each adapter tensor is "
      + "(d_in, d_out) and y = x . W; true: it is (d_out, d_in), as torch.nn.Linear stores it, "
      + "and y = x . W^T.", SegmentGemmConf::parseBoolean);

  public static final Entry<Long> DEVICE_CACHE_BYTES = new Entry<>(
      "spark.segmentgemm.deviceCacheBytes", "1g", "GPU memory per executor for the adapter "
      + "weights of each function (segment_gemm, lora_apply with its module) and compute dtype "
      + "in use, capped at a quarter of the RAPIDS Accelerator's GPU pool (the device's memory "
      + "x spark.rapids.memory.gpu.maxAllocFraction - spark.rapids.memory.gpu.reserve); least "
      + "recently used adapters are evicted when a batch needs others. Must hold at least one "
      + "adapter.", SegmentGemmConf::parseBytes);

  public static final Entry<Long> WORKSPACE_BYTES = new Entry<>(
      "spark.segmentgemm.workspaceBytes", "128m", "Largest float workspace one native call may "
      + "use (FlashInfer advises 128 MiB); batches that would need more are split.",
      SegmentGemmConf::parseBytes);

  public static final Entry<Long> GPU_BATCH_BYTES = new Entry<>(
      "spark.segmentgemm.gpuBatchBytes", "1g", "Most GPU memory the gathered features and "
      + "outputs of one native call may take; larger batches are split into several calls.",
      SegmentGemmConf::parseBytes);

  public static final Entry<SegmentGemm.Backend> BACKEND = new Entry<>(
      "spark.segmentgemm.backend", "AUTO", "AUTO (the best kernel for the GPU and call), SM80, "
      + "SM90 or PORTABLE (forced, never falling back), or CPU (the UDF computes on the host "
      + "even when the RAPIDS Accelerator calls it columnar).",
      v -> oneOf(SegmentGemm.Backend.class, v));

  public static final Entry<String> LORA_MODULE = new Entry<>("spark.segmentgemm.lora.module",
      "", "Which module's lora_A/lora_B lora_apply uses when a PEFT adapter has several (e.g. "
      + "model.layers.0.self_attn.q_proj, or any dot-separated tail of it such as q_proj when "
      + "that is unique); empty: each adapter must have exactly one.", v -> v);

  public static final Entry<Integer> CPU_BATCH_ROWS = new Entry<>(
      "spark.segmentgemm.cpuBatchRows", "4096", "The spark-submit job without the RAPIDS "
      + "Accelerator: rows per batch of its CPU path (one BLAS sgemm per adapter and batch); 0: "
      + "the row-at-a-time UDF instead, as SQL runs it (one matrix-vector product per row).",
      v -> {
        int n = Integer.parseInt(v);
        if (n < 0) throw new IllegalArgumentException("a row count must be 0 or more");
        return n;
      });

  public static final List<Entry<?>> ALL = List.of(COMPUTE_DTYPE, WEIGHT_DTYPE, ON_BAD_ROW,
      ADAPTERS_PATH, WEIGHT_COLUMN_MAJOR, DEVICE_CACHE_BYTES, WORKSPACE_BYTES, GPU_BATCH_BYTES,
      BACKEND, LORA_MODULE, CPU_BATCH_ROWS);

  /**
   * Checks every spark.segmentgemm.* entry of conf: each must be a known key with a valid value
   * (the adapters path may be left for later); throws naming the first bad key.
   */
  public static void validate(Map<String, String> conf) {
    for (String key : new java.util.TreeSet<>(conf.keySet())) {
      if (!key.startsWith(PREFIX)) continue;
      if (ALL.stream().noneMatch(e -> e.key().equals(key))) {
        throw new IllegalArgumentException("unknown configuration key " + key + "; the "
            + PREFIX + "* keys are: " + String.join(", ", ALL.stream().map(Entry::key).toList()));
      }
    }
    for (Entry<?> e : ALL) {
      if (e.defaultValue() != null || conf.containsKey(e.key())) e.get(conf);
    }
  }


  /** What a bad row gives; see {@link #ON_BAD_ROW}. */
  public enum OnBadRow { ERROR, NULL }

  /** The settings from a configuration's {@code spark.segmentgemm.*} entries and defaults. */
  public static SegmentGemmSettings settings(Map<String, String> conf) {
    return new SegmentGemmSettings(ADAPTERS_PATH.get(conf), WEIGHT_COLUMN_MAJOR.get(conf),
        COMPUTE_DTYPE.get(conf), ON_BAD_ROW.get(conf), DEVICE_CACHE_BYTES.get(conf),
        WORKSPACE_BYTES.get(conf), GPU_BATCH_BYTES.get(conf), BACKEND.get(conf),
        LORA_MODULE.get(conf), WEIGHT_DTYPE.get(conf));
  }

  public static SegmentGemmSettings settings(SparkConf conf) {
    return settings(asMap(conf));
  }

  /** Every entry of a SparkConf. */
  public static Map<String, String> asMap(SparkConf conf) {
    Map<String, String> m = new java.util.HashMap<>();
    for (scala.Tuple2<String, String> kv : conf.getAll()) m.put(kv._1(), kv._2());
    return m;
  }

  /** From a session's runtime configuration ({@code spark.conf()}). */
  public static SegmentGemmSettings settings(RuntimeConfig conf) {
    return settings(CollectionConverters.asJava(conf.getAll()));
  }

  /** An enum constant by name, any case; else an error listing the names. */
  static <E extends Enum<E>> E oneOf(Class<E> type, String v) {
    for (E e : type.getEnumConstants()) {
      if (e.name().equalsIgnoreCase(v)) return e;
    }
    throw new IllegalArgumentException("expected one of " + String.join(", ",
        java.util.Arrays.stream(type.getEnumConstants())
            .map(e -> e.name().toLowerCase(Locale.ROOT)).toList()));
  }

  static DType parseDtype(String v) {
    return switch (v.toLowerCase(Locale.ROOT)) {
      case "bfloat16", "bf16" -> DType.BFLOAT16;
      case "float16", "fp16", "half" -> DType.FLOAT16;
      case "float32", "fp32", "float" -> DType.FLOAT32;
      default -> throw new IllegalArgumentException("expected bfloat16, float16 or float32");
    };
  }

  static boolean parseBoolean(String v) {
    return switch (v.toLowerCase(Locale.ROOT)) {
      case "true" -> true;
      case "false" -> false;
      default -> throw new IllegalArgumentException("expected true or false");
    };
  }

  /** Bytes, as Spark writes sizes: a number with an optional binary suffix (k, m, g, t; b ok). */
  static long parseBytes(String v) {
    String s = v.toLowerCase(Locale.ROOT);
    if (s.endsWith("b")) s = s.substring(0, s.length() - 1);
    int shift = 0;
    char last = s.isEmpty() ? ' ' : s.charAt(s.length() - 1);
    switch (last) {
      case 'k' -> shift = 10;
      case 'm' -> shift = 20;
      case 'g' -> shift = 30;
      case 't' -> shift = 40;
      default -> { }
    }
    if (shift > 0) s = s.substring(0, s.length() - 1);
    long n;
    try {
      n = Long.parseLong(s);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("expected a size such as 134217728, 128m or 1g");
    }
    if (n <= 0) throw new IllegalArgumentException("a size must be positive");
    if (n > (Long.MAX_VALUE >> shift)) throw new IllegalArgumentException("too large");
    return n << shift;
  }
}
