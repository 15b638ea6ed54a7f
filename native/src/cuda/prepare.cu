// One single-block kernel turns seg_lens / seg_indptr / weight_indices into a checked seg_indptr
// and the prefix sum of row tiles per segment. One launch (not a check kernel plus device-wide
// scans) keeps the fixed cost of a call low, and the workspace size needs no device query.
// Each thread owns a contiguous run of segments: pass 1 checks them and sums their lengths and
// tiles, a block scan gives each run its start, pass 2 writes the offsets.
#include <cub/block/block_scan.cuh>

#include "error.hpp"
#include "prepare.hpp"

namespace sgemm {

bool int_workspace_layout(int64_t batch_size, IntWorkspaceLayout* layout) {
  if (batch_size < 0) return false;
  const size_t n = static_cast<size_t>(batch_size + 1) * sizeof(int64_t);
  layout->record = 0;
  layout->indptr = align_up(sizeof(ErrorRecord));
  layout->tile_offsets = layout->indptr + align_up(n);
  layout->total = layout->tile_offsets + align_up(n);
  return true;
}

namespace {

constexpr int kThreads = 1024;

__device__ void report(ErrorRecord* r, int64_t segment, SegmentError kind) {
  atomicMin(&r->current, (static_cast<unsigned long long>(segment) << 4) | kind);
}

struct SegmentArgs {
  const int64_t* seg_lens;
  const int64_t* seg_indptr;
  const int64_t* weight_indices;
  int64_t batch_size;
  int64_t num_weights;
  int64_t x_rows;
  int64_t tile_rows;
};

// Length of segment i, or -1 if it is invalid. Pass 1 reports why (kReport); pass 2 re-derives
// the same answer from the same rules without reporting again.
template <bool kReport>
__device__ int64_t segment_length(const SegmentArgs& a, int64_t i, ErrorRecord* record) {
  int64_t len;
  bool ok = true;
  if (a.seg_indptr != nullptr) {
    len = a.seg_indptr[i + 1] - a.seg_indptr[i];
    if (len < 0) { if (kReport) report(record, i, kSegIndptrDecreasing); ok = false; }
  } else {
    len = a.seg_lens[i];
    if (len < 0) { if (kReport) report(record, i, kSegNegativeLength); ok = false; }
    else if (len > a.x_rows) { if (kReport) report(record, i, kSegLengthTooLarge); ok = false; }
  }
  if (a.weight_indices != nullptr) {
    const int64_t w = a.weight_indices[i];
    if (w < 0 || w >= a.num_weights) { if (kReport) report(record, i, kSegWeightIndexRange); ok = false; }
  }
  return ok ? len : -1;
}

__global__ void __launch_bounds__(kThreads) prepare_kernel(SegmentArgs a, int64_t* built_indptr,
                                                           int64_t* tile_offsets,
                                                           ErrorRecord* record) {
  using Scan = cub::BlockScan<long long, kThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  const int64_t b = a.batch_size;
  const int64_t chunk = (b + kThreads - 1) / kThreads;
  const int64_t begin = min(b, threadIdx.x * chunk), end = min(b, begin + chunk);

  if (threadIdx.x == 0) record->current = kNoError;
  __syncthreads();

  long long rows = 0, tiles = 0;
  for (int64_t i = begin; i < end; ++i) {
    const int64_t len = segment_length<true>(a, i, record);
    if (len > 0) { rows += len; tiles += (len + a.tile_rows - 1) / a.tile_rows; }
  }
  Scan(scan_storage).ExclusiveSum(rows, rows);
  __syncthreads();  // scan_storage is reused
  Scan(scan_storage).ExclusiveSum(tiles, tiles);

  for (int64_t i = begin; i < end; ++i) {
    const int64_t checked = segment_length<false>(a, i, record);
    const int64_t len = checked > 0 ? checked : 0;
    rows += len;
    tiles += (len + a.tile_rows - 1) / a.tile_rows;
    if (a.seg_indptr == nullptr) built_indptr[i + 1] = rows;
    tile_offsets[i + 1] = tiles;
  }
  if (threadIdx.x == 0) {
    built_indptr[0] = 0;
    tile_offsets[0] = 0;
  }
  __syncthreads();  // the last offsets are visible to thread 0

  if (threadIdx.x != 0) return;
  const int64_t* indptr = a.seg_indptr != nullptr ? a.seg_indptr : built_indptr;
  if (a.seg_indptr != nullptr && a.seg_indptr[0] != 0) report(record, 0, kSegIndptrStart);
  if (record->current == kNoError && indptr[b] - indptr[0] != a.x_rows) {
    report(record, b, kSegRowsMismatch);
  }
  // Fill in the offending values of this run's first error, and keep it for sgemm_check unless
  // an earlier unchecked run already failed.
  const unsigned long long cur = record->current;
  if (cur == kNoError || cur >= record->sticky) return;
  record->sticky = cur;
  const int64_t i = static_cast<int64_t>(cur >> 4);
  switch (static_cast<SegmentError>(cur & 15)) {
    case kSegNegativeLength:
    case kSegLengthTooLarge: record->value = a.seg_lens[i]; record->other = a.x_rows; break;
    case kSegIndptrStart: record->value = a.seg_indptr[0]; record->other = 0; break;
    case kSegIndptrDecreasing: record->value = a.seg_indptr[i + 1]; record->other = a.seg_indptr[i]; break;
    case kSegWeightIndexRange: record->value = a.weight_indices[i]; record->other = 0; break;
    case kSegRowsMismatch: record->value = indptr[b] - indptr[0]; record->other = a.x_rows; break;
    default: break;
  }
}

}  // namespace

sgemm_status prepare_segments(const sgemm_run_args& args, void* int_workspace,
                              const IntWorkspaceLayout& layout, int64_t tile_rows,
                              cudaStream_t stream, PreparedSegments* out) {
  char* ws = static_cast<char*>(int_workspace);
  auto* record = reinterpret_cast<ErrorRecord*>(ws + layout.record);
  auto* built_indptr = reinterpret_cast<int64_t*>(ws + layout.indptr);
  auto* tile_offsets = reinterpret_cast<int64_t*>(ws + layout.tile_offsets);
  const SegmentArgs a{args.seg_lens, args.seg_indptr, args.weight_indices, args.batch_size,
                      args.num_weights, args.x_rows, tile_rows};
  prepare_kernel<<<1, kThreads, 0, stream>>>(a, built_indptr, tile_offsets, record);
  SGEMM_CUDA_TRY(cudaGetLastError());
  *out = PreparedSegments{args.seg_indptr != nullptr ? args.seg_indptr : built_indptr,
                          tile_offsets, record};
  return SGEMM_OK;
}

}  // namespace sgemm
