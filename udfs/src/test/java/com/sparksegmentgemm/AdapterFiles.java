package com.sparksegmentgemm;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

/**
 * Writes float32 adapter files for tests, byte for byte as numpy's {@code np.save} and
 * safetensors' {@code save_file} do (AdapterStoreTest checks that against the Python-written
 * fixtures), so tests can make many adapters without Python.
 */
final class AdapterFiles {
  private AdapterFiles() {}

  /** A .npy file of a float32 C-order array. */
  static byte[] npy(float[] values, long... shape) {
    String dims = shape.length == 1 ? shape[0] + "," : String.join(", ",
        Arrays.stream(shape).mapToObj(Long::toString).toArray(String[]::new));
    StringBuilder header = new StringBuilder("{'descr': '<f4', 'fortran_order': False, 'shape': ("
        + dims + "), }");
    // numpy pads with spaces and a newline so that the data starts at a multiple of 64.
    while ((10 + header.length() + 1) % 64 != 0) header.append(' ');
    header.append('\n');
    ByteBuffer b = ByteBuffer.allocate(10 + header.length() + 4 * values.length)
        .order(ByteOrder.LITTLE_ENDIAN);
    b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0});
    b.putShort((short) header.length());
    b.put(header.toString().getBytes(StandardCharsets.ISO_8859_1));
    for (float v : values) b.putFloat(v);
    return b.array();
  }

  /**
   * numAdapters random gaussian adapters of shape (rows, cols) in dir, half as .npy and half as
   * safetensors files, ids "a0", "a1", ...; returns id -> values.
   */
  static Map<String, float[]> writeRandom(Path dir, Random rnd, int numAdapters, int rows, int cols)
      throws IOException {
    Files.createDirectories(dir);
    Map<String, float[]> out = new TreeMap<>();
    for (int a = 0; a < numAdapters; a++) {
      String id = "a" + a;
      float[] w = Reference.gaussian(rnd, rows * cols);
      byte[] file = a % 2 == 0 ? npy(w, rows, cols)
          : SafetensorsWriter.write(Map.of("weight", w), Map.of("weight", new long[] {rows, cols}));
      Files.write(dir.resolve(id + (a % 2 == 0 ? ".npy" : ".safetensors")), file);
      out.put(id, w);
    }
    return out;
  }

  /** Adapters named "0" .. "count - 1" (.npy), the ids INT and LONG adapter ids match. */
  static Map<String, float[]> writeNumeric(Path dir, Random rnd, int count, int rows, int cols)
      throws IOException {
    Files.createDirectories(dir);
    Map<String, float[]> out = new TreeMap<>();
    for (int a = 0; a < count; a++) {
      float[] w = Reference.gaussian(rnd, rows * cols);
      Files.write(dir.resolve(a + ".npy"), npy(w, rows, cols));
      out.put(Integer.toString(a), w);
    }
    return out;
  }

  /** A PEFT LoRA adapter as written: A (r, d_in), B (d_out, r), and lora_alpha / r. */
  record Lora(float[] a, float[] b, int rank, double scaling) {}

  /**
   * numAdapters PEFT adapter folders ("l0", "l1", ...: adapter_model.safetensors with one
   * module's lora_A/lora_B, adapter_config.json with r and lora_alpha) in dir, adapter i of rank
   * ranks[i % ranks.length]; returns id -> tensors.
   */
  static Map<String, Lora> writeLora(Path dir, Random rnd, int numAdapters, int dIn, int dOut,
      int... ranks) throws IOException {
    Map<String, Lora> out = new TreeMap<>();
    String m = "base_model.model.layers.0.mlp.down_proj.";
    for (int i = 0; i < numAdapters; i++) {
      int r = ranks[i % ranks.length];
      int alpha = 2 * r + i % 3;
      float[] a = Reference.gaussian(rnd, r * dIn);
      float[] b = Reference.gaussian(rnd, dOut * r);
      Path folder = Files.createDirectories(dir.resolve("l" + i));
      Files.write(folder.resolve("adapter_model.safetensors"), SafetensorsWriter.write(
          Map.of(m + "lora_A.weight", a, m + "lora_B.weight", b),
          Map.of(m + "lora_A.weight", new long[] {r, dIn}, m + "lora_B.weight", new long[] {dOut, r})));
      Files.writeString(folder.resolve("adapter_config.json"), "{\"peft_type\": \"LORA\", \"r\": "
          + r + ", \"lora_alpha\": " + alpha + ", \"target_modules\": [\"down_proj\"]}");
      out.put("l" + i, new Lora(a, b, r, (double) alpha / r));
    }
    return out;
  }

  /**
   * Checks a lora_apply output row against a double-precision reference that rounds x . A^T to
   * dtype as both paths do; the bound is tol x (sum |t_j b_j| + sum_j |b_j| sum_k |x_k a_jk|),
   * the second term for the first product's own rounding.
   */
  static void checkLora(List<Float> features, float[] actual, Lora l, int dIn, int dOut,
      com.sparksegmentgemm.nativelib.DType dtype, double tol, String what) {
    double[] t = new double[l.rank()];
    double[] tAbs = new double[l.rank()];
    for (int j = 0; j < l.rank(); j++) {
      double s = 0;
      for (int k = 0; k < dIn; k++) {
        double p = (double) dtype.round(features.get(k)) * dtype.round(l.a()[j * dIn + k]);
        s += p;
        tAbs[j] += Math.abs(p);
      }
      t[j] = dtype.round((float) s);
    }
    for (int n = 0; n < dOut; n++) {
      double y = 0;
      double bound = 0;
      for (int j = 0; j < l.rank(); j++) {
        double b = dtype.round((float) (l.b()[n * l.rank() + j] * l.scaling()));
        y += t[j] * b;
        bound += Math.abs(t[j] * b) + Math.abs(b) * tAbs[j];
      }
      org.junit.jupiter.api.Assertions.assertTrue(Math.abs(actual[n] - y) <= tol * bound + 1e-30,
          what + " output " + n + ": " + actual[n] + " vs " + y + " (bound " + tol * bound + ")");
    }
  }
}
