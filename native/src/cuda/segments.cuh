// The segment check every call runs on the device, as one block-level routine that the
// kernels before a GEMM share: the prepare kernel (offsets for the portable and coalesced paths),
// the tensor-core kernels' argument fill (per-problem shapes and pointers written in the same
// pass, so a call is one small kernel plus the GEMM) and the fused small-call kernel (each block
// checks the whole batch itself and then computes its tiles: one launch in all).
//
// Each thread owns a contiguous run of segments. Pass 1 checks them and sums their rows and row
// tiles; a block scan gives each run its start; pass 2 hands every segment, with its first row,
// length, weight and first tile, to an emitter. Errors are kept in shared memory while the block
// runs (the lowest segment index wins), so the no-error path has no dependent global read after
// pass 1; the block that owns the ErrorRecord writes it at the end.
#pragma once

#include <cub/block/block_scan.cuh>

#include "prepare.hpp"
#include "workspace.hpp"

namespace sgemm {

// One segment as the emitter sees it. After an error every segment has rows = 0 and weight = 0,
// so whatever is built from it reads and writes nothing.
struct SegmentOut {
  int64_t index;
  int64_t first_row;   // prefix sum of the lengths before it (= seg_indptr[index] when valid)
  int64_t rows;
  int64_t weight;      // weight_indices[index], or index without weight indices
  int64_t first_tile;  // prefix sum of ceil(rows / tile_rows) before it
  int64_t tiles;
};

namespace detail {

__device__ __forceinline__ void report(unsigned long long* first_error, int64_t segment,
                                       SegmentError kind) {
  atomicMin(first_error, (static_cast<unsigned long long>(segment) << 4) | kind);
}

// Length of segment i, or -1 if it is invalid. Pass 1 reports why (kReport); pass 2 re-derives
// the same answer from the same rules without reporting again.
template <bool kReport>
__device__ __forceinline__ int64_t segment_length(const SegmentArgs& a, int64_t i,
                                                  unsigned long long* first_error) {
  int64_t len;
  bool ok = true;
  if (a.seg_indptr != nullptr) {
    len = a.seg_indptr[i + 1] - a.seg_indptr[i];
    if (len < 0) { if (kReport) report(first_error, i, kSegIndptrDecreasing); ok = false; }
  } else {
    len = a.seg_lens[i];
    if (len < 0) { if (kReport) report(first_error, i, kSegNegativeLength); ok = false; }
    else if (len > a.x_rows) { if (kReport) report(first_error, i, kSegLengthTooLarge); ok = false; }
  }
  if (a.weight_indices != nullptr) {
    const int64_t w = a.weight_indices[i];
    if (w < 0 || w >= a.num_weights) {
      if (kReport) report(first_error, i, kSegWeightIndexRange);
      ok = false;
    }
  }
  return ok ? len : -1;
}

// Stores this call's first error (kNoError if none) as record->current, and, if there is one and
// no earlier unchecked call failed, keeps it for sgemm_check with the offending values. Only the
// error path reads global memory again.
__device__ inline void write_record(const SegmentArgs& a, unsigned long long error,
                                    int64_t covered_rows, ErrorRecord* record) {
  record->current = error;
  if (error == kNoError || error >= record->sticky) return;
  record->sticky = error;
  const int64_t i = static_cast<int64_t>(error >> 4);
  switch (static_cast<SegmentError>(error & 15)) {
    case kSegNegativeLength:
    case kSegLengthTooLarge: record->value = a.seg_lens[i]; record->other = a.x_rows; break;
    case kSegIndptrStart: record->value = a.seg_indptr[0]; record->other = 0; break;
    case kSegIndptrDecreasing: record->value = a.seg_indptr[i + 1]; record->other = a.seg_indptr[i]; break;
    case kSegWeightIndexRange: record->value = a.weight_indices[i]; record->other = 0; break;
    case kSegRowsMismatch: record->value = covered_rows; record->other = a.x_rows; break;
    default: break;
  }
}

}  // namespace detail

// Shared memory of check_segments<kThreads>.
template <int kThreads>
struct SegmentCheckStorage {
  typename cub::BlockScan<long long, kThreads>::TempStorage scan;
  unsigned long long first_error;
};

// Runs the check over all a.batch_size segments with the whole block (blockDim.x == kThreads),
// calls emit(const SegmentOut&) once per segment, and returns, in every thread, whether the call
// is valid. record: the ErrorRecord to write (one block per call writes it), or nullptr.
// total_tiles (optional): the sum of every segment's row tiles, in every thread.
template <int kThreads, class Emit>
__device__ bool check_segments(const SegmentArgs& a, int64_t tile_rows, ErrorRecord* record,
                               SegmentCheckStorage<kThreads>& smem, Emit& emit,
                               int64_t* total_tiles = nullptr) {
  using Scan = cub::BlockScan<long long, kThreads>;
  const int64_t b = a.batch_size;
  const int64_t chunk = (b + kThreads - 1) / kThreads;
  const int64_t begin = min(b, static_cast<int64_t>(threadIdx.x) * chunk);
  const int64_t end = min(b, begin + chunk);
  if (threadIdx.x == 0) smem.first_error = kNoError;
  __syncthreads();

  // Read with pass 1's loads rather than after them.
  const int64_t indptr0 = (threadIdx.x == 0 && a.seg_indptr != nullptr) ? a.seg_indptr[0] : 0;
  long long rows = 0, tiles = 0;
  for (int64_t i = begin; i < end; ++i) {
    const int64_t len = detail::segment_length<true>(a, i, &smem.first_error);
    if (len > 0) { rows += len; tiles += (len + tile_rows - 1) / tile_rows; }
  }
  long long all_rows, all_tiles;
  Scan(smem.scan).ExclusiveSum(rows, rows, all_rows);
  __syncthreads();  // scan storage is reused
  Scan(smem.scan).ExclusiveSum(tiles, tiles, all_tiles);
  if (threadIdx.x == 0) {
    if (indptr0 != 0) detail::report(&smem.first_error, 0, kSegIndptrStart);
    // The covered rows are only meaningful once every segment is valid.
    if (smem.first_error == kNoError && all_rows != a.x_rows) {
      detail::report(&smem.first_error, b, kSegRowsMismatch);
    }
  }
  __syncthreads();
  const unsigned long long error = smem.first_error;
  const bool ok = error == kNoError;

  for (int64_t i = begin; i < end; ++i) {
    const int64_t checked = ok ? detail::segment_length<false>(a, i, nullptr) : 0;
    const int64_t len = checked > 0 ? checked : 0;
    const int64_t t = (len + tile_rows - 1) / tile_rows;
    const int64_t weight = !ok ? 0 : a.weight_indices != nullptr ? a.weight_indices[i] : i;
    emit(SegmentOut{i, ok ? rows : 0, len, weight, tiles, t});
    rows += len;
    tiles += t;
  }
  if (record != nullptr && threadIdx.x == 0) detail::write_record(a, error, all_rows, record);
  if (total_tiles != nullptr) *total_tiles = ok ? all_tiles : 0;
  return ok;
}

// The check as a kernel of its own, one block, before a kernel that reads what emit wrote.
template <int kThreads, class Emit>
__global__ void __launch_bounds__(kThreads)
    check_segments_kernel(SegmentArgs a, int64_t tile_rows, ErrorRecord* record, Emit emit) {
  __shared__ SegmentCheckStorage<kThreads> smem;
  check_segments<kThreads>(a, tile_rows, record, smem, emit);
}

// Launches check_segments_kernel with a block sized for the batch: a small batch should not pay
// for a 1024-thread block and its scans.
template <class Emit>
cudaError_t launch_check_segments(const SegmentArgs& a, int64_t tile_rows, ErrorRecord* record,
                                  const Emit& emit, cudaStream_t stream) {
  if (a.batch_size <= 128) {
    check_segments_kernel<128, Emit><<<1, 128, 0, stream>>>(a, tile_rows, record, emit);
  } else {
    check_segments_kernel<1024, Emit><<<1, 1024, 0, stream>>>(a, tile_rows, record, emit);
  }
  return cudaGetLastError();
}

}  // namespace sgemm
