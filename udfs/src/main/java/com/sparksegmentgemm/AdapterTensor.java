package com.sparksegmentgemm;

import java.util.Arrays;

/**
 * One tensor read from an adapter file: where it came from, its name ("" for a .npy file), the
 * file's dtype as the format spells it (e.g. "BF16", "&lt;f2"), its shape, and its values widened
 * exactly to float (float64 values are rounded to the nearest float).
 */
public record AdapterTensor(String file, String name, String fileDtype, long[] shape,
    float[] values) {

  /** "file" or "file:tensor", as error messages name it. */
  public String source() {
    return name.isEmpty() ? file : file + ":" + name;
  }

  @Override
  public String toString() {
    return source() + " " + fileDtype + " " + Arrays.toString(shape);
  }
}
