package com.sparksegmentgemm;

import ai.rapids.cudf.CudaFatalException;
import com.sparksegmentgemm.nativelib.SegmentGemmFatalException;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Native failures in the form the RAPIDS Accelerator acts on. A sticky CUDA error leaves the
 * executor's CUDA context unusable, so retrying the task on this executor fails again: the
 * RAPIDS Accelerator's executor plugin exits the executor when a task fails with cuDF's
 * {@link CudaFatalException} anywhere in its cause chain
 * ({@code com.nvidia.spark.rapids.RapidsExecutorPlugin.onTaskFailed}, spark-rapids
 * sql-plugin/src/main/scala/com/nvidia/spark/rapids/Plugin.scala: {@code
 * containsCudaFatalException} over {@code ExceptionUtils.getThrowableList}), and Spark retries the
 * task on another one. The native layer does not depend on cuDF, so it throws its own
 * {@link SegmentGemmFatalException}; this class turns that into a CudaFatalException.
 */
final class NativeErrors {
  private static final Logger LOG = LoggerFactory.getLogger(NativeErrors.class);
  // cuDF keeps CudaFatalException's constructors package-private (only its JNI creates them);
  // (message, native stack trace, cudaError_t, cause) is the one that keeps our exception.
  private static final Constructor<CudaFatalException> FATAL = fatalConstructor();

  private NativeErrors() {}

  /**
   * e itself, unless a {@link SegmentGemmFatalException} is in its cause chain: then a
   * {@link CudaFatalException} with the same message and CUDA error code whose cause is e (so the
   * UDF's context in e is kept).
   */
  static RuntimeException forRapids(RuntimeException e) {
    SegmentGemmFatalException fatal = null;
    for (Throwable t = e; t != null && fatal == null; t = t.getCause()) {
      if (t instanceof SegmentGemmFatalException f) fatal = f;
    }
    if (fatal == null) return e;
    if (FATAL == null) return e;  // cuDF without that constructor: the message names the error
    try {
      return FATAL.newInstance(e.getMessage(), "no native stack trace (libsegmentgemm)",
          fatal.cudaError(), e);
    } catch (InstantiationException | IllegalAccessException | InvocationTargetException x) {
      e.addSuppressed(x);
      return e;
    }
  }

  private static Constructor<CudaFatalException> fatalConstructor() {
    try {
      Constructor<CudaFatalException> c = CudaFatalException.class.getDeclaredConstructor(
          String.class, String.class, int.class, Throwable.class);
      c.setAccessible(true);
      return c;
    } catch (NoSuchMethodException | RuntimeException e) {
      LOG.warn("this cuDF has no usable CudaFatalException(String, String, int, Throwable) ({}): "
          + "a sticky CUDA error in segment_gemm reaches the RAPIDS Accelerator as "
          + "SegmentGemmFatalException, which it does not recognise", e.toString());
      return null;
    }
  }
}
