package com.sparksegmentgemm.nativelib;

/**
 * The JNI bindings: one static method per C API function of segment_gemm.h. Each loads the
 * library on first use ({@link NativeLib#ensureLoaded()}, which throws the load error if it
 * cannot). Device pointers and CUDA streams travel as {@code long}s (stream 0 is the calling
 * thread's default stream). Every method throws {@link SegmentGemmException} with the native
 * message on failure ({@link SegmentGemmFatalException} for a sticky CUDA error: the context
 * is unusable).
 *
 * <p>This is the low-level layer; applications use {@code com.sparksegmentgemm.SegmentGemm}.
 */
public final class SegmentGemmNative {
  private SegmentGemmNative() {}

  public static String libraryVersion() {
    NativeLib.ensureLoaded();
    return version0();
  }

  /** Number of CUDA devices; throws with status NO_DEVICE when there is no driver or GPU. */
  public static int deviceCount() {
    NativeLib.ensureLoaded();
    return deviceCount0();
  }

  public static DeviceInfo deviceQuery(int device) {
    NativeLib.ensureLoaded();
    return deviceQuery0(device);
  }

  /**
   * Workspace bytes for a call of this shape (sgemm_workspace_size): {float workspace needed by
   * the tensor-core backends, float workspace that also lets segments sharing a weight be
   * coalesced, int workspace}. Needs no device.
   */
  public static WorkspaceSizes workspaceSize(DType dtype, long xRows, long dIn, long dOut,
      long numWeights, long batchSize, boolean hasWeightIndices) {
    return workspaceSize(dtype, xRows, dIn, dOut, numWeights, batchSize, hasWeightIndices, false);
  }

  /** {@link #workspaceSize(DType, long, long, long, long, long, boolean)}, for fp8 e4m3 weights
   *  when fp8Weights (x is quantised into the float workspace). */
  public static WorkspaceSizes workspaceSize(DType dtype, long xRows, long dIn, long dOut,
      long numWeights, long batchSize, boolean hasWeightIndices, boolean fp8Weights) {
    NativeLib.ensureLoaded();
    long[] s = workspaceSize0(dtype.code(), xRows, dIn, dOut, numWeights, batchSize,
        hasWeightIndices, fp8Weights);
    return new WorkspaceSizes(s[0], s[1], s[2]);
  }

  /** Creates a native handle; the caller keeps the workspaces alive and destroys the handle. */
  public static long create(Backend backend, long floatWorkspace, long floatWorkspaceBytes,
      long intWorkspace, long intWorkspaceBytes) {
    NativeLib.ensureLoaded();
    return create0(backend.code(), floatWorkspace, floatWorkspaceBytes, intWorkspace,
        intWorkspaceBytes);
  }

  public static void resetWorkspace(long handle, long floatWorkspace, long floatWorkspaceBytes,
      long intWorkspace, long intWorkspaceBytes) {
    NativeLib.ensureLoaded();
    resetWorkspace0(handle, floatWorkspace, floatWorkspaceBytes, intWorkspace, intWorkspaceBytes);
  }

  public static void destroy(long handle) {
    NativeLib.ensureLoaded();
    destroy0(handle);
  }

  /** Enqueues a segment GEMM; see sgemm_run in segment_gemm.h for every argument. */
  public static void run(long handle, DType dtype, long x, long xRows, long dIn, long dOut,
      long weights, long numWeights, boolean weightColumnMajor, long y, long batchSize,
      long segLens, long segIndptr, long weightIndices, long stream) {
    run(handle, dtype, x, xRows, dIn, dOut, weights, numWeights, weightColumnMajor, y, batchSize,
        segLens, segIndptr, weightIndices, 0, stream);
  }

  /**
   * {@link #run(long, DType, long, long, long, long, long, long, boolean, long, long, long, long,
   * long, long)} with fp8 e4m3 weights when weightScales (a device array of numWeights fp32
   * dequantisation scales) is not 0: sgemm_run_args.weight_scales.
   */
  public static void run(long handle, DType dtype, long x, long xRows, long dIn, long dOut,
      long weights, long numWeights, boolean weightColumnMajor, long y, long batchSize,
      long segLens, long segIndptr, long weightIndices, long weightScales, long stream) {
    NativeLib.ensureLoaded();
    run0(handle, dtype.code(), x, xRows, dIn, dOut, weights, numWeights, weightColumnMajor, y,
        batchSize, segLens, segIndptr, weightIndices, weightScales, stream);
  }

  /**
   * The kernel {@link #run} would choose for these arguments on this handle, e.g. "sm90 bf16
   * B=row tile=128x128x64 cooperative"; throws like run for a call no kernel can run.
   */
  public static String describePlan(long handle, DType dtype, long x, long xRows, long dIn,
      long dOut, long weights, long numWeights, boolean weightColumnMajor, long y, long batchSize,
      long segLens, long segIndptr, long weightIndices) {
    return describePlan(handle, dtype, x, xRows, dIn, dOut, weights, numWeights,
        weightColumnMajor, y, batchSize, segLens, segIndptr, weightIndices, 0);
  }

  /** {@link #describePlan} with fp8 e4m3 weights when weightScales is not 0. */
  public static String describePlan(long handle, DType dtype, long x, long xRows, long dIn,
      long dOut, long weights, long numWeights, boolean weightColumnMajor, long y, long batchSize,
      long segLens, long segIndptr, long weightIndices, long weightScales) {
    NativeLib.ensureLoaded();
    return describePlan0(handle, dtype.code(), x, xRows, dIn, dOut, weights, numWeights,
        weightColumnMajor, y, batchSize, segLens, segIndptr, weightIndices, weightScales);
  }

  /** Float workspace bytes {@link #bmmFp8} needs (sgemm_bmm_fp8_workspace_size); no device. */
  public static long bmmFp8WorkspaceSize(Fp8 aType, Fp8 bType, DType outType, long batch, long m,
      long n, long k) {
    NativeLib.ensureLoaded();
    return bmmFp8WorkspaceSize0(aType.code(), bType.code(), outType.code(), batch, m, n, k);
  }

  /**
   * Enqueues FlashInfer's bmm_fp8 (sgemm_bmm_fp8): d[i] = (a[i] * aScale) . (b[i] * bScale),
   * a (batch, m, k) row-major, b (batch, k, n) column-major, scales device fp32 scalars, d
   * (batch, m, n) row-major of outType (FLOAT16 or BFLOAT16).
   */
  public static void bmmFp8(long handle, Fp8 aType, long a, Fp8 bType, long b, long aScale,
      long bScale, DType outType, long d, long batch, long m, long n, long k, long stream) {
    NativeLib.ensureLoaded();
    bmmFp80(handle, aType.code(), a, bType.code(), b, aScale, bScale, outType.code(), d, batch, m,
        n, k, stream);
  }

  /**
   * Enqueues dst[r, :] = dtype(values[offsets[rows[r]] ..][0, d)) for r < n: rows of a cuDF
   * LIST&lt;FLOAT32&gt; column (child values, INT32 offsets) in the order of an INT32 row map,
   * into a dense (n, d) matrix of dtype, rounding as {@link DType#round} does
   * (sgemm_gather_float_rows in segment_gemm_rows.h).
   */
  public static void gatherFloatRows(long values, long offsets, long rows, long n, long d,
      DType dtype, long dst, long stream) {
    NativeLib.ensureLoaded();
    gatherFloatRows0(values, offsets, rows, n, d, dtype.code(), dst, stream);
  }

  /**
   * Enqueues dst[destRows[r] * d + j] = float(src[r * d + j]) for r &lt; n: rows of an (n, d)
   * matrix of dtype (INT32 destination rows) into float32 values, widened exactly
   * (sgemm_scatter_rows_to_float in segment_gemm_rows.h).
   */
  public static void scatterRowsToFloat(long src, DType dtype, long destRows, long n, long d,
      long dst, long stream) {
    NativeLib.ensureLoaded();
    scatterRowsToFloat0(src, dtype.code(), destRows, n, d, dst, stream);
  }

  /**
   * Bytes of device workspace {@link #groupRows} needs for rows rows and numAdapters adapters
   * (sgemm_group_rows_workspace_size; asks the current device).
   */
  public static long groupRowsWorkspaceSize(long rows, int numAdapters) {
    NativeLib.ensureLoaded();
    return groupRowsWorkspaceSize0(rows, numAdapters);
  }

  /**
   * Enqueues the group phase of a columnar batch (sgemm_group_rows in segment_gemm_rows.h):
   * which rows are computed, their stable order by adapter (order), each sorted row's result
   * row (dest), the result's INT32 list offsets and validity bits, and the summary {rows per
   * adapter..., n, first bad row or -1}. known, present and hasNull are BOOL8 columns' data or 0
   * (every row known / present / free of nulls). Device addresses; no synchronisation.
   */
  public static void groupRows(long adapter, long known, long present, long offsets, long hasNull,
      long rows, long dIn, int numAdapters, long dOut, long order, long dest, long outOffsets,
      long valid, long summary, long workspace, long workspaceBytes, long stream) {
    NativeLib.ensureLoaded();
    groupRows0(adapter, known, present, offsets, hasNull, rows, dIn, numAdapters, dOut, order,
        dest, outOffsets, valid, summary, workspace, workspaceBytes, stream);
  }

  /** A CUDA event timer of marks marks (sgemm_timer_create); close with {@link #timerDestroy}. */
  public static long timerCreate(int marks) {
    NativeLib.ensureLoaded();
    return timerCreate0(marks);
  }

  /** Records mark on stream. */
  public static void timerMark(long timer, int mark, long stream) {
    timerMark0(timer, mark, stream);
  }

  /** Waits for the last mark; ms[i] = milliseconds from mark i to mark i + 1. */
  public static void timerRead(long timer, float[] ms) {
    timerRead0(timer, ms);
  }

  public static void timerDestroy(long timer) {
    timerDestroy0(timer);
  }

  /**
   * Loads the OpenBLAS library at path (a native library for the CPU path, not this one's C API)
   * and limits it to threads threads per call; returns the count it reports afterwards. Throws
   * {@link SegmentGemmException} (INVALID_ARGUMENT) if it cannot be loaded or is not OpenBLAS.
   */
  public static int openBlasThreads(String path, int threads) {
    NativeLib.ensureLoaded();
    return openBlasThreads0(path, threads);
  }

  /** Waits for stream; throws the first error the device found in segment data since the last check. */
  public static void check(long handle, long stream) {
    NativeLib.ensureLoaded();
    check0(handle, stream);
  }

  private static native String version0();

  private static native int deviceCount0();

  private static native DeviceInfo deviceQuery0(int device);

  private static native long[] workspaceSize0(int dtype, long xRows, long dIn, long dOut,
      long numWeights, long batchSize, boolean hasWeightIndices, boolean fp8Weights);

  private static native long create0(int backend, long floatWorkspace, long floatWorkspaceBytes,
      long intWorkspace, long intWorkspaceBytes);

  private static native void resetWorkspace0(long handle, long floatWorkspace,
      long floatWorkspaceBytes, long intWorkspace, long intWorkspaceBytes);

  private static native void destroy0(long handle);

  private static native void run0(long handle, int dtype, long x, long xRows, long dIn, long dOut,
      long weights, long numWeights, boolean weightColumnMajor, long y, long batchSize,
      long segLens, long segIndptr, long weightIndices, long weightScales, long stream);

  private static native String describePlan0(long handle, int dtype, long x, long xRows,
      long dIn, long dOut, long weights, long numWeights, boolean weightColumnMajor, long y,
      long batchSize, long segLens, long segIndptr, long weightIndices, long weightScales);

  private static native long bmmFp8WorkspaceSize0(int aType, int bType, int outType, long batch,
      long m, long n, long k);

  private static native void bmmFp80(long handle, int aType, long a, int bType, long b,
      long aScale, long bScale, int outType, long d, long batch, long m, long n, long k,
      long stream);

  private static native void gatherFloatRows0(long values, long offsets, long rows, long n,
      long d, int dtype, long dst, long stream);

  private static native void scatterRowsToFloat0(long src, int dtype, long destRows, long n,
      long d, long dst, long stream);

  private static native void check0(long handle, long stream);

  private static native long groupRowsWorkspaceSize0(long rows, int numAdapters);

  private static native void groupRows0(long adapter, long known, long present, long offsets,
      long hasNull, long rows, long dIn, int numAdapters, long dOut, long order, long dest,
      long outOffsets, long valid, long summary, long workspace, long workspaceBytes, long stream);

  private static native long timerCreate0(int marks);

  private static native void timerMark0(long timer, int mark, long stream);

  private static native void timerRead0(long timer, float[] ms);

  private static native void timerDestroy0(long timer);

  private static native int openBlasThreads0(String path, int threads);
}
