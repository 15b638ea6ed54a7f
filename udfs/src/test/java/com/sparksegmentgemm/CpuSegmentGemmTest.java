package com.sparksegmentgemm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.sparksegmentgemm.nativelib.DType;
import java.util.Random;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class CpuSegmentGemmTest {

  @Test
  void handComputedCase() {
    // Two segments, rows 0-1 use W1 and row 2 uses W0 (weight_indices [1, 0]); d_in 2, d_out 3.
    float[] x = {1, 2, 3, 4, 5, 6};
    float[] w = {
        1, 0, 0, 0, 1, 0,        // W0 = [[1,0,0],[0,1,0]] (d_in x d_out, row-major)
        1, 2, 3, 4, 5, 6};       // W1 = [[1,2,3],[4,5,6]]
    SegmentGemmInput in = new SegmentGemmInput(DType.FLOAT32, x, 3, 2, 3, w, 2, false, 2,
        new long[] {2, 1}, null, new long[] {1, 0});
    float[] y = CpuSegmentGemm.run(in);
    assertArrayEquals(new float[] {
        1 + 8, 2 + 10, 3 + 12,       // [1,2] . W1
        3 + 16, 6 + 20, 9 + 24,      // [3,4] . W1
        5, 6, 0}, y);                // [5,6] . W0
  }

  @Test
  void columnMajorIsTheTransposedLayout() {
    Random rnd = new Random(1);
    SegmentGemmInput rowMajor = Reference.random(rnd, DType.FLOAT32, 5, 7, 6, 4, 3, false, true, false);
    int nw = rowMajor.numWeights(), dIn = rowMajor.dIn(), dOut = rowMajor.dOut();
    float[] t = new float[rowMajor.weights().length];
    for (int w = 0; w < nw; w++)
      for (int k = 0; k < dIn; k++)
        for (int n = 0; n < dOut; n++)
          t[(w * dOut + n) * dIn + k] = rowMajor.weights()[(w * dIn + k) * dOut + n];
    SegmentGemmInput colMajor = new SegmentGemmInput(DType.FLOAT32, rowMajor.x(), rowMajor.xRows(),
        dIn, dOut, t, nw, true, rowMajor.batchSize(), rowMajor.segLens(), null,
        rowMajor.weightIndices());
    assertArrayEquals(CpuSegmentGemm.run(rowMajor), CpuSegmentGemm.run(colMajor));
  }

  @ParameterizedTest
  @EnumSource(DType.class)
  void documentationExample(DType dtype) {
    for (boolean withIndices : new boolean[] {false, true}) {
      SegmentGemmInput in = Reference.docExample(dtype, withIndices, 42);
      float[] y = CpuSegmentGemm.run(in);
      assertEquals(10 * 256, y.length);
      Reference.assertClose(in, y, "doc example, weight_indices=" + withIndices);
    }
  }

  @ParameterizedTest
  @EnumSource(DType.class)
  void randomRaggedCases(DType dtype) {
    Random rnd = new Random(dtype.ordinal() + 100);
    for (int c = 0; c < 25; c++) {
      SegmentGemmInput in = Reference.random(rnd, dtype, 1 + rnd.nextInt(40), rnd.nextInt(20),
          1 + rnd.nextInt(70), 1 + rnd.nextInt(70), 1 + rnd.nextInt(6), rnd.nextBoolean(),
          rnd.nextBoolean(), rnd.nextBoolean());
      Reference.assertClose(in, CpuSegmentGemm.run(in), "case " + c);
    }
  }

  @ParameterizedTest
  @EnumSource(DType.class)
  void hostTwinOfRunWithTheCpuBackend(DType dtype) {
    SegmentGemmInput in = Reference.docExample(dtype, true, 11);
    HostTensor x = new HostTensor(dtype, in.x(), 10, 128);
    HostTensor w = new HostTensor(dtype, in.weights(), 4, 256, 128);  // column-major: (n, d_out, d_in)
    try (SegmentGemm gemm = new SegmentGemm(SegmentGemm.Backend.CPU)) {
      HostTensor y = gemm.run(x, w, 4, true, new long[] {1, 2, 3, 4}, null, new long[] {0, 1, 0, 1});
      assertArrayEquals(new long[] {10, 256}, y.shape());
      Reference.assertClose(in, y.values(), "host twin " + dtype);
      assertThrows(IllegalStateException.class, () -> gemm.resetWorkspaceBuffer(null));
    }
    assertEquals("x has d_in = 128 but weights HostTensor[FLOAT32 [4, 256, 100]] (column-major) have d_in = 100",
        assertThrows(IllegalArgumentException.class, () -> CpuSegmentGemm.run(
            new HostTensor(DType.FLOAT32, new float[1280], 10, 128),
            new HostTensor(DType.FLOAT32, new float[4 * 256 * 100], 4, 256, 100), 4, true,
            new long[] {1, 2, 3, 4}, null, null)).getMessage());
  }

  @Test
  void outputsAreValuesOfTheDtype() {
    SegmentGemmInput in = Reference.docExample(DType.BFLOAT16, true, 3);
    for (float v : CpuSegmentGemm.run(in)) assertEquals(DType.BFLOAT16.round(v), v);
  }

  @Test
  void emptyBatchesAndSegments() {
    SegmentGemmInput none = new SegmentGemmInput(DType.FLOAT16, new float[0], 0, 8, 4,
        new float[0], 0, false, 0, new long[0], null, null);
    assertEquals(0, CpuSegmentGemm.run(none).length);
    SegmentGemmInput zeros = new SegmentGemmInput(DType.FLOAT32, new float[] {1, 1}, 1, 2, 1,
        new float[] {1, 1, 2, 2, 3, 3}, 3, false, 3, null, new long[] {0, 0, 1, 1}, null);
    assertArrayEquals(new float[] {4}, CpuSegmentGemm.run(zeros));  // only segment 1 (W1) has a row
  }

  @Test
  void badInputNamesTheFieldIndexAndValue() {
    Function<SegmentGemmInput, String> err =
        in -> assertThrows(IllegalArgumentException.class, () -> CpuSegmentGemm.run(in)).getMessage();
    float[] x = new float[6 * 2];
    float[] w = new float[2 * 2 * 3];
    assertEquals("seg_lens[1] = -1 is negative",
        err.apply(new SegmentGemmInput(DType.FLOAT32, x, 6, 2, 3, w, 2, false, 2, new long[] {6, -1}, null, null)));
    assertEquals("seg_indptr is not monotone: seg_indptr[0] = 0 > seg_indptr[1] = -2",
        err.apply(new SegmentGemmInput(DType.FLOAT32, x, 6, 2, 3, w, 2, false, 2, null, new long[] {0, -2, 6}, null)));
    assertEquals("weight_indices[1] = 2 is out of range [0, 2)",
        err.apply(new SegmentGemmInput(DType.FLOAT32, x, 6, 2, 3, w, 2, false, 2, new long[] {3, 3}, null, new long[] {0, 2})));
    assertEquals("the segments cover 5 rows but x has 6 rows (sum of seg_lens, or seg_indptr[batch_size], must equal x_rows)",
        err.apply(new SegmentGemmInput(DType.FLOAT32, x, 6, 2, 3, w, 2, false, 2, new long[] {3, 2}, null, null)));
    assertEquals("seg_lens has 2 entries but batch_size = 3",
        err.apply(new SegmentGemmInput(DType.FLOAT32, x, 6, 2, 3, w, 2, false, 3, new long[] {3, 3}, null, new long[] {0, 0, 0})));
    assertEquals("x has 12 values but x_rows * d_in = 5 * 2 = 10",
        err.apply(new SegmentGemmInput(DType.FLOAT32, x, 5, 2, 3, w, 2, false, 2, new long[] {3, 2}, null, null)));
    assertEquals("weights have 12 values but num_weights * d_in * d_out = 2 * 2 * 4 = 16",
        err.apply(new SegmentGemmInput(DType.FLOAT32, x, 6, 2, 4, w, 2, false, 2, new long[] {3, 3}, null, null)));
    assertEquals("batch_size 3 > num_weights 2 without weight_indices (segment i uses weight i)",
        err.apply(new SegmentGemmInput(DType.FLOAT32, x, 6, 2, 3, w, 2, false, 3, new long[] {3, 3, 0}, null, null)));
  }

  @Test
  void nanAndInfinityPropagate() {
    SegmentGemmInput in = new SegmentGemmInput(DType.FLOAT32, new float[] {Float.NaN, 1, Float.POSITIVE_INFINITY, 1},
        2, 2, 1, new float[] {1, 1}, 1, false, 1, new long[] {2}, null, null);
    float[] y = CpuSegmentGemm.run(in);
    assertEquals(Float.NaN, y[0]);
    assertEquals(Float.POSITIVE_INFINITY, y[1]);
  }
}
