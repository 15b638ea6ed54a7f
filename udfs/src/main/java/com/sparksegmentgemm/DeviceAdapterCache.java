package com.sparksegmentgemm;

import ai.rapids.cudf.ColumnVector;
import ai.rapids.cudf.DeviceMemoryBuffer;
import ai.rapids.cudf.HostMemoryBuffer;
import com.sparksegmentgemm.nativelib.DType;
import java.util.Arrays;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An executor's adapter weights of one function on the GPU, in one compute dtype: per stage (one
 * for segment_gemm, A and B for lora_apply) a slab of equal slots, slot s of every slab holding
 * the same adapter, so that one native call per stage can address every adapter of a batch as
 * {@code weights[slot]} ({@code weight_indices} are slot numbers). The slabs hold
 * {@code min(adapters, budget / adapter bytes)} slots; when a batch needs an adapter that is not
 * resident, the least recently used unpinned slot is reloaded from host memory.
 *
 * <p>A batch pins the slots it uses ({@link #acquire}) until its kernel has finished, so another
 * task thread never overwrites weights a running kernel reads. Thread-safe. Device memory is
 * allocated on first use, through RMM.
 */
public final class DeviceAdapterCache implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(DeviceAdapterCache.class);

  private final AdapterWeights adapters;
  private final DType dtype;
  private final long[] slotBytes;   // per stage
  private final int slots;
  private final int[] slotOf;       // adapter -> slot, or -1
  private final int[] adapterIn;    // slot -> adapter, or -1
  private final int[] pins;
  private final long[] lastUse;
  private long tick;
  private long loads;
  private DeviceMemoryBuffer[] slabs;
  private ColumnVector ids;
  private boolean closed;

  DeviceAdapterCache(AdapterWeights adapters, DType dtype, long budgetBytes) {
    this.adapters = adapters;
    this.dtype = dtype;
    if (adapters.size() == 0) {
      throw new IllegalArgumentException("the adapters at " + adapters.path() + " include no "
          + "adapter for " + adapters.function().sqlName());
    }
    int stages = adapters.stages().size();
    this.slotBytes = new long[stages];
    long adapterBytes = 0;
    for (int k = 0; k < stages; k++) {
      slotBytes[k] = Math.max(1L, adapters.stages().get(k).elements() * dtype.bytes());
      adapterBytes += slotBytes[k];
    }
    long fit = budgetBytes / adapterBytes;
    if (fit < 1) {
      throw new IllegalArgumentException(SegmentGemmConf.DEVICE_CACHE_BYTES.key() + " = "
          + budgetBytes + " cannot hold one adapter of " + adapterBytes + " bytes ("
          + adapters.dIn() + " -> " + adapters.dOut() + " " + dtype + ")");
    }
    this.slots = (int) Math.min(adapters.size(), fit);
    this.slotOf = new int[adapters.size()];
    this.adapterIn = new int[slots];
    this.pins = new int[slots];
    this.lastUse = new long[slots];
    Arrays.fill(slotOf, -1);
    Arrays.fill(adapterIn, -1);
  }

  public AdapterWeights adapters() {
    return adapters;
  }

  public DType dtype() {
    return dtype;
  }

  /** Number of slots: the num_weights of a native call over {@link #weights()}. */
  public int slots() {
    return slots;
  }

  /** Adapter loads from host memory so far (an adapter evicted and used again counts twice). */
  public synchronized long loads() {
    return loads;
  }

  /**
   * Stage k's slab, {@code (slots, d_in, d_out)} (or column-major) in the compute dtype. The
   * cache owns it: callers must not close it.
   */
  public synchronized DeviceMemoryBuffer weights(int k) {
    allocate();
    return slabs[k];
  }

  private void allocate() {
    ensureOpen();
    if (slabs != null) return;
    DeviceMemoryBuffer[] s = new DeviceMemoryBuffer[slotBytes.length];
    try {
      for (int k = 0; k < s.length; k++) s[k] = DeviceMemoryBuffer.allocate(slots * slotBytes[k]);
    } catch (RuntimeException | Error e) {
      for (DeviceMemoryBuffer b : s) if (b != null) b.close();
      throw e;
    }
    slabs = s;
  }

  /**
   * The adapter ids as a device STRING column, sorted (row i is adapter i); owned by the
   * cache: callers must not close it.
   */
  public synchronized ColumnVector ids() {
    ensureOpen();
    if (ids == null) ids = ColumnVector.fromStrings(adapters.ids().toArray(new String[0]));
    return ids;
  }

  /** Slots pinned for a prefix of a batch's adapters; {@link #close()} unpins them. */
  public final class Lease implements AutoCloseable {
    private final int[] leased;
    private boolean released;

    private Lease(int[] leased) {
      this.leased = leased;
    }

    /** How many of the requested adapters (from the first) have a slot. */
    public int count() {
      return leased.length;
    }

    /** The slot of the i-th requested adapter (i < count()). */
    public int slot(int i) {
      return leased[i];
    }

    @Override
    public void close() {
      synchronized (DeviceAdapterCache.this) {
        if (released) return;
        released = true;
        for (int s : leased) pins[s]--;
        DeviceAdapterCache.this.notifyAll();
      }
    }
  }

  /**
   * Makes adapters[from], adapters[from + 1], ... resident and pins them, as many as fit (at
   * least one: it waits while other tasks pin every slot). The adapters must be distinct.
   */
  public synchronized Lease acquire(int[] adapters, int from, int to) {
    while (true) {
      allocate();
      int[] got = new int[to - from];
      int n = 0;
      for (int i = from; i < to; i++) {
        int a = adapters[i];
        int s = slotOf[a];
        if (s < 0) {
          s = victim();
          if (s < 0) break;
          load(a, s);
        }
        pins[s]++;
        lastUse[s] = ++tick;
        got[n++] = s;
      }
      if (n > 0) return new Lease(Arrays.copyOf(got, n));
      try {
        wait();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted while waiting for a free adapter slot", e);
      }
    }
  }

  /** An empty slot, else the least recently used unpinned one, else -1. */
  private int victim() {
    int best = -1;
    for (int s = 0; s < slots; s++) {
      if (pins[s] > 0) continue;
      if (adapterIn[s] < 0) return s;
      if (best < 0 || lastUse[s] < lastUse[best]) best = s;
    }
    return best;
  }

  /**
   * Copies adapter a's rounded weights into slot s of every stage. The copies are synchronous,
   * so a kernel that another thread launches after it sees the slot resident reads the new
   * weights.
   */
  private void load(int a, int s) {
    if (adapterIn[s] >= 0) slotOf[adapterIn[s]] = -1;
    adapterIn[s] = -1;
    for (int k = 0; k < slabs.length; k++) {
      float[] w = adapters.rounded(a, k, dtype);
      try (HostMemoryBuffer h = HostMemoryBuffer.allocate(slotBytes[k])) {
        if (dtype == DType.FLOAT32) {
          h.setFloats(0, w, 0, w.length);
        } else {
          short[] bits = dtype.toBits(w);
          h.setShorts(0, bits, 0, bits.length);
        }
        slabs[k].copyFromHostBuffer(s * slotBytes[k], h, 0, slotBytes[k]);
      }
    }
    adapterIn[s] = a;
    slotOf[a] = s;
    loads++;
    LOG.debug("Adapter '{}' loaded into device slot {} of {} ({})", adapters.ids().get(a), s,
        slots, dtype);
  }

  private void ensureOpen() {
    if (closed) throw new IllegalStateException("the device adapter cache is closed");
  }

  @Override
  public synchronized void close() {
    if (closed) return;
    closed = true;
    try (ColumnVector i = ids) {
      if (slabs != null) for (DeviceMemoryBuffer b : slabs) b.close();
    } finally {
      slabs = null;
      ids = null;
    }
    notifyAll();
  }
}
