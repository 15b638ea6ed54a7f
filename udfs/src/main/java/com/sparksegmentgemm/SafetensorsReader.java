package com.sparksegmentgemm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sparksegmentgemm.nativelib.DType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * Reads a safetensors file (huggingface/safetensors: an 8-byte little-endian header length, a
 * JSON header mapping each tensor name to its dtype, shape and data offsets, then the data).
 * F32, F16, BF16 and F64 tensors are read; any other dtype, or a header that disagrees with the
 * data, is an error naming the file and tensor.
 */
public final class SafetensorsReader {
  private static final ObjectMapper JSON = new ObjectMapper();

  private SafetensorsReader() {}

  /** Every tensor of the file, in header order ({@code __metadata__} is skipped). */
  public static List<AdapterTensor> read(String file, byte[] bytes) {
    if (bytes.length < 8) throw bad(file, "is " + bytes.length + " bytes, too short for a header");
    ByteBuffer buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    long headerLen = buf.getLong(0);
    if (headerLen < 2 || headerLen > bytes.length - 8) {
      throw bad(file, "declares a " + headerLen + "-byte header but has " + (bytes.length - 8)
          + " bytes after the length");
    }
    JsonNode header;
    try {
      header = JSON.readTree(new String(bytes, 8, (int) headerLen, StandardCharsets.UTF_8));
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw bad(file, "has a header that is not JSON: " + e.getOriginalMessage());
    }
    if (header == null || !header.isObject()) throw bad(file, "has a header that is not a JSON object");
    int dataStart = 8 + (int) headerLen;
    long dataLen = bytes.length - dataStart;
    List<AdapterTensor> out = new ArrayList<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      String name = e.getKey();
      if (name.equals("__metadata__")) continue;
      JsonNode t = e.getValue();
      String dtype = t.path("dtype").asText("");
      JsonNode shapeNode = t.path("shape");
      JsonNode offsets = t.path("data_offsets");
      if (!shapeNode.isArray() || !offsets.isArray() || offsets.size() != 2) {
        throw bad(file, name, "needs a shape array and two data_offsets");
      }
      long[] shape = new long[shapeNode.size()];
      long count = 1;
      for (int i = 0; i < shape.length; i++) {
        shape[i] = shapeNode.get(i).asLong(-1);
        if (shape[i] < 0) throw bad(file, name, "has a negative dimension in its shape");
        // Past 2^31 values the tensor cannot be held in one array: say so, naming it.
        count = shape[i] == 0 || count <= (Integer.MAX_VALUE - 8) / shape[i] ? count * shape[i] : -1;
        if (count < 0) {
          throw bad(file, name, "has shape " + shapeNode + ", more than 2^31 values; adapters are "
              + "read into one array");
        }
      }
      int size = switch (dtype) {
        case "F32" -> 4;
        case "F16", "BF16" -> 2;
        case "F64" -> 8;
        default -> throw bad(file, name, "has dtype " + dtype + "; adapters must be F32, F16, "
            + "BF16 or F64");
      };
      long begin = offsets.get(0).asLong(-1), end = offsets.get(1).asLong(-1);
      if (begin < 0 || end < begin || end > dataLen) {
        throw bad(file, name, "has data_offsets [" + begin + ", " + end + "] outside the "
            + dataLen + " data bytes");
      }
      if (end - begin != count * size) {
        throw bad(file, name, "has " + (end - begin) + " data bytes but its shape and dtype "
            + dtype + " need " + count * size);
      }
      out.add(new AdapterTensor(file, name, dtype, shape,
          decode(buf, dataStart + (int) begin, (int) count, dtype)));
    }
    return out;
  }

  private static float[] decode(ByteBuffer buf, int at, int count, String dtype) {
    if (dtype.equals("F16") || dtype.equals("BF16")) {
      short[] bits = new short[count];
      buf.slice(at, 2 * count).order(ByteOrder.LITTLE_ENDIAN).asShortBuffer().get(bits);
      return (dtype.equals("F16") ? DType.FLOAT16 : DType.BFLOAT16).fromBits(bits);
    }
    float[] v = new float[count];
    for (int i = 0; i < count; i++) {
      v[i] = dtype.equals("F32") ? buf.getFloat(at + 4 * i) : (float) buf.getDouble(at + 8 * i);
    }
    return v;
  }

  private static IllegalArgumentException bad(String file, String what) {
    return new IllegalArgumentException("safetensors file " + file + " " + what);
  }

  private static IllegalArgumentException bad(String file, String tensor, String what) {
    return new IllegalArgumentException("safetensors file " + file + ": tensor '" + tensor + "' "
        + what);
  }
}
