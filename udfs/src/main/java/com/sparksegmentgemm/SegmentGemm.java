package com.sparksegmentgemm;

import ai.rapids.cudf.BaseDeviceMemoryBuffer;
import ai.rapids.cudf.Cuda;
import ai.rapids.cudf.DeviceMemoryBuffer;
import ai.rapids.cudf.HostMemoryBuffer;
import com.sparksegmentgemm.nativelib.Backend;
import com.sparksegmentgemm.nativelib.DType;
import com.sparksegmentgemm.nativelib.SegmentGemmNative;
import com.sparksegmentgemm.nativelib.WorkspaceSizes;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Segment GEMM on the GPU over cuDF device memory, shaped like FlashInfer's
 * {@code SegmentGEMMWrapper}: it owns a native handle and its workspaces, and {@code run}
 * computes {@code y[i] = x[i] . W[i]} (or {@code W[weight_indices[i]]}) for ragged segments.
 *
 * <p>The documentation example, in Java (seq lens [1, 2, 3, 4], x 10 x 128 float16, weights
 * 4 x 256 x 128 column-major, so d_out = 256):
 * <pre>{@code
 * try (SegmentGemm gemm = new SegmentGemm()) {
 *   float[] y = gemm.run(new SegmentGemmInput(DType.FLOAT16, x, 10, 128, 256, w, 4, true,
 *       4, new long[] {1, 2, 3, 4}, null, null));            // y is 10 x 256
 * }
 * }</pre>
 *
 * <p>Device memory comes from RMM through cuDF ({@link DeviceMemoryBuffer}), so the RAPIDS pool
 * and its out-of-memory handling see it. A {@code SegmentGemm} is not thread-safe: its workspace
 * serves one stream at a time (one instance per task thread).
 */
public final class SegmentGemm implements AutoCloseable {
  /** Int workspace allocated up front: enough for this many segments; it grows on demand. */
  private static final long INITIAL_SEGMENTS = 4096;

  private final Backend backend;
  private long handle;
  private BaseDeviceMemoryBuffer floatWorkspace;
  private BaseDeviceMemoryBuffer intWorkspace;
  private boolean ownsWorkspaces;

  /** A handle with the best backend for the device and workspaces it owns. */
  public SegmentGemm() {
    this(Backend.AUTO);
  }

  public SegmentGemm(Backend backend) {
    this.backend = backend;
    WorkspaceSizes need = SegmentGemmNative.workspaceSize(DType.BFLOAT16, 0, 0, 0,
        INITIAL_SEGMENTS, INITIAL_SEGMENTS, true);
    try (DeviceMemoryBuffer f = DeviceMemoryBuffer.allocate(need.floatBytes());
         DeviceMemoryBuffer i = DeviceMemoryBuffer.allocate(need.intBytes())) {
      handle = SegmentGemmNative.create(backend, f.getAddress(), f.getLength(), i.getAddress(),
          i.getLength());
      // Ownership moves to this instance only once the handle exists.
      f.incRefCount();
      i.incRefCount();
      floatWorkspace = f;
      intWorkspace = i;
      ownsWorkspaces = true;
    }
  }

  public Backend backend() {
    return backend;
  }

  /**
   * Swaps in caller-owned workspaces (FlashInfer's {@code reset_workspace_buffer}): the caller
   * keeps them alive while this instance uses them, and a call they are too small for fails
   * with a message giving the size needed ({@link SegmentGemmNative#workspaceSize}).
   */
  public void resetWorkspaceBuffer(BaseDeviceMemoryBuffer floatWs, BaseDeviceMemoryBuffer intWs) {
    ensureOpen();
    SegmentGemmNative.resetWorkspace(handle, floatWs.getAddress(), floatWs.getLength(),
        intWs.getAddress(), intWs.getLength());
    closeOwnedWorkspaces();
    floatWorkspace = floatWs;
    intWorkspace = intWs;
    ownsWorkspaces = false;
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
    ensureOpen();
    long e = dtype.bytes();
    checkLength("x", x, Math.multiplyExact(Math.multiplyExact(xRows, dIn), e));
    checkLength("weights", weights,
        Math.multiplyExact(Math.multiplyExact(Math.multiplyExact(numWeights, dIn), dOut), e));
    checkLength("y", y, Math.multiplyExact(Math.multiplyExact(xRows, dOut), e));
    checkLength("seg_lens", segLens, batchSize * 8);
    checkLength("seg_indptr", segIndptr, (batchSize + 1) * 8);
    checkLength("weight_indices", weightIndices, batchSize * 8);
    if (segLens == null && segIndptr == null) {
      throw new IllegalArgumentException("one of seg_lens and seg_indptr must be given");
    }
    ensureIntWorkspace(batchSize);
    SegmentGemmNative.run(handle, dtype, address(x), xRows, dIn, dOut, address(weights),
        numWeights, weightColumnMajor, address(y), batchSize, address(segLens),
        address(segIndptr), address(weightIndices), stream.getStream());
    SegmentGemmNative.check(handle, stream.getStream());
  }

  /**
   * The host-array form: copies the input to the device, runs, and returns y as floats (values
   * of {@code in.dtype()}). For tests, demos and small batches; the UDF keeps data on the device.
   */
  public float[] run(SegmentGemmInput in) {
    long[] indptr = in.validate();
    DType dtype = in.dtype();
    Cuda.Stream stream = Cuda.DEFAULT_STREAM;
    long yBytes = in.xRows() * in.dOut() * (long) dtype.bytes();
    try (DeviceMemoryBuffer x = upload(in.x(), dtype);
         DeviceMemoryBuffer w = upload(in.weights(), dtype);
         DeviceMemoryBuffer ptr = upload(indptr);
         DeviceMemoryBuffer idx = in.weightIndices() == null ? null : upload(in.weightIndices());
         DeviceMemoryBuffer y = DeviceMemoryBuffer.allocate(yBytes)) {
      run(dtype, x, in.xRows(), in.dIn(), in.dOut(), w, in.numWeights(), in.weightColumnMajor(),
          y, in.batchSize(), null, ptr, idx, stream);
      return download(y, dtype, Math.toIntExact(in.xRows() * in.dOut()));
    }
  }

  @Override
  public void close() {
    if (handle != 0) {
      long h = handle;
      handle = 0;
      try {
        SegmentGemmNative.destroy(h);
      } finally {
        closeOwnedWorkspaces();
      }
    }
  }

  private void ensureIntWorkspace(long batchSize) {
    long need = SegmentGemmNative.workspaceSize(DType.BFLOAT16, 0, 0, 0, batchSize, batchSize,
        true).intBytes();
    if (need <= intWorkspace.getLength() || !ownsWorkspaces) return;  // too small: native says so
    long bytes = Math.max(need, 2 * intWorkspace.getLength());
    try (DeviceMemoryBuffer grown = DeviceMemoryBuffer.allocate(bytes)) {
      SegmentGemmNative.resetWorkspace(handle, floatWorkspace.getAddress(),
          floatWorkspace.getLength(), grown.getAddress(), grown.getLength());
      grown.incRefCount();
      intWorkspace.close();
      intWorkspace = grown;
    }
  }

  private void closeOwnedWorkspaces() {
    if (ownsWorkspaces) {
      try (BaseDeviceMemoryBuffer f = floatWorkspace; BaseDeviceMemoryBuffer i = intWorkspace) {
        ownsWorkspaces = false;
      }
    }
  }

  private void ensureOpen() {
    if (handle == 0) throw new IllegalStateException("SegmentGemm is closed");
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

  /** values as dtype in new device memory (package-private: tests build inputs with it). */
  static DeviceMemoryBuffer upload(float[] values, DType dtype) {
    long bytes = (long) values.length * dtype.bytes();
    try (HostMemoryBuffer h = HostMemoryBuffer.allocate(bytes)) {
      if (dtype == DType.FLOAT32) {
        h.setFloats(0, values, 0, values.length);
      } else {
        h.setShorts(0, dtype.toBits(values), 0, values.length);
      }
      return toDevice(h);
    }
  }

  static DeviceMemoryBuffer upload(long[] values) {
    try (HostMemoryBuffer h = HostMemoryBuffer.allocate((long) values.length * 8)) {
      h.setLongs(0, values, 0, values.length);
      return toDevice(h);
    }
  }

  private static DeviceMemoryBuffer toDevice(HostMemoryBuffer h) {
    DeviceMemoryBuffer d = DeviceMemoryBuffer.allocate(h.getLength());
    try {
      d.copyFromHostBuffer(h);
      return d;
    } catch (RuntimeException e) {
      d.close();
      throw e;
    }
  }

  private static float[] download(BaseDeviceMemoryBuffer d, DType dtype, int count) {
    try (HostMemoryBuffer h = HostMemoryBuffer.allocate(d.getLength())) {
      h.copyFromDeviceBuffer(d);
      float[] out = new float[count];
      if (count == 0) return out;
      ByteBuffer bb = h.asByteBuffer(0, Math.toIntExact((long) count * dtype.bytes()))
          .order(ByteOrder.LITTLE_ENDIAN);
      if (dtype == DType.FLOAT32) {
        bb.asFloatBuffer().get(out);
        return out;
      }
      short[] bits = new short[count];
      bb.asShortBuffer().get(bits);
      return dtype.fromBits(bits);
    }
  }
}
