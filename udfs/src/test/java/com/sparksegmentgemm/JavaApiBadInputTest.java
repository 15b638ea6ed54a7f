package com.sparksegmentgemm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.sparksegmentgemm.nativelib.DType;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Named;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The Java API's part of the bad-input suite (issue 13): each bad call to
 * {@link SegmentGemm#run(HostTensor, HostTensor, long, boolean, long[], long[], long[])} is an
 * IllegalArgumentException whose one-line message names the field, index and value at fault.
 * Here on {@link SegmentGemm.Backend#CPU}; the cases are what the native path's checks must
 * answer the same way.
 */
class JavaApiBadInputTest {
  private static final DType F32 = DType.FLOAT32;

  /** x (rows, 2) and weights (n, 2, 3), float32 unless said otherwise. */
  private static HostTensor x(int rows) {
    return new HostTensor(F32, new float[rows * 2], rows, 2);
  }

  private static HostTensor w(int n) {
    return new HostTensor(F32, new float[n * 6], n, 2, 3);
  }

  private record Call(HostTensor x, HostTensor w, long batch, long[] segLens, long[] segIndptr,
      long[] weightIndices) {}

  static Stream<Arguments> cases() {
    return Stream.of(
        bad("x and weights of different dtypes", () -> new Call(x(3),
            new HostTensor(DType.BFLOAT16, new float[12], 2, 2, 3), 1, new long[] {3}, null, null),
            "x is FLOAT32 but weights are BFLOAT16"),
        bad("x not 2-D", () -> new Call(new HostTensor(F32, new float[6], 6), w(1), 1,
            new long[] {6}, null, null), "x must be 2-D (rows, d_in)"),
        bad("weights not 3-D", () -> new Call(x(3), new HostTensor(F32, new float[6], 2, 3), 1,
            new long[] {3}, null, null), "weights must be 3-D (num_weights, d_in, d_out)"),
        bad("x's d_in differs from the weights'", () -> new Call(
            new HostTensor(F32, new float[9], 3, 3), w(1), 1, new long[] {3}, null, null),
            "x has d_in = 3 but weights HostTensor[FLOAT32 [1, 2, 3]] have d_in = 2"),
        bad("weight index out of range", () -> new Call(x(3), w(2), 2, new long[] {1, 2}, null,
            new long[] {0, 2}), "weight_indices[1] = 2 is out of range [0, 2)"),
        bad("negative weight index", () -> new Call(x(3), w(2), 2, new long[] {1, 2}, null,
            new long[] {-1, 0}), "weight_indices[0] = -1 is out of range [0, 2)"),
        bad("weight_indices of the wrong length", () -> new Call(x(3), w(2), 2,
            new long[] {1, 2}, null, new long[] {0}), "weight_indices has 1 entries but batch_size = 2"),
        bad("seg_indptr not monotone", () -> new Call(x(3), w(2), 2, null, new long[] {0, 3, 2},
            null), "seg_indptr is not monotone: seg_indptr[1] = 3 > seg_indptr[2] = 2"),
        bad("seg_indptr not ending at the row count", () -> new Call(x(3), w(2), 2, null,
            new long[] {0, 1, 2}, null), "the segments cover 2 rows but x has 3 rows"),
        bad("seg_indptr not starting at 0", () -> new Call(x(3), w(2), 2, null,
            new long[] {1, 2, 3}, null), "seg_indptr[0] = 1 but must be 0"),
        bad("seg_lens negative", () -> new Call(x(3), w(2), 2, new long[] {-1, 4}, null, null),
            "seg_lens[0] = -1 is negative"),
        bad("rows x d_out beyond 32-bit sizes", () -> new Call(
            new HostTensor(F32, new float[0], 1L << 20, 0),
            new HostTensor(F32, new float[0], 1, 0, 1L << 12), 1, new long[] {1L << 20}, null,
            null), "x_rows * d_out = 1048576 * 4096 = 4294967296 output values exceed one Java "
            + "array"));
  }

  private static Arguments bad(String name, Supplier<Call> call, String message) {
    return Arguments.of(Named.of(name, call), message);
  }

  @ParameterizedTest
  @MethodSource("cases")
  void aBadCallIsAOneLineErrorNamingTheField(Supplier<Call> call, String message) {
    Call c = call.get();
    try (SegmentGemm gemm = new SegmentGemm(SegmentGemm.Backend.CPU)) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> gemm.run(
          c.x(), c.w(), c.batch(), false, c.segLens(), c.segIndptr(), c.weightIndices()));
      assertEquals(true, e.getMessage().startsWith(message), e.getMessage());
      assertEquals(-1, e.getMessage().indexOf('\n'), "one line: " + e.getMessage());
    }
  }
}
