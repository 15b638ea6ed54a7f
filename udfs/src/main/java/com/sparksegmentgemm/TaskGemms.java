package com.sparksegmentgemm;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.spark.TaskContext;
import org.apache.spark.util.TaskCompletionListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One {@link SegmentGemm} handle per Spark task attempt and backend, so that the batches of a
 * task share one native handle whose workspaces only grow (creating a handle allocates and
 * synchronises). A task-completion listener closes it when the task ends, failed or not, on the
 * task's own thread, so no batch of that task can still be using it. Outside a Spark task (the
 * Java API, tests) there is none: the caller makes a handle per batch and closes it.
 */
final class TaskGemms {
  private static final Logger LOG = LoggerFactory.getLogger(TaskGemms.class);

  private record Key(long taskAttemptId, SegmentGemm.Backend backend) {}

  private static final Map<Key, SegmentGemm> OPEN = new ConcurrentHashMap<>();

  private TaskGemms() {}

  /** The current task's handle for backend, created on first use; null outside a Spark task. */
  static SegmentGemm forCurrentTask(SegmentGemm.Backend backend) {
    TaskContext task = TaskContext.get();
    if (task == null) return null;
    Key key = new Key(task.taskAttemptId(), backend);
    return OPEN.computeIfAbsent(key, k -> {
      SegmentGemm gemm = new SegmentGemm(backend);
      task.addTaskCompletionListener((TaskCompletionListener) ctx -> close(k));
      return gemm;
    });
  }

  /**
   * Closes the current task's handles now (their workspaces go back to the pool): after a GPU
   * out-of-memory, so that the RAPIDS Accelerator's retry of the batch has that memory too. The
   * next batch of the task makes a new handle.
   */
  static void releaseCurrentTask() {
    TaskContext task = TaskContext.get();
    if (task == null) return;
    for (SegmentGemm.Backend b : SegmentGemm.Backend.values()) {
      close(new Key(task.taskAttemptId(), b));
    }
  }

  private static void close(Key key) {
    SegmentGemm gemm = OPEN.remove(key);
    if (gemm == null) return;
    try {
      gemm.close();
    } catch (RuntimeException e) {
      // A task that failed on a dead CUDA context cannot free its workspace; the task's own
      // failure is the error that matters, so this one is only logged.
      LOG.warn("segment_gemm: could not release task {}'s native handle: {}", key.taskAttemptId(),
          e.toString());
    }
  }
}
