package com.sparksegmentgemm;

import com.sparksegmentgemm.nativelib.DType;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkEnv;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.Tuple2;

/**
 * The JVM-wide registry of adapter stores and their device caches, keyed by path: each executor
 * reads a directory once and uploads each adapter at most once per compute dtype (until the
 * device cache evicts it), however many tasks and batches use it.
 */
public final class AdapterRegistry {
  private static final Logger LOG = LoggerFactory.getLogger(AdapterRegistry.class);
  private record StoreKey(String path, boolean weightColumnMajor) {}

  private record CacheKey(StoreKey store, AdapterWeights.Function function, String loraModule,
      DType dtype, boolean fp8, long budgetBytes) {}

  private static final Map<StoreKey, AdapterStore> STORES = new ConcurrentHashMap<>();
  private static final Map<CacheKey, DeviceAdapterCache> CACHES = new ConcurrentHashMap<>();

  private AdapterRegistry() {}

  /** The host store for these settings, loaded on first use in this JVM. */
  public static AdapterStore store(SegmentGemmSettings s) {
    return STORES.computeIfAbsent(new StoreKey(s.adaptersPath(), s.weightColumnMajor()), k -> {
      try {
        return AdapterStore.load(k.path(), k.weightColumnMajor(), hadoopConf());
      } catch (IOException e) {
        throw new UncheckedIOException("cannot read the adapters at " + k.path() + ": " + e, e);
      }
    });
  }

  /** The weights a function multiplies by under these settings. */
  public static AdapterWeights weights(SegmentGemmSettings s, AdapterWeights.Function function) {
    return store(s).weights(function, s.loraModule());
  }

  /**
   * The device cache of a function's weights for these settings (created on first use; it
   * allocates lazily).
   */
  public static DeviceAdapterCache deviceCache(SegmentGemmSettings s,
      AdapterWeights.Function function) {
    AdapterWeights w = weights(s, function);
    String module = function == AdapterWeights.Function.LORA_APPLY ? s.loraModule() : "";
    return CACHES.computeIfAbsent(new CacheKey(new StoreKey(s.adaptersPath(),
        s.weightColumnMajor()), function, module, s.computeDtype(), s.fp8Weights(),
        s.deviceCacheBytes()),
        k -> new DeviceAdapterCache(w, k.dtype(), k.fp8(), cacheBudget(k.budgetBytes())));
  }

  /**
   * A device cache's budget: deviceCacheBytes, but at most a quarter of the GPU memory pool the
   * RAPIDS Accelerator may take, so that the adapters (allocated through RMM, but not spillable)
   * leave the pool's other users room on small GPUs and capped pools. The pool is the device's
   * memory times spark.rapids.memory.gpu.maxAllocFraction less spark.rapids.memory.gpu.reserve,
   * as the RAPIDS Accelerator sizes it (defaults 1.0 and 640m), or spark.rapids.memory.gpu.allocSize
   * when that is set and smaller. A budget that cannot hold one adapter fails the first batch,
   * naming the key (DeviceAdapterCache).
   */
  static long cacheBudget(long deviceCacheBytes) {
    long total = ai.rapids.cudf.Cuda.memGetInfo().total;
    SparkEnv env = SparkEnv.get();
    double fraction = 1.0;
    long reserve = 640L << 20;
    if (env != null) {
      fraction = env.conf().getDouble("spark.rapids.memory.gpu.maxAllocFraction", 1.0);
      reserve = env.conf().getSizeAsBytes("spark.rapids.memory.gpu.reserve", "640m");
    }
    long pool = Math.max(0, (long) (total * fraction) - reserve);
    if (env != null && env.conf().contains("spark.rapids.memory.gpu.allocSize")) {
      // A pool of a fixed size (the DEFAULT/ARENA pools take exactly this much).
      pool = Math.min(pool, env.conf().getSizeAsBytes("spark.rapids.memory.gpu.allocSize"));
    }
    long budget = Math.min(deviceCacheBytes, pool / 4);
    if (budget < deviceCacheBytes) {
      LOG.info("segment_gemm: adapter cache limited to {} bytes (a quarter of the {}-byte GPU "
          + "pool) instead of {} = {}", budget, pool, SegmentGemmConf.DEVICE_CACHE_BYTES.key(),
          deviceCacheBytes);
    }
    return budget;
  }

  /**
   * Frees every device cache and forgets every store (the next use reloads). For executor
   * shutdown and tests; no task may be using them.
   */
  public static synchronized void clear() {
    try {
      for (DeviceAdapterCache c : CACHES.values()) c.close();
    } finally {
      CACHES.clear();
      STORES.clear();
    }
  }

  /**
   * Hadoop's configuration as Spark gives it to tasks: the spark.hadoop.* entries of the
   * executor's SparkConf (credentials for S3 and the like) over the classpath's *-site.xml.
   */
  private static Configuration hadoopConf() {
    Configuration conf = new Configuration();
    SparkEnv env = SparkEnv.get();
    if (env != null) {
      for (Tuple2<String, String> kv : env.conf().getAll()) {
        if (kv._1().startsWith("spark.hadoop.")) conf.set(kv._1().substring(13), kv._2());
      }
    }
    return conf;
  }
}
