package com.sparksegmentgemm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sparksegmentgemm.nativelib.DType;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The readers and the store against files written by numpy and safetensors themselves
 * (src/test/resources/adapters/gen_adapters.py, values in expected.csv).
 */
class AdapterStoreTest {
  private static final Path FIXTURES = fixtures();

  private record Expected(String file, String tensor, String dtype, long[] shape, float[] values) {}

  private static Path fixtures() {
    try {
      return Path.of(AdapterStoreTest.class.getResource("/adapters/expected.csv").toURI()).getParent();
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  private static List<Expected> expected() throws IOException {
    List<Expected> out = new ArrayList<>();
    for (String line : Files.readAllLines(FIXTURES.resolve("expected.csv"))) {
      if (line.startsWith("#") || line.isBlank()) continue;
      String[] f = line.split(",", -1);
      long[] shape = java.util.Arrays.stream(f[3].split("x")).mapToLong(Long::parseLong).toArray();
      String[] bits = f[4].split(" ");
      float[] v = new float[bits.length];
      for (int i = 0; i < v.length; i++) v[i] = Float.intBitsToFloat(Integer.parseUnsignedInt(bits[i], 16));
      out.add(new Expected(f[0], f[1], f[2], shape, v));
    }
    return out;
  }

  private static AdapterStore load(String sub) throws IOException {
    return AdapterStore.load(FIXTURES.resolve(sub).toUri().toString(), false, new Configuration());
  }

  @Test
  void readersMatchNumpyAndSafetensorsBitForBit() throws IOException {
    List<Expected> all = expected();
    assertEquals(14, all.size());
    for (Expected e : all) {
      byte[] bytes = Files.readAllBytes(FIXTURES.resolve(e.file()));
      AdapterTensor t;
      if (e.file().endsWith(".npy")) {
        t = NpyReader.read(e.file(), bytes);
      } else {
        t = SafetensorsReader.read(e.file(), bytes).stream()
            .filter(x -> x.name().equals(e.tensor())).findFirst().orElseThrow();
      }
      assertArrayEquals(e.shape(), t.shape(), e.file() + " " + e.tensor());
      assertArrayEquals(e.values(), t.values(), e.file() + " " + e.tensor() + " (" + e.dtype() + ")");
    }
  }

  @Test
  void storeNamesAdaptersByStemOrTensor() throws IOException {
    AdapterStore basic = load("basic");
    assertEquals(List.of("17", "alpha", "beta", "delta", "epsilon", "gamma", "zeta"), basic.ids());
    assertEquals(8, basic.dIn());
    assertEquals(6, basic.dOut());
    Map<String, float[]> byFile = new HashMap<>();
    for (Expected e : expected()) byFile.put(e.file() + ":" + e.tensor(), e.values());
    assertArrayEquals(byFile.get("basic/beta.safetensors:weight"), basic.weight(basic.indexOf("beta")));
    assertArrayEquals(byFile.get("basic/zeta.npy:"), basic.weight(basic.indexOf("zeta")),
        "a Fortran-ordered .npy comes back row-major");
    assertEquals(-1, basic.indexOf("omega"));
    assertTrue(basic.whyNotUsable("omega").startsWith("unknown adapter 'omega': "), basic.whyNotUsable("omega"));

    AdapterStore multi = load("multi");
    assertEquals(List.of("tenant_0", "tenant_1", "tenant_2"), multi.ids());
    assertArrayEquals(byFile.get("multi/tenants.safetensors:tenant_1"), multi.weight(1));

    // Column-major: the same files read as (d_out, d_in).
    AdapterStore transposed = AdapterStore.load(FIXTURES.resolve("basic").toUri().toString(), true,
        new Configuration());
    assertEquals(6, transposed.dIn());
    assertEquals(8, transposed.dOut());
  }

  @Test
  void peftLoraFileKeepsBothTensorsNamesAndShapes() throws IOException {
    AdapterStore peft = load("peft");
    assertEquals(0, peft.size(), "a LoRA adapter is not a dense weight");
    AdapterStore.Adapter a = peft.adapter("adapter_model").orElseThrow();
    assertEquals(AdapterStore.Kind.LORA, a.kind());
    Map<String, long[]> shapes = new HashMap<>();
    for (AdapterTensor t : a.tensors()) shapes.put(t.name(), t.shape());
    assertEquals(4, shapes.size());
    String p = "base_model.model.layers.1.self_attn.q_proj.";
    assertArrayEquals(new long[] {4, 8}, shapes.get(p + "lora_A.weight"));
    assertArrayEquals(new long[] {6, 4}, shapes.get(p + "lora_B.weight"));
    assertTrue(peft.whyNotUsable("adapter_model").contains("is a LoRA adapter"));
  }

  @Test
  void mismatchedShapesNameBothAdaptersAndFiles() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> load("bad-shape"));
    assertTrue(e.getMessage().matches("adapter 'wide' \\(.*bad-shape/wide.npy\\) has shape \\[8, 7\\]"
        + " but adapter 'ok' \\(.*bad-shape/ok.safetensors:weight\\) has \\[8, 6\\]: all adapters"
        + " in .* must share one shape"), e.getMessage());
  }

  @Test
  void badFilesAreClearErrors(@TempDir Path dir) {
    byte[] good = AdapterFiles.safetensors(Map.of("w", new float[6]), Map.of("w", new long[] {2, 3}));
    assertEquals("safetensors file f.safetensors: tensor 'w' has data_offsets [0, 24] outside the"
        + " 20 data bytes", assertThrows(IllegalArgumentException.class, () -> SafetensorsReader
            .read("f.safetensors", java.util.Arrays.copyOf(good, good.length - 4))).getMessage());
    String header = "{\"w\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    ByteBuffer b = ByteBuffer.allocate(8 + header.length() + 4).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(header.length()).put(header.getBytes(StandardCharsets.UTF_8)).putInt(7);
    assertEquals("safetensors file f.safetensors: tensor 'w' has dtype I32; adapters must be F32,"
        + " F16, BF16 or F64", assertThrows(IllegalArgumentException.class,
            () -> SafetensorsReader.read("f.safetensors", b.array())).getMessage());
    byte[] npy = AdapterFiles.npy(new float[4], 2, 2);
    byte[] bigEndian = new String(npy, StandardCharsets.ISO_8859_1).replace("'<f4'", "'>f4'")
        .getBytes(StandardCharsets.ISO_8859_1);
    assertTrue(assertThrows(IllegalArgumentException.class, () -> NpyReader.read("g.npy", bigEndian))
        .getMessage().startsWith(".npy file g.npy has dtype '>f4'; adapters must be little-endian"));
    assertEquals("no adapters under " + dir.toUri() + ": expected .safetensors or .npy files",
        assertThrows(IllegalArgumentException.class, () -> AdapterStore.load(dir.toUri().toString(),
            false, new Configuration())).getMessage());
  }

  @Test
  void javaWriterMatchesNumpyAndSafetensorsBytes() throws IOException {
    for (Expected e : expected()) {
      if (e.file().equals("basic/17.npy")) {
        assertArrayEquals(Files.readAllBytes(FIXTURES.resolve(e.file())), AdapterFiles.npy(e.values(), e.shape()));
      }
      if (e.file().equals("basic/alpha.safetensors")) {
        assertArrayEquals(Files.readAllBytes(FIXTURES.resolve(e.file())),
            AdapterFiles.safetensors(Map.of("weight", e.values()), Map.of("weight", e.shape())));
      }
    }
  }

  @Test
  void roundedWeightsAreValuesOfTheDtype() throws IOException {
    AdapterStore basic = load("basic");
    float[] w = basic.weight(0);
    float[] r = basic.roundedWeight(0, DType.FLOAT16);
    for (int i = 0; i < w.length; i++) assertEquals(DType.FLOAT16.round(w[i]), r[i]);
    assertTrue(basic.roundedWeight(0, DType.FLOAT32) == w, "float32 needs no copy");
  }
}
