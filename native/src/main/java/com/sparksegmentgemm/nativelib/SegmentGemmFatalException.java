package com.sparksegmentgemm.nativelib;

/**
 * A sticky CUDA error ({@link Status#CUDA_FATAL}: illegal address, launch failure, uncorrectable
 * ECC, ...): the process's CUDA context is unusable, every later CUDA call fails, and only a new
 * process can use the GPU again. Callers must not retry on this process; under Spark the
 * executor must exit so that the task is retried on another one (the udfs module hands this to
 * the RAPIDS Accelerator as cuDF's {@code CudaFatalException}, on which it exits the executor).
 */
public class SegmentGemmFatalException extends SegmentGemmException {
  private static final long serialVersionUID = 1L;

  /** @param cudaError the sticky {@code cudaError_t}, e.g. 700 (cudaErrorIllegalAddress) */
  public SegmentGemmFatalException(String message, int cudaError) {
    super(Status.CUDA_FATAL, message, cudaError);
  }
}
