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
// pass 1; the block that owns the ErrorRecord writes it at the end. The rules and both passes are
// segment_rules.hpp's (shared with the CPU fuzz test); this file is their block-level glue.
#pragma once

#include <cub/block/block_scan.cuh>

#include "prepare.hpp"
#include "segment_rules.hpp"
#include "workspace.hpp"

namespace sgemm {

namespace detail {

// report() of the rules (segment_rules.hpp) in a block: the lowest error code wins.
struct BlockReport {
  unsigned long long* first_error;
  __device__ void operator()(int64_t segment, SegmentError kind) const {
    atomicMin(first_error, error_code(segment, kind));
  }
};

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
  const detail::BlockReport report{&smem.first_error};
  const RunSums run = check_run(a, begin, end, tile_rows, report);
  long long rows, tiles, all_rows, all_tiles;
  Scan(smem.scan).ExclusiveSum(run.rows, rows, all_rows);
  __syncthreads();  // scan storage is reused
  Scan(smem.scan).ExclusiveSum(run.tiles, tiles, all_tiles);
  if (threadIdx.x == 0) check_totals(a, indptr0, all_rows, smem.first_error, report);
  __syncthreads();
  const unsigned long long error = smem.first_error;
  const bool ok = error == kNoError;
  emit_run(a, begin, end, ok, rows, tiles, tile_rows, emit);
  if (record != nullptr && threadIdx.x == 0) write_record(a, error, all_rows, record);
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
