package com.sparksegmentgemm.nativelib;

/** What the native library reads off a CUDA device. Versions are CUDA's, e.g. 13000 for 13.0. */
public record DeviceInfo(int device, String name, int major, int minor, int multiprocessorCount,
    long totalMemoryBytes, int driverVersion, int runtimeVersion) {

  /** The compute capability as CUDA writes it, e.g. "9.0". */
  public String computeCapability() {
    return major + "." + minor;
  }

  @Override
  public String toString() {
    return String.format("GPU %d: %s (compute capability %s, %d SMs, %.1f GiB, driver %d.%d, runtime %d.%d)",
        device, name, computeCapability(), multiprocessorCount, totalMemoryBytes / (double) (1L << 30),
        driverVersion / 1000, driverVersion % 1000 / 10, runtimeVersion / 1000, runtimeVersion % 1000 / 10);
  }
}
