package com.sparksegmentgemm.nativelib;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import org.junit.jupiter.api.Test;

/**
 * The bundled library loads through JNI on any linux/amd64 machine (it links the CUDA runtime
 * statically), and reports a missing driver or GPU as an error, never a crash.
 */
class NativeLibTest {

  @Test
  void bundledLibraryLoadsAndAnswers() {
    assertNotNull(NativeLib.class.getResource(NativeLib.resourcePath()),
        "libsegmentgemm.so is not bundled at " + NativeLib.resourcePath());
    assertEquals("0.1.0", SegmentGemmNative.libraryVersion());
    WorkspaceSizes ws =
        SegmentGemmNative.workspaceSize(DType.BFLOAT16, 1_000_000, 256, 256, 8, 100_000, true);
    assertTrue(ws.intBytes() >= 2 * 100_001 * 8L, "int workspace holds two (batch + 1) int64 arrays");
    assertTrue(ws.floatBytesCoalesced() >= ws.floatBytes(), ws.toString());
    SegmentGemmException e = assertThrows(SegmentGemmException.class,
        () -> SegmentGemmNative.workspaceSize(DType.BFLOAT16, 0, 8, 8, 1, -1, false));
    assertEquals(Status.INVALID_ARGUMENT, e.status());
    assertTrue(e.getMessage().contains("batch_size=-1"), e.getMessage());
  }

  @Test
  void everyEntryPointIsBoundAndRejectsANullHandle() {
    // Needs no GPU: each call reaches its JNI function (an unbound one would throw
    // UnsatisfiedLinkError) and the C API's null-handle check.
    SegmentGemmNative.destroy(0);  // destroying nothing is fine, as free(NULL) is
    for (Runnable call : new Runnable[] {
        () -> SegmentGemmNative.check(0, 0),
        () -> SegmentGemmNative.resetWorkspace(0, 0, 0, 0, 0),
        () -> SegmentGemmNative.run(0, DType.BFLOAT16, 0, 0, 0, 0, 0, 0, false, 0, 0, 0, 0, 0, 0),
        () -> SegmentGemmNative.describePlan(0, DType.BFLOAT16, 0, 0, 0, 0, 0, 0, false, 0, 0, 0, 0, 0)}) {
      SegmentGemmException e = assertThrows(SegmentGemmException.class, call::run);
      assertEquals(Status.INVALID_ARGUMENT, e.status());
      assertEquals("INVALID_ARGUMENT: handle is null", e.getMessage());
    }
    // The row helpers check their pointers before touching a device.
    for (Runnable call : new Runnable[] {
        () -> SegmentGemmNative.gatherFloatRows(0, 0, 0, 1, 1, DType.BFLOAT16, 0, 0),
        () -> SegmentGemmNative.scatterRowsToFloat(0, DType.BFLOAT16, 0, 1, 1, 0, 0),
        () -> SegmentGemmNative.groupRows(0, 0, 0, 0, 0, 4, 8, 3, 8, 0, 0, 0, 0, 0, 0, 0, 0),
        () -> SegmentGemmNative.timerRead(0, new float[1])}) {
      SegmentGemmException e = assertThrows(SegmentGemmException.class, call::run);
      assertEquals(Status.INVALID_ARGUMENT, e.status());
      assertTrue(e.getMessage().contains("is null"), e.getMessage());
    }
    SegmentGemmException marks = assertThrows(SegmentGemmException.class,
        () -> SegmentGemmNative.timerCreate(1));
    assertEquals(Status.INVALID_ARGUMENT, marks.status(), marks.getMessage());
    SegmentGemmNative.timerDestroy(0);  // destroying nothing is fine
    if (Gpu.isAvailable()) {
      assertEquals(0, SegmentGemmNative.deviceQuery(0).device());
    } else {
      SegmentGemmException e = assertThrows(SegmentGemmException.class, () -> SegmentGemmNative.deviceQuery(0));
      assertEquals(Status.NO_DEVICE, e.status(), e.getMessage());
    }
  }

  @Test
  void noGpuIsAClearErrorNotACrash() {
    assumeFalse(Gpu.isAvailable(), "a GPU is present: this test covers machines without one");
    String reason = Gpu.unavailableReason().orElseThrow();
    assertTrue(reason.contains("cudaGetDeviceCount"), reason);
    SegmentGemmException e = assertThrows(SegmentGemmException.class, SegmentGemmNative::deviceCount);
    assertEquals(Status.NO_DEVICE, e.status(), e.getMessage());
    // Creating a handle without a device fails cleanly too.
    assertThrows(SegmentGemmException.class,
        () -> SegmentGemmNative.create(Backend.AUTO, 0, 0, 0, 0));
  }

  @Test
  void gpuIsQueried() {
    GpuRequirement.assumeGpu();
    int n = SegmentGemmNative.deviceCount();
    assertTrue(n > 0);
    DeviceInfo info = SegmentGemmNative.deviceQuery(0);
    assertFalse(info.name().isEmpty());
    assertTrue(info.major() >= 7, info.toString());
    assertTrue(info.driverVersion() >= 13000, "driver older than CUDA 13.0: " + info);
    SegmentGemmException e = assertThrows(SegmentGemmException.class,
        () -> SegmentGemmNative.deviceQuery(n));
    assertTrue(e.getMessage().contains("does not exist"), e.getMessage());
  }
}
