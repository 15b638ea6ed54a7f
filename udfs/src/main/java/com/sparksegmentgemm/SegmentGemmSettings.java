package com.sparksegmentgemm;

import com.sparksegmentgemm.nativelib.DType;
import java.io.Serializable;

/**
 * What a {@link SegmentGemmUdf} needs on the executors, read once on the driver from
 * {@link SegmentGemmConf} (see each key's doc there). Serializable; holds no native state.
 */
public record SegmentGemmSettings(String adaptersPath, boolean weightColumnMajor,
    DType computeDtype, SegmentGemmConf.OnBadRow onBadRow, long deviceCacheBytes,
    long workspaceBytes, long gpuBatchBytes, SegmentGemm.Backend backend, String loraModule,
    boolean fp8Weights) implements Serializable {
  private static final long serialVersionUID = 2L;

  public SegmentGemmSettings {
    if (fp8Weights && computeDtype == DType.FLOAT32) {
      throw new IllegalArgumentException(SegmentGemmConf.WEIGHT_DTYPE.key() + " = fp8e4m3 needs "
          + SegmentGemmConf.COMPUTE_DTYPE.key() + " bfloat16 or float16 (x and the outputs), not "
          + "float32");
    }
  }

  /** The defaults of every key, over adapters at this path. */
  public static SegmentGemmSettings defaults(String adaptersPath) {
    return SegmentGemmConf.settings(java.util.Map.of(SegmentGemmConf.ADAPTERS_PATH.key(),
        adaptersPath));
  }

  public SegmentGemmSettings withComputeDtype(DType dtype) {
    return new SegmentGemmSettings(adaptersPath, weightColumnMajor, dtype, onBadRow,
        deviceCacheBytes, workspaceBytes, gpuBatchBytes, backend, loraModule, fp8Weights);
  }

  public SegmentGemmSettings withOnBadRow(SegmentGemmConf.OnBadRow mode) {
    return new SegmentGemmSettings(adaptersPath, weightColumnMajor, computeDtype, mode,
        deviceCacheBytes, workspaceBytes, gpuBatchBytes, backend, loraModule, fp8Weights);
  }

  public SegmentGemmSettings withDeviceCacheBytes(long bytes) {
    return new SegmentGemmSettings(adaptersPath, weightColumnMajor, computeDtype, onBadRow, bytes,
        workspaceBytes, gpuBatchBytes, backend, loraModule, fp8Weights);
  }

  public SegmentGemmSettings withGpuBatchBytes(long bytes) {
    return new SegmentGemmSettings(adaptersPath, weightColumnMajor, computeDtype, onBadRow,
        deviceCacheBytes, workspaceBytes, bytes, backend, loraModule, fp8Weights);
  }

  /** These settings with adapters quantised to fp8 e4m3 on the GPU (or not). */
  public SegmentGemmSettings withFp8Weights(boolean fp8) {
    return new SegmentGemmSettings(adaptersPath, weightColumnMajor, computeDtype, onBadRow,
        deviceCacheBytes, workspaceBytes, gpuBatchBytes, backend, loraModule, fp8);
  }

  public SegmentGemmSettings withBackend(SegmentGemm.Backend b) {
    return new SegmentGemmSettings(adaptersPath, weightColumnMajor, computeDtype, onBadRow,
        deviceCacheBytes, workspaceBytes, gpuBatchBytes, b, loraModule, fp8Weights);
  }
}
