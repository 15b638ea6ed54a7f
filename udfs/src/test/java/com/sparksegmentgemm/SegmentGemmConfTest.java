package com.sparksegmentgemm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sparksegmentgemm.nativelib.DType;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class SegmentGemmConfTest {
  @Test
  void defaults() {
    SegmentGemmSettings s = SegmentGemmSettings.defaults("/tmp/adapters");
    assertEquals(new SegmentGemmSettings("/tmp/adapters", false, DType.BFLOAT16,
        SegmentGemmConf.OnBadRow.ERROR, 1L << 30, 128L << 20, 1L << 30, SegmentGemm.Backend.AUTO, "",
        false), s);
  }

  @Test
  void everyKeyIsParsedAndDocumented() {
    SegmentGemmSettings s = SegmentGemmConf.settings(Map.of(
        "spark.segmentgemm.adapters.path", "s3a://bucket/adapters",
        "spark.segmentgemm.adapters.weightColumnMajor", "true",
        "spark.segmentgemm.computeDtype", "float16",
        "spark.segmentgemm.onBadRow", "null",
        "spark.segmentgemm.deviceCacheBytes", "512m",
        "spark.segmentgemm.workspaceBytes", "64mb",
        "spark.segmentgemm.gpuBatchBytes", "2g",
        "spark.segmentgemm.backend", "sm90",
        "spark.segmentgemm.lora.module", "q_proj",
        "spark.segmentgemm.weightDtype", "fp8e4m3"));
    assertEquals(new SegmentGemmSettings("s3a://bucket/adapters", true, DType.FLOAT16,
        SegmentGemmConf.OnBadRow.NULL, 512L << 20, 64L << 20, 2L << 30, SegmentGemm.Backend.SM90, "q_proj",
        true), s);
    Set<String> keys = new HashSet<>();
    for (SegmentGemmConf.Entry<?> e : SegmentGemmConf.ALL) {
      assertTrue(e.key().startsWith("spark.segmentgemm."), e.key());
      assertTrue(e.doc().length() > 40, e.key() + " has a doc");
      keys.add(e.key());
    }
    assertEquals(11, keys.size());
    // fp8 weights need a 16-bit compute dtype; an unknown weight dtype names the key
    IllegalArgumentException fp8 = assertThrows(IllegalArgumentException.class,
        () -> SegmentGemmConf.settings(Map.of("spark.segmentgemm.adapters.path", "/a",
            "spark.segmentgemm.computeDtype", "float32", "spark.segmentgemm.weightDtype", "fp8e4m3")));
    assertTrue(fp8.getMessage().contains("spark.segmentgemm.weightDtype = fp8e4m3 needs"), fp8.getMessage());
    assertEquals("spark.segmentgemm.weightDtype = 'int4' is invalid: expected compute or fp8e4m3",
        assertThrows(IllegalArgumentException.class, () -> SegmentGemmConf.WEIGHT_DTYPE.get(
            Map.of("spark.segmentgemm.weightDtype", "int4"))).getMessage());
    // The job's key, read by the job rather than the UDF's settings.
    assertEquals(4096, SegmentGemmConf.CPU_BATCH_ROWS.get(Map.of()));
    assertEquals(0, SegmentGemmConf.CPU_BATCH_ROWS.get(Map.of("spark.segmentgemm.cpuBatchRows", "0")));
    assertEquals("spark.segmentgemm.cpuBatchRows = '-1' is invalid: a row count must be 0 or more",
        assertThrows(IllegalArgumentException.class, () -> SegmentGemmConf.CPU_BATCH_ROWS.get(
            Map.of("spark.segmentgemm.cpuBatchRows", "-1"))).getMessage());
  }

  @Test
  void validateNamesAnUnknownKeyOrABadValue() {
    SegmentGemmConf.validate(Map.of("spark.segmentgemm.computeDtype", "fp16", "spark.other", "x"));
    IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class,
        () -> SegmentGemmConf.validate(Map.of("spark.segmentgemm.computDtype", "fp16")));
    assertTrue(unknown.getMessage().startsWith("unknown configuration key "
        + "spark.segmentgemm.computDtype; the spark.segmentgemm.* keys are: "), unknown.getMessage());
    IllegalArgumentException bad = assertThrows(IllegalArgumentException.class,
        () -> SegmentGemmConf.validate(Map.of("spark.segmentgemm.deviceCacheBytes", "lots")));
    assertTrue(bad.getMessage().startsWith("spark.segmentgemm.deviceCacheBytes = 'lots' is invalid"),
        bad.getMessage());
  }

  @Test
  void badValuesNameTheKey() {
    assertEquals("spark.segmentgemm.adapters.path is not set: " + SegmentGemmConf.ADAPTERS_PATH.doc(),
        assertThrows(IllegalArgumentException.class, () -> SegmentGemmConf.settings(Map.of())).getMessage());
    assertEquals("spark.segmentgemm.computeDtype = 'int8' is invalid: expected bfloat16, float16 or float32",
        assertThrows(IllegalArgumentException.class, () -> SegmentGemmConf.settings(Map.of(
            "spark.segmentgemm.adapters.path", "/a", "spark.segmentgemm.computeDtype", "int8"))).getMessage());
    assertEquals("spark.segmentgemm.deviceCacheBytes = 'lots' is invalid: expected a size such as 134217728, 128m or 1g",
        assertThrows(IllegalArgumentException.class, () -> SegmentGemmConf.settings(Map.of(
            "spark.segmentgemm.adapters.path", "/a", "spark.segmentgemm.deviceCacheBytes", "lots"))).getMessage());
  }
}
