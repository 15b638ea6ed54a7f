package com.sparksegmentgemm;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
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

  /** A safetensors file of float32 tensors (name -> values, shape), in name order. */
  static byte[] safetensors(Map<String, float[]> values, Map<String, long[]> shapes) {
    StringBuilder json = new StringBuilder("{");
    long offset = 0;
    for (String name : new TreeMap<>(values).keySet()) {
      long end = offset + 4L * values.get(name).length;
      if (json.length() > 1) json.append(',');
      json.append('"').append(name).append("\":{\"dtype\":\"F32\",\"shape\":[")
          .append(String.join(",", Arrays.stream(shapes.get(name)).mapToObj(Long::toString)
              .toArray(String[]::new)))
          .append("],\"data_offsets\":[").append(offset).append(',').append(end).append("]}");
      offset = end;
    }
    json.append('}');
    while (json.length() % 8 != 0) json.append(' ');
    byte[] header = json.toString().getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(8 + header.length + (int) offset).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(header.length).put(header);
    for (String name : new TreeMap<>(values).keySet()) for (float v : values.get(name)) b.putFloat(v);
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
          : safetensors(Map.of("weight", w), Map.of("weight", new long[] {rows, cols}));
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
}
