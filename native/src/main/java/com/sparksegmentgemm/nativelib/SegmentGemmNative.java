package com.sparksegmentgemm.nativelib;

/**
 * The JNI bindings: one static method per C API function of segment_gemm.h. Device pointers and
 * CUDA streams travel as {@code long}s (stream 0 is the calling thread's default stream). Every
 * method throws {@link SegmentGemmException} with the native message on failure.
 *
 * <p>This is the low-level layer; applications use {@code com.sparksegmentgemm.SegmentGemm}.
 */
public final class SegmentGemmNative {
  private SegmentGemmNative() {}

  /** Loads the library (once) and returns its version. */
  public static String libraryVersion() {
    NativeLib.ensureLoaded();
    return version();
  }

  /** Creates a native handle; the caller keeps the workspaces alive and destroys the handle. */
  public static long create(Backend backend, long floatWorkspace, long floatWorkspaceBytes,
      long intWorkspace, long intWorkspaceBytes) {
    NativeLib.ensureLoaded();
    return create(backend.code(), floatWorkspace, floatWorkspaceBytes, intWorkspace, intWorkspaceBytes);
  }

  /** Enqueues a segment GEMM; see sgemm_run in segment_gemm.h for every argument. */
  public static void run(long handle, DType dtype, long x, long xRows, long dIn, long dOut,
      long weights, long numWeights, boolean weightColumnMajor, long y, long batchSize,
      long segLens, long segIndptr, long weightIndices, long stream) {
    run(handle, dtype.code(), x, xRows, dIn, dOut, weights, numWeights, weightColumnMajor, y,
        batchSize, segLens, segIndptr, weightIndices, stream);
  }

  static native String version();

  /** Number of CUDA devices; throws with status NO_DEVICE when there is no driver or GPU. */
  public static native int deviceCount();

  public static native DeviceInfo deviceQuery(int device);

  /** {float workspace bytes, int workspace bytes} needed for batchSize segments. */
  public static native long[] workspaceSize(long batchSize);

  private static native long create(int backend, long floatWorkspace, long floatWorkspaceBytes,
      long intWorkspace, long intWorkspaceBytes);

  public static native void resetWorkspace(long handle, long floatWorkspace, long floatWorkspaceBytes,
      long intWorkspace, long intWorkspaceBytes);

  public static native void destroy(long handle);

  private static native void run(long handle, int dtype, long x, long xRows, long dIn, long dOut,
      long weights, long numWeights, boolean weightColumnMajor, long y, long batchSize,
      long segLens, long segIndptr, long weightIndices, long stream);

  /** Waits for stream; throws the first error the device found in segment data since the last check. */
  public static native void check(long handle, long stream);
}
