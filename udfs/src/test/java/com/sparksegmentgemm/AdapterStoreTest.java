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
    return load(FIXTURES.resolve(sub));
  }

  /** The adapters under dir, row-major, with a default Hadoop configuration. */
  private static AdapterStore load(Path dir) throws IOException {
    return AdapterStore.load(dir.toUri().toString(), false, new Configuration());
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
    assertEquals(List.of("17", "alpha", "beta", "delta", "epsilon", "gamma", "zeta"), basic.dense().ids());
    assertEquals(8, basic.dense().dIn());
    assertEquals(6, basic.dense().dOut());
    Map<String, float[]> byFile = new HashMap<>();
    for (Expected e : expected()) byFile.put(e.file() + ":" + e.tensor(), e.values());
    assertArrayEquals(byFile.get("basic/beta.safetensors:weight"), basic.dense().weight(basic.dense().indexOf("beta"), 0));
    assertArrayEquals(byFile.get("basic/zeta.npy:"), basic.dense().weight(basic.dense().indexOf("zeta"), 0),
        "a Fortran-ordered .npy comes back row-major");
    assertEquals(-1, basic.dense().indexOf("omega"));
    assertTrue(basic.dense().whyNotUsable("omega").startsWith("unknown adapter 'omega': "), basic.dense().whyNotUsable("omega"));

    AdapterStore multi = load("multi");
    assertEquals(List.of("tenant_0", "tenant_1", "tenant_2"), multi.dense().ids());
    assertArrayEquals(byFile.get("multi/tenants.safetensors:tenant_1"), multi.dense().weight(1, 0));

    // Column-major: the same files read as (d_out, d_in).
    AdapterStore transposed = AdapterStore.load(FIXTURES.resolve("basic").toUri().toString(), true,
        new Configuration());
    assertEquals(6, transposed.dense().dIn());
    assertEquals(8, transposed.dense().dOut());
  }

  /**
   * PEFT's defaults and patterns (huggingface/peft LoraConfig and LoraModel): absent r and
   * lora_alpha are 8, rank_pattern and alpha_pattern override them per module, and a loose LoRA
   * file (no config) scales by 8 / rank.
   */
  @Test
  void peftDefaultsAndRankPatternsAreFollowed(@TempDir Path tmp) throws IOException {
    Map<String, AdapterFiles.Lora> w = AdapterFiles.writeLora(tmp, new java.util.Random(12), 1, 6,
        4, 2);
    Path config = tmp.resolve("l0/adapter_config.json");
    float b00 = w.get("l0").b()[0];
    // r absent: 8, which the rank-2 tensors contradict, unless rank_pattern says 2.
    Files.writeString(config, "{\"lora_alpha\": 4}");
    IllegalArgumentException r8 = assertThrows(IllegalArgumentException.class,
        () -> load(tmp).lora(""));
    assertTrue(r8.getMessage().contains("adapter_config.json gives r = 8 for module "
        + "base_model.model.layers.0.mlp.down_proj but its lora_A/lora_B tensors have rank 2"),
        r8.getMessage());
    Files.writeString(config, "{\"rank_pattern\": {\"down_proj\": 2}, \"alpha_pattern\": "
        + "{\"q_proj\": 100}}");
    AdapterWeights lora = load(tmp).lora("");
    assertEquals((float) (b00 * 8 / 2.0), lora.weight(0, 1)[0], "lora_alpha absent: 8");
    Files.writeString(config, "{\"r\": 2, \"lora_alpha\": \"four\"}");
    IllegalArgumentException text = assertThrows(IllegalArgumentException.class,
        () -> load(tmp).lora(""));
    assertTrue(text.getMessage().endsWith("adapter_config.json has lora_alpha = \"four\"; it must "
        + "be a positive number (PEFT's default 8 applies only when it is absent)"),
        text.getMessage());
    // A loose file: no config, PEFT's default lora_alpha 8 over the tensors' rank.
    Files.move(tmp.resolve("l0/adapter_model.safetensors"), tmp.resolve("loose.safetensors"));
    Files.delete(config);
    Files.delete(tmp.resolve("l0"));
    AdapterWeights loose = load(tmp).lora("");
    assertEquals(List.of("loose"), loose.ids());
    assertEquals((float) (b00 * 8 / 2.0), loose.weight(0, 1)[0]);
  }

  @Test
  void peftLoraFileKeepsBothTensorsNamesAndShapes() throws IOException {
    AdapterStore peft = load("peft");
    assertEquals(0, peft.dense().size(), "a LoRA adapter is not a dense weight");
    AdapterStore.Adapter a = peft.adapter("adapter_model").orElseThrow();
    assertEquals(AdapterStore.Kind.LORA, a.kind());
    Map<String, long[]> shapes = new HashMap<>();
    for (AdapterTensor t : a.tensors()) shapes.put(t.name(), t.shape());
    assertEquals(4, shapes.size());
    String p = "base_model.model.layers.1.self_attn.q_proj.";
    assertArrayEquals(new long[] {4, 8}, shapes.get(p + "lora_A.weight"));
    assertArrayEquals(new long[] {6, 4}, shapes.get(p + "lora_B.weight"));
    assertTrue(peft.dense().whyNotUsable("adapter_model").contains("is a LoRA adapter"));
  }

  @Test
  void peftFoldersBecomeLoraStagesPaddedToTheHighestRankAndScaled(@TempDir Path tmp)
      throws IOException {
    Map<String, AdapterFiles.Lora> written = AdapterFiles.writeLora(tmp, new java.util.Random(7),
        3, 10, 6, 4, 2);
    AdapterStore store = load(tmp);
    assertEquals(0, store.dense().size());
    AdapterWeights w = store.lora("");
    assertEquals(AdapterWeights.Function.LORA_APPLY, w.function());
    assertEquals(List.of("l0", "l1", "l2"), w.ids());
    assertEquals(10, w.dIn());
    assertEquals(6, w.dOut());
    assertEquals(2, w.stages().size());
    assertEquals(new AdapterWeights.Stage(10, 4, true, null).dOut(), w.stages().get(0).dOut());
    assertTrue(w.stages().get(0).columnMajor() && w.stages().get(1).columnMajor());
    // l1 has rank 2: A padded with zero rows, B with zero columns, B scaled by lora_alpha / r.
    AdapterFiles.Lora l1 = written.get("l1");
    float[] a = w.weight(1, 0);
    float[] b = w.weight(1, 1);
    assertEquals(4 * 10, a.length);
    for (int i = 0; i < 2 * 10; i++) assertEquals(l1.a()[i], a[i]);
    for (int i = 2 * 10; i < 4 * 10; i++) assertEquals(0f, a[i]);
    for (int o = 0; o < 6; o++) {
      for (int j = 0; j < 4; j++) {
        float expected = j < 2 ? (float) (l1.b()[o * 2 + j] * l1.scaling()) : 0f;
        assertEquals(expected, b[o * 4 + j]);
      }
    }
    assertEquals(2.5, l1.scaling());  // lora_alpha 2 r + 1 = 5, r = 2
    assertTrue(store.lora("down_proj") == store.lora("down_proj"), "built once per module");
    assertEquals(w.ids(), store.lora("layers.0.mlp.down_proj").ids());
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> store.lora("q_proj"));
    assertTrue(e.getMessage().startsWith("LoRA adapter 'l0' in " + tmp.toUri() + " has no modules "
        + "matching spark.segmentgemm.lora.module = 'q_proj'; its modules: "
        + "base_model.model.layers.0.mlp.down_proj"), e.getMessage());
    assertTrue(w.whyNotUsable("zz").startsWith("unknown adapter 'zz': "));
  }

  @Test
  void loraVariantsThatAreNotPlainLoraAreRefusedAndAlphaPatternsApply(@TempDir Path tmp)
      throws IOException {
    Map<String, AdapterFiles.Lora> w = AdapterFiles.writeLora(tmp, new java.util.Random(8), 2, 6,
        4, 2);
    Path config = tmp.resolve("l0/adapter_config.json");
    // alpha_pattern keys are regular expressions on the module name's tail, as in PEFT.
    Files.writeString(config, "{\"r\": 2, \"lora_alpha\": 4, \"alpha_pattern\": "
        + "{\"mlp\\\\.down_.*\": 10}}");
    AdapterWeights lora = load(tmp).lora("");
    float b00 = w.get("l0").b()[0];
    assertEquals((float) (b00 * 10 / 2.0), lora.weight(0, 1)[0]);
    Files.writeString(config, "{\"r\": 2, \"lora_alpha\": 4, \"use_dora\": true}");
    IllegalArgumentException dora = assertThrows(IllegalArgumentException.class,
        () -> load(tmp).lora(""));
    assertTrue(dora.getMessage().contains("sets use_dora in its adapter_config.json"),
        dora.getMessage());
    String m = "base_model.model.layers.0.mlp.down_proj.";
    Files.write(tmp.resolve("l0/adapter_model.safetensors"), SafetensorsWriter.write(
        Map.of(m + "lora_A.weight", w.get("l0").a(), m + "lora_B.weight", w.get("l0").b(),
            m + "lora_B.bias", new float[4]),
        Map.of(m + "lora_A.weight", new long[] {2, 6}, m + "lora_B.weight", new long[] {4, 2},
            m + "lora_B.bias", new long[] {4})));
    Files.writeString(config, "{\"r\": 2, \"lora_alpha\": 4}");
    IllegalArgumentException bias = assertThrows(IllegalArgumentException.class,
        () -> load(tmp).lora(""));
    assertTrue(bias.getMessage().contains("lora_B.bias beside lora_A/lora_B"), bias.getMessage());
  }

  @Test
  void aLoraFileWithSeveralModulesNeedsTheModuleNamed() throws IOException {
    AdapterStore peft = load("peft");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> peft.lora(""));
    assertTrue(e.getMessage().contains("has 2 modules matching spark.segmentgemm.lora.module = ''"),
        e.getMessage());
    AdapterWeights w = peft.lora("layers.1.self_attn.q_proj");
    assertEquals(List.of("adapter_model"), w.ids());
    assertEquals(8, w.dIn());
    assertEquals(6, w.dOut());
    assertEquals(4, w.stages().get(0).dOut());
    assertTrue(w.whyNotUsable("zeta") == null || !w.whyNotUsable("zeta").isEmpty());
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
    byte[] good = SafetensorsWriter.write(Map.of("w", new float[6]), Map.of("w", new long[] {2, 3}));
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
    assertEquals("no adapters under " + dir.toUri() + ": expected .safetensors or .npy files, or PEFT adapter folders",
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
            SafetensorsWriter.write(Map.of("weight", e.values()), Map.of("weight", e.shape())));
      }
    }
  }

  @Test
  void roundedWeightsAreValuesOfTheDtype() throws IOException {
    AdapterStore basic = load("basic");
    float[] w = basic.dense().weight(0, 0);
    float[] r = basic.dense().rounded(0, 0, DType.FLOAT16);
    for (int i = 0; i < w.length; i++) assertEquals(DType.FLOAT16.round(w[i]), r[i]);
    assertTrue(basic.dense().rounded(0, 0, DType.FLOAT32) == w, "float32 needs no copy");
  }
}
