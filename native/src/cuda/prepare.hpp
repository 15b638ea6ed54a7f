// Turns seg_lens / seg_indptr / weight_indices into what the kernels need, on the device, on
// the caller's stream, without a host synchronisation. The check itself is segments.cuh; this is
// its use by the paths that need offsets in the int workspace (the portable kernel and the
// coalesced tensor-core path): a validated seg_indptr and the prefix sum of row tiles per
// segment. Errors go to the ErrorRecord in the int workspace.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "segment_gemm.h"
#include "segment_rules.hpp"
#include "workspace.hpp"

namespace sgemm {

struct PreparedSegments {
  const int64_t* indptr;        // the caller's seg_indptr, or one built from seg_lens
  const int64_t* tile_offsets;  // (batch_size + 1); tile_offsets[batch_size] = total row tiles
  ErrorRecord* record;
};

inline ErrorRecord* error_record(void* int_workspace, const IntWorkspaceLayout& layout) {
  return reinterpret_cast<ErrorRecord*>(static_cast<char*>(int_workspace) + layout.record);
}

sgemm_status prepare_segments(const sgemm_run_args& args, void* int_workspace,
                              const IntWorkspaceLayout& layout, int64_t tile_rows,
                              cudaStream_t stream, PreparedSegments* out);

}  // namespace sgemm
