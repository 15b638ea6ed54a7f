package com.sparksegmentgemm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The adapters of one directory, in host memory.
 *
 * <p>What is read: every {@code .safetensors} and {@code .npy} file directly under the directory
 * (other files are ignored, and so are hidden ones, whose names start with {@code .} or
 * {@code _}, as Hadoop's input formats skip them: macOS's {@code ._x.safetensors}, Spark's
 * {@code _SUCCESS}), and every subdirectory holding an {@code adapter_model.safetensors}, the
 * layout PEFT's {@code save_pretrained} writes (with its {@code adapter_config.json}, which is
 * required, as PEFT requires it). The path may also be one {@code .safetensors} or {@code .npy}
 * file.
 *
 * <p>Ids: a .npy file, or a safetensors file holding one tensor, is one dense adapter named by
 * the file stem; a safetensors file holding several tensors is one dense adapter per tensor,
 * named by the tensor; a safetensors file with PEFT {@code lora_A}/{@code lora_B} tensors is one
 * LoRA adapter named by the file stem, or by its folder for PEFT's layout. Dense adapters
 * ({@link #dense()}, for segment_gemm) are 2-D and share one shape: {@code (d_in, d_out)}, or
 * {@code (d_out, d_in)} when the weights are column-major. LoRA adapters ({@link #lora}, for
 * lora_apply) are kept as read and turned into weights per module on first use.
 */
public final class AdapterStore {
  private static final Logger LOG = LoggerFactory.getLogger(AdapterStore.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  /** PEFT's names: {@code <module>.lora_A.weight} and {@code <module>.lora_B.weight}. */
  private static final String LORA_A = ".lora_A.weight";
  private static final String LORA_B = ".lora_B.weight";

  /** A dense adapter is one weight; a LoRA adapter is its lora_A/lora_B tensors. */
  public enum Kind { DENSE, LORA }

  /**
   * One adapter as read. For LoRA, config is PEFT's adapter_config.json: null for a loose
   * {@code <id>.safetensors} file (PEFT's LoraConfig defaults then apply, see {@link #scaling});
   * folder says whether it came from a PEFT folder (which must have a config).
   */
  public record Adapter(String id, Kind kind, List<AdapterTensor> tensors, JsonNode config,
      boolean folder) {}

  private final String path;
  private final boolean weightColumnMajor;
  private final Map<String, Adapter> adapters;
  private final AdapterWeights dense;
  private final Map<String, AdapterWeights> lora = new ConcurrentHashMap<>();

  private AdapterStore(String path, boolean weightColumnMajor, Map<String, Adapter> adapters) {
    this.path = path;
    this.weightColumnMajor = weightColumnMajor;
    this.adapters = adapters;
    Map<String, float[][]> weights = new HashMap<>();
    AdapterTensor first = null;
    String firstId = null;
    for (Adapter a : adapters.values()) {
      if (a.kind() != Kind.DENSE) continue;
      AdapterTensor t = a.tensors().get(0);
      if (t.shape().length != 2) {
        throw new IllegalArgumentException("adapter '" + a.id() + "' (" + t.source()
            + ") has shape " + Arrays.toString(t.shape()) + "; an adapter weight must be 2-D "
            + (weightColumnMajor ? "(d_out, d_in)" : "(d_in, d_out)"));
      }
      if (first != null && !Arrays.equals(first.shape(), t.shape())) {
        throw new IllegalArgumentException("adapter '" + a.id() + "' (" + t.source()
            + ") has shape " + Arrays.toString(t.shape()) + " but adapter '" + firstId + "' ("
            + first.source() + ") has " + Arrays.toString(first.shape()) + ": all adapters in "
            + path + " must share one shape");
      }
      if (first == null) {
        first = t;
        firstId = a.id();
      }
      weights.put(a.id(), new float[][] {t.values()});
    }
    long[] shape = first == null ? new long[] {0, 0} : first.shape();
    int dIn = Math.toIntExact(weightColumnMajor ? shape[1] : shape[0]);
    int dOut = Math.toIntExact(weightColumnMajor ? shape[0] : shape[1]);
    this.dense = new AdapterWeights(AdapterWeights.Function.SEGMENT_GEMM, path, weights,
        new int[] {dIn}, new int[] {dOut}, new boolean[] {weightColumnMajor},
        ofKind(Kind.LORA, "a LoRA adapter (lora_A/lora_B tensors): use lora_apply, not "
            + "segment_gemm"));
  }

  /** Reads every adapter file under path (any Hadoop file system). */
  public static AdapterStore load(String path, boolean weightColumnMajor, Configuration conf)
      throws IOException {
    long start = System.nanoTime();
    Path dir = new Path(path);
    FileSystem fs = dir.getFileSystem(conf);
    FileStatus top;
    try {
      top = fs.getFileStatus(dir);
    } catch (java.io.FileNotFoundException e) {
      throw new IllegalArgumentException("the adapters path " + path + " does not exist");
    }
    FileStatus[] files;
    if (top.isDirectory()) {
      files = fs.listStatus(dir);
    } else if (isAdapterFile(dir.getName())) {
      files = new FileStatus[] {top};  // one file: its adapters alone
    } else {
      throw new IllegalArgumentException("the adapters path " + path + " is a file but not a "
          + ".safetensors or .npy file; give a directory of adapters or one adapter file");
    }
    Arrays.sort(files, Comparator.comparing(f -> f.getPath().getName()));
    Map<String, Adapter> adapters = new TreeMap<>();
    Map<String, String> origin = new HashMap<>();
    long bytes = 0;
    for (FileStatus f : files) {
      String name = f.getPath().getName();
      if (name.startsWith(".") || name.startsWith("_")) continue;  // hidden, as Hadoop sees it
      List<Adapter> found;
      Path file = f.getPath();
      if (f.isDirectory()) {
        // PEFT's save_pretrained layout: the folder names the adapter.
        file = new Path(f.getPath(), "adapter_model.safetensors");
        if (!fs.exists(file)) continue;
        byte[] content = readAll(fs, file);
        bytes += content.length;
        Path configFile = new Path(f.getPath(), "adapter_config.json");
        JsonNode config = fs.exists(configFile) ? readConfig(fs, configFile) : null;
        List<AdapterTensor> tensors = SafetensorsReader.read(file.toString(), content);
        found = List.of(new Adapter(name, kindOf(tensors), tensors, config, true));
      } else {
        boolean st = name.endsWith(".safetensors");
        if (!isAdapterFile(name)) continue;
        byte[] content = readAll(fs, file);
        bytes += content.length;
        String stem = name.substring(0, name.lastIndexOf('.'));
        found = st ? fromSafetensors(stem, SafetensorsReader.read(file.toString(), content))
            : List.of(new Adapter(stem, Kind.DENSE,
                List.of(NpyReader.read(file.toString(), content)), null, false));
      }
      for (Adapter a : found) {
        String before = origin.put(a.id(), file.toString());
        if (before != null) {
          throw new IllegalArgumentException("adapter id '" + a.id() + "' is defined twice: in "
              + before + " and in " + file);
        }
        adapters.put(a.id(), a);
      }
    }
    if (adapters.isEmpty()) {
      throw new IllegalArgumentException("no adapters under " + path
          + ": expected .safetensors or .npy files, or PEFT adapter folders");
    }
    AdapterStore store = new AdapterStore(path, weightColumnMajor, adapters);
    LOG.info("Loaded {} adapters ({} dense, d_in {}, d_out {}; {} LoRA) from {} ({} MiB) in {} ms",
        adapters.size(), store.dense.size(), store.dense.dIn(), store.dense.dOut(),
        adapters.size() - store.dense.size(), path, bytes >> 20,
        (System.nanoTime() - start) / 1_000_000);
    return store;
  }

  private static boolean isAdapterFile(String name) {
    return name.endsWith(".safetensors") || name.endsWith(".npy");
  }

  private static byte[] readAll(FileSystem fs, Path file) throws IOException {
    FileStatus st = fs.getFileStatus(file);
    if (st.getLen() > Integer.MAX_VALUE - 16) {
      throw new IllegalArgumentException("adapter file " + file + " is " + st.getLen()
          + " bytes; files up to 2 GiB are read");
    }
    try (InputStream in = fs.open(file)) {
      return in.readAllBytes();
    }
  }

  private static JsonNode readConfig(FileSystem fs, Path file) throws IOException {
    try (InputStream in = fs.open(file)) {
      JsonNode n = JSON.readTree(in);
      if (n == null || !n.isObject()) {
        throw new IllegalArgumentException(file + " is not a JSON object");
      }
      return n;
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalArgumentException(file + " is not valid JSON: " + e.getOriginalMessage(), e);
    }
  }

  private static List<Adapter> fromSafetensors(String stem, List<AdapterTensor> tensors) {
    if (kindOf(tensors) == Kind.LORA) {
      return List.of(new Adapter(stem, Kind.LORA, tensors, null, false));
    }
    if (tensors.size() == 1) return List.of(new Adapter(stem, Kind.DENSE, tensors, null, false));
    List<Adapter> out = new ArrayList<>();
    for (AdapterTensor t : tensors) {
      out.add(new Adapter(t.name(), Kind.DENSE, List.of(t), null, false));
    }
    return out;
  }

  /** LoRA when any tensor is a lora_A or lora_B one. */
  private static Kind kindOf(List<AdapterTensor> tensors) {
    return tensors.stream().anyMatch(t -> t.name().contains("lora_A") || t.name().contains("lora_B"))
        ? Kind.LORA : Kind.DENSE;
  }

  public String path() {
    return path;
  }

  public boolean weightColumnMajor() {
    return weightColumnMajor;
  }

  /** Any adapter, dense or LoRA, by id. */
  public Optional<Adapter> adapter(String id) {
    return Optional.ofNullable(adapters.get(id));
  }

  /** The dense adapters: segment_gemm's weights. */
  public AdapterWeights dense() {
    return dense;
  }

  /** The weights of a function: {@link #dense()}, or {@link #lora} of the module. */
  public AdapterWeights weights(AdapterWeights.Function function, String loraModule) {
    if (function == AdapterWeights.Function.LORA_APPLY) return lora(loraModule);
    if (dense.size() == 0) {
      // Else segment_gemm would pass the driver's check and fail on every row.
      throw new IllegalArgumentException("the adapters at " + path + " include no dense adapter "
          + "for segment_gemm: they are " + adapters.size() + " LoRA adapters (lora_A/lora_B "
          + "tensors); use lora_apply");
    }
    return dense;
  }

  /**
   * The LoRA adapters' weights for one module, lora_apply's two stages: x . A^T, then
   * . (B^T * scaling), scaling = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora) from each
   * adapter's adapter_config.json. Adapters of a lower rank are padded with zeros to the highest
   * rank, which changes no sum. PEFT stores A as (r, d_in) and B as (d_out, r), torch.nn.Linear's
   * layout, whatever {@code adapters.weightColumnMajor} says.
   *
   * @param module the module whose lora_A/lora_B to use (a tensor name prefix such as
   *     {@code model.layers.0.self_attn.q_proj}, or its tail); empty when each adapter has one
   */
  public AdapterWeights lora(String module) {
    return lora.computeIfAbsent(module, this::buildLora);
  }

  private AdapterWeights buildLora(String module) {
    record Pair(AdapterTensor a, AdapterTensor b, double scaling) {}
    Map<String, Pair> pairs = new TreeMap<>();
    for (Adapter ad : adapters.values()) {
      if (ad.kind() != Kind.LORA) continue;
      Map<String, AdapterTensor> as = new TreeMap<>();
      Map<String, AdapterTensor> bs = new TreeMap<>();
      for (AdapterTensor t : ad.tensors()) {
        if (t.name().endsWith(LORA_A)) as.put(t.name().substring(0, t.name().length() - LORA_A.length()), t);
        if (t.name().endsWith(LORA_B)) bs.put(t.name().substring(0, t.name().length() - LORA_B.length()), t);
      }
      List<String> match = new ArrayList<>();
      for (String m : as.keySet()) {
        if (module.isEmpty() || m.equals(module) || m.endsWith("." + module)) match.add(m);
      }
      if (match.size() != 1) {
        throw new IllegalArgumentException("LoRA adapter '" + ad.id() + "' in " + path + " has "
            + (match.isEmpty() ? "no" : match.size()) + " modules matching "
            + SegmentGemmConf.LORA_MODULE.key() + " = '" + module + "'; its modules: "
            + String.join(", ", as.keySet()));
      }
      String m = match.get(0);
      unsupported(ad, m);
      AdapterTensor a = as.get(m);
      AdapterTensor b = bs.get(m);
      if (b == null) {
        throw new IllegalArgumentException("LoRA adapter '" + ad.id() + "' has " + a.source()
            + " but no " + m + LORA_B);
      }
      if (a.shape().length != 2 || b.shape().length != 2 || a.shape()[0] != b.shape()[1]) {
        throw new IllegalArgumentException("LoRA adapter '" + ad.id() + "': " + a.source() + " "
            + Arrays.toString(a.shape()) + " and " + b.source() + " " + Arrays.toString(b.shape())
            + " are not (r, d_in) and (d_out, r)");
      }
      pairs.put(ad.id(), new Pair(a, b, scaling(ad, path, m, a.shape()[0])));
    }
    if (pairs.isEmpty()) {
      throw new IllegalArgumentException("the adapters at " + path + " include no LoRA adapter "
          + "(PEFT lora_A/lora_B tensors) for lora_apply");
    }
    String firstId = pairs.keySet().iterator().next();
    Pair first = pairs.get(firstId);
    int dIn = Math.toIntExact(first.a().shape()[1]);
    int dOut = Math.toIntExact(first.b().shape()[0]);
    int rank = 0;
    for (Map.Entry<String, Pair> e : pairs.entrySet()) {
      Pair p = e.getValue();
      if (p.a().shape()[1] != dIn || p.b().shape()[0] != dOut) {
        throw new IllegalArgumentException("LoRA adapter '" + e.getKey() + "' maps "
            + p.a().shape()[1] + " -> " + p.b().shape()[0] + " features but adapter '" + firstId
            + "' maps " + dIn + " -> " + dOut + ": all LoRA adapters in " + path
            + " must share d_in and d_out");
      }
      rank = Math.max(rank, Math.toIntExact(p.a().shape()[0]));
    }
    Map<String, float[][]> weights = new HashMap<>();
    for (Map.Entry<String, Pair> e : pairs.entrySet()) {
      Pair p = e.getValue();
      int r = Math.toIntExact(p.a().shape()[0]);
      float[] a = Arrays.copyOf(p.a().values(), rank * dIn);  // (rank, d_in): zero rows past r
      float[] b = new float[dOut * rank];                      // (d_out, rank): zero columns past r
      float[] bv = p.b().values();
      for (int o = 0; o < dOut; o++) {
        for (int j = 0; j < r; j++) b[o * rank + j] = (float) (bv[o * r + j] * p.scaling());
      }
      weights.put(e.getKey(), new float[][] {a, b});
    }
    LOG.info("LoRA weights for module '{}': {} adapters, {} -> rank {} -> {}", module,
        pairs.size(), dIn, rank, dOut);
    return new AdapterWeights(AdapterWeights.Function.LORA_APPLY, path, weights,
        new int[] {dIn, rank}, new int[] {rank, dOut}, new boolean[] {true, true},
        ofKind(Kind.DENSE, "a dense weight, not a LoRA adapter: use segment_gemm, not "
            + "lora_apply"));
  }

  /**
   * For the weights of one function: why an id it lacks cannot be used, when the store has it
   * as the other kind ("adapter 'x' in path is " + what), else null.
   */
  private java.util.function.Function<String, String> ofKind(Kind kind, String what) {
    return id -> {
      Adapter a = adapters.get(id);
      return a != null && a.kind() == kind ? "adapter '" + id + "' in " + path + " is " + what
          : null;
    };
  }

  /**
   * LoRA variants whose output is not x . A^T . B^T . scaling (DoRA's magnitude vector, a bias
   * on lora_B, anything else beside lora_A/lora_B for the module) are refused rather than
   * computed wrong.
   */
  private void unsupported(Adapter ad, String module) {
    JsonNode c = ad.config();
    for (String flag : List.of("use_dora", "lora_bias")) {
      if (c != null && c.path(flag).asBoolean(false)) {
        throw new IllegalArgumentException("LoRA adapter '" + ad.id() + "' in " + path + " sets "
            + flag + " in its adapter_config.json; lora_apply computes plain LoRA only");
      }
    }
    for (AdapterTensor t : ad.tensors()) {
      String n = t.name();
      if (n.startsWith(module + ".") && !n.equals(module + LORA_A) && !n.equals(module + LORA_B)) {
        throw new IllegalArgumentException("LoRA adapter '" + ad.id() + "' has " + t.source()
            + " beside lora_A/lora_B for module " + module + " (DoRA or a LoRA bias?); "
            + "lora_apply computes plain LoRA only");
      }
    }
  }

  /**
   * PEFT's scaling of one adapter's module, following PEFT exactly (huggingface/peft,
   * src/peft/tuners/lora): {@code LoraConfig} defaults {@code r = 8} and {@code lora_alpha = 8}
   * (config.py); {@code LoraModel._create_and_replace} takes
   * {@code r = rank_pattern.get(key, r)} and {@code alpha = alpha_pattern.get(key, lora_alpha)}
   * for the first key of each pattern matching the module name's tail ({@code (.*\.)?(key)$},
   * get_pattern_key in src/peft/utils/other.py); {@code LoraLayer.update_layer} sets
   * {@code scaling = lora_alpha / r}, or {@code lora_alpha / sqrt(r)} with {@code use_rslora}
   * (layer.py). Where PEFT would fail to load the adapter we refuse it: a PEFT folder without
   * adapter_config.json, a null or non-numeric {@code r} or {@code lora_alpha} (PEFT divides by
   * it), and an {@code r} that is not the tensors' rank (loading the state dict fails on the size
   * mismatch). A loose {@code <id>.safetensors} file has no config: PEFT's defaults apply
   * ({@code lora_alpha = 8}, so {@code scaling = 8 / rank}), with a warning.
   */
  static double scaling(Adapter ad, String path, String module, long rank) {
    JsonNode c = ad.config();
    if (c == null) {
      if (ad.folder()) {
        throw new IllegalArgumentException("PEFT adapter folder '" + ad.id() + "' in " + path
            + " has no adapter_config.json (PEFT cannot load it either): its r and lora_alpha "
            + "are unknown");
      }
      LOG.warn("LoRA adapter '{}' in {} is a loose .safetensors file without an "
          + "adapter_config.json: PEFT's default lora_alpha = 8 applies, scaling = 8 / {} = {}",
          ad.id(), path, rank, 8.0 / rank);
      return 8.0 / rank;
    }
    String where = "LoRA adapter '" + ad.id() + "' in " + path + ": adapter_config.json";
    double r = number(c, "r", 8, where);
    double alpha = number(c, "lora_alpha", 8, where);
    String rKey = patternKey(c.path("rank_pattern"), module);
    if (rKey != null) r = number(c.path("rank_pattern"), rKey, r, where + " rank_pattern");
    String aKey = patternKey(c.path("alpha_pattern"), module);
    if (aKey != null) alpha = number(c.path("alpha_pattern"), aKey, alpha, where + " alpha_pattern");
    if (r != rank) {
      throw new IllegalArgumentException(where + " gives r = " + fmt(r) + " for module " + module
          + " but its lora_A/lora_B tensors have rank " + rank + " (PEFT refuses the size "
          + "mismatch too)");
    }
    return c.path("use_rslora").asBoolean(false) ? alpha / Math.sqrt(r) : alpha / r;
  }

  /** The first key of a rank_pattern or alpha_pattern object matching module, or null. */
  private static String patternKey(JsonNode patterns, String module) {
    for (var it = patterns.fieldNames(); it.hasNext(); ) {
      String k = it.next();
      if (k.equals(module) || java.util.regex.Pattern.matches("(.*\\.)?(" + k + ")", module)) {
        return k;
      }
    }
    return null;
  }

  /** A positive number field of a config: absent gives dflt; null or anything else is refused. */
  private static double number(JsonNode obj, String field, double dflt, String where) {
    if (!obj.has(field)) return dflt;
    JsonNode v = obj.get(field);
    if (!v.isNumber() || !(v.asDouble() > 0)) {
      throw new IllegalArgumentException(where + " has " + field + " = " + v + "; it must be a "
          + "positive number (PEFT's default " + fmt(dflt) + " applies only when it is absent)");
    }
    return v.asDouble();
  }

  private static String fmt(double v) {
    return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
  }
}
