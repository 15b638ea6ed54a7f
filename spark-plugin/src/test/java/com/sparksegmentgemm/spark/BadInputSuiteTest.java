package com.sparksegmentgemm.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sparksegmentgemm.SafetensorsWriter;
import com.sparksegmentgemm.SegmentGemmMetrics;
import com.sparksegmentgemm.TestReference;
import com.sparksegmentgemm.nativelib.DType;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.function.Function;
import java.util.stream.Stream;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Named;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The bad-input suite of issue 13: each case sets up an input table, adapters and flags, runs
 * the job's entry point ({@link SegmentGemmJob#execute}, on the shared session) and asserts its
 * outcome: exit code 0 with every row equal to the double-precision reference (or the
 * documented null row), or exit code 2/3 with ONE line on stderr holding the given words and
 * every file of the case (input, adapters, the output: absent or the previous one) exactly as
 * it was before, with no staging folder left beside the output.
 *
 * <p>Nothing here assumes the CPU path: the same class runs under the RAPIDS Accelerator on a
 * GPU machine, where each case must give the same outcome.
 */
class BadInputSuiteTest extends SharedSessionTest {
  /**
   * Set (true) by the GPU check when it runs this suite through spark-submit under the RAPIDS
   * Accelerator: then the rows the cases computed must all have run on the GPU, or the suite
   * would pass on a CPU fallback.
   */
  static final String UNDER_RAPIDS = "segmentgemm.test.rapids";

  @TempDir
  static Path root;

  @AfterAll
  static void underRapidsEveryRowRanOnTheGpu() {
    if (!Boolean.getBoolean(UNDER_RAPIDS)) return;
    SegmentGemmMetrics.Snapshot m = SegmentGemmMetrics.snapshot();
    // CPU rows are expected too: after a task fails on a bad row, the job finds that row with
    // the row UDF on the CPU (SegmentGemmJob.firstBadRow); each case that computes checks
    // its own summary (see reference()).
    System.out.println("BadInputSuiteTest under the RAPIDS Accelerator: " + m.gpuRows()
        + " rows on the GPU, " + m.cpuRows() + " on the CPU (the bad-row searches)");
    assertTrue(m.gpuRows() > 0, "no row ran on the GPU");
  }

  static final int D_IN = 4;
  static final int D_OUT = 3;
  static final StructType SCHEMA = new StructType()
      .add("id", DataTypes.LongType)
      .add("adapter_id", DataTypes.StringType)
      .add("features", DataTypes.createArrayType(DataTypes.FloatType, true));

  /** One input row; features may hold nulls. */
  record In(long id, String adapter, List<Float> features) {}

  /** What the job printed and returned. */
  record Outcome(int code, String out, String err) {}

  /** One case's folder, adapters, input and flags. */
  static final class Fx {
    final Path dir;
    final Path adapters;
    final Path input;
    final Path output;
    final Random rnd;
    final Map<String, float[]> weights = new HashMap<>();
    final Map<String, float[][]> lora = new HashMap<>();
    final List<In> rows = new ArrayList<>();
    final List<String> flags = new ArrayList<>();
    double loraScaling;
    int loraRank;
    int inputFiles;

    Fx(Path dir) {
      this.dir = dir;
      this.adapters = dir.resolve("adapters");
      this.input = dir.resolve("in");
      this.output = dir.resolve("out");
      this.rnd = new Random(dir.getFileName().toString().hashCode());
    }

    /** n random dense adapters a0 .. a(n-1), (d_in, d_out), as .npy files. */
    Fx adapters(int n) {
      for (int a = 0; a < n; a++) npy("a" + a, TestReference.gaussian(rnd, D_IN * D_OUT), D_IN, D_OUT);
      return this;
    }

    Fx npy(String id, float[] w, long... shape) {
      weights.put(id, w);
      return write(id + ".npy", TestReference.npy(w, shape));
    }

    /** A file among the adapters. */
    Fx write(String name, byte[] content) {
      try {
        Files.createDirectories(adapters);
        Files.write(adapters.resolve(name), content);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return this;
    }

    /** A PEFT folder l0 of rank 2 with this adapter_config.json (none if null). */
    Fx peft(String config, double scaling) {
      try {
        lora.put("l0", TestReference.writePeftFolder(adapters, "l0", rnd, D_IN, D_OUT, 2, config));
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      loraRank = 2;
      loraScaling = scaling;
      return flags("--function", "lora_apply");
    }

    /** One more Parquet file of the input (a batch, a partition of its own). */
    Fx file(In... in) {
      List<Row> r = new ArrayList<>();
      for (In i : in) {
        rows.add(i);
        r.add(RowFactory.create(i.id(), i.adapter(), i.features()));
      }
      SPARK.createDataFrame(r, SCHEMA).coalesce(1).write().mode("append")
          .parquet(input.toString());
      inputFiles++;
      return this;
    }

    /** n good rows over the adapters a0 .. a(k-1), ids from first. */
    Fx good(int first, int n, int k) {
      In[] in = new In[n];
      for (int i = 0; i < n; i++) in[i] = new In(first + i, "a" + (i % k), features(D_IN));
      return file(in);
    }

    List<Float> features(int n) {
      List<Float> f = new ArrayList<>();
      for (float v : TestReference.gaussian(rnd, n)) f.add(v);
      return f;
    }

    /** The input as a CSV file of these lines (after the header). */
    Fx csv(String... lines) {
      try {
        Files.createDirectories(input);
        Files.writeString(input.resolve("part.csv"), "id,adapter_id,features\n"
            + String.join("\n", lines) + "\n");
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return flags("--input-format", "csv");
    }

    /** The input from a SQL query (for column types the In rows cannot have). */
    Fx sql(String query) {
      SPARK.sql(query).coalesce(1).write().parquet(input.toString());
      return this;
    }

    Fx flags(String... f) {
      flags.addAll(List.of(f));
      return this;
    }

    String[] args() {
      List<String> a = new ArrayList<>(List.of("--input", input.toString(), "--adapters",
          adapters.toString(), "--output", output.toString(), "--compute-dtype", "float32",
          "--progress-seconds", "0"));
      // Later flags win: a case's own --adapters or --output replaces the default.
      a.addAll(flags);
      return a.toArray(new String[0]);
    }
  }

  /** What a case checks of the outcome. */
  interface Expect {
    /** @param before every file of the case's folder (input, adapters, output) before the run */
    void check(Fx fx, Outcome o, Map<String, Long> before);
  }

  /** Exit code, one line on stderr with these words, the output path untouched. */
  static Expect fails(int code, String... words) {
    return (fx, o, before) -> {
      assertEquals(code, o.code(), "exit code; stderr: " + o.err());
      String err = o.err().strip();
      assertFalse(err.contains("\n"), "one line on stderr: " + err);
      assertTrue(err.startsWith("SegmentGemmJob: "), err);
      for (String w : words) assertTrue(err.contains(w), "'" + w + "' in: " + err);
      assertEquals(before, listing(fx.dir), "the input, adapters and output as they were");
      assertNoStaging(fx);
    };
  }

  /** Exit code 0 and every row as the reference has it (nulls for the given ids). */
  static Expect reference(Long... nullIds) {
    return (fx, o, before) -> {
      assertEquals(0, o.code(), "exit code; stderr: " + o.err());
      boolean computes = fx.rows.stream().anyMatch(in -> in.adapter() != null
          && in.features() != null && !List.of(nullIds).contains(in.id()));
      if (Boolean.getBoolean(UNDER_RAPIDS) && computes) {
        // The job's summary says where the UDF ran: "[GPU: ..." when every row it saw ran on
        // the GPU ("[CPU ...", "[GPU and CPU ...", "[no rows seen by the UDF]" otherwise).
        assertTrue(o.out().contains("[GPU:"),
            "the rows did not all run on the GPU under the RAPIDS Accelerator: " + o.out());
      }
      assertNoStaging(fx);
      Map<Long, List<Float>> got = output(fx);
      assertEquals(fx.rows.size(), got.size(), "output rows");
      List<Long> nulls = List.of(nullIds);
      for (In in : fx.rows) {
        List<Float> y = got.get(in.id());
        String what = "row " + in.id();
        if (in.adapter() == null || in.features() == null || nulls.contains(in.id())) {
          assertNull(y, what + ": a null row");
        } else if (fx.lora.isEmpty()) {
          TestReference.assertRowClose(in.features(), fx.weights.get(in.adapter()), D_IN, D_OUT,
              DType.FLOAT32, unboxed(y), what);
        } else {
          float[][] ab = fx.lora.get(in.adapter());
          TestReference.assertLoraRowClose(in.features(), unboxed(y), ab[0], ab[1], fx.loraRank,
              fx.loraScaling, D_IN, D_OUT, DType.FLOAT32, what);
        }
      }
    };
  }

  static Map<Long, List<Float>> output(Fx fx) {
    Map<Long, List<Float>> got = new HashMap<>();
    for (Row r : SPARK.read().parquet(fx.output.toString()).select("id", "output")
        .collectAsList()) {
      got.put(((Number) r.get(0)).longValue(), r.isNullAt(1) ? null : r.getList(1));
    }
    return got;
  }

  static float[] unboxed(List<Float> y) {
    float[] v = new float[y.size()];
    for (int i = 0; i < v.length; i++) v[i] = y.get(i);
    return v;
  }

  /** Every file under path with its size (empty when path does not exist). */
  static Map<String, Long> listing(Path path) {
    Map<String, Long> m = new TreeMap<>();
    if (!Files.exists(path)) return m;
    try (Stream<Path> s = Files.walk(path)) {
      s.filter(Files::isRegularFile).forEach(p -> {
        try {
          m.put(path.relativize(p).toString(), Files.size(p));
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      });
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return m;
  }

  static void assertNoStaging(Fx fx) {
    try (Stream<Path> s = Files.list(fx.output.getParent())) {
      List<String> left = s.map(p -> p.getFileName().toString())
          .filter(n -> n.startsWith("." + fx.output.getFileName() + ".")).toList();
      assertEquals(List.of(), left, "staging folders left beside the output");
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static Outcome run(String[] args) {
    SegmentGemmJob.Options o;
    try {
      o = SegmentGemmJob.Options.parse(args);
    } catch (IllegalArgumentException e) {
      // As SegmentGemmJob.run(String[]) answers before it starts Spark.
      return new Outcome(SegmentGemmJob.BAD_ARGUMENTS, "", "SegmentGemmJob: " + e.getMessage());
    }
    o.conf().forEach((k, v) -> SPARK.conf().set(k, v));
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int code = SegmentGemmJob.execute(SPARK, o, new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
    return new Outcome(code, out.toString(StandardCharsets.UTF_8),
        err.toString(StandardCharsets.UTF_8));
  }

  private static final Map<String, Object[]> CASES = new LinkedHashMap<>();

  private static void add(String name, Function<Fx, Fx> setup, Expect expect) {
    CASES.put(name, new Object[] {setup, expect});
  }

  private static List<Float> floats(Float... v) {
    return new ArrayList<>(Arrays.asList(v));
  }

  /** A safetensors file: this header text, then dataBytes zero bytes. */
  private static byte[] safetensors(String header, int dataBytes) {
    return safetensors(header, dataBytes, header.getBytes(StandardCharsets.UTF_8).length);
  }

  /** A safetensors file whose 8-byte length field says declaredLength. */
  private static byte[] safetensors(String header, int dataBytes, long declaredLength) {
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    return ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN)
        .putLong(declaredLength).put(h).array();
  }

  private static byte[] truncated(byte[] file, int by) {
    return Arrays.copyOf(file, file.length - by);
  }

  private static byte[] npyHeader(String header) {
    byte[] h = header.getBytes(StandardCharsets.ISO_8859_1);
    return ByteBuffer.allocate(10 + h.length + 16).order(ByteOrder.LITTLE_ENDIAN)
        .put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0}).putShort((short) h.length)
        .put(h).array();
  }

  static {
    // --- Batches and partitions: results equal to the reference.
    add("empty input", fx -> fx.adapters(2).file(), (fx, o, before) -> {
      assertEquals(0, o.code(), o.err());
      assertTrue(o.out().contains("segment_gemm: 0 rows (the input is empty; nothing computed)"),
          o.out());
      assertFalse(o.out().contains("GB/s"), "no rate for an empty job: " + o.out());
      assertEquals(0, output(fx).size());
    });
    add("an empty batch beside a full one", fx -> fx.adapters(2).file().good(0, 50, 2),
        reference());
    add("an all-null-adapter batch", fx -> fx.adapters(2)
        .file(new In(100, null, floats(1f, 2f, 3f, 4f)), new In(101, null, floats(0f, 0f, 0f, 0f)))
        .good(0, 20, 2), reference());
    add("a one-row partition", fx -> fx.adapters(3).good(0, 1, 1).good(1, 30, 3), reference());
    add("a null adapter id", fx -> fx.adapters(2).good(0, 10, 2)
        .file(new In(50, null, floats(1f, 2f, 3f, 4f)), new In(51, "a1", floats(1f, 2f, 3f, 4f))),
        reference());
    add("null features", fx -> fx.adapters(2).file(new In(0, "a0", null),
        new In(1, "a1", floats(1f, 2f, 3f, 4f))), reference());
    add("NaN and +-Inf features", fx -> fx.adapters(2).file(
        new In(0, "a0", floats(Float.NaN, 1f, 2f, 3f)),
        new In(1, "a1", floats(Float.POSITIVE_INFINITY, 0.5f, 0.25f, 1f)),
        new In(2, "a0", floats(1f, Float.NEGATIVE_INFINITY, 2f, 3f)),
        new In(3, "a1", floats(1f, 2f, 3f, 4f))), reference());
    add("all rows on one adapter", fx -> fx.adapters(3).good(0, 200, 1), reference());
    add("100,000 distinct adapters in one batch", fx -> {
      int n = 100_000;
      Map<String, float[]> values = new TreeMap<>();
      Map<String, long[]> shapes = new TreeMap<>();
      In[] in = new In[n];
      for (int a = 0; a < n; a++) {
        String id = String.format("t%06d", a);
        values.put(id, TestReference.gaussian(fx.rnd, D_IN * D_OUT));
        shapes.put(id, new long[] {D_IN, D_OUT});
        in[a] = new In(a, id, fx.features(D_IN));
      }
      fx.weights.putAll(values);
      return fx.write("many.safetensors", SafetensorsWriter.write(values, shapes)).file(in);
    }, reference());
    add("onBadRow=null: unknown adapters, wrong lengths and null values give null rows",
        fx -> fx.adapters(2).good(0, 10, 2).file(new In(20, "zz", floats(1f, 2f, 3f, 4f)),
            new In(21, "a0", floats(1f, 2f, 3f)), new In(22, "a1", floats(1f, null, 3f, 4f)),
            new In(23, "a1", floats()))
            .flags("--conf", "spark.segmentgemm.onBadRow=null"), reference(20L, 21L, 22L, 23L));

    // --- Bad rows: exit 3, one line naming the column, the row and the adapter.
    add("a null element inside features", fx -> fx.adapters(2).good(0, 10, 2)
        .file(new In(40, "a1", floats(1f, 2f, null, 4f))),
        fails(3, "column features of the row with id = 40, adapter_id = a1 in file:",
            "has a null value at index 2 for adapter 'a1'"));
    add("an empty features array", fx -> fx.adapters(2).good(0, 10, 2)
        .file(new In(41, "a0", floats())),
        fails(3, "row with id = 41", "has 0 values for adapter 'a0' but the adapters expect d_in = 4"));
    add("features one too short", fx -> fx.adapters(2).good(0, 10, 2)
        .file(new In(42, "a0", floats(1f, 2f, 3f))),
        fails(3, "row with id = 42", "has 3 values for adapter 'a0' but the adapters expect d_in = 4"));
    add("features one too long", fx -> fx.adapters(2).good(0, 10, 2)
        .file(new In(43, "a1", floats(1f, 2f, 3f, 4f, 5f))),
        fails(3, "row with id = 43", "has 5 values for adapter 'a1' but the adapters expect d_in = 4"));
    add("an unknown adapter", fx -> fx.adapters(2).good(0, 10, 2)
        .file(new In(44, "nope", floats(1f, 2f, 3f, 4f))),
        fails(3, "column adapter_id of the row with id = 44, adapter_id = nope",
            "unknown adapter 'nope'", "has 2 adapters for segment_gemm (a0, a1)"));
    add("a CSV token in Java float syntax (1.5f)", fx -> fx.adapters(1)
        .csv("1,a0,0.5;1;2;3", "2,a0,1.5f;1;2;3"),
        fails(3, "column features of the row with id = 2", "holds '1.5f', which is not a number"));
    add("a CSV token in hexadecimal float syntax (0x1p3)", fx -> fx.adapters(1)
        .csv("1,a0,0x1p3;1;2;3"), fails(3, "holds '0x1p3', which is not a number"));
    add("a garbage CSV string", fx -> fx.adapters(1).csv("1,a0,[0.5 1e-3 -.5 +2.]",
        "2,a0,hello world"), fails(3, "row with id = 2", "holds 'hello', which is not a number"));

    // --- Input columns of the wrong type.
    add("a DOUBLE adapter id column", fx -> fx.adapters(1)
        .sql("SELECT 1L AS id, 1.5D AS adapter_id, array(1f, 2f, 3f, 4f) AS features"),
        fails(3, "column 'adapter_id'", "is DOUBLE; the adapter id must be STRING, INT or LONG"));
    add("an ARRAY adapter id column", fx -> fx.adapters(1)
        .sql("SELECT 1L AS id, array('a0') AS adapter_id, array(1f, 2f, 3f, 4f) AS features"),
        fails(3, "column 'adapter_id'", "is ARRAY<STRING>; the adapter id must be"));

    // --- Adapter files.
    add("a corrupt safetensors header", fx -> fx.adapters(1).good(0, 5, 1)
        .write("bad.safetensors", safetensors("{not json at all", 0)),
        fails(3, "adapters: ", "bad.safetensors has a header that is not JSON"));
    add("a truncated safetensors file", fx -> fx.adapters(1).good(0, 5, 1).write("cut.safetensors",
        truncated(SafetensorsWriter.write(Map.of("w", new float[12]),
            Map.of("w", new long[] {4, 3})), 4)),
        fails(3, "cut.safetensors: tensor 'w' has data_offsets [0, 48] outside the 44 data bytes"));
    add("a safetensors header larger than the file", fx -> fx.adapters(1).good(0, 5, 1)
        .write("huge.safetensors", safetensors("{}", 0, 1L << 40)),
        fails(3, "huge.safetensors declares a 1099511627776-byte header but has 2 bytes"));
    add("safetensors offsets past the end", fx -> fx.adapters(1).good(0, 5, 1).write(
        "past.safetensors", safetensors("{\"w\":{\"dtype\":\"F32\",\"shape\":[4,3],"
            + "\"data_offsets\":[0,4800]}}", 48)),
        fails(3, "past.safetensors: tensor 'w' has data_offsets [0, 4800] outside the 48 data"));
    add("an adapter of the wrong dtype", fx -> fx.adapters(1).good(0, 5, 1).write(
        "ints.safetensors", safetensors("{\"w\":{\"dtype\":\"I32\",\"shape\":[4,3],"
            + "\"data_offsets\":[0,48]}}", 48)),
        fails(3, "ints.safetensors: tensor 'w' has dtype I32; adapters must be F32, F16, BF16 or F64"));
    add("an adapter of the wrong shape (3-D)", fx -> fx.adapters(1).good(0, 5, 1)
        .npy("cube", new float[24], 2, 4, 3),
        fails(3, "adapter 'cube'", "has shape [2, 4, 3]; an adapter weight must be 2-D"));
    add("adapters of mixed shapes in one folder", fx -> fx.adapters(2).good(0, 5, 1)
        .npy("wide", new float[20], 4, 5),
        fails(3, "adapter 'wide'", "has shape [4, 5] but adapter 'a0'", "must share one shape"));
    add("a .npy header with an absurd shape", fx -> fx.adapters(1).good(0, 5, 1).write(
        "absurd.npy", npyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': "
            + "(4000000000000, 4000000000000), }\n")),
        fails(3, "absurd.npy has shape (4000000000000, 4000000000000), more than 2^31 values"));
    add("missing adapters: a folder without adapter files", fx -> fx.write("README.txt",
        "nothing".getBytes(StandardCharsets.UTF_8)).good(0, 5, 1),
        fails(3, "adapters: no adapters under", "expected .safetensors or .npy files"));
    add("hidden files among the adapters are skipped", fx -> fx.adapters(2)
        .write("._a0.safetensors", "macOS resource fork".getBytes(StandardCharsets.UTF_8))
        .write("_SUCCESS", new byte[0]).good(0, 20, 2), reference());

    // --- The adapters path.
    add("an adapters path that does not exist", fx -> fx.good(0, 5, 1)
        .flags("--adapters", fx.dir.resolve("nowhere").toString()),
        fails(3, "adapters: the adapters path", "nowhere does not exist"));
    add("an adapters path that is one adapter file", fx -> {
      fx.adapters(1).good(0, 20, 1);
      return fx.flags("--adapters", fx.adapters.resolve("a0.npy").toString());
    }, reference());
    add("an adapters path that is a file of another kind", fx -> {
      fx.adapters(1).write("notes.txt", new byte[] {1}).good(0, 5, 1);
      return fx.flags("--adapters", fx.adapters.resolve("notes.txt").toString());
    }, fails(3, "notes.txt is a file but not a .safetensors or .npy file"));
    add("an adapters path that is not readable", fx -> {
      fx.adapters(1).good(0, 5, 1);
      return fx.flags("--adapters", "denied://" + fx.adapters.toAbsolutePath());
    }, fails(3, "adapters: cannot read the adapters at denied://", "Permission denied"));

    // --- PEFT folders (lora_apply).
    add("a PEFT folder without adapter_config.json", fx -> fx.peft(null, 0).good(0, 5, 1),
        fails(3, "PEFT adapter folder 'l0'", "has no adapter_config.json"));
    add("a malformed adapter_config.json", fx -> fx.peft("{\"r\": 2, ", 0).good(0, 5, 1),
        fails(3, "l0/adapter_config.json is not valid JSON"));
    add("lora_alpha missing: PEFT's default 8, scaling 8 / r", fx -> {
      fx.peft("{\"peft_type\": \"LORA\", \"r\": 2}", 4.0);
      In[] in = new In[20];
      for (int i = 0; i < in.length; i++) in[i] = new In(i, "l0", fx.features(D_IN));
      return fx.file(in);
    }, reference());
    add("lora_alpha null", fx -> fx.peft("{\"r\": 2, \"lora_alpha\": null}", 0).good(0, 5, 1),
        fails(3, "LoRA adapter 'l0'", "has lora_alpha = null; it must be a positive number"));
    add("a config r that disagrees with the tensors' rank", fx -> fx
        .peft("{\"r\": 16, \"lora_alpha\": 16}", 0).good(0, 5, 1),
        fails(3, "gives r = 16 for module", "but its lora_A/lora_B tensors have rank 2"));
    add("segment_gemm over LoRA-only adapters", fx -> fx.peft("{\"r\": 2}", 4.0).good(0, 5, 1)
        .flags("--function", "segment_gemm"),
        fails(3, "include no dense adapter for segment_gemm", "use lora_apply"));

    // --- Settings and flags: exit 2.
    add("a bad spark.segmentgemm.onBadRow", fx -> fx.adapters(1).good(0, 5, 1)
        .flags("--conf", "spark.segmentgemm.onBadRow=skip"),
        fails(2, "spark.segmentgemm.onBadRow = 'skip' is invalid: expected one of error, null"));
    add("a zero spark.segmentgemm.deviceCacheBytes", fx -> fx.adapters(1).good(0, 5, 1)
        .flags("--conf", "spark.segmentgemm.deviceCacheBytes=0"),
        fails(2, "spark.segmentgemm.deviceCacheBytes = '0' is invalid: a size must be positive"));
    add("an unknown --mode", fx -> fx.adapters(1).good(0, 5, 1).flags("--mode", "append"),
        fails(2, "--mode must be error, overwrite, not append"));
    add("a negative --progress-seconds", fx -> fx.adapters(1).good(0, 5, 1)
        .flags("--progress-seconds", "-5"), fails(2, "--progress-seconds needs a number of seconds"));
    add("--output-column equal to the features column", fx -> fx.adapters(1).good(0, 5, 1)
        .flags("--output-column", "FEATURES"),
        fails(2, "--output-column 'FEATURES' names the input's column 'features'"));

    // --- The output: never lose data.
    add("--mode overwrite with the output equal to the input", fx -> fx.adapters(1).good(0, 5, 1)
        .flags("--mode", "overwrite", "--output", fx.input.toString()),
        fails(2, "overlaps --input"));
    add("an output inside the adapters folder", fx -> fx.adapters(1).good(0, 5, 1)
        .flags("--mode", "overwrite", "--output", fx.adapters.resolve("out").toString()),
        fails(2, "overlaps the adapters path"));
    add("an output that exists under --mode error", fx -> {
      fx.adapters(1).good(0, 5, 1);
      assertEquals(0, run(fx.args()).code());
      return fx;
    }, fails(3, "already exists (--mode error)"));
    add("a failed --mode overwrite keeps the previous output", fx -> {
      fx.adapters(1).good(0, 5, 1);
      assertEquals(0, run(fx.args()).code());
      return fx.file(new In(9, "nope", floats(1f, 2f, 3f, 4f))).flags("--mode", "overwrite");
    }, fails(3, "unknown adapter 'nope'"));
    add("a failed --mode error run leaves no output; the next run succeeds", fx -> {
      fx.adapters(1).good(0, 5, 1).file(new In(9, "a0", floats(1f)));
      Outcome failed = run(fx.args());
      assertEquals(3, failed.code(), failed.err());
      assertFalse(Files.exists(fx.output), "no output folder after a failed run");
      return fx.flags("--conf", "spark.segmentgemm.onBadRow=null");
    }, reference(9L));
  }

  static Stream<Arguments> cases() {
    return CASES.entrySet().stream().map(e -> Arguments.of(Named.of(e.getKey(), e.getKey()),
        e.getValue()[0], e.getValue()[1]));
  }

  @ParameterizedTest
  @MethodSource("cases")
  void badInput(String name, Function<Fx, Fx> setup, Expect expect) {
    Fx fx = setup.apply(new Fx(root.resolve(name.replaceAll("[^A-Za-z0-9]+", "-"))));
    Map<String, Long> before = listing(fx.dir);
    Outcome o = run(fx.args());
    // The outcome in the test log, to compare the CPU and GPU paths' answers line by line.
    System.out.println("bad input: " + name + " -> exit " + o.code() + (o.err().isBlank() ? ""
        : ": " + o.err().strip()));
    expect.check(fx, o, before);
  }
}
