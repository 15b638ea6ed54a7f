// Coalescing of segments that share a weight (decode-style batches: many short segments, few
// weights). The rows of all segments using weight w are gathered into one contiguous group, the
// grouped GEMM runs one tall problem per weight, and the output rows are scattered back. That
// trades two copies of x and y for reading each weight once instead of once per segment.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "segment_gemm.h"
#include "workspace.hpp"

namespace sgemm {

struct CoalesceBuffers {
  int64_t* group_rows;  // (num_weights) rows per weight
  int64_t* group_ptr;   // (num_weights + 1) offsets of each weight's rows in xg / yg
  int64_t* cursor;      // (num_weights) next free row of each group while assigning
  int64_t* seg_dest;    // (batch_size) first row of each segment inside its group
  void* xg;             // (x_rows, d_in) gathered x
  void* yg;             // (x_rows, d_out) the GEMM's output, in gathered order
};

// Byte offsets of the buffers inside the float workspace, from `offset` on.
struct CoalesceLayout {
  size_t group_rows, group_ptr, cursor, seg_dest, xg, yg, end;
};
CoalesceLayout coalesce_layout(size_t offset, int64_t batch_size, int64_t num_weights,
                               int64_t x_rows, int64_t d_in, int64_t d_out, size_t x_element_bytes,
                               size_t y_element_bytes);

// Enqueues the grouping and the gather of args.x (element_bytes per element: 1 when x was
// quantised to fp8); afterwards problem w of the grouped GEMM is rows
// [group_ptr[w], group_ptr[w+1]) of xg times weight w. Does nothing (all groups empty) when the
// prepare kernel recorded an error. Needs 16-byte aligned rows (d * element_bytes % 16 == 0).
sgemm_status coalesce_gather(const sgemm_run_args& args, const int64_t* indptr,
                             const ErrorRecord* record, const CoalesceBuffers& buffers,
                             size_t element_bytes, cudaStream_t stream);

// Enqueues the scatter of yg back to y in the caller's row order.
sgemm_status coalesce_scatter(const sgemm_run_args& args, const int64_t* indptr,
                              const ErrorRecord* record, const CoalesceBuffers& buffers,
                              size_t element_bytes, cudaStream_t stream);

}  // namespace sgemm
