package com.sparksegmentgemm.spark;

import com.codahale.metrics.Gauge;
import com.codahale.metrics.MetricRegistry;
import com.sparksegmentgemm.AdapterRegistry;
import com.sparksegmentgemm.SegmentGemmConf;
import com.sparksegmentgemm.SegmentGemmMetrics;
import com.sparksegmentgemm.SegmentGemmSettings;
import com.sparksegmentgemm.nativelib.Gpu;
import com.sparksegmentgemm.nativelib.SegmentGemmNative;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.ToLongFunction;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkContext;
import org.apache.spark.TaskFailedReason;
import org.apache.spark.api.plugin.DriverPlugin;
import org.apache.spark.api.plugin.ExecutorPlugin;
import org.apache.spark.api.plugin.PluginContext;
import org.apache.spark.api.plugin.SparkPlugin;
import org.apache.spark.resource.ResourceInformation;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code spark.plugins=com.sparksegmentgemm.spark.SegmentGemmPlugin} (before
 * {@code com.nvidia.spark.SQLPlugin} when the RAPIDS Accelerator is used; the driver moves it
 * there if it is listed after, see {@link #withPluginOrder}).
 *
 * <p>Driver: checks every {@code spark.segmentgemm.*} key at start-up (an unknown key or a bad
 * value fails the application, naming the key), adds {@link SegmentGemmExtensions} to
 * {@code spark.sql.extensions}, and collects each executor's counters ({@link #executorReports}).
 *
 * <p>Executor: loads the native library and finds the GPU Spark assigned (or says once that the
 * functions run on the CPU, and why), reads the adapters once, publishes the UDFs' counters
 * ({@link SegmentGemmMetrics}) to Spark's metric system (source
 * {@code plugin.com.sparksegmentgemm.spark.SegmentGemmPlugin}: rows, gpuRows, cpuRows, batches,
 * segments, nativeCalls, featureBytes, gpuFeatureBytes, gpuUdfTimeNs, gpuUdfBusyTimeNs,
 * inputWaitTimeNs, groupTimeNs, adapterTimeNs, gatherTimeNs, kernelTimeNs, scatterTimeNs,
 * cpuUdfTimeNs, gpuDevice), and
 * sends them to the driver after each task. GPU memory (workspace, adapter slabs) is taken
 * through RMM on the first batch, once the RAPIDS Accelerator has set up its pool.
 */
public final class SegmentGemmPlugin implements SparkPlugin {
  private static final Logger LOG = LoggerFactory.getLogger(SegmentGemmPlugin.class);
  private static final String EXTENSIONS_KEY = "spark.sql.extensions";
  private static final String PLUGINS_KEY = "spark.plugins";
  static final String RAPIDS_PLUGIN = "com.nvidia.spark.SQLPlugin";
  private static final Map<String, ExecutorReport> REPORTS = new ConcurrentHashMap<>();

  /** What an executor reports: its counters, the GPU Spark assigned it, and where it runs. */
  public record ExecutorReport(String executorId, String host, String assignedGpu,
      String device, long sequence, SegmentGemmMetrics.Snapshot metrics) {
    private static final String TAG = "segmentgemm-report";

    /**
     * As JDK types only: the driver's RPC layer deserialises messages with Spark's class loader,
     * which need not see the application's jar (spark-submit of this jar on a cluster).
     */
    String[] toWire() {
      long[] c = metrics.toLongs();
      String[] w = new String[6 + c.length];
      w[0] = TAG;
      w[1] = executorId;
      w[2] = host;
      w[3] = assignedGpu;
      w[4] = device;
      w[5] = Long.toString(sequence);
      for (int i = 0; i < c.length; i++) w[6 + i] = Long.toString(c[i]);
      return w;
    }

    static ExecutorReport fromWire(Object message) {
      if (!(message instanceof String[] w) || w.length < 6 || !TAG.equals(w[0])) return null;
      long[] c = new long[w.length - 6];
      for (int i = 0; i < c.length; i++) c[i] = Long.parseLong(w[6 + i]);
      return new ExecutorReport(w[1], w[2], w[3], w[4], Long.parseLong(w[5]),
          SegmentGemmMetrics.Snapshot.fromLongs(c));
    }
  }

  @Override
  public DriverPlugin driverPlugin() {
    return new Driver();
  }

  @Override
  public ExecutorPlugin executorPlugin() {
    return new Executor();
  }

  /** The latest report of every executor of this application (on the driver). */
  public static Map<String, ExecutorReport> executorReports() {
    return new TreeMap<>(REPORTS);
  }

  /** The sum of every executor's counters (on the driver). */
  public static SegmentGemmMetrics.Snapshot totals() {
    SegmentGemmMetrics.Snapshot t = SegmentGemmMetrics.Snapshot.ZERO;
    for (ExecutorReport r : REPORTS.values()) t = t.plus(r.metrics());
    return t;
  }

  static final class Driver implements DriverPlugin {
    @Override
    public Map<String, String> init(SparkContext sc, PluginContext ctx) {
      SparkConf conf = sc.conf();
      SegmentGemmConf.validate(SegmentGemmConf.asMap(conf));
      conf.set(EXTENSIONS_KEY, withExtension(conf.get(EXTENSIONS_KEY, "")));
      // Executors read spark.plugins after this (local mode: the executor is made after the
      // driver's plugins; on a cluster: executors fetch the driver's conf when they register).
      String plugins = conf.get(PLUGINS_KEY, "");
      if (rapidsFirst(plugins)) {
        String ordered = withPluginOrder(plugins);
        LOG.info("segment_gemm: {} = {} (our executor plugin must stop before the RAPIDS "
            + "Accelerator's, which shuts down the GPU memory pool)", PLUGINS_KEY, ordered);
        conf.set(PLUGINS_KEY, ordered);
      }
      REPORTS.clear();
      return Map.of();
    }

    @Override
    public Object receive(Object message) {
      ExecutorReport r = ExecutorReport.fromWire(message);
      if (r != null) {
        REPORTS.merge(r.executorId(), r, (old, now) -> now.sequence() > old.sequence() ? now : old);
      }
      return Boolean.TRUE;
    }
  }

  /**
   * spark.plugins with ours before the RAPIDS Accelerator's (others keep their places). Spark
   * stops executor plugins in list order (PluginContainer), and the RAPIDS Accelerator's
   * shutdown frees every RMM allocation still open, reporting each as LEAKED, before it shuts
   * the pool down (spark-rapids GpuDeviceManager.shutdown: MemoryCleaner.cleanAllRmmBlockers);
   * our shutdown must free the adapter caches before that.
   */
  static String withPluginOrder(String plugins) {
    List<String> names = pluginNames(plugins);
    if (rapidsFirst(names)) {
      names.remove(SegmentGemmPlugin.class.getName());
      names.add(names.indexOf(RAPIDS_PLUGIN), SegmentGemmPlugin.class.getName());
    }
    return String.join(",", names);
  }

  /** Whether spark.plugins lists the RAPIDS Accelerator before ours. */
  static boolean rapidsFirst(String plugins) {
    return rapidsFirst(pluginNames(plugins));
  }

  private static boolean rapidsFirst(List<String> names) {
    int rapids = names.indexOf(RAPIDS_PLUGIN);
    return rapids >= 0 && names.indexOf(SegmentGemmPlugin.class.getName()) > rapids;
  }

  /** The class names in a spark.plugins value, trimmed, each once (as Spark loads them). */
  private static List<String> pluginNames(String plugins) {
    List<String> names = new ArrayList<>();
    for (String n : plugins.split(",")) {
      if (!n.isBlank() && !names.contains(n.trim())) names.add(n.trim());
    }
    return names;
  }

  /** The extensions list with ours appended once. */
  static String withExtension(String current) {
    Set<String> names = new LinkedHashSet<>();
    for (String n : current.split(",")) if (!n.isBlank()) names.add(n.trim());
    names.add(SegmentGemmExtensions.class.getName());
    return String.join(",", names);
  }

  static final class Executor implements ExecutorPlugin {
    private PluginContext ctx;
    private String assignedGpu = "";
    private String device = "CPU";
    private long sequence;
    private SegmentGemmMetrics.Snapshot lastSent;
    private boolean warned;

    @Override
    public void init(PluginContext ctx, Map<String, String> extraConf) {
      this.ctx = ctx;
      ResourceInformation gpu = ctx.resources().get("gpu");
      if (gpu != null) assignedGpu = String.join(",", gpu.addresses());
      if (Gpu.isAvailable()) {
        device = describeDevice(gpu);
        boolean rapids = rapidsEnabled(ctx.conf());
        LOG.info("segment_gemm on executor {}: {}{}; native library {}{}", ctx.executorID(),
            device, gpu == null ? "" : " (Spark assigned GPU " + assignedGpu + ")",
            SegmentGemmNative.libraryVersion(), rapids ? ""
                : ". The RAPIDS Accelerator is not enabled (spark.plugins lacks "
                + "com.nvidia.spark.SQLPlugin, or spark.rapids.sql.enabled=false): the "
                + "functions run on the CPU, row by row");
        if (!rapids) device = "CPU (GPU present, RAPIDS Accelerator not enabled)";
      } else {
        LOG.warn("segment_gemm on executor {}: no usable GPU ({}): segment_gemm and lora_apply "
            + "run on the CPU", ctx.executorID(), Gpu.unavailableReason().orElse("unknown"));
      }
      String plugins = ctx.conf().get(PLUGINS_KEY, "");
      if (rapidsFirst(plugins) && rapidsEnabled(ctx.conf())) {
        LOG.warn("segment_gemm: {} lists {} before {}: the RAPIDS Accelerator will stop first, "
            + "and the adapter caches' GPU buffers will be reported as leaked when the executor "
            + "stops. List {} first.", PLUGINS_KEY, RAPIDS_PLUGIN,
            SegmentGemmPlugin.class.getName(), SegmentGemmPlugin.class.getName());
      }
      preloadAdapters(ctx.conf());
      registerMetrics(ctx.metricRegistry());
      lastSent = SegmentGemmMetrics.snapshot();
    }

    /**
     * The GPU Spark assigned, as this process sees it. An address need not be a CUDA ordinal
     * here (a resource manager may have narrowed CUDA_VISIBLE_DEVICES): then device 0 is
     * described; the device each batch really ran on is in the metrics (gpuDevice).
     */
    private static String describeDevice(ResourceInformation gpu) {
      int visible = SegmentGemmNative.deviceCount();
      int ordinal = 0;
      if (gpu != null && gpu.addresses().length > 0) {
        try {
          ordinal = Integer.parseInt(gpu.addresses()[0].trim());
        } catch (NumberFormatException e) {
          ordinal = 0;
        }
        if (ordinal < 0 || ordinal >= visible) ordinal = 0;
      }
      return "GPU " + ordinal + " of " + visible + " visible: "
          + SegmentGemmNative.deviceQuery(ordinal);
    }

    /** Reads the adapters once per executor, before the first task needs them. */
    private void preloadAdapters(SparkConf conf) {
      if (!conf.contains(SegmentGemmConf.ADAPTERS_PATH.key())) return;
      try {
        SegmentGemmSettings s = SegmentGemmConf.settings(conf);
        AdapterRegistry.store(s);
      } catch (RuntimeException e) {
        // The tasks that use them report it, with their context; the executor stays up.
        LOG.warn("segment_gemm: could not read the adapters at start-up: {}", e.getMessage());
      }
    }

    private static void registerMetrics(MetricRegistry registry) {
      gauge(registry, "rows", SegmentGemmMetrics.Snapshot::rows);
      gauge(registry, "gpuRows", SegmentGemmMetrics.Snapshot::gpuRows);
      gauge(registry, "cpuRows", SegmentGemmMetrics.Snapshot::cpuRows);
      gauge(registry, "batches", SegmentGemmMetrics.Snapshot::batches);
      gauge(registry, "segments", SegmentGemmMetrics.Snapshot::segments);
      gauge(registry, "nativeCalls", SegmentGemmMetrics.Snapshot::nativeCalls);
      gauge(registry, "featureBytes", SegmentGemmMetrics.Snapshot::featureBytes);
      gauge(registry, "gpuFeatureBytes", SegmentGemmMetrics.Snapshot::gpuFeatureBytes);
      gauge(registry, "gpuUdfTimeNs", SegmentGemmMetrics.Snapshot::gpuUdfNanos);
      gauge(registry, "gpuUdfBusyTimeNs", SegmentGemmMetrics.Snapshot::gpuUdfBusyNanos);
      gauge(registry, "inputWaitTimeNs", SegmentGemmMetrics.Snapshot::inputWaitNanos);
      gauge(registry, "groupTimeNs", SegmentGemmMetrics.Snapshot::groupNanos);
      gauge(registry, "adapterTimeNs", SegmentGemmMetrics.Snapshot::adapterNanos);
      gauge(registry, "gatherTimeNs", SegmentGemmMetrics.Snapshot::gatherNanos);
      gauge(registry, "kernelTimeNs", SegmentGemmMetrics.Snapshot::kernelNanos);
      gauge(registry, "scatterTimeNs", SegmentGemmMetrics.Snapshot::scatterNanos);
      gauge(registry, "cpuUdfTimeNs", SegmentGemmMetrics.Snapshot::cpuUdfNanos);
      gauge(registry, "gpuDevice", s -> s.gpuDevice());
    }

    private static void gauge(MetricRegistry registry, String name,
        ToLongFunction<SegmentGemmMetrics.Snapshot> f) {
      registry.register(name, (Gauge<Long>) () -> f.applyAsLong(SegmentGemmMetrics.snapshot()));
    }

    /** The context's host name: its RPC address, which executors in client mode lack. */
    private String hostname() {
      try {
        return ctx.hostname();
      } catch (RuntimeException e) {
        try {
          return java.net.InetAddress.getLocalHost().getHostName();
        } catch (java.net.UnknownHostException u) {
          return "unknown";
        }
      }
    }

    @Override
    public void onTaskSucceeded() {
      report();
    }

    @Override
    public void onTaskFailed(TaskFailedReason reason) {
      report();
    }

    @Override
    public void shutdown() {
      // Before the RAPIDS Accelerator's own shutdown (see withPluginOrder), so that no device
      // buffer of ours outlives the pool.
      AdapterRegistry.clear();
    }

    /**
     * Sends the counters to the driver when they changed. Spark calls this before it reports the
     * task finished, and the ask blocks, so the driver normally has a task's counters when it
     * learns the task ended; {@link SegmentGemmJob} still waits briefly for stragglers. The
     * snapshot is taken under the lock, so that a higher sequence never carries older counters.
     */
    private void report() {
      ExecutorReport r;
      synchronized (this) {
        SegmentGemmMetrics.Snapshot now = SegmentGemmMetrics.snapshot();
        if (now.equals(lastSent)) return;
        lastSent = now;
        r = new ExecutorReport(ctx.executorID(), hostname(), assignedGpu,
            now.gpuDevice() >= 0 ? "GPU " + now.gpuDevice() : device, ++sequence, now);
      }
      try {
        ctx.ask(r.toWire());
      } catch (Exception e) {
        if (!warned) LOG.warn("segment_gemm: could not send metrics to the driver", e);
        warned = true;
      }
    }
  }

  /** Whether this executor's RAPIDS Accelerator will run SQL on the GPU. */
  static boolean rapidsEnabled(SparkConf conf) {
    return pluginNames(conf.get(PLUGINS_KEY, "")).contains(RAPIDS_PLUGIN)
        && conf.getBoolean("spark.rapids.sql.enabled", true);
  }
}
