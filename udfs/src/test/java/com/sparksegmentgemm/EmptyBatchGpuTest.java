package com.sparksegmentgemm;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.rapids.cudf.ColumnVector;
import ai.rapids.cudf.ColumnView;
import ai.rapids.cudf.HostColumnVector;
import com.sparksegmentgemm.nativelib.DType;
import com.sparksegmentgemm.nativelib.GpuRequirement;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Batches with nothing to compute (no rows; every adapter id null; every features row null), for
 * both functions, every adapter-id type and every compute dtype: the GPU path must return the
 * declared type, LIST&lt;FLOAT32&gt; (the RAPIDS Accelerator rejects anything else for
 * ARRAY&lt;FLOAT&gt;: "expected cudf type LIST(FLOAT32) found cudf type LIST(LIST(FLOAT32))"),
 * one null row per input row, and make no native call.
 */
class EmptyBatchGpuTest {
  private static final HostColumnVector.DataType FEATURES = new HostColumnVector.ListType(true,
      new HostColumnVector.BasicType(true, ai.rapids.cudf.DType.FLOAT32));

  @TempDir static Path dir;

  @BeforeAll
  static void adapters() throws IOException {
    AdapterFiles.writeNumeric(dir.resolve("dense"), new Random(1), 4, 24, 16);
    AdapterFiles.writeLora(dir.resolve("lora"), new Random(2), 4, 24, 16, 8, 8);
  }

  @BeforeEach
  void requireGpu() {
    GpuRequirement.assumeGpu();
  }

  @AfterAll
  static void tearDown() {
    AdapterRegistry.clear();
  }

  static Stream<Arguments> cases() {
    List<Arguments> all = new ArrayList<>();
    for (AdapterWeights.Function f : AdapterWeights.Function.values()) {
      for (ai.rapids.cudf.DType idType : List.of(ai.rapids.cudf.DType.STRING,
          ai.rapids.cudf.DType.INT32, ai.rapids.cudf.DType.INT64)) {
        for (DType dtype : DType.values()) all.add(Arguments.of(f, idType, dtype));
      }
    }
    return all.stream();
  }

  @ParameterizedTest(name = "{0} {1} ids {2}")
  @MethodSource("cases")
  void nothingToComputeGivesTheDeclaredType(AdapterWeights.Function function,
      ai.rapids.cudf.DType idType, DType dtype) {
    String store = function == AdapterWeights.Function.LORA_APPLY ? "lora" : "dense";
    SegmentGemmSettings s = SegmentGemmSettings.defaults(dir.resolve(store).toUri().toString())
        .withComputeDtype(dtype);
    SegmentGemmUdf udf = new SegmentGemmUdf(s, function);
    List<Float> row = Collections.nCopies(24, 0.5f);
    // no rows
    check(udf, ids(idType, 0, false), features(0, row), 0, "no rows");
    // every adapter id null, features present
    check(udf, ids(idType, 5, true), features(5, row), 5, "null ids");
    // adapter ids present, every features row null
    check(udf, ids(idType, 3, false), features(3, null), 3, "null features");
  }

  private static void check(SegmentGemmUdf udf, ColumnVector ids, ColumnVector features,
      int rows, String what) {
    long callsBefore = SegmentGemmMetrics.snapshot().nativeCalls();
    try (ids; features; ColumnVector out = udf.evaluateColumnar(rows, ids, features)) {
      assertEquals(ai.rapids.cudf.DType.LIST, out.getType(), what);
      try (ColumnView child = out.getChildColumnView(0)) {
        assertEquals(ai.rapids.cudf.DType.FLOAT32, child.getType(), what + ": element type");
      }
      assertEquals(rows, out.getRowCount(), what + ": rows");
      assertEquals(rows, out.getNullCount(), what + ": every row null");
    }
    assertEquals(callsBefore, SegmentGemmMetrics.snapshot().nativeCalls(),
        what + ": no native call");
  }

  /** n ids of the type: adapter 0's id ("0", as writeNumeric names them), or all null. */
  private static ColumnVector ids(ai.rapids.cudf.DType type, int n, boolean allNull) {
    if (type.equals(ai.rapids.cudf.DType.STRING)) {
      return ColumnVector.fromStrings(Collections.nCopies(n, allNull ? null : "0")
          .toArray(new String[0]));
    }
    if (type.equals(ai.rapids.cudf.DType.INT32)) {
      return ColumnVector.fromBoxedInts(Collections.nCopies(n, allNull ? null : 0)
          .toArray(new Integer[0]));
    }
    return ColumnVector.fromBoxedLongs(Collections.nCopies(n, allNull ? null : 0L)
        .toArray(new Long[0]));
  }

  @SuppressWarnings("unchecked")
  private static ColumnVector features(int n, List<Float> row) {
    return ColumnVector.fromLists(FEATURES, Collections.nCopies(n, row).toArray(new List[0]));
  }
}
