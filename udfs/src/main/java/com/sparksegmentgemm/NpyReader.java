package com.sparksegmentgemm;

import com.sparksegmentgemm.nativelib.DType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads a .npy file (numpy's format, versions 1 to 3): little-endian float32, float16 or float64
 * arrays, in C or Fortran order (a Fortran-ordered array is returned row-major). Anything else is
 * an error naming the file.
 */
public final class NpyReader {
  private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
  private static final Pattern DESCR = Pattern.compile("'descr'\\s*:\\s*'([^']*)'");
  private static final Pattern FORTRAN = Pattern.compile("'fortran_order'\\s*:\\s*(True|False)");
  private static final Pattern SHAPE = Pattern.compile("'shape'\\s*:\\s*\\(([^)]*)\\)");

  private NpyReader() {}

  public static AdapterTensor read(String file, byte[] bytes) {
    for (int i = 0; i < MAGIC.length; i++) {
      if (bytes.length <= i || bytes[i] != MAGIC[i]) throw bad(file, "is not a .npy file (no magic)");
    }
    if (bytes.length < 10) throw bad(file, "is truncated");
    ByteBuffer buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    int major = bytes[6];
    int headerLen;
    int headerStart;
    if (major == 1) {
      headerLen = buf.getShort(8) & 0xffff;
      headerStart = 10;
    } else if (major == 2 || major == 3) {
      if (bytes.length < 12) throw bad(file, "is truncated");
      headerLen = buf.getInt(8);
      headerStart = 12;
    } else {
      throw bad(file, "has .npy version " + major + "; versions 1 to 3 are read");
    }
    if (headerLen < 0 || headerStart + (long) headerLen > bytes.length) {
      throw bad(file, "has a header longer than the file");
    }
    String header = new String(bytes, headerStart, headerLen,
        major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
    String descr = group(file, DESCR, header, "descr");
    boolean fortran = group(file, FORTRAN, header, "fortran_order").equals("True");
    String[] dims = group(file, SHAPE, header, "shape").split(",");
    String shapeText = "(" + String.join(",", dims) + ")";
    long[] shape;
    try {
      shape = java.util.Arrays.stream(dims).map(String::trim).filter(d -> !d.isEmpty())
          .mapToLong(Long::parseLong).toArray();
    } catch (NumberFormatException e) {
      throw bad(file, "has shape " + shapeText + " in its header; a shape is a tuple of integers");
    }
    long count = 1;
    for (long d : shape) {
      if (d < 0) throw bad(file, "has a negative dimension in its shape " + shapeText);
      // A shape whose product passes 2^31 values cannot be an adapter this reader holds in one
      // array: say so, naming the file, rather than overflow.
      count = d == 0 || count <= (Integer.MAX_VALUE - 8) / d ? count * d : -1;
      if (count < 0) {
        throw bad(file, "has shape " + shapeText + ", more than 2^31 values; adapters are read "
            + "into one array");
      }
    }
    int size = switch (descr) {
      case "<f4" -> 4;
      case "<f2" -> 2;
      case "<f8" -> 8;
      default -> throw bad(file, "has dtype '" + descr + "'; adapters must be little-endian "
          + "float32 ('<f4'), float16 ('<f2') or float64 ('<f8')");
    };
    int dataStart = headerStart + headerLen;
    if (bytes.length - dataStart != count * size) {
      throw bad(file, "has " + (bytes.length - dataStart) + " data bytes but shape "
          + java.util.Arrays.toString(shape) + " of '" + descr + "' needs " + count * size);
    }
    float[] values = decode(buf, dataStart, (int) count, descr);
    if (fortran && shape.length > 1) values = toRowMajor(values, shape);
    return new AdapterTensor(file, "", descr, shape, values);
  }

  private static float[] decode(ByteBuffer buf, int at, int count, String descr) {
    if (descr.equals("<f2")) {
      short[] bits = new short[count];
      buf.slice(at, 2 * count).order(ByteOrder.LITTLE_ENDIAN).asShortBuffer().get(bits);
      return DType.FLOAT16.fromBits(bits);
    }
    float[] v = new float[count];
    for (int i = 0; i < count; i++) {
      v[i] = descr.equals("<f4") ? buf.getFloat(at + 4 * i) : (float) buf.getDouble(at + 8 * i);
    }
    return v;
  }

  /** A Fortran-ordered (first index fastest) array, reordered so the last index is fastest. */
  private static float[] toRowMajor(float[] f, long[] shape) {
    float[] out = new float[f.length];
    int rank = shape.length;
    int[] idx = new int[rank];
    for (int flat = 0; flat < f.length; flat++) {
      // idx is the multi-index of row-major position `flat`; find its Fortran position.
      int fpos = 0;
      int stride = 1;
      for (int d = 0; d < rank; d++) {
        fpos += idx[d] * stride;
        stride *= (int) shape[d];
      }
      out[flat] = f[fpos];
      for (int d = rank - 1; d >= 0; d--) {
        if (++idx[d] < shape[d]) break;
        idx[d] = 0;
      }
    }
    return out;
  }

  private static String group(String file, Pattern p, String header, String field) {
    Matcher m = p.matcher(header);
    if (!m.find()) throw bad(file, "has no '" + field + "' in its header: " + header.trim());
    return m.group(1);
  }

  private static IllegalArgumentException bad(String file, String what) {
    return new IllegalArgumentException(".npy file " + file + " " + what);
  }
}
