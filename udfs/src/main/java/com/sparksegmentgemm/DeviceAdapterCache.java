package com.sparksegmentgemm;

import ai.rapids.cudf.ColumnVector;
import ai.rapids.cudf.Cuda;
import ai.rapids.cudf.DeviceMemoryBuffer;
import ai.rapids.cudf.HostMemoryBuffer;
import com.sparksegmentgemm.nativelib.DType;
import java.util.Arrays;
import java.util.stream.IntStream;
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
 * task thread never overwrites weights a running kernel reads. Thread-safe: the lock guards the
 * slot tables only; an upload (rounding to the dtype, the host staging and the copy) runs outside
 * it, so task threads whose adapters are resident, or loading different ones, do not wait for
 * it (on the H200 one lock around the uploads stalled every task thread of a job's first
 * batches, issue 14). A thread that needs an adapter another thread is loading waits for that
 * load. Device memory is allocated on first use, through RMM.
 *
 * <p>With fp8 weights (spark.segmentgemm.weightDtype=fp8e4m3) a slot holds the adapter's fp8
 * e4m3 codes, K-major {@code (d_out, d_in)} ({@link AdapterWeights#fp8}), one byte a weight, and
 * each stage has a second slab of one fp32 dequantisation scale per slot ({@link #scales}).
 */
public final class DeviceAdapterCache implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(DeviceAdapterCache.class);

  /** The most host staging memory one upload takes (per stage). */
  private static final long STAGING_BYTES = 256L << 20;

  private final AdapterWeights adapters;
  private final DType dtype;
  private final boolean fp8;
  private final long[] slotBytes;   // per stage
  private final int slots;
  private final int[] slotOf;       // adapter -> slot, or -1
  private final int[] adapterIn;    // slot -> adapter, or -1
  private final int[] pins;
  /** Slots whose upload is under way, outside the lock (pinned by the loading thread). */
  private final boolean[] loading;
  private final long[] lastUse;
  private long tick;
  private long loads;
  private DeviceMemoryBuffer[] slabs;
  private DeviceMemoryBuffer[] scaleSlabs;  // fp8: per stage, slots fp32 scales
  private ColumnVector ids;
  private boolean closed;

  DeviceAdapterCache(AdapterWeights adapters, DType dtype, boolean fp8, long budgetBytes) {
    this.adapters = adapters;
    this.dtype = dtype;
    this.fp8 = fp8;
    if (adapters.size() == 0) {
      throw new IllegalArgumentException("the adapters at " + adapters.path() + " include no "
          + "adapter for " + adapters.function().sqlName());
    }
    int stages = adapters.stages().size();
    this.slotBytes = new long[stages];
    long adapterBytes = 0;
    for (int k = 0; k < stages; k++) {
      slotBytes[k] = Math.max(1L, adapters.stages().get(k).elements() * (fp8 ? 1 : dtype.bytes()));
      adapterBytes += slotBytes[k] + (fp8 ? Float.BYTES : 0);
    }
    long fit = budgetBytes / adapterBytes;
    if (fit < 1) {
      throw new IllegalArgumentException(SegmentGemmConf.DEVICE_CACHE_BYTES.key() + " = "
          + budgetBytes + " cannot hold one adapter of " + adapterBytes + " bytes ("
          + adapters.dIn() + " -> " + adapters.dOut() + " " + (fp8 ? "fp8 e4m3" : dtype) + ")");
    }
    this.slots = (int) Math.min(adapters.size(), fit);
    this.slotOf = new int[adapters.size()];
    this.adapterIn = new int[slots];
    this.pins = new int[slots];
    this.loading = new boolean[slots];
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

  /** Whether the slots hold fp8 e4m3 weights (K-major) with {@link #scales}. */
  public boolean fp8() {
    return fp8;
  }

  /**
   * fp8 only: stage k's dequantisation scales, {@code (slots,)} fp32 (the native call's
   * weight_scales). Owned by the cache.
   */
  public synchronized DeviceMemoryBuffer scales(int k) {
    if (!fp8) throw new IllegalStateException("the adapter cache holds " + dtype + " weights, not fp8");
    allocate();
    return scaleSlabs[k];
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
    int n = slotBytes.length;
    DeviceMemoryBuffer[] s = new DeviceMemoryBuffer[fp8 ? 2 * n : n];
    try {
      for (int k = 0; k < n; k++) s[k] = DeviceMemoryBuffer.allocate(slots * slotBytes[k]);
      if (fp8) for (int k = 0; k < n; k++) s[n + k] = DeviceMemoryBuffer.allocate((long) slots * Float.BYTES);
    } catch (RuntimeException | Error e) {
      for (DeviceMemoryBuffer b : s) if (b != null) b.close();
      throw e;
    }
    slabs = Arrays.copyOf(s, n);
    scaleSlabs = fp8 ? Arrays.copyOfRange(s, n, 2 * n) : null;
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
   * Slots are chosen under the lock; the adapters that were not resident are uploaded after it
   * is released, and the lease is returned once every slot it holds is loaded.
   */
  public Lease acquire(int[] adapters, int from, int to) {
    int[] got;
    int[] mine;   // the slots this call uploads: mine[0 .. uploads)
    int uploads = 0;
    synchronized (this) {
      while (true) {
        allocate();
        got = new int[to - from];
        mine = new int[to - from];
        int n = 0;
        for (int i = from; i < to; i++) {
          int a = adapters[i];
          int s = slotOf[a];
          if (s < 0) {
            s = victim();
            if (s < 0) break;
            if (adapterIn[s] >= 0) slotOf[adapterIn[s]] = -1;
            adapterIn[s] = a;
            slotOf[a] = s;
            loading[s] = true;
            mine[uploads++] = s;
          }
          pins[s]++;
          lastUse[s] = ++tick;
          got[n++] = s;
        }
        if (n > 0) {
          got = Arrays.copyOf(got, n);
          break;
        }
        waitForChange("a free adapter slot");
      }
    }
    Lease lease = new Lease(got);
    try {
      if (uploads > 0) upload(mine, uploads);
    } catch (RuntimeException | Error e) {
      synchronized (this) {
        // The slots this call was filling hold nothing usable: free them for a later try.
        for (int i = 0; i < uploads; i++) {
          int s = mine[i];
          loading[s] = false;
          slotOf[adapterIn[s]] = -1;
          adapterIn[s] = -1;
        }
        notifyAll();
      }
      lease.close();
      throw e;
    }
    boolean retry = false;
    synchronized (this) {
      for (int i = 0; i < uploads; i++) loading[mine[i]] = false;
      loads += uploads;
      notifyAll();
      try {
        // Slots another thread is uploading the same adapters to: wait for those uploads.
        for (int i = 0; i < got.length && !retry; i++) {
          int a = adapters[from + i];
          while (loading[got[i]] && adapterIn[got[i]] == a) waitForChange("an adapter upload");
          // That thread's upload failed and freed the slot: try again, uploading it here.
          retry = adapterIn[got[i]] != a;
        }
      } catch (RuntimeException e) {
        lease.close();
        throw e;
      }
    }
    if (retry) {
      lease.close();
      return acquire(adapters, from, to);
    }
    return lease;
  }

  private void waitForChange(String what) {
    ensureOpen();
    try {
      wait();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while waiting for " + what, e);
    }
    ensureOpen();
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
   * Copies the rounded weights of the adapters in slots[0 .. count) into those slots of every
   * stage, outside the lock (the slots are pinned and marked loading, so no other thread writes
   * or reads them). Per stage, one host staging buffer (pinned under the RAPIDS Accelerator) is
   * filled on several cores at once (rounding and encoding a job's first adapters one by one was
   * most of its first batches' time on the H200, issue 14), then copied slot by slot
   * asynchronously and waited for once per buffer-full: a kernel launched after the slots are
   * marked loaded sees the new weights.
   */
  private void upload(int[] slots, int count) {
    int[] adapter = new int[count];
    DeviceMemoryBuffer[] dst;
    DeviceMemoryBuffer[] dstScales;
    synchronized (this) {
      ensureOpen();
      for (int i = 0; i < count; i++) adapter[i] = adapterIn[slots[i]];
      dst = slabs;
      dstScales = scaleSlabs;
    }
    Cuda.Stream stream = Cuda.DEFAULT_STREAM;
    for (int k = 0; k < dst.length; k++) {
      long bytes = slotBytes[k];
      int stage = k;
      // Staged STAGING_BYTES at a time (at least one adapter), not a whole cache at once.
      int chunk = (int) Math.max(1, Math.min(count, STAGING_BYTES / bytes));
      try (HostMemoryBuffer h = HostMemoryBuffer.allocate(chunk * bytes);
           HostMemoryBuffer hs = fp8 ? HostMemoryBuffer.allocate((long) chunk * Float.BYTES) : null) {
        for (int first = 0; first < count; first += chunk) {
          int from = first;
          int to = Math.min(count, first + chunk);
          IntStream.range(from, to).parallel().forEach(i -> {
            long at = (i - from) * bytes;
            if (fp8) {
              AdapterWeights.Fp8Matrix q = adapters.fp8(adapter[i], stage);
              h.setBytes(at, q.codes(), 0, q.codes().length);
              hs.setFloat((long) (i - from) * Float.BYTES, q.scale());
              return;
            }
            float[] w = adapters.rounded(adapter[i], stage, dtype);
            if (dtype == DType.FLOAT32) {
              h.setFloats(at, w, 0, w.length);
            } else {
              short[] bits = dtype.toBits(w);
              h.setShorts(at, bits, 0, bits.length);
            }
          });
          for (int i = from; i < to; i++) {
            dst[k].copyFromHostBufferAsync(slots[i] * bytes, h, (i - from) * bytes, bytes, stream);
            if (fp8) {
              dstScales[k].copyFromHostBufferAsync((long) slots[i] * Float.BYTES, hs,
                  (long) (i - from) * Float.BYTES, Float.BYTES, stream);
            }
          }
          stream.sync();  // before h is refilled or freed, and before the slots are marked loaded
        }
      }
    }
    LOG.debug("{} adapters loaded into device slots ({} slots, {})", count, this.slots,
        fp8 ? "fp8 e4m3" : dtype);
  }

  private boolean anyLoading() {
    for (boolean l : loading) if (l) return true;
    return false;
  }

  private void ensureOpen() {
    if (closed) throw new IllegalStateException("the device adapter cache is closed");
  }

  @Override
  public synchronized void close() {
    if (closed) return;
    closed = true;
    // Uploads run outside the lock: let those under way finish before their slabs are freed.
    boolean interrupted = false;
    while (anyLoading()) {
      try {
        wait();
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) Thread.currentThread().interrupt();
    try (ColumnVector i = ids) {
      if (slabs != null) for (DeviceMemoryBuffer b : slabs) b.close();
      if (scaleSlabs != null) for (DeviceMemoryBuffer b : scaleSlabs) b.close();
    } finally {
      slabs = null;
      scaleSlabs = null;
      ids = null;
    }
    notifyAll();
  }
}
