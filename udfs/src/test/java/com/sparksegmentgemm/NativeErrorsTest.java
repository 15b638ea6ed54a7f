package com.sparksegmentgemm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;

import ai.rapids.cudf.CudaException;
import ai.rapids.cudf.CudaFatalException;
import com.sparksegmentgemm.nativelib.SegmentGemmException;
import com.sparksegmentgemm.nativelib.SegmentGemmFatalException;
import com.sparksegmentgemm.nativelib.Status;
import org.junit.jupiter.api.Test;

/** Sticky CUDA errors reach the RAPIDS Accelerator as cuDF's CudaFatalException; needs no GPU. */
class NativeErrorsTest {

  @Test
  void fatalNativeErrorBecomesCudaFatalException() {
    SegmentGemmFatalException fatal = new SegmentGemmFatalException(
        "CUDA_FATAL: cudaStreamSynchronize(stream) failed: cudaErrorIllegalAddress: an illegal "
            + "memory access was encountered", 700);
    RuntimeException mapped = NativeErrors.forRapids(fatal);
    CudaFatalException cuda = assertInstanceOf(CudaFatalException.class, mapped);
    assertEquals(fatal.getMessage(), cuda.getMessage());
    assertEquals(CudaException.CudaError.cudaErrorIllegalAddress, cuda.getCudaError());
    assertSame(fatal, cuda.getCause());
  }

  @Test
  void fatalErrorUnderContextIsFoundAndTheContextKept() {
    SegmentGemmFatalException fatal = new SegmentGemmFatalException("CUDA_FATAL: launch", 719);
    IllegalStateException withContext = new IllegalStateException("segment_gemm: batch of 3 rows", fatal);
    CudaFatalException cuda = assertInstanceOf(CudaFatalException.class, NativeErrors.forRapids(withContext));
    assertEquals("segment_gemm: batch of 3 rows", cuda.getMessage());
    assertSame(withContext, cuda.getCause());
    assertEquals(CudaException.CudaError.cudaErrorLaunchFailure, cuda.getCudaError());
  }

  @Test
  void otherErrorsPassUnchanged() {
    SegmentGemmException plain = new SegmentGemmException(Status.CUDA_ERROR, "CUDA_ERROR: oom", 2);
    assertSame(plain, NativeErrors.forRapids(plain));
    IllegalArgumentException bad = new IllegalArgumentException("row 4: adapter 'x' is unknown");
    assertSame(bad, NativeErrors.forRapids(bad));
  }
}
