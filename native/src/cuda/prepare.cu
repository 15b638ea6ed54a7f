// prepare_segments (prepare.hpp): the segment check writing offsets into the int workspace.
#include "error.hpp"
#include "prepare.hpp"
#include "segments.cuh"

namespace sgemm {

namespace {

// Writes seg_indptr (when built from seg_lens) and the row-tile offsets.
struct OffsetsEmit {
  int64_t* built_indptr;  // nullptr when the caller gave seg_indptr
  int64_t* tile_offsets;

  __device__ void operator()(const SegmentOut& s) const {
    if (s.index == 0) {
      if (built_indptr != nullptr) built_indptr[0] = 0;
      tile_offsets[0] = 0;
    }
    if (built_indptr != nullptr) built_indptr[s.index + 1] = s.first_row + s.rows;
    tile_offsets[s.index + 1] = s.first_tile + s.tiles;
  }
};

}  // namespace

sgemm_status prepare_segments(const sgemm_run_args& args, void* int_workspace,
                              const IntWorkspaceLayout& layout, int64_t tile_rows,
                              cudaStream_t stream, PreparedSegments* out) {
  char* ws = static_cast<char*>(int_workspace);
  ErrorRecord* record = error_record(int_workspace, layout);
  auto* built_indptr = reinterpret_cast<int64_t*>(ws + layout.indptr);
  auto* tile_offsets = reinterpret_cast<int64_t*>(ws + layout.tile_offsets);
  const OffsetsEmit emit{args.seg_indptr != nullptr ? nullptr : built_indptr, tile_offsets};
  SGEMM_CUDA_TRY(launch_check_segments(segment_args(args), tile_rows, record, emit, stream));
  *out = PreparedSegments{args.seg_indptr != nullptr ? args.seg_indptr : built_indptr,
                          tile_offsets, record};
  return SGEMM_OK;
}

}  // namespace sgemm
