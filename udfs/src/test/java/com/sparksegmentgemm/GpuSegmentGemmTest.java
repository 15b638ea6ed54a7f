package com.sparksegmentgemm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import ai.rapids.cudf.Cuda;
import ai.rapids.cudf.DeviceMemoryBuffer;
import ai.rapids.cudf.HostMemoryBuffer;
import com.sparksegmentgemm.nativelib.DType;
import com.sparksegmentgemm.nativelib.Gpu;
import com.sparksegmentgemm.nativelib.GpuRequirement;
import com.sparksegmentgemm.nativelib.SegmentGemmException;
import com.sparksegmentgemm.nativelib.SegmentGemmNative;
import com.sparksegmentgemm.nativelib.Status;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The native library loaded from the jar through JNI, on a real GPU, against the double-precision
 * reference and the CPU path. Skips, saying why, where there is no usable GPU.
 */
class GpuSegmentGemmTest {
  private static SegmentGemm gemm;

  @BeforeAll
  static void gpu() {
    Gpu.unavailableReason().ifPresentOrElse(
        r -> System.out.println("GpuSegmentGemmTest: every test SKIPPED, no usable CUDA GPU here (" + r + ")"),
        () -> {
          System.out.println("GpuSegmentGemmTest on " + SegmentGemmNative.deviceQuery(0));
          gemm = new SegmentGemm();
        });
  }

  /** Per test, so that each one is reported as skipped (a class-level skip counts none). */
  @BeforeEach
  void requireGpu() {
    GpuRequirement.assumeGpu();
  }

  @AfterAll
  static void close() {
    if (gemm != null) gemm.close();
  }

  private static void check(SegmentGemmInput in, String what) {
    float[] gpu = gemm.run(in);
    Reference.assertClose(in, gpu, "GPU " + what);
    Reference.assertClose(in, CpuSegmentGemm.run(in), "CPU " + what);
  }

  @ParameterizedTest
  @EnumSource(DType.class)
  void documentationExample(DType dtype) {
    check(Reference.docExample(dtype, false, 7), "doc example " + dtype);
    check(Reference.docExample(dtype, true, 8), "doc example with weight_indices " + dtype);
  }

  @ParameterizedTest
  @EnumSource(DType.class)
  void randomRaggedCases(DType dtype) {
    Random rnd = new Random(1000 + dtype.ordinal());
    for (int c = 0; c < 12; c++) {
      boolean aligned = c % 2 == 0;
      int dIn = aligned ? 16 * (1 + rnd.nextInt(16)) : 1 + rnd.nextInt(300);
      int dOut = aligned ? 16 * (1 + rnd.nextInt(16)) : 1 + rnd.nextInt(300);
      check(Reference.random(rnd, dtype, 1 + rnd.nextInt(30), rnd.nextInt(150), dIn, dOut,
          1 + rnd.nextInt(8), rnd.nextBoolean(), rnd.nextBoolean(), rnd.nextBoolean()),
          dtype + " case " + c);
    }
  }

  /** The Javadoc example of SegmentGemm: caller's float workspace, DeviceTensor in and out. */
  @ParameterizedTest
  @EnumSource(DType.class)
  void deviceTensorRunOverACallersWorkspace(DType dtype) {
    SegmentGemmInput in = Reference.docExample(dtype, false, 12);
    try (DeviceMemoryBuffer ws = DeviceMemoryBuffer.allocate(128L << 20);
         SegmentGemm g = new SegmentGemm(ws, SegmentGemm.Backend.AUTO);
         DeviceTensor x = DeviceTensor.fromHost(new HostTensor(dtype, in.x(), 10, 128));
         DeviceTensor w = DeviceTensor.fromHost(new HostTensor(dtype, in.weights(), 4, 256, 128));
         DeviceTensor segLens = DeviceTensor.fromLongs(1, 2, 3, 4);
         DeviceTensor y = g.run(x, w, 4, true, segLens, null, null, Cuda.DEFAULT_STREAM);
         DeviceTensor given = DeviceTensor.allocate(TensorType.of(dtype), 10, 256)) {
      Reference.assertClose(in, y.toHost().values(), "new output " + dtype);
      g.run(x, w, 4, true, segLens, null, null, given, Cuda.DEFAULT_STREAM);
      Reference.assertClose(in, given.toHost().values(), "given output " + dtype);
      System.out.println("plan for the doc example, " + dtype + ": "
          + g.describePlan(x, w, 4, true, segLens, null, null, given));
      assertEquals("out must be a " + TensorType.of(dtype) + " tensor of shape [10, 256], not DeviceTensor["
          + TensorType.of(dtype) + " [10, 128]]", assertThrows(IllegalArgumentException.class,
              () -> g.run(x, w, 4, true, segLens, null, null, x, Cuda.DEFAULT_STREAM)).getMessage());
    }
  }

  @Test
  void tooSmallCallerWorkspaceFailsWithTheNativeMessage() {
    // 4 segments of 512 rows, 128 -> 256: too big for the small-call kernel, which needs no
    // float workspace; the values are never read, both calls fail before anything is enqueued.
    long need = SegmentGemmNative.workspaceSize(DType.BFLOAT16, 2048, 128, 256, 4, 4, false).floatBytes();
    assumeTrue(need > 0, "this build's kernels need no float workspace (portable only)");
    try (DeviceMemoryBuffer ws = DeviceMemoryBuffer.allocate(need / 2);
         SegmentGemm sized = new SegmentGemm();
         SegmentGemm g = new SegmentGemm(ws, SegmentGemm.Backend.AUTO);
         DeviceTensor x = DeviceTensor.allocate(TensorType.BFLOAT16, 2048, 128);
         DeviceTensor w = DeviceTensor.allocate(TensorType.BFLOAT16, 4, 256, 128);
         DeviceTensor segLens = DeviceTensor.fromLongs(512, 512, 512, 512);
         DeviceTensor y = DeviceTensor.allocate(TensorType.BFLOAT16, 2048, 256)) {
      // The plan on a workspace that fits says which kernel family this device runs.
      String plan = sized.describePlan(x, w, 4, true, segLens, null, null, y);
      assumeTrue(!plan.startsWith("portable"), "the portable kernel needs no float workspace: " + plan);
      // With half the workspace, planning and running fail alike, before anything is enqueued.
      for (Executable call : new Executable[] {
          () -> g.describePlan(x, w, 4, true, segLens, null, null, y),
          () -> g.run(x, w, 4, true, segLens, null, null, y, Cuda.DEFAULT_STREAM)}) {
        SegmentGemmException e = assertThrows(SegmentGemmException.class, call);
        assertEquals(Status.WORKSPACE_TOO_SMALL, e.status());
        assertTrue(e.getMessage().contains(need + " bytes needed"), e.getMessage());
      }
    }
  }

  @Test
  void manySegments() {
    Random rnd = new Random(5);
    check(Reference.random(rnd, DType.BFLOAT16, 100_000, 3, 24, 40, 50, false, true, false),
        "100,000 segments");
    check(Reference.random(rnd, DType.FLOAT16, 1, 5000, 64, 72, 1, true, false, true),
        "one long segment");
  }

  @Test
  void outputIsOverwrittenAndBadSegmentsAreReported() {
    Cuda.Stream s = Cuda.DEFAULT_STREAM;
    // x: 4 x 2 ones; W0 = W1 = all ones (d_in 2, d_out 3): every y element is 2.
    try (DeviceMemoryBuffer x = upload(ones(8), DType.FLOAT16);
         DeviceMemoryBuffer w = upload(ones(12), DType.FLOAT16);
         DeviceMemoryBuffer y = DeviceMemoryBuffer.allocate(4 * 3 * 2);
         DeviceMemoryBuffer goodLens = upload(new long[] {4, 0});
         DeviceMemoryBuffer negative = upload(new long[] {4, -1});
         DeviceMemoryBuffer short3 = upload(new long[] {3, 0});
         DeviceMemoryBuffer badIndptr = upload(new long[] {0, 3, 2});
         DeviceMemoryBuffer idx = upload(new long[] {0, 2})) {
      poison(y);
      gemm.run(DType.FLOAT16, x, 4, 2, 3, w, 2, false, y, 2, goodLens, null, null, s);
      for (short v : download(y)) assertEquals(0x4000, v & 0xffff, "y = 2.0 everywhere, not y + 2");

      String[][] cases = {
          {"seg_lens[1] = -1 is negative"},
          {"the segments cover 3 rows but x has 4 rows"},
          {"seg_indptr is not monotone: seg_indptr[1] = 3 > seg_indptr[2] = 2"},
          {"weight_indices[1] = 2 is out of range [0, num_weights)"}};
      DeviceMemoryBuffer[][] args = {{negative, null, null}, {short3, null, null},
          {null, badIndptr, null}, {goodLens, null, idx}};
      for (int c = 0; c < cases.length; c++) {
        poison(y);
        DeviceMemoryBuffer[] a = args[c];
        SegmentGemmException e = assertThrows(SegmentGemmException.class, () -> gemm.run(
            DType.FLOAT16, x, 4, 2, 3, w, 2, false, y, 2, a[0], a[1], a[2], s));
        assertEquals(Status.INVALID_ARGUMENT, e.status());
        assertTrue(e.getMessage().contains(cases[c][0]), e.getMessage());
        for (short v : download(y)) assertEquals((short) 0x7e00, v, "a rejected call writes nothing");
      }
      // The handle is usable after an error, and the error does not stick.
      gemm.run(DType.FLOAT16, x, 4, 2, 3, w, 2, false, y, 2, goodLens, null, null, s);
      for (short v : download(y)) assertEquals(0x4000, v & 0xffff);
    }
  }

  private static DeviceMemoryBuffer upload(float[] values, DType dtype) {
    try (HostMemoryBuffer h = HostMemoryBuffer.allocate((long) values.length * dtype.bytes())) {
      h.setShorts(0, dtype.toBits(values), 0, values.length);
      return toDevice(h);
    }
  }

  private static DeviceMemoryBuffer upload(long[] values) {
    try (HostMemoryBuffer h = HostMemoryBuffer.allocate(8L * values.length)) {
      h.setLongs(0, values, 0, values.length);
      return toDevice(h);
    }
  }

  private static DeviceMemoryBuffer toDevice(HostMemoryBuffer h) {
    DeviceMemoryBuffer d = DeviceMemoryBuffer.allocate(h.getLength());
    d.copyFromHostBuffer(h);
    return d;
  }

  private static float[] ones(int n) {
    float[] v = new float[n];
    java.util.Arrays.fill(v, 1f);
    return v;
  }

  private static void poison(DeviceMemoryBuffer y) {
    short[] nan = new short[(int) (y.getLength() / 2)];
    java.util.Arrays.fill(nan, (short) 0x7e00);
    try (HostMemoryBuffer h = HostMemoryBuffer.allocate(y.getLength())) {
      h.setShorts(0, nan, 0, nan.length);
      y.copyFromHostBuffer(h);
    }
  }

  private static short[] download(DeviceMemoryBuffer d) {
    try (HostMemoryBuffer h = HostMemoryBuffer.allocate(d.getLength())) {
      h.copyFromDeviceBuffer(d);
      short[] out = new short[(int) (d.getLength() / 2)];
      for (int i = 0; i < out.length; i++) out[i] = h.getShort(2L * i);
      return out;
    }
  }
}
