package com.sparksegmentgemm;

import ai.rapids.cudf.BaseDeviceMemoryBuffer;
import ai.rapids.cudf.Cuda;
import ai.rapids.cudf.DeviceMemoryBuffer;
import com.sparksegmentgemm.nativelib.DType;
import com.sparksegmentgemm.nativelib.Fp8;
import com.sparksegmentgemm.nativelib.SegmentGemmNative;
import com.sparksegmentgemm.nativelib.WorkspaceSizes;
import java.util.Arrays;

/**
 * Segment GEMM over cuDF device memory, shaped like FlashInfer's {@code SegmentGEMMWrapper}: it
 * owns a native handle and its workspaces, and {@code run} computes {@code y[i] = x[i] . W[i]}
 * (or {@code W[weight_indices[i]]}) for the ragged segments of a packed batch.
 *
 * <p>The documentation example, in Java: four segments of lengths 1, 2, 3 and 4 (x is 10 x 128
 * bfloat16), each with its own 256 x 128 column-major weight.
 * <pre>{@code
 * try (DeviceMemoryBuffer ws = DeviceMemoryBuffer.allocate(128L << 20);
 *      SegmentGemm gemm = new SegmentGemm(ws, SegmentGemm.Backend.AUTO);
 *      DeviceTensor x = DeviceTensor.fromHost(new HostTensor(DType.BFLOAT16, xValues, 10, 128));
 *      DeviceTensor w = DeviceTensor.fromHost(new HostTensor(DType.BFLOAT16, wValues, 4, 256, 128));
 *      DeviceTensor segLens = DeviceTensor.fromLongs(1, 2, 3, 4);
 *      DeviceTensor y = gemm.run(x, w, 4, true, segLens, null, null, Cuda.DEFAULT_STREAM)) {
 *   HostTensor result = y.toHost();                        // 10 x 256
 * }
 * }</pre>
 * The host twin of that call is {@link CpuSegmentGemm#run(HostTensor, HostTensor, long, boolean,
 * long[], long[], long[])}, which {@link #run(HostTensor, HostTensor, long, boolean, long[],
 * long[], long[])} uses under {@link Backend#CPU}.
 *
 * <p>Device memory comes from RMM through cuDF ({@link DeviceMemoryBuffer}), so the RAPIDS pool
 * and its out-of-memory handling see it. Every call runs on the caller's stream; pass
 * {@link Cuda#DEFAULT_STREAM} for the calling thread's default stream (the native library is
 * built with per-thread default streams, as cuDF is). A {@code SegmentGemm} is not thread-safe:
 * its workspace serves one stream at a time (one instance per task thread).
 */
public final class SegmentGemm implements AutoCloseable {
  /** Which code computes a call; all but {@link #CPU} are the native kernel families. */
  public enum Backend {
    /** The best native kernel for the device and the call (tensor cores where they apply). */
    AUTO(com.sparksegmentgemm.nativelib.Backend.AUTO),
    /** The SIMT kernel: any dtype, layout, size and GPU. */
    PORTABLE(com.sparksegmentgemm.nativelib.Backend.PORTABLE),
    /** CUTLASS 2.x tensor cores: compute capability 8.x/9.0, fp16/bf16, d_in and d_out % 8 == 0. */
    SM80(com.sparksegmentgemm.nativelib.Backend.SM80),
    /** CUTLASS 3.x tensor cores: compute capability 9.0, fp16/bf16, d_in and d_out % 8 == 0. */
    SM90(com.sparksegmentgemm.nativelib.Backend.SM90),
    /** {@link CpuSegmentGemm} on host tensors; touches no GPU. */
    CPU(null);

    private final com.sparksegmentgemm.nativelib.Backend nativeBackend;

    Backend(com.sparksegmentgemm.nativelib.Backend nativeBackend) {
      this.nativeBackend = nativeBackend;
    }

    /** The native backend, or null for CPU. */
    public com.sparksegmentgemm.nativelib.Backend nativeBackend() {
      return nativeBackend;
    }
  }

  /** Int workspace allocated up front: enough for this many segments; it grows on demand. */
  private static final long INITIAL_SEGMENTS = 4096;

  private final Backend backend;
  private long handle;
  private BaseDeviceMemoryBuffer floatWorkspace;
  private BaseDeviceMemoryBuffer intWorkspace;
  private boolean ownsFloatWorkspace;
  private boolean ownsIntWorkspace;
  private boolean closed;

  /** The best backend for the device, with workspaces it owns and sizes per call. */
  public SegmentGemm() {
    this(Backend.AUTO);
  }

  /** A handle whose float workspace it owns and grows to what each call needs. */
  public SegmentGemm(Backend backend) {
    this(null, backend);
  }

  /**
   * A handle over the caller's float workspace (FlashInfer advises 128 MiB): the caller keeps it
   * alive while this instance uses it, and a call it is too small for fails with the native
   * WORKSPACE_TOO_SMALL message giving the size needed. The int workspace is owned.
   *
   * @param floatWorkspace device memory, or null to let this instance own and size one
   */
  public SegmentGemm(BaseDeviceMemoryBuffer floatWorkspace, Backend backend) {
    this.backend = backend;
    if (backend == Backend.CPU) return;
    WorkspaceSizes need = SegmentGemmNative.workspaceSize(DType.BFLOAT16, 0, 0, 0,
        INITIAL_SEGMENTS, INITIAL_SEGMENTS, true);
    try (DeviceMemoryBuffer f = floatWorkspace == null
             ? DeviceMemoryBuffer.allocate(need.floatBytes()) : null;
         DeviceMemoryBuffer i = DeviceMemoryBuffer.allocate(need.intBytes())) {
      BaseDeviceMemoryBuffer fw = f != null ? f : floatWorkspace;
      handle = SegmentGemmNative.create(backend.nativeBackend(), fw.getAddress(), fw.getLength(),
          i.getAddress(), i.getLength());
      // Ownership moves to this instance only once the handle exists.
      if (f != null) f.incRefCount();
      i.incRefCount();
      this.floatWorkspace = fw;
      this.ownsFloatWorkspace = f != null;
      this.intWorkspace = i;
      this.ownsIntWorkspace = true;
    }
  }

  public Backend backend() {
    return backend;
  }

  /** Swaps in a caller-owned float workspace; the int workspace stays as it is. */
  public void resetWorkspaceBuffer(BaseDeviceMemoryBuffer floatWs) {
    resetWorkspaceBuffer(floatWs, null);
  }

  /**
   * Swaps in caller-owned workspaces (FlashInfer's {@code reset_workspace_buffer}): the caller
   * keeps them alive while this instance uses them, and a call they are too small for fails
   * with a message giving the size needed ({@link SegmentGemmNative#workspaceSize}).
   *
   * @param intWs the int workspace, or null to keep this instance's own
   */
  public void resetWorkspaceBuffer(BaseDeviceMemoryBuffer floatWs, BaseDeviceMemoryBuffer intWs) {
    ensureGpu();
    BaseDeviceMemoryBuffer newInt = intWs != null ? intWs : intWorkspace;
    SegmentGemmNative.resetWorkspace(handle, floatWs.getAddress(), floatWs.getLength(),
        newInt.getAddress(), newInt.getLength());
    if (ownsFloatWorkspace) floatWorkspace.close();
    floatWorkspace = floatWs;
    ownsFloatWorkspace = false;
    if (intWs != null) {
      if (ownsIntWorkspace) intWorkspace.close();
      intWorkspace = intWs;
      ownsIntWorkspace = false;
    }
  }

  /**
   * FlashInfer's {@code run}, into a new tensor: {@code y[segment i] = x[segment i] . W[w(i)]}.
   *
   * @param x {@code (rows, d_in)}, FLOAT32, FLOAT16 or BFLOAT16
   * @param weights {@code (num_weights, d_in, d_out)}, or {@code (num_weights, d_out, d_in)} when
   *     {@code weightColumnMajor}; the dtype of x
   * @param segLens {@code (batchSize,)} INT64, or null when segIndptr is given
   * @param segIndptr {@code (batchSize + 1,)} INT64, or null; wins over segLens
   * @param weightIndices {@code (batchSize,)} INT64, or null: segment i uses weight i
   * @param stream the stream to run on; the call waits for it once, to report bad segment data
   * @return y, {@code (rows, d_out)} in the dtype of x; the caller closes it
   */
  public DeviceTensor run(DeviceTensor x, DeviceTensor weights, long batchSize,
      boolean weightColumnMajor, DeviceTensor segLens, DeviceTensor segIndptr,
      DeviceTensor weightIndices, Cuda.Stream stream) {
    checkShapes(x, weights, weightColumnMajor);
    long dOut = weightColumnMajor ? weights.dim(1) : weights.dim(2);
    DeviceTensor y = DeviceTensor.allocate(x.type(), x.dim(0), dOut);
    try {
      run(x, weights, batchSize, weightColumnMajor, segLens, segIndptr, weightIndices, y, stream);
      return y;
    } catch (RuntimeException e) {
      y.close();
      throw e;
    }
  }

  /** {@link #run(DeviceTensor, DeviceTensor, long, boolean, DeviceTensor, DeviceTensor,
   *  DeviceTensor, Cuda.Stream)} into a given {@code (rows, d_out)} tensor, which it overwrites. */
  public void run(DeviceTensor x, DeviceTensor weights, long batchSize, boolean weightColumnMajor,
      DeviceTensor segLens, DeviceTensor segIndptr, DeviceTensor weightIndices, DeviceTensor out,
      Cuda.Stream stream) {
    checkShapes(x, weights, weightColumnMajor);
    long dIn = x.dim(1);
    long dOut = weightColumnMajor ? weights.dim(1) : weights.dim(2);
    requireShape("out", out, x.type(), x.dim(0), dOut);
    if (segLens != null) requireShape("seg_lens", segLens, TensorType.INT64, batchSize);
    if (segIndptr != null) requireShape("seg_indptr", segIndptr, TensorType.INT64, batchSize + 1);
    if (weightIndices != null) {
      requireShape("weight_indices", weightIndices, TensorType.INT64, batchSize);
    }
    run(x.type().gemmDtype(), x.buffer(), x.dim(0), dIn, dOut, weights.buffer(), weights.dim(0),
        weightColumnMajor, out.buffer(), batchSize, buffer(segLens), buffer(segIndptr),
        buffer(weightIndices), stream);
  }

  /**
   * The host twin of {@code run}: under {@link Backend#CPU} it is {@link CpuSegmentGemm}, on a
   * GPU backend it copies the inputs to the device, runs, and copies y back.
   */
  public HostTensor run(HostTensor x, HostTensor weights, long batchSize,
      boolean weightColumnMajor, long[] segLens, long[] segIndptr, long[] weightIndices) {
    if (backend == Backend.CPU) {
      return CpuSegmentGemm.run(x, weights, batchSize, weightColumnMajor, segLens, segIndptr,
          weightIndices);
    }
    SegmentGemmInput in = SegmentGemmInput.of(x, weights, batchSize, weightColumnMajor, segLens,
        segIndptr, weightIndices);
    return new HostTensor(in.dtype(), run(in), in.xRows(), in.dOut());
  }

  /**
   * Enqueues {@code y = segment_gemm(x, weights)} on stream and waits for it, reporting any
   * error the device found in the segment data (the only host synchronisation). Shapes and
   * meanings are those of {@link SegmentGemmInput}; every buffer is device memory, the index
   * buffers hold int64, and segLens or segIndptr (or both) may be null, as may weightIndices.
   *
   * @throws IllegalArgumentException if a buffer is smaller than its shape says
   * @throws com.sparksegmentgemm.nativelib.SegmentGemmException for a native failure
   */
  public void run(DType dtype, BaseDeviceMemoryBuffer x, long xRows, long dIn, long dOut,
      BaseDeviceMemoryBuffer weights, long numWeights, boolean weightColumnMajor,
      BaseDeviceMemoryBuffer y, long batchSize, BaseDeviceMemoryBuffer segLens,
      BaseDeviceMemoryBuffer segIndptr, BaseDeviceMemoryBuffer weightIndices, Cuda.Stream stream) {
    enqueue(dtype, x, xRows, dIn, dOut, weights, numWeights, weightColumnMajor, y, batchSize,
        segLens, segIndptr, weightIndices, stream);
    check(stream);
  }

  /**
   * {@link #run(DType, BaseDeviceMemoryBuffer, long, long, long, BaseDeviceMemoryBuffer, long,
   * boolean, BaseDeviceMemoryBuffer, long, BaseDeviceMemoryBuffer, BaseDeviceMemoryBuffer,
   * BaseDeviceMemoryBuffer, Cuda.Stream)} without the wait: enqueues the call, and errors the
   * device finds in the segment data wait for the next {@link #check}. Callers that enqueue
   * several calls (a batch's stages) check once at the end, and keep every buffer alive until then.
   */
  public void enqueue(DType dtype, BaseDeviceMemoryBuffer x, long xRows, long dIn, long dOut,
      BaseDeviceMemoryBuffer weights, long numWeights, boolean weightColumnMajor,
      BaseDeviceMemoryBuffer y, long batchSize, BaseDeviceMemoryBuffer segLens,
      BaseDeviceMemoryBuffer segIndptr, BaseDeviceMemoryBuffer weightIndices, Cuda.Stream stream) {
    enqueue(dtype, x, xRows, dIn, dOut, weights, numWeights, weightColumnMajor, y, batchSize,
        segLens, segIndptr, weightIndices, null, stream);
  }

  /**
   * {@link #enqueue(DType, BaseDeviceMemoryBuffer, long, long, long, BaseDeviceMemoryBuffer,
   * long, boolean, BaseDeviceMemoryBuffer, long, BaseDeviceMemoryBuffer, BaseDeviceMemoryBuffer,
   * BaseDeviceMemoryBuffer, Cuda.Stream)} with fp8 e4m3 weights when weightScales is not null:
   * weights are one byte each, column-major {@code (num_weights, d_out, d_in)}, weight w standing
   * for its codes times weightScales[w] (numWeights fp32 values on the device); x (FLOAT16 or
   * BFLOAT16) is quantised to e4m3 per call and y keeps its dtype (sgemm_run_args.weight_scales).
   */
  public void enqueue(DType dtype, BaseDeviceMemoryBuffer x, long xRows, long dIn, long dOut,
      BaseDeviceMemoryBuffer weights, long numWeights, boolean weightColumnMajor,
      BaseDeviceMemoryBuffer y, long batchSize, BaseDeviceMemoryBuffer segLens,
      BaseDeviceMemoryBuffer segIndptr, BaseDeviceMemoryBuffer weightIndices,
      BaseDeviceMemoryBuffer weightScales, Cuda.Stream stream) {
    ensureGpu();
    long e = dtype.bytes();
    boolean fp8 = weightScales != null;
    checkLength("x", x, Math.multiplyExact(Math.multiplyExact(xRows, dIn), e));
    checkLength("weights", weights, Math.multiplyExact(
        Math.multiplyExact(Math.multiplyExact(numWeights, dIn), dOut), fp8 ? 1 : e));
    checkLength("weight_scales", weightScales, Math.multiplyExact(numWeights, (long) Float.BYTES));
    checkLength("y", y, Math.multiplyExact(Math.multiplyExact(xRows, dOut), e));
    checkLength("seg_lens", segLens, batchSize * 8);
    checkLength("seg_indptr", segIndptr, (batchSize + 1) * 8);
    checkLength("weight_indices", weightIndices, batchSize * 8);
    if (segLens == null && segIndptr == null) {
      throw new IllegalArgumentException("one of seg_lens and seg_indptr must be given");
    }
    ensureWorkspaces(SegmentGemmNative.workspaceSize(dtype, xRows, dIn, dOut, numWeights,
        batchSize, weightIndices != null, fp8));
    SegmentGemmNative.run(handle, dtype, address(x), xRows, dIn, dOut, address(weights),
        numWeights, weightColumnMajor, address(y), batchSize, address(segLens),
        address(segIndptr), address(weightIndices), address(weightScales), stream.getStream());
  }

  /**
   * FlashInfer's {@code bmm_fp8}: enqueues {@code d[i] = (a[i] * aScale) . (b[i] * bScale)} for
   * {@code i < batch} on the sm_90 fp8 tensor cores (fp32 accumulation) and returns without
   * waiting. a is {@code (batch, m, k)} row-major fp8 of aType, b {@code (batch, k, n)}
   * column-major (that is, {@code (batch, n, k)} row-major) fp8 of bType, not both E5M2; aScale
   * and bScale one fp32 value each on the device; d {@code (batch, m, n)} row-major of outType
   * (FLOAT16 or BFLOAT16). Needs an H100/H200, k % 16 == 0 and n % 8 == 0; batch, m or n of 0
   * writes nothing.
   *
   * @throws IllegalArgumentException if a buffer is smaller than its shape says
   * @throws com.sparksegmentgemm.nativelib.SegmentGemmException for a native failure (bad
   *     sizes or dtypes: INVALID_ARGUMENT; no fp8 tensor cores or a non-AUTO/SM90 backend: UNSUPPORTED)
   */
  public void bmmFp8(Fp8 aType, BaseDeviceMemoryBuffer a, Fp8 bType, BaseDeviceMemoryBuffer b,
      BaseDeviceMemoryBuffer aScale, BaseDeviceMemoryBuffer bScale, DType outType,
      BaseDeviceMemoryBuffer d, long batch, long m, long n, long k, Cuda.Stream stream) {
    ensureGpu();
    if (batch < 0 || m < 0 || n < 0 || k < 0) {
      throw new IllegalArgumentException("bmm_fp8: negative size: batch=" + batch + " m=" + m
          + " n=" + n + " k=" + k);
    }
    checkLength("a", a, Math.multiplyExact(Math.multiplyExact(batch, m), k));
    checkLength("b", b, Math.multiplyExact(Math.multiplyExact(batch, k), n));
    checkLength("a_scale", aScale, Float.BYTES);
    checkLength("b_scale", bScale, Float.BYTES);
    checkLength("d", d, Math.multiplyExact(Math.multiplyExact(Math.multiplyExact(batch, m), n),
        (long) outType.bytes()));
    long need = SegmentGemmNative.bmmFp8WorkspaceSize(aType, bType, outType, batch, m, n, k);
    ensureWorkspaces(new WorkspaceSizes(need, need, 0));
    SegmentGemmNative.bmmFp8(handle, aType, address(a), bType, address(b), address(aScale),
        address(bScale), outType, address(d), batch, m, n, k, stream.getStream());
  }

  /**
   * Waits for stream and throws the first error the device found in the segment data of the
   * calls enqueued since the last check (or a CUDA error they raised).
   */
  public void check(Cuda.Stream stream) {
    ensureGpu();
    SegmentGemmNative.check(handle, stream.getStream());
  }

  /** The kernel a call with these arguments would run on, e.g. "sm90 bf16 ..." or "portable ...". */
  public String describePlan(DeviceTensor x, DeviceTensor weights, long batchSize,
      boolean weightColumnMajor, DeviceTensor segLens, DeviceTensor segIndptr,
      DeviceTensor weightIndices, DeviceTensor out) {
    if (backend == Backend.CPU) return "cpu (CpuSegmentGemm, BLAS sgemm)";
    checkShapes(x, weights, weightColumnMajor);
    long dOut = weightColumnMajor ? weights.dim(1) : weights.dim(2);
    return describePlan(x.type().gemmDtype(), x.buffer(), x.dim(0), x.dim(1), dOut,
        weights.buffer(), weights.dim(0), weightColumnMajor, out.buffer(), batchSize,
        buffer(segLens), buffer(segIndptr), buffer(weightIndices));
  }

  /**
   * The kernel the raw form of {@code run} runs with these arguments (planning only: nothing is
   * launched or read on the device). The plan depends on the workspace this instance holds, so
   * ask after a {@code run} with the same arguments to learn what that run used.
   */
  public String describePlan(DType dtype, BaseDeviceMemoryBuffer x, long xRows, long dIn,
      long dOut, BaseDeviceMemoryBuffer weights, long numWeights, boolean weightColumnMajor,
      BaseDeviceMemoryBuffer y, long batchSize, BaseDeviceMemoryBuffer segLens,
      BaseDeviceMemoryBuffer segIndptr, BaseDeviceMemoryBuffer weightIndices) {
    return describePlan(dtype, x, xRows, dIn, dOut, weights, numWeights, weightColumnMajor, y,
        batchSize, segLens, segIndptr, weightIndices, null);
  }

  /** The plan of the fp8-weight form of enqueue (weightScales not null), or of the plain one. */
  public String describePlan(DType dtype, BaseDeviceMemoryBuffer x, long xRows, long dIn,
      long dOut, BaseDeviceMemoryBuffer weights, long numWeights, boolean weightColumnMajor,
      BaseDeviceMemoryBuffer y, long batchSize, BaseDeviceMemoryBuffer segLens,
      BaseDeviceMemoryBuffer segIndptr, BaseDeviceMemoryBuffer weightIndices,
      BaseDeviceMemoryBuffer weightScales) {
    if (backend == Backend.CPU) return "cpu (CpuSegmentGemm, BLAS sgemm)";
    ensureGpu();
    return SegmentGemmNative.describePlan(handle, dtype, address(x), xRows, dIn, dOut,
        address(weights), numWeights, weightColumnMajor, address(y), batchSize, address(segLens),
        address(segIndptr), address(weightIndices), address(weightScales));
  }

  /**
   * The host-array form: copies the input to the device, runs, and returns y as floats (values
   * of {@code in.dtype()}). For tests, demos and small batches; the UDF keeps data on the device.
   */
  public float[] run(SegmentGemmInput in) {
    if (backend == Backend.CPU) return CpuSegmentGemm.run(in);
    long[] indptr = in.validate();
    DType dtype = in.dtype();
    try (DeviceTensor x = DeviceTensor.fromHost(new HostTensor(dtype, in.x(), in.xRows(), in.dIn()));
         DeviceTensor w = DeviceTensor.fromHost(new HostTensor(dtype, in.weights(),
             in.numWeights(), in.weightColumnMajor() ? in.dOut() : in.dIn(),
             in.weightColumnMajor() ? in.dIn() : in.dOut()));
         DeviceTensor ptr = DeviceTensor.fromLongs(indptr);
         DeviceTensor idx = in.weightIndices() == null ? null
             : DeviceTensor.fromLongs(in.weightIndices());
         DeviceTensor y = run(x, w, in.batchSize(), in.weightColumnMajor(), null, ptr, idx,
             Cuda.DEFAULT_STREAM)) {
      return y.toHost().values();
    }
  }

  @Override
  public void close() {
    if (closed) return;
    closed = true;
    if (handle == 0) return;
    long h = handle;
    handle = 0;
    try {
      SegmentGemmNative.destroy(h);
    } finally {
      if (ownsFloatWorkspace) floatWorkspace.close();
      if (ownsIntWorkspace) intWorkspace.close();
    }
  }

  /** Grows the workspaces this instance owns to what a call needs; caller-given ones stay. */
  private void ensureWorkspaces(WorkspaceSizes need) {
    // With an owned float workspace, also make room to coalesce segments that share a weight:
    // the native side decides per call whether that pays.
    long wantFloat = ownsFloatWorkspace ? need.floatBytesCoalesced() : 0;
    long wantInt = ownsIntWorkspace ? need.intBytes() : 0;
    boolean growFloat = wantFloat > floatWorkspace.getLength();
    boolean growInt = wantInt > intWorkspace.getLength();
    if (!growFloat && !growInt) return;
    try (DeviceMemoryBuffer f = growFloat ? DeviceMemoryBuffer.allocate(wantFloat) : null;
         DeviceMemoryBuffer i = growInt
             ? DeviceMemoryBuffer.allocate(Math.max(wantInt, 2 * intWorkspace.getLength())) : null) {
      BaseDeviceMemoryBuffer fw = f != null ? f : floatWorkspace;
      BaseDeviceMemoryBuffer iw = i != null ? i : intWorkspace;
      SegmentGemmNative.resetWorkspace(handle, fw.getAddress(), fw.getLength(), iw.getAddress(),
          iw.getLength());
      if (f != null) {
        f.incRefCount();
        floatWorkspace.close();
        floatWorkspace = f;
      }
      if (i != null) {
        i.incRefCount();
        intWorkspace.close();
        intWorkspace = i;
      }
    }
  }

  private void ensureGpu() {
    if (backend == Backend.CPU) {
      throw new IllegalStateException("a SegmentGemm with backend CPU runs host tensors only: use"
          + " run(HostTensor, ...) or CpuSegmentGemm");
    }
    if (handle == 0) throw new IllegalStateException("SegmentGemm is closed");
  }

  private static void checkShapes(DeviceTensor x, DeviceTensor weights, boolean colMajor) {
    if (x.rank() != 2 || x.type() == TensorType.INT64) {
      throw new IllegalArgumentException("x must be a 2-D float tensor (rows, d_in), not " + x);
    }
    if (weights.rank() != 3 || weights.type() != x.type()) {
      throw new IllegalArgumentException("weights must be a 3-D " + x.type() + " tensor "
          + (colMajor ? "(num_weights, d_out, d_in)" : "(num_weights, d_in, d_out)") + ", not "
          + weights);
    }
    long wIn = colMajor ? weights.dim(2) : weights.dim(1);
    if (wIn != x.dim(1)) {
      throw new IllegalArgumentException("x has d_in = " + x.dim(1) + " but weights " + weights
          + (colMajor ? " (column-major)" : "") + " have d_in = " + wIn);
    }
  }

  private static void requireShape(String name, DeviceTensor t, TensorType type, long... shape) {
    if (t.type() != type || !Arrays.equals(t.shape(), shape)) {
      throw new IllegalArgumentException(name + " must be a " + type + " tensor of shape "
          + Arrays.toString(shape) + ", not " + t);
    }
  }

  private static BaseDeviceMemoryBuffer buffer(DeviceTensor t) {
    return t == null ? null : t.buffer();
  }

  private static void checkLength(String name, BaseDeviceMemoryBuffer b, long bytes) {
    if (b != null && b.getLength() < bytes) {
      throw new IllegalArgumentException(name + " buffer has " + b.getLength()
          + " bytes but its shape needs " + bytes);
    }
  }

  private static long address(BaseDeviceMemoryBuffer b) {
    return b == null ? 0 : b.getAddress();
  }
}
