package com.sparksegmentgemm;

import com.sparksegmentgemm.nativelib.DType;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The adapters of one directory, in host memory: every {@code .safetensors} and {@code .npy} file
 * directly under it (other files, such as PEFT's adapter_config.json, are ignored).
 *
 * <p>Ids: a .npy file, or a safetensors file holding one tensor, is one adapter named by the file
 * stem; a safetensors file holding several tensors is one adapter per tensor, named by the
 * tensor; a safetensors file with PEFT {@code lora_A}/{@code lora_B} tensors is one LoRA adapter
 * named by the file stem (kept whole, with every tensor's name and shape; segment_gemm itself uses
 * dense adapters only). Dense adapters are 2-D and share one shape: {@code (d_in, d_out)}, or
 * {@code (d_out, d_in)} when the weights are column-major. Ids are ordered by their UTF-8 bytes,
 * which is the order cuDF sorts strings in, so an id's index here is its index on the device.
 */
public final class AdapterStore {
  private static final Logger LOG = LoggerFactory.getLogger(AdapterStore.class);

  /** A dense adapter is one weight; a LoRA adapter is its lora_A/lora_B tensors. */
  public enum Kind { DENSE, LORA }

  public record Adapter(String id, Kind kind, List<AdapterTensor> tensors) {}

  private final String path;
  private final boolean weightColumnMajor;
  private final Map<String, Adapter> adapters;
  private final List<String> ids;
  private final Map<String, Integer> index = new HashMap<>();
  private final float[][] weights;
  private final int dIn;
  private final int dOut;
  private final Map<DType, float[][]> rounded = new EnumMap<>(DType.class);

  private AdapterStore(String path, boolean weightColumnMajor, Map<String, Adapter> adapters) {
    this.path = path;
    this.weightColumnMajor = weightColumnMajor;
    this.adapters = adapters;
    List<String> dense = new ArrayList<>();
    for (Adapter a : adapters.values()) if (a.kind() == Kind.DENSE) dense.add(a.id());
    dense.sort(Comparator.comparing(id -> id.getBytes(StandardCharsets.UTF_8),
        Arrays::compareUnsigned));
    this.ids = List.copyOf(dense);
    this.weights = new float[ids.size()][];
    AdapterTensor first = null;
    for (int i = 0; i < ids.size(); i++) {
      AdapterTensor t = adapters.get(ids.get(i)).tensors().get(0);
      if (t.shape().length != 2) {
        throw new IllegalArgumentException("adapter '" + ids.get(i) + "' (" + t.source()
            + ") has shape " + Arrays.toString(t.shape()) + "; an adapter weight must be 2-D "
            + (weightColumnMajor ? "(d_out, d_in)" : "(d_in, d_out)"));
      }
      if (first != null && !Arrays.equals(first.shape(), t.shape())) {
        throw new IllegalArgumentException("adapter '" + ids.get(i) + "' (" + t.source()
            + ") has shape " + Arrays.toString(t.shape()) + " but adapter '" + ids.get(0) + "' ("
            + first.source() + ") has " + Arrays.toString(first.shape()) + ": all adapters in "
            + path + " must share one shape");
      }
      if (first == null) first = t;
      index.put(ids.get(i), i);
      weights[i] = t.values();
    }
    long[] shape = first == null ? new long[] {0, 0} : first.shape();
    this.dIn = Math.toIntExact(weightColumnMajor ? shape[1] : shape[0]);
    this.dOut = Math.toIntExact(weightColumnMajor ? shape[0] : shape[1]);
  }

  /** Reads every adapter file under path (any Hadoop file system). */
  public static AdapterStore load(String path, boolean weightColumnMajor, Configuration conf)
      throws IOException {
    long start = System.nanoTime();
    Path dir = new Path(path);
    FileSystem fs = dir.getFileSystem(conf);
    FileStatus[] files = fs.listStatus(dir);
    Arrays.sort(files, Comparator.comparing(f -> f.getPath().getName()));
    Map<String, Adapter> adapters = new TreeMap<>();
    Map<String, String> origin = new HashMap<>();
    long bytes = 0;
    for (FileStatus f : files) {
      String name = f.getPath().getName();
      boolean st = name.endsWith(".safetensors");
      if (!f.isFile() || !(st || name.endsWith(".npy"))) continue;
      if (f.getLen() > Integer.MAX_VALUE - 16) {
        throw new IllegalArgumentException("adapter file " + f.getPath() + " is " + f.getLen()
            + " bytes; files up to 2 GiB are read");
      }
      byte[] content;
      try (InputStream in = fs.open(f.getPath())) {
        content = in.readAllBytes();
      }
      bytes += content.length;
      String file = f.getPath().toString();
      String stem = name.substring(0, name.lastIndexOf('.'));
      List<Adapter> found = st ? fromSafetensors(stem, SafetensorsReader.read(file, content))
          : List.of(new Adapter(stem, Kind.DENSE, List.of(NpyReader.read(file, content))));
      for (Adapter a : found) {
        String before = origin.put(a.id(), file);
        if (before != null) {
          throw new IllegalArgumentException("adapter id '" + a.id() + "' is defined twice: in "
              + before + " and in " + file);
        }
        adapters.put(a.id(), a);
      }
    }
    if (adapters.isEmpty()) {
      throw new IllegalArgumentException("no adapters under " + path
          + ": expected .safetensors or .npy files");
    }
    AdapterStore store = new AdapterStore(path, weightColumnMajor, adapters);
    LOG.info("Loaded {} adapters ({} dense, d_in {}, d_out {}) from {} ({} MiB) in {} ms",
        adapters.size(), store.size(), store.dIn, store.dOut, path, bytes >> 20,
        (System.nanoTime() - start) / 1_000_000);
    return store;
  }

  private static List<Adapter> fromSafetensors(String stem, List<AdapterTensor> tensors) {
    boolean lora = tensors.stream().anyMatch(t -> isLora(t.name()));
    if (lora) return List.of(new Adapter(stem, Kind.LORA, tensors));
    if (tensors.size() == 1) return List.of(new Adapter(stem, Kind.DENSE, tensors));
    List<Adapter> out = new ArrayList<>();
    for (AdapterTensor t : tensors) out.add(new Adapter(t.name(), Kind.DENSE, List.of(t)));
    return out;
  }

  private static boolean isLora(String tensorName) {
    return tensorName.contains("lora_A") || tensorName.contains("lora_B");
  }

  public String path() {
    return path;
  }

  public boolean weightColumnMajor() {
    return weightColumnMajor;
  }

  /** Number of dense adapters (the ones segment_gemm can use). */
  public int size() {
    return ids.size();
  }

  /** Dense adapter ids, in index order (by UTF-8 bytes). */
  public List<String> ids() {
    return ids;
  }

  /** The index of a dense adapter, or -1. */
  public int indexOf(String id) {
    Integer i = index.get(id);
    return i == null ? -1 : i;
  }

  public int dIn() {
    return dIn;
  }

  public int dOut() {
    return dOut;
  }

  /** Any adapter, dense or LoRA, by id. */
  public Optional<Adapter> adapter(String id) {
    return Optional.ofNullable(adapters.get(id));
  }

  /** The weight of dense adapter i as read (values widened to float), in the store's layout. */
  public float[] weight(int i) {
    return weights[i];
  }

  /**
   * The weight of dense adapter i rounded to dtype: what the CPU path multiplies by and what the
   * device cache uploads. Rounded once per dtype, on first use.
   */
  public float[] roundedWeight(int i, DType dtype) {
    if (dtype == DType.FLOAT32) return weights[i];
    synchronized (rounded) {
      float[][] r = rounded.computeIfAbsent(dtype, d -> new float[weights.length][]);
      if (r[i] == null) r[i] = CpuSegmentGemm.rounded(weights[i], dtype);
      return r[i];
    }
  }

  /** Why id is not a dense adapter of this store, for error messages. */
  public String whyNotUsable(String id) {
    Adapter a = adapters.get(id);
    if (a != null && a.kind() == Kind.LORA) {
      return "adapter '" + id + "' in " + path + " is a LoRA adapter (lora_A/lora_B tensors); "
          + "segment_gemm needs a dense weight";
    }
    List<String> sample = ids.subList(0, Math.min(5, ids.size()));
    return "unknown adapter '" + id + "': " + path + " has " + ids.size() + " adapters ("
        + String.join(", ", sample) + (ids.size() > sample.size() ? ", ..." : "") + ")";
  }
}
