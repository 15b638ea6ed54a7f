// Kernels of the coalesced path (coalesce.hpp): count rows per weight, scan, give each segment
// its place in its weight's group, gather x rows, and later scatter y rows. Row order inside a
// group follows atomics and may differ between runs; each output row depends only on its own
// input row and weight, so results do not.
#include <cub/block/block_scan.cuh>

#include "coalesce.hpp"
#include "error.hpp"

namespace sgemm {

CoalesceLayout coalesce_layout(size_t offset, int64_t batch_size, int64_t num_weights,
                               int64_t x_rows, int64_t d_in, int64_t d_out, size_t x_element_bytes,
                               size_t y_element_bytes) {
  CoalesceLayout l;
  const size_t w = static_cast<size_t>(num_weights) * sizeof(int64_t);
  l.group_rows = align_up(offset);
  l.group_ptr = l.group_rows + align_up(w);
  l.cursor = l.group_ptr + align_up(w + sizeof(int64_t));
  l.seg_dest = l.cursor + align_up(w);
  l.xg = l.seg_dest + align_up(static_cast<size_t>(batch_size) * sizeof(int64_t));
  l.yg = l.xg + align_up(static_cast<size_t>(x_rows) * d_in * x_element_bytes);
  l.end = l.yg + align_up(static_cast<size_t>(x_rows) * d_out * y_element_bytes);
  return l;
}

namespace {

constexpr int kThreads = 256;
constexpr int kScanThreads = 1024;
constexpr int kRowsPerBlock = kThreads / 32;  // one warp per row

__device__ __forceinline__ bool failed(const ErrorRecord* record) {
  return record->current != kNoError;
}

__device__ __forceinline__ int64_t weight_of(const int64_t* weight_indices, int64_t segment) {
  return weight_indices[segment];
}

__global__ void count_rows(const int64_t* indptr, const int64_t* weight_indices, int64_t batch,
                           const ErrorRecord* record, unsigned long long* group_rows) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= batch || failed(record)) return;
  const int64_t len = indptr[i + 1] - indptr[i];
  if (len > 0) atomicAdd(&group_rows[weight_of(weight_indices, i)], static_cast<unsigned long long>(len));
}

// One block: exclusive scan of the group sizes into group_ptr, and the assignment cursors.
__global__ void __launch_bounds__(kScanThreads) scan_groups(const int64_t* group_rows,
                                                            int64_t groups, int64_t* group_ptr,
                                                            int64_t* cursor) {
  using Scan = cub::BlockScan<long long, kScanThreads>;
  __shared__ typename Scan::TempStorage storage;
  const int64_t chunk = (groups + kScanThreads - 1) / kScanThreads;
  const int64_t begin = min(groups, threadIdx.x * chunk), end = min(groups, begin + chunk);
  long long sum = 0;
  for (int64_t g = begin; g < end; ++g) sum += group_rows[g];
  Scan(storage).ExclusiveSum(sum, sum);
  for (int64_t g = begin; g < end; ++g) {
    group_ptr[g] = sum;
    cursor[g] = sum;
    sum += group_rows[g];
  }
  if (end == groups && begin < end) group_ptr[groups] = sum;
  if (groups == 0 && threadIdx.x == 0) group_ptr[0] = 0;
}

__global__ void assign_segments(const int64_t* indptr, const int64_t* weight_indices,
                                int64_t batch, const ErrorRecord* record,
                                unsigned long long* cursor, int64_t* seg_dest) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= batch || failed(record)) return;
  const int64_t len = indptr[i + 1] - indptr[i];
  if (len > 0) {
    seg_dest[i] = static_cast<int64_t>(
        atomicAdd(&cursor[weight_of(weight_indices, i)], static_cast<unsigned long long>(len)));
  }
}

// Gathered row of source row r: its segment is the last s with indptr[s] <= r (empty segments
// before it share that offset and are skipped because a later index qualifies).
__device__ __forceinline__ int64_t gathered_row(const int64_t* indptr, int64_t batch,
                                                const int64_t* seg_dest, int64_t r) {
  int64_t lo = 0, hi = batch;  // invariant: indptr[lo] <= r < indptr[hi]
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (indptr[mid] <= r) lo = mid; else hi = mid;
  }
  return seg_dest[lo] + (r - indptr[lo]);
}

// One warp per row: to_gathered copies src row r to dst row g(r), else dst row r from src g(r).
template <bool kToGathered>
__global__ void move_rows(const int4* src, int4* dst, int64_t rows, int64_t vectors_per_row,
                          const int64_t* indptr, int64_t batch, const int64_t* seg_dest,
                          const ErrorRecord* record) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows || failed(record)) return;
  int64_t g = 0;
  if (lane == 0) g = gathered_row(indptr, batch, seg_dest, r);
  g = __shfl_sync(0xffffffffu, g, 0);
  const int64_t from = kToGathered ? r : g, to = kToGathered ? g : r;
  const int4* s = src + from * vectors_per_row;
  int4* d = dst + to * vectors_per_row;
  for (int64_t v = lane; v < vectors_per_row; v += 32) d[v] = s[v];
}

unsigned grid_for(int64_t n, int per_block) {
  return static_cast<unsigned>((n + per_block - 1) / per_block);
}

}  // namespace

sgemm_status coalesce_gather(const sgemm_run_args& a, const int64_t* indptr,
                             const ErrorRecord* record, const CoalesceBuffers& b,
                             size_t element_bytes, cudaStream_t stream) {
  const int64_t batch = a.batch_size, groups = a.num_weights;
  SGEMM_CUDA_TRY(cudaMemsetAsync(b.group_rows, 0, groups * sizeof(int64_t), stream));
  if (batch > 0) {
    count_rows<<<grid_for(batch, kThreads), kThreads, 0, stream>>>(
        indptr, a.weight_indices, batch, record, reinterpret_cast<unsigned long long*>(b.group_rows));
    SGEMM_CUDA_TRY(cudaGetLastError());
  }
  scan_groups<<<1, kScanThreads, 0, stream>>>(b.group_rows, groups, b.group_ptr, b.cursor);
  SGEMM_CUDA_TRY(cudaGetLastError());
  if (batch > 0) {
    assign_segments<<<grid_for(batch, kThreads), kThreads, 0, stream>>>(
        indptr, a.weight_indices, batch, record, reinterpret_cast<unsigned long long*>(b.cursor),
        b.seg_dest);
    SGEMM_CUDA_TRY(cudaGetLastError());
  }
  if (a.x_rows > 0 && batch > 0) {
    move_rows<true><<<grid_for(a.x_rows, kRowsPerBlock), kThreads, 0, stream>>>(
        static_cast<const int4*>(a.x), static_cast<int4*>(b.xg), a.x_rows,
        static_cast<int64_t>(a.d_in * element_bytes / sizeof(int4)), indptr, batch, b.seg_dest,
        record);
    SGEMM_CUDA_TRY(cudaGetLastError());
  }
  return SGEMM_OK;
}

sgemm_status coalesce_scatter(const sgemm_run_args& a, const int64_t* indptr,
                              const ErrorRecord* record, const CoalesceBuffers& b,
                              size_t element_bytes, cudaStream_t stream) {
  if (a.x_rows == 0 || a.batch_size == 0) return SGEMM_OK;
  move_rows<false><<<grid_for(a.x_rows, kRowsPerBlock), kThreads, 0, stream>>>(
      static_cast<const int4*>(b.yg), static_cast<int4*>(a.y), a.x_rows,
      static_cast<int64_t>(a.d_out * element_bytes / sizeof(int4)), indptr, a.batch_size,
      b.seg_dest, record);
  SGEMM_CUDA_TRY(cudaGetLastError());
  return SGEMM_OK;
}

}  // namespace sgemm
