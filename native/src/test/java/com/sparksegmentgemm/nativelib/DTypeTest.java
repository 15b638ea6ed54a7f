package com.sparksegmentgemm.nativelib;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** DType's conversions against numpy (float16) and ml_dtypes (bfloat16): gen_dtype_vectors.py. */
class DTypeTest {

  private static List<int[]> vectors() throws IOException {
    List<int[]> rows = new ArrayList<>();
    try (BufferedReader r = new BufferedReader(new InputStreamReader(
        DTypeTest.class.getResourceAsStream("/dtype_vectors.csv"), StandardCharsets.US_ASCII))) {
      for (String line; (line = r.readLine()) != null; ) {
        if (line.startsWith("#")) continue;
        String[] f = line.split(",");
        rows.add(new int[] {(int) Long.parseLong(f[0], 16), Integer.parseInt(f[1], 16),
            Integer.parseInt(f[2], 16)});
      }
    }
    return rows;
  }

  @Test
  void roundsLikeNumpy() throws IOException {
    List<int[]> rows = vectors();
    assertTrue(rows.size() >= 40, "test vectors missing");
    for (int[] row : rows) {
      float v = Float.intBitsToFloat(row[0]);
      assertEquals(row[1], DType.floatToHalfBits(v) & 0xffff, () -> "float16 of " + v);
      assertEquals(row[2], DType.floatToBf16Bits(v) & 0xffff, () -> "bfloat16 of " + v);
    }
  }

  @Test
  void decodesExactlyAndRoundTrips() throws IOException {
    for (int[] row : vectors()) {
      float h = DType.halfBitsToFloat((short) row[1]);
      assertEquals(row[1], DType.floatToHalfBits(h) & 0xffff, "float16 round trip");
      float b = DType.bf16BitsToFloat((short) row[2]);
      assertEquals(row[2], DType.floatToBf16Bits(b) & 0xffff, "bfloat16 round trip");
    }
    // Every finite float16 decodes to a float that encodes back to itself.
    for (int bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7c00) == 0x7c00) continue;
      float v = DType.halfBitsToFloat((short) bits);
      assertEquals(bits, DType.floatToHalfBits(v) & 0xffff, "float16 " + Integer.toHexString(bits));
    }
    assertEquals(65504f, DType.FLOAT16.round(65504f));
    assertEquals(0x1p-24f, DType.halfBitsToFloat((short) 1));
    assertTrue(Float.isNaN(DType.FLOAT16.round(Float.NaN)));
    assertTrue(Float.isNaN(DType.BFLOAT16.round(Float.NaN)));
  }
}
