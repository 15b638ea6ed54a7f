package com.sparksegmentgemm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.rapids.cudf.ColumnVector;
import ai.rapids.cudf.Cuda;
import ai.rapids.cudf.DeviceMemoryBuffer;
import ai.rapids.cudf.HostColumnVector;
import ai.rapids.cudf.HostMemoryBuffer;
import com.sparksegmentgemm.nativelib.DType;
import com.sparksegmentgemm.nativelib.Fp8;
import com.sparksegmentgemm.nativelib.Gpu;
import com.sparksegmentgemm.nativelib.GpuRequirement;
import com.sparksegmentgemm.nativelib.SegmentGemmException;
import com.sparksegmentgemm.nativelib.SegmentGemmNative;
import com.sparksegmentgemm.nativelib.Status;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The fp8 entry points through JNI on the GPU: {@link SegmentGemm#bmmFp8} (FlashInfer's
 * bmm_fp8) and the UDF with spark.segmentgemm.weightDtype=fp8e4m3, against double-precision
 * references over the dequantised operands ({@link Fp8Reference}). Needs an sm_90 GPU (H100/H200),
 * as the fp8 kernels do (elsewhere they answer UNSUPPORTED); the GPU check runs it on an H200.
 */
class GpuFp8Test {
  @TempDir static Path dir;
  private static SegmentGemm gemm;
  private static final HostColumnVector.DataType FEATURES = new HostColumnVector.ListType(true,
      new HostColumnVector.BasicType(true, ai.rapids.cudf.DType.FLOAT32));

  @BeforeAll
  static void gpu() {
    Gpu.unavailableReason().ifPresentOrElse(
        r -> System.out.println("GpuFp8Test: every test SKIPPED, no usable CUDA GPU here (" + r + ")"),
        () -> gemm = new SegmentGemm());
  }

  @BeforeEach
  void requireGpu() {
    GpuRequirement.assumeGpu();
  }

  @AfterAll
  static void close() {
    if (gemm != null) gemm.close();
    AdapterRegistry.clear();
  }

  private static boolean sm90() {
    var info = SegmentGemmNative.deviceQuery(0);
    return info.major() == 9 && info.minor() == 0;
  }

  private static DeviceMemoryBuffer device(byte[] bytes) {
    try (HostMemoryBuffer h = HostMemoryBuffer.allocate(Math.max(1, bytes.length))) {
      h.setBytes(0, bytes, 0, bytes.length);
      DeviceMemoryBuffer d = DeviceMemoryBuffer.allocate(Math.max(1, bytes.length));
      d.copyFromHostBuffer(h);
      return d;
    }
  }

  private static DeviceMemoryBuffer scalar(float v) {
    try (HostMemoryBuffer h = HostMemoryBuffer.allocate(4)) {
      h.setFloat(0, v);
      DeviceMemoryBuffer d = DeviceMemoryBuffer.allocate(4);
      d.copyFromHostBuffer(h);
      return d;
    }
  }

  private static byte[] randomCodes(Fp8 f, Random rnd, int n, float spread) {
    byte[] b = new byte[n];
    for (int i = 0; i < n; i++) b[i] = f.encode((float) rnd.nextGaussian() * spread);
    return b;
  }

  private static float[] bf16(DeviceMemoryBuffer d, int n) {
    short[] bits = new short[n];
    try (HostMemoryBuffer h = HostMemoryBuffer.allocate(2L * n)) {
      h.copyFromDeviceBuffer(d);
      for (int i = 0; i < n; i++) bits[i] = h.getShort(2L * i);
    }
    return DType.BFLOAT16.fromBits(bits);
  }

  @Test
  void bmmFp8MatchesTheDequantisedReference() {
    org.junit.jupiter.api.Assumptions.assumeTrue(sm90(), "fp8 tensor cores need an sm_90 GPU");
    int batch = 3, m = 37, n = 24, k = 64;
    Random rnd = new Random(11);
    byte[] a = randomCodes(Fp8.E4M3, rnd, batch * m * k, 20f);
    byte[] b = randomCodes(Fp8.E5M2, rnd, batch * n * k, 300f);  // (batch, n, k): k contiguous
    float sa = 0.01f, sb = 3.5f;
    try (DeviceMemoryBuffer da = device(a); DeviceMemoryBuffer db = device(b);
         DeviceMemoryBuffer dsa = scalar(sa); DeviceMemoryBuffer dsb = scalar(sb);
         DeviceMemoryBuffer d = DeviceMemoryBuffer.allocate(2L * batch * m * n)) {
      gemm.bmmFp8(Fp8.E4M3, da, Fp8.E5M2, db, dsa, dsb, DType.BFLOAT16, d, batch, m, n, k,
          Cuda.DEFAULT_STREAM);
      Cuda.DEFAULT_STREAM.sync();
      float[] y = bf16(d, batch * m * n);
      float[] av = Fp8Reference.decode(Fp8.E4M3, a, sa);
      float[] bv = Fp8Reference.decode(Fp8.E5M2, b, sb);
      for (int i = 0; i < batch; i++) {
        double[][] ref = Fp8Reference.multiplyKMajor(
            java.util.Arrays.copyOfRange(av, i * m * k, (i + 1) * m * k),
            java.util.Arrays.copyOfRange(bv, i * n * k, (i + 1) * n * k), m, n, k);
        Fp8Reference.assertClose(ref, y, i * m * n, Fp8Reference.KERNEL_TOL, "bmm_fp8 batch " + i);
      }
      // a bad size is one clear error, not a crash
      SegmentGemmException e = assertThrows(SegmentGemmException.class, () -> gemm.bmmFp8(
          Fp8.E4M3, da, Fp8.E5M2, db, dsa, dsb, DType.BFLOAT16, d, batch, m, n, 40,
          Cuda.DEFAULT_STREAM));
      assertEquals(Status.INVALID_ARGUMENT, e.status());
      assertTrue(e.getMessage().contains("k must be a multiple of 16"), e.getMessage());
    }
  }

  /** The UDF with fp8 adapters: the fp8 kernel ran, and rows match the CPU path and the reference. */
  @Test
  void udfWithFp8AdaptersRunsTheFp8KernelAndMatchesTheCpuPath() throws IOException {
    org.junit.jupiter.api.Assumptions.assumeTrue(sm90(), "fp8 tensor cores need an sm_90 GPU");
    int dIn = 64, dOut = 48;
    Path store = dir.resolve("fp8");
    Map<String, float[]> raw = AdapterFiles.writeRandom(store, new Random(5), 30, dIn, dOut);
    SegmentGemmSettings s = SegmentGemmSettings.defaults(store.toUri().toString())
        .withComputeDtype(DType.BFLOAT16).withFp8Weights(true);
    List<UdfCases.Input> rows = UdfCases.skewed(new Random(6), new ArrayList<>(raw.keySet()),
        4000, dIn, 0.03);
    AdapterWeights w = AdapterRegistry.weights(s, AdapterWeights.Function.SEGMENT_GEMM);
    PhaseTimes times = new PhaseTimes();
    SegmentGemmUdf udf = new SegmentGemmUdf(s);
    try (ColumnVector ids = ColumnVector.fromStrings(rows.stream()
             .map(r -> (String) r.adapterId()).toArray(String[]::new));
         ColumnVector features = ColumnVector.fromLists(FEATURES,
             rows.stream().map(UdfCases.Input::features).toArray(List[]::new));
         ColumnVector out = new ColumnarSegmentGemm(s, AdapterWeights.Function.SEGMENT_GEMM, times)
             .evaluate(ids, features);
         HostColumnVector h = out.copyToHost()) {
      String plan = String.join("; ", times.plans());
      assertTrue(plan.startsWith("sm90 fp8e4m3 weights"), "the fp8 kernel ran: " + plan);
      for (int r = 0; r < rows.size(); r++) {
        UdfCases.Input in = rows.get(r);
        float[] cpu = udf.call(in.adapterId(), in.features() == null ? null
            : scala.jdk.javaapi.CollectionConverters.asScala(in.features()).toSeq());
        if (in.adapterId() == null || in.features() == null) {
          assertTrue(h.isNull(r), "row " + r + ": a null input gives a null row");
          assertNull(cpu);
          continue;
        }
        float[] gpu = UdfCases.unboxed(h.getList(r));
        float[] x = new float[dIn];
        for (int i = 0; i < dIn; i++) x[i] = DType.BFLOAT16.round(in.features().get(i));
        int a = w.indexOf((String) in.adapterId());
        AdapterWeights.Fp8Matrix q = w.fp8(a, 0);
        double[][] ref = Fp8Reference.multiplyKMajor(x,
            Fp8Reference.decode(Fp8.E4M3, q.codes(), q.scale()), 1, dOut, dIn);
        // the CPU path: by the same fp8 weights, x in bf16
        Fp8Reference.assertClose(ref, cpu, 0, Fp8Reference.KERNEL_TOL, "CPU row " + r);
        // the GPU also quantises x (per native call) to e4m3
        Fp8Reference.assertClose(ref, gpu, 0, Fp8Reference.ONE_OPERAND_TOL, "GPU row " + r);
      }
    }
  }
}
