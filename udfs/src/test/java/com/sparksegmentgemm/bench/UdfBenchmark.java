package com.sparksegmentgemm.bench;

import ai.rapids.cudf.ColumnVector;
import ai.rapids.cudf.Cuda;
import ai.rapids.cudf.DType;
import ai.rapids.cudf.DeviceMemoryBuffer;
import ai.rapids.cudf.HostMemoryBuffer;
import ai.rapids.cudf.Scalar;
import com.sparksegmentgemm.AdapterRegistry;
import com.sparksegmentgemm.AdapterWeights;
import com.sparksegmentgemm.ColumnarSegmentGemm;
import com.sparksegmentgemm.PhaseTimes;
import com.sparksegmentgemm.SegmentGemmConf;
import com.sparksegmentgemm.SegmentGemmSettings;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Random;

/**
 * Micro-benchmark of the UDF's GPU path ({@link ColumnarSegmentGemm}, what evaluateColumnar
 * runs): rows x d_in features over a number of adapters (skewed ids), timed per phase as the
 * UDF times itself (see {@link PhaseTimes}), and in total with one stream synchronisation at the
 * end. Prints one CSV line per run.
 *
 * <pre>
 * java ... com.sparksegmentgemm.bench.UdfBenchmark [--rows 1000000] [--d-in 1024]
 *     [--d-out 1024] [--adapters 100] [--dtype bfloat16|float16|float32] [--runs 3]
 *     [--backend AUTO|SM80|SM90|PORTABLE] [--gpu-batch-bytes 8g]
 * </pre>
 */
public final class UdfBenchmark {
  private UdfBenchmark() {}

  public static void main(String[] args) throws IOException {
    Map<String, String> opt = new HashMap<>(Map.of("rows", "1000000", "d-in", "1024",
        "d-out", "1024", "adapters", "100", "dtype", "bfloat16", "runs", "3", "backend", "AUTO",
        "gpu-batch-bytes", "8g"));
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (!args[i].startsWith("--") || !opt.containsKey(args[i].substring(2))) {
        throw new IllegalArgumentException("unknown option " + args[i] + "; options: " + opt.keySet());
      }
      opt.put(args[i].substring(2), args[i + 1]);
    }
    int rows = Integer.parseInt(opt.get("rows"));
    int dIn = Integer.parseInt(opt.get("d-in"));
    int dOut = Integer.parseInt(opt.get("d-out"));
    int adapters = Integer.parseInt(opt.get("adapters"));
    int runs = Integer.parseInt(opt.get("runs"));
    Path dir = Files.createTempDirectory("segmentgemm-bench-");
    writeAdapters(dir, adapters, dIn, dOut);
    Map<String, String> conf = new HashMap<>();
    conf.put(SegmentGemmConf.ADAPTERS_PATH.key(), dir.toUri().toString());
    conf.put(SegmentGemmConf.COMPUTE_DTYPE.key(), opt.get("dtype"));
    conf.put(SegmentGemmConf.BACKEND.key(), opt.get("backend"));
    conf.put(SegmentGemmConf.GPU_BATCH_BYTES.key(), opt.get("gpu-batch-bytes"));
    conf.put(SegmentGemmConf.DEVICE_CACHE_BYTES.key(), Long.toString(
        Math.max(1L << 30, 4L * adapters * dIn * dOut)));
    SegmentGemmSettings settings = SegmentGemmConf.settings(conf);
    System.out.println("csv: rows,d_in,d_out,adapters,dtype,backend,run,native_calls,total_ms,"
        + "group_ms,gather_ms,kernel_ms,scatter_ms,rows_per_s,feature_gb_per_s");
    try (ColumnVector ids = adapterIds(rows, adapters);
         ColumnVector features = features(rows, dIn)) {
      for (int run = 0; run <= runs; run++) {  // run 0 warms up (uploads, JIT, pools)
        PhaseTimes t = new PhaseTimes();
        long start = System.nanoTime();
        try (ColumnVector out = new ColumnarSegmentGemm(settings, AdapterWeights.Function.SEGMENT_GEMM, t).evaluate(ids, features)) {
          Cuda.DEFAULT_STREAM.sync();
        }
        double s = (System.nanoTime() - start) / 1e9;
        double featureGb = (double) rows * dIn * 4 / 1e9;
        String csv = String.format(Locale.ROOT, "%d,%d,%d,%d,%s,%s,%d,%d,%.2f,%.2f,%.2f,%.2f,%.2f,%.0f,%.2f",
            rows, dIn, dOut, adapters, settings.computeDtype(), settings.backend(), run,
            t.nativeCalls(), s * 1e3, t.groupNs() / 1e6, t.gatherNs() / 1e6, t.kernelNs() / 1e6,
            t.scatterNs() / 1e6, rows / s, featureGb / s);
        System.out.println((run == 0 ? "warm-up " : "") + "csv: " + csv);
      }
    } finally {
      AdapterRegistry.clear();
    }
  }

  /** Skewed ids "a0" .. "a{n-1}" (Zipf-like, exponent 1.1), built on the host once. */
  private static ColumnVector adapterIds(int rows, int adapters) {
    double[] cdf = new double[adapters];
    double sum = 0;
    for (int i = 0; i < adapters; i++) cdf[i] = sum += Math.pow(i + 1, -1.1);
    Random rnd = new Random(1);
    String[] ids = new String[rows];
    for (int r = 0; r < rows; r++) {
      int a = java.util.Arrays.binarySearch(cdf, rnd.nextDouble() * sum);
      ids[r] = "a" + (a < 0 ? -a - 1 : a);
    }
    return ColumnVector.fromStrings(ids);
  }

  /** A LIST&lt;FLOAT&gt; column of rows x dIn random values, generated on the device. */
  private static ColumnVector features(int rows, int dIn) {
    long n = (long) rows * dIn;
    DeviceMemoryBuffer data = DeviceMemoryBuffer.allocate(n * 4);
    float[] chunk = new float[1 << 20];
    Random rnd = new Random(2);
    for (int i = 0; i < chunk.length; i++) chunk[i] = (float) rnd.nextGaussian();
    try (HostMemoryBuffer h = HostMemoryBuffer.allocate(4L * chunk.length)) {
      h.setFloats(0, chunk, 0, chunk.length);
      for (long at = 0; at < n; at += chunk.length) {
        long len = Math.min(chunk.length, n - at) * 4;
        data.copyFromHostBuffer(at * 4, h, 0, len);
      }
    }
    try (ColumnVector child = new ColumnVector(DType.FLOAT32, n, Optional.of(0L), data, null, null);
         Scalar zero = Scalar.fromInt(0);
         Scalar width = Scalar.fromInt(dIn);
         ColumnVector offsets = ColumnVector.sequence(zero, width, rows + 1)) {
      return child.makeListFromOffsets(rows, offsets);
    }
  }

  /** adapters random float32 .npy weights of shape (dIn, dOut) in dir. */
  private static void writeAdapters(Path dir, int adapters, int dIn, int dOut) throws IOException {
    Random rnd = new Random(3);
    String header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dIn + ", " + dOut + "), }\n";
    for (int a = 0; a < adapters; a++) {
      ByteBuffer b = ByteBuffer.allocate(10 + header.length() + 4 * dIn * dOut).order(ByteOrder.LITTLE_ENDIAN);
      b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0}).putShort((short) header.length());
      b.put(header.getBytes(StandardCharsets.ISO_8859_1));
      for (int i = 0; i < dIn * dOut; i++) b.putFloat((float) (rnd.nextGaussian() / Math.sqrt(dIn)));
      Files.write(dir.resolve("a" + a + ".npy"), b.array());
    }
  }
}
