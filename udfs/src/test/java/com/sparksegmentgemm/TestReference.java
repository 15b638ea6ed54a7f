package com.sparksegmentgemm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sparksegmentgemm.nativelib.DType;
import java.util.List;
import java.util.Random;

/**
 * The fixtures and the double-precision {@link Reference} of this module's tests, public (in
 * the test jar) for spark-plugin's tests: adapter files written as numpy and PEFT write them,
 * and the checks of one output row.
 */
public final class TestReference {
  private TestReference() {}

  /** Gaussian values, as the UDF tests use. */
  public static float[] gaussian(Random rnd, int n) {
    return Reference.gaussian(rnd, n);
  }

  /** A .npy file of a float32 C-order array, as np.save writes it. */
  public static byte[] npy(float[] values, long... shape) {
    return AdapterFiles.npy(values, shape);
  }

  /**
   * One segment_gemm output row against the reference ({@code x . w}, w (d_in, d_out)
   * row-major), within the dtype's tolerance; with Inf or NaN among the features, element by
   * element: NaN where the reference is NaN, the same infinity where it is infinite.
   */
  public static void assertRowClose(List<Float> features, float[] w, int dIn, int dOut,
      DType dtype, float[] actual, String what) {
    float[] x = new float[dIn];
    boolean finite = true;
    for (int i = 0; i < dIn; i++) {
      x[i] = features.get(i);
      finite &= Float.isFinite(x[i]);
    }
    SegmentGemmInput in = new SegmentGemmInput(dtype, x, 1, dIn, dOut, w, 1, false, 1,
        new long[] {1}, null, null);
    if (finite) {
      Reference.assertClose(in, actual, what);
      return;
    }
    double[] y = Reference.compute(in)[0];
    assertEquals(dOut, actual.length, what + ": output size");
    for (int n = 0; n < dOut; n++) {
      if (Double.isNaN(y[n])) {
        assertTrue(Float.isNaN(actual[n]), what + " output " + n + ": " + actual[n] + ", not NaN");
      } else {
        assertTrue(Double.isInfinite(y[n]), what + ": a non-finite feature gives a non-finite sum");
        assertEquals(y[n], actual[n], what + " output " + n);
      }
    }
  }

  /**
   * Writes one PEFT adapter folder (id under dir: adapter_model.safetensors with one module's
   * lora_A (rank, d_in) and lora_B (d_out, rank), and config as its adapter_config.json unless
   * null); returns {A, B}.
   */
  public static float[][] writePeftFolder(java.nio.file.Path dir, String id, Random rnd, int dIn,
      int dOut, int rank, String config) throws java.io.IOException {
    String m = "base_model.model.layers.0.mlp.down_proj.";
    float[] a = Reference.gaussian(rnd, rank * dIn);
    float[] b = Reference.gaussian(rnd, dOut * rank);
    java.nio.file.Path folder = java.nio.file.Files.createDirectories(dir.resolve(id));
    java.nio.file.Files.write(folder.resolve("adapter_model.safetensors"), SafetensorsWriter.write(
        java.util.Map.of(m + "lora_A.weight", a, m + "lora_B.weight", b),
        java.util.Map.of(m + "lora_A.weight", new long[] {rank, dIn},
            m + "lora_B.weight", new long[] {dOut, rank})));
    if (config != null) java.nio.file.Files.writeString(folder.resolve("adapter_config.json"), config);
    return new float[][] {a, b};
  }

  /** One lora_apply output row against the reference with the given scaling. */
  public static void assertLoraRowClose(List<Float> features, float[] actual, float[] a,
      float[] b, int rank, double scaling, int dIn, int dOut, DType dtype, String what) {
    AdapterFiles.checkLora(features, actual, new AdapterFiles.Lora(a, b, rank, scaling), dIn,
        dOut, dtype, Reference.tolerance(dtype), what);
  }
}
