package com.sparksegmentgemm;

import ai.rapids.cudf.BaseDeviceMemoryBuffer;
import ai.rapids.cudf.Cuda;
import ai.rapids.cudf.DeviceMemoryBuffer;
import ai.rapids.cudf.HostMemoryBuffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A row-major tensor in device memory: a cuDF buffer, an element type and a shape. It holds one
 * reference to its buffer and drops it on {@link #close()}: a tensor made by {@link #allocate}
 * or {@link #fromHost} owns new RMM memory, one made by {@link #wrap} shares the caller's buffer
 * (which the caller still closes).
 */
public final class DeviceTensor implements AutoCloseable {
  private final BaseDeviceMemoryBuffer buffer;
  private final TensorType type;
  private final long[] shape;
  private boolean closed;

  private DeviceTensor(BaseDeviceMemoryBuffer buffer, TensorType type, long[] shape) {
    this.buffer = buffer;
    this.type = type;
    this.shape = shape.clone();
  }

  /** A new tensor of this shape in RMM memory; its contents are undefined. */
  public static DeviceTensor allocate(TensorType type, long... shape) {
    return new DeviceTensor(DeviceMemoryBuffer.allocate(bytes(type, shape)), type, shape);
  }

  /**
   * A tensor over (the start of) a buffer the caller owns; it takes its own reference, so the
   * buffer lives until both the caller and the tensor have closed it.
   *
   * @throws IllegalArgumentException if the buffer is smaller than the shape needs
   */
  public static DeviceTensor wrap(BaseDeviceMemoryBuffer buffer, TensorType type, long... shape) {
    long need = bytes(type, shape);
    if (buffer.getLength() < need) {
      throw new IllegalArgumentException("a " + type + " tensor of shape " + Arrays.toString(shape)
          + " needs " + need + " bytes but the buffer has " + buffer.getLength());
    }
    buffer.incRefCount();
    return new DeviceTensor(buffer, type, shape);
  }

  /** The values of a host tensor, converted to its dtype, in new device memory. */
  public static DeviceTensor fromHost(HostTensor t) {
    TensorType type = TensorType.of(t.dtype());
    float[] v = t.values();
    try (HostMemoryBuffer h = HostMemoryBuffer.allocate(bytes(type, t.shape()))) {
      if (type == TensorType.FLOAT32) {
        h.setFloats(0, v, 0, v.length);
      } else {
        h.setShorts(0, t.dtype().toBits(v), 0, v.length);
      }
      return upload(h, type, t.shape());
    }
  }

  /** A 1-D INT64 tensor of these values (segment lengths, offsets, weight indices). */
  public static DeviceTensor fromLongs(long... values) {
    try (HostMemoryBuffer h = HostMemoryBuffer.allocate(8L * values.length)) {
      h.setLongs(0, values, 0, values.length);
      return upload(h, TensorType.INT64, new long[] {values.length});
    }
  }

  private static DeviceTensor upload(HostMemoryBuffer h, TensorType type, long[] shape) {
    DeviceMemoryBuffer d = DeviceMemoryBuffer.allocate(h.getLength());
    try {
      d.copyFromHostBuffer(h);
      return new DeviceTensor(d, type, shape);
    } catch (RuntimeException e) {
      d.close();
      throw e;
    }
  }

  /** The values, as floats of this tensor's dtype (synchronous; for tests and small results). */
  public HostTensor toHost() {
    int n = Math.toIntExact(elements());
    float[] out = new float[n];
    try (HostMemoryBuffer h = HostMemoryBuffer.allocate(Math.max(1, bytes()))) {
      if (n > 0) h.copyFromMemoryBuffer(0, buffer, 0, bytes(), Cuda.DEFAULT_STREAM);
      ByteBuffer bb = h.asByteBuffer(0, Math.toIntExact(bytes())).order(ByteOrder.LITTLE_ENDIAN);
      if (type == TensorType.FLOAT32) {
        bb.asFloatBuffer().get(out);
        return new HostTensor(type.gemmDtype(), out, shape);
      }
      short[] bits = new short[n];
      bb.asShortBuffer().get(bits);
      return new HostTensor(type.gemmDtype(), type.gemmDtype().fromBits(bits), shape);
    }
  }

  public BaseDeviceMemoryBuffer buffer() {
    return buffer;
  }

  public TensorType type() {
    return type;
  }

  public long[] shape() {
    return shape.clone();
  }

  public int rank() {
    return shape.length;
  }

  public long dim(int i) {
    return shape[i];
  }

  public long elements() {
    long n = 1;
    for (long d : shape) n *= d;
    return n;
  }

  /** Bytes the shape covers (the buffer may be longer). */
  public long bytes() {
    return bytes(type, shape);
  }

  public long address() {
    return buffer.getAddress();
  }

  static long bytes(TensorType type, long[] shape) {
    long n = type.bytes();
    for (long d : shape) {
      if (d < 0) throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
      n = Math.multiplyExact(n, d);
    }
    return n;
  }

  @Override
  public void close() {
    if (!closed) {
      closed = true;
      buffer.close();
    }
  }

  @Override
  public String toString() {
    return "DeviceTensor[" + type + " " + Arrays.toString(shape) + "]";
  }
}
