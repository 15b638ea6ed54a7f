// The portable SIMT segment GEMM: every dtype, layout, size and architecture.
#pragma once

#include <cuda_runtime.h>

#include "segment_gemm.h"
#include "workspace.hpp"

namespace sgemm {

// Rows of x one thread block handles per tile; the tile scheduler counts tiles with it.
constexpr int64_t kPortableTileRows = 64;

struct PortableParams {
  const void* x;
  const void* weights;
  void* y;
  int64_t d_in;
  int64_t d_out;
  int64_t batch_size;
  const int64_t* indptr;          // valid seg_indptr (checked on the device before use)
  const int64_t* weight_indices;  // or nullptr
  const int64_t* tile_offsets;    // (batch_size + 1) prefix sum of row tiles per segment
  const ErrorRecord* record;      // the GEMM writes nothing when record->current is set
};

// One entry of the dispatch table: launches the kernel for one dtype x layout.
using PortableLaunch = cudaError_t (*)(const PortableParams&, int grid_rows, cudaStream_t);

PortableLaunch portable_kernel_for(sgemm_dtype dtype, bool weight_column_major);

}  // namespace sgemm
