package com.sparksegmentgemm.nativelib;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Native statuses become the right Java exceptions: a sticky CUDA error (SGEMM_CUDA_FATAL) a
 * {@link SegmentGemmFatalException}, everything else a plain {@link SegmentGemmException}; the
 * CUDA error code travels with them. Needs no GPU.
 */
class NativeErrorsTest {

  @Test
  void statusCodesAreTheHeaders() throws IOException {
    String header = Files.readString(Path.of("include", "segment_gemm.h"));
    Matcher m = Pattern.compile("SGEMM_([A-Z_]+) = (\\d+)").matcher(
        header.substring(header.indexOf("typedef enum sgemm_status"), header.indexOf("} sgemm_status;")));
    int seen = 0;
    while (m.find()) {
      assertEquals(m.group(1), Status.values()[Integer.parseInt(m.group(2))].name(), m.group());
      seen++;
    }
    assertEquals(Status.values().length, seen, "every Status is in the header and back");
    assertEquals(7, Status.CUDA_FATAL.ordinal());
  }

  @Test
  void fatalStatusBecomesTheFatalException() {
    String message = "cudaStreamSynchronize(stream) failed: cudaErrorIllegalAddress: an illegal "
        + "memory access was encountered";
    SegmentGemmException e = SegmentGemmException.fromNative(7, message, 700);
    SegmentGemmFatalException fatal = assertInstanceOf(SegmentGemmFatalException.class, e);
    assertEquals(Status.CUDA_FATAL, fatal.status());
    assertEquals(700, fatal.cudaError());
    assertEquals("CUDA_FATAL: " + message, fatal.getMessage());
  }

  @Test
  void otherStatusesStayPlain() {
    for (Status s : Status.values()) {
      if (s == Status.OK || s == Status.CUDA_FATAL) continue;
      SegmentGemmException e = SegmentGemmException.fromNative(s.ordinal(), "why", s == Status.CUDA_ERROR ? 2 : 0);
      assertSame(SegmentGemmException.class, e.getClass(), s.name());
      assertEquals(s, e.status());
      assertEquals(s + ": why", e.getMessage());
    }
    // A code newer than this jar knows is an internal error, not a crash.
    assertEquals(Status.INTERNAL_ERROR, SegmentGemmException.fromNative(99, "x", 0).status());
  }

  @Test
  void jniThrowsThroughTheFactory() {
    // An argument error from the real C API, through JNI: plain, without a CUDA code.
    SegmentGemmException e = assertThrows(SegmentGemmException.class,
        () -> SegmentGemmNative.workspaceSize(DType.FLOAT16, 1L << 49, 8, 8, 1, 1, false));
    assertSame(SegmentGemmException.class, e.getClass());
    assertEquals(Status.INVALID_ARGUMENT, e.status());
    assertEquals(0, e.cudaError());
    assertTrue(e.getMessage().startsWith("INVALID_ARGUMENT: a size exceeds 2^48: x_rows=562949953421312"),
        e.getMessage());
    e = assertThrows(SegmentGemmException.class,
        () -> SegmentGemmNative.workspaceSize(DType.FLOAT16, 1L << 40, 1L << 40, 8, 1, 1, false));
    assertTrue(e.getMessage().contains("x exceeds 2^60 elements"), e.getMessage());
  }

  @Test
  void cudaErrorCodeTravelsThroughJni() {
    assumeFalse(Gpu.isAvailable(), "a GPU is present: this test needs a machine without one");
    SegmentGemmException e = assertThrows(SegmentGemmException.class, SegmentGemmNative::deviceCount);
    assertSame(SegmentGemmException.class, e.getClass());
    assertEquals(Status.NO_DEVICE, e.status());
    // cudaErrorInsufficientDriver (35) without a driver, cudaErrorNoDevice (100) without a GPU.
    assertTrue(e.cudaError() == 35 || e.cudaError() == 100, e.cudaError() + ": " + e.getMessage());
    assertTrue(e.getMessage().contains(e.cudaError() == 35 ? "cudaErrorInsufficientDriver"
        : "cudaErrorNoDevice"), e.getMessage());
  }
}
