// The fused small-call kernel: for calls so small that launches are the cost (a handful of
// segments, a few million multiply-adds), one kernel both checks the segments and computes
// them on the CUDA cores. Every block checks the whole batch (at most kSmallMaxSegments) in
// shared memory, so no block waits for another and no second launch is needed; block 0 writes
// the ErrorRecord. AUTO takes it when small_call_fits(); forced backends never do.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "prepare.hpp"
#include "segment_gemm.h"
#include "workspace.hpp"

namespace sgemm {

constexpr int64_t kSmallMaxSegments = 1024;
constexpr int64_t kSmallMaxDIn = 512;      // at most 8 K-steps of 64 per tile
constexpr int64_t kSmallMaxDOut = 16384;
constexpr int64_t kSmallMaxMacs = 1 << 22;  // x_rows * d_in * d_out
constexpr int64_t kSmallTileRows = 4;

// Whether a call is small enough for the fused kernel (shapes only; no device access).
bool small_call_fits(const sgemm_run_args& args);

struct SmallParams {
  const void* x;
  const void* weights;
  void* y;
  int64_t d_in;
  int64_t d_out;
  SegmentArgs segments;
  ErrorRecord* record;
};

// Enqueues the fused kernel for args (which small_call_fits) on a device with sm_count SMs.
sgemm_status run_small(const sgemm_run_args& args, ErrorRecord* record, int sm_count,
                       cudaStream_t stream);

}  // namespace sgemm
