// The portable segment GEMM: a tiled SIMT kernel over CUTLASS's numeric types. It is the
// correct-for-everything path (any dtype, weight layout, d_in/d_out, architecture); the tensor-
// core kernels take the sizes and devices they support.
//
// Scheduling: grid.y walks column tiles of d_out; grid.x is a persistent set of blocks that walk
// the row tiles of all segments, numbered by tile_offsets (built on the device), so no host
// round trip is needed to size the launch and empty segments cost nothing.
#include <cutlass/numeric_types.h>

#include "portable_gemm.hpp"

namespace sgemm {
namespace {

constexpr int kTileM = static_cast<int>(kPortableTileRows);
constexpr int kTileN = 64;
constexpr int kTileK = 16;
constexpr int kThreads = 256;   // 16 x 16 threads, 4 x 4 outputs each
constexpr int kPerThread = 4;

template <typename T>
__device__ __forceinline__ float to_float(T v) { return static_cast<float>(v); }

// Largest s with tile_offsets[s] <= t (segments with no tiles repeat an offset: skip them).
__device__ __forceinline__ int64_t segment_of_tile(const int64_t* tile_offsets, int64_t batch,
                                                   int64_t t) {
  int64_t lo = 0, hi = batch;  // invariant: tile_offsets[lo] <= t < tile_offsets[hi]
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (tile_offsets[mid] <= t) lo = mid; else hi = mid;
  }
  return lo;
}

template <typename T, bool kColumnMajor>
__global__ void __launch_bounds__(kThreads) portable_segment_gemm(PortableParams p) {
  if (p.record->current != kNoError) return;  // bad segment data: write nothing

  __shared__ float xs[kTileK][kTileM + 4];
  __shared__ float ws[kTileK][kTileN + 4];

  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ weights = static_cast<const T*>(p.weights);
  T* __restrict__ y = static_cast<T*>(p.y);
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * kTileN;
  const int64_t total_tiles = p.tile_offsets[p.batch_size];

  for (int64_t t = blockIdx.x; t < total_tiles; t += gridDim.x) {
    const int64_t seg = segment_of_tile(p.tile_offsets, p.batch_size, t);
    const int64_t row0 = p.indptr[seg] + (t - p.tile_offsets[seg]) * kTileM;
    const int64_t rows = min(static_cast<int64_t>(kTileM), p.indptr[seg + 1] - row0);
    const int64_t w = p.weight_indices != nullptr ? p.weight_indices[seg] : seg;
    const T* __restrict__ wmat = weights + w * p.d_in * p.d_out;

    float acc[kPerThread][kPerThread] = {};
    for (int64_t k0 = 0; k0 < p.d_in; k0 += kTileK) {
      // x tile: k fastest across threads, so reads of a row are contiguous.
      for (int i = threadIdx.x; i < kTileM * kTileK; i += kThreads) {
        const int r = i / kTileK, kk = i % kTileK;
        const int64_t k = k0 + kk;
        xs[kk][r] = (r < rows && k < p.d_in) ? to_float(x[(row0 + r) * p.d_in + k]) : 0.f;
      }
      // weight tile: the contiguous dimension of the layout fastest across threads.
      for (int i = threadIdx.x; i < kTileN * kTileK; i += kThreads) {
        const int kk = kColumnMajor ? i % kTileK : i / kTileN;
        const int nn = kColumnMajor ? i / kTileK : i % kTileN;
        const int64_t k = k0 + kk, n = n0 + nn;
        float v = 0.f;
        if (k < p.d_in && n < p.d_out) {
          v = to_float(kColumnMajor ? wmat[n * p.d_in + k] : wmat[k * p.d_out + n]);
        }
        ws[kk][nn] = v;
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < kTileK; ++kk) {
        float a[kPerThread], b[kPerThread];
#pragma unroll
        for (int i = 0; i < kPerThread; ++i) a[i] = xs[kk][ty + 16 * i];
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) b[j] = ws[kk][tx + 16 * j];
#pragma unroll
        for (int i = 0; i < kPerThread; ++i)
#pragma unroll
          for (int j = 0; j < kPerThread; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int r = ty + 16 * i;
      if (r >= rows) continue;
#pragma unroll
      for (int j = 0; j < kPerThread; ++j) {
        const int64_t n = n0 + tx + 16 * j;
        if (n < p.d_out) y[(row0 + r) * p.d_out + n] = static_cast<T>(acc[i][j]);
      }
    }
  }
}

template <typename T, bool kColumnMajor>
cudaError_t launch(const PortableParams& p, int grid_rows, cudaStream_t stream) {
  const int64_t col_tiles = (p.d_out + kTileN - 1) / kTileN;
  if (col_tiles > 65535) return cudaErrorInvalidConfiguration;  // d_out > 4,194,240
  const dim3 grid(static_cast<unsigned>(grid_rows), static_cast<unsigned>(col_tiles));
  portable_segment_gemm<T, kColumnMajor><<<grid, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

// The dispatch table: [dtype][weight_column_major].
constexpr PortableLaunch kTable[3][2] = {
    {launch<float, false>, launch<float, true>},
    {launch<cutlass::half_t, false>, launch<cutlass::half_t, true>},
    {launch<cutlass::bfloat16_t, false>, launch<cutlass::bfloat16_t, true>},
};

}  // namespace

PortableLaunch portable_kernel_for(sgemm_dtype dtype, bool weight_column_major) {
  const int d = static_cast<int>(dtype);
  if (d < 0 || d > 2) return nullptr;
  return kTable[d][weight_column_major ? 1 : 0];
}

}  // namespace sgemm
