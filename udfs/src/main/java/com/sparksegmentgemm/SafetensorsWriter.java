package com.sparksegmentgemm;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;

/**
 * Writes float32 tensors as a .safetensors file, byte for byte as the safetensors package's
 * {@code save_file} does (AdapterStoreTest checks that against Python-written files): an 8-byte
 * little-endian header length, a JSON header padded with spaces to a multiple of 8, then the
 * tensors' data in name order. For generated adapters (the demo) and tests.
 */
public final class SafetensorsWriter {
  private SafetensorsWriter() {}

  /** A safetensors file of float32 tensors: name -> values, name -> shape. */
  public static byte[] write(Map<String, float[]> values, Map<String, long[]> shapes) {
    StringBuilder json = new StringBuilder("{");
    long offset = 0;
    for (String name : new TreeMap<>(values).keySet()) {
      long[] shape = shapes.get(name);
      if (shape == null || Arrays.stream(shape).reduce(1, Math::multiplyExact)
          != values.get(name).length) {
        throw new IllegalArgumentException("tensor '" + name + "' has " + values.get(name).length
            + " values but shape " + Arrays.toString(shape));
      }
      long end = offset + 4L * values.get(name).length;
      if (json.length() > 1) json.append(',');
      json.append('"').append(name).append("\":{\"dtype\":\"F32\",\"shape\":[")
          .append(String.join(",", Arrays.stream(shape).mapToObj(Long::toString)
              .toArray(String[]::new)))
          .append("],\"data_offsets\":[").append(offset).append(',').append(end).append("]}");
      offset = end;
    }
    json.append('}');
    while (json.length() % 8 != 0) json.append(' ');
    byte[] header = json.toString().getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(8 + header.length + offset))
        .order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(header.length).put(header);
    for (String name : new TreeMap<>(values).keySet()) {
      for (float v : values.get(name)) b.putFloat(v);
    }
    return b.array();
  }
}
