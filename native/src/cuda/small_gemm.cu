// The fused small-call kernel (small_gemm.hpp). Tiles of 4 rows x 64 columns, one output per
// thread, K in steps of 64 staged through shared memory in fp32 (both operands K-contiguous, so
// a thread reads 4 k at once), with the next step's loads in flight (in registers) while the
// current one is multiplied. A small call is latency-bound, not FLOP-bound: with one block per
// SM there is nothing to hide a dependent chain behind, so short tiles give many blocks, and
// each thread keeps 4 independent partial sums and few instructions per k. (Nsight Compute on
// the doc example, H200: 16-row tiles with 4 outputs per thread issued an instruction every 8.9
// cycles per warp, 16 us; 4-row tiles with one chain of scalar loads, 12 cycles, 14.5 us.)
#include <cutlass/numeric_types.h>

#include <algorithm>

#include "error.hpp"
#include "segments.cuh"
#include "small_gemm.hpp"

namespace sgemm {

bool small_call_fits(const sgemm_run_args& a) {
  return a.batch_size > 0 && a.batch_size <= kSmallMaxSegments && a.x_rows > 0 && a.d_out > 0 &&
         a.d_in <= kSmallMaxDIn && a.d_out <= kSmallMaxDOut &&
         a.x_rows <= kSmallMaxMacs / std::max<int64_t>(1, a.d_in * a.d_out);
}

namespace {

constexpr int kThreads = 256;
constexpr int kTileM = static_cast<int>(kSmallTileRows);
constexpr int kTileN = 64;
constexpr int kTileK = 64;
constexpr int kXLoads = kTileM * kTileK / kThreads;  // 1 per thread and K-step
constexpr int kWLoads = kTileK * kTileN / kThreads;  // 16
constexpr int kMaxSegments = static_cast<int>(kSmallMaxSegments);
static_assert(kTileM * kTileN == kThreads, "each thread computes one output of the tile");

// Where each segment's rows and tiles end, and its weight, for the tile lookup.
struct SmallSegments {
  int row_end[kMaxSegments];
  int tile_end[kMaxSegments];
  int64_t weight[kMaxSegments];
};

struct SmemEmit {
  SmallSegments* s;
  __device__ void operator()(const SegmentOut& o) const {
    s->row_end[o.index] = static_cast<int>(o.first_row + o.rows);
    s->tile_end[o.index] = static_cast<int>(o.first_tile + o.tiles);
    s->weight[o.index] = o.weight;
  }
};

template <typename T, bool kColumnMajor>
struct Step {
  float x[kXLoads];
  float w[kWLoads];

  // Loads K-step k0 of the tile (rows [row0, row0 + rows), columns [n0, n0 + kTileN)).
  __device__ __forceinline__ void load(const T* __restrict__ x_rows, const T* __restrict__ wmat,
                                       int rows, int64_t k0, int64_t n0, int64_t d_in,
                                       int64_t d_out) {
#pragma unroll
    for (int q = 0; q < kXLoads; ++q) {
      const int e = threadIdx.x + q * kThreads;
      const int r = e / kTileK, kk = e % kTileK;
      const int64_t k = k0 + kk;
      x[q] = (r < rows && k < d_in) ? static_cast<float>(x_rows[r * d_in + k]) : 0.f;
    }
#pragma unroll
    for (int q = 0; q < kWLoads; ++q) {
      const int e = threadIdx.x + q * kThreads;
      // The contiguous dimension of the layout fastest across threads.
      const int kk = kColumnMajor ? e % kTileK : e / kTileN;
      const int nn = kColumnMajor ? e / kTileK : e % kTileN;
      const int64_t k = k0 + kk, n = n0 + nn;
      w[q] = (k < d_in && n < d_out)
                 ? static_cast<float>(kColumnMajor ? wmat[n * d_in + k] : wmat[k * d_out + n])
                 : 0.f;
    }
  }

  // Stores it K-contiguous: xs[row][k], ws[column][k].
  __device__ __forceinline__ void store(float (*xs)[kTileK + 4], float (*ws)[kTileK + 4]) const {
#pragma unroll
    for (int q = 0; q < kXLoads; ++q) {
      const int e = threadIdx.x + q * kThreads;
      xs[e / kTileK][e % kTileK] = x[q];
    }
#pragma unroll
    for (int q = 0; q < kWLoads; ++q) {
      const int e = threadIdx.x + q * kThreads;
      const int kk = kColumnMajor ? e % kTileK : e / kTileN;
      const int nn = kColumnMajor ? e / kTileK : e % kTileN;
      ws[nn][kk] = w[q];
    }
  }
};

template <typename T, bool kColumnMajor>
__global__ void __launch_bounds__(kThreads) small_segment_gemm(SmallParams p) {
  __shared__ SegmentCheckStorage<kThreads> check;
  __shared__ SmallSegments segs;
  // Rows padded by 4 floats: 16-byte aligned for float4 reads, and a quarter-warp's float4 reads
  // of ws (8 columns, 272 bytes apart) fall in distinct banks.
  __shared__ __align__(16) float xs[kTileM][kTileK + 4];
  __shared__ __align__(16) float ws[kTileN][kTileK + 4];

  const bool owner = blockIdx.x == 0 && blockIdx.y == 0;
  SmemEmit emit{&segs};
  int64_t total_tiles = 0;
  const bool ok = check_segments<kThreads>(p.segments, kTileM, owner ? p.record : nullptr, check,
                                           emit, &total_tiles);
  if (!ok) return;  // bad segment data: write nothing
  __syncthreads();  // segs is complete

  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ weights = static_cast<const T*>(p.weights);
  T* __restrict__ y = static_cast<T*>(p.y);
  const int batch = static_cast<int>(p.segments.batch_size);
  const int ty = threadIdx.x / kTileN, tx = threadIdx.x % kTileN;  // a warp shares its row
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * kTileN;

  for (int64_t t = blockIdx.x; t < total_tiles; t += gridDim.x) {
    // The first segment whose tiles end after t (empty segments end where the previous one did).
    int lo = 0, hi = batch - 1;
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      if (segs.tile_end[mid] > t) hi = mid; else lo = mid + 1;
    }
    const int s = lo;
    const int tile_begin = s == 0 ? 0 : segs.tile_end[s - 1];
    const int row_begin = s == 0 ? 0 : segs.row_end[s - 1];
    const int64_t row0 = row_begin + (t - tile_begin) * kTileM;
    const int rows = static_cast<int>(min(static_cast<int64_t>(kTileM), segs.row_end[s] - row0));
    const T* x_rows = x + row0 * p.d_in;
    const T* wmat = weights + segs.weight[s] * p.d_in * p.d_out;

    float acc[4] = {};
    Step<T, kColumnMajor> next;
    next.load(x_rows, wmat, rows, 0, n0, p.d_in, p.d_out);
    for (int64_t k0 = 0; k0 < p.d_in; k0 += kTileK) {
      next.store(xs, ws);
      __syncthreads();
      if (k0 + kTileK < p.d_in) next.load(x_rows, wmat, rows, k0 + kTileK, n0, p.d_in, p.d_out);
#pragma unroll
      for (int kk = 0; kk < kTileK; kk += 4) {
        const float4 a = *reinterpret_cast<const float4*>(&xs[ty][kk]);  // broadcast in a warp
        const float4 b = *reinterpret_cast<const float4*>(&ws[tx][kk]);
        acc[0] = fmaf(a.x, b.x, acc[0]);
        acc[1] = fmaf(a.y, b.y, acc[1]);
        acc[2] = fmaf(a.z, b.z, acc[2]);
        acc[3] = fmaf(a.w, b.w, acc[3]);
      }
      __syncthreads();
    }
    const int64_t n = n0 + tx;
    if (ty < rows && n < p.d_out) y[(row0 + ty) * p.d_out + n] = static_cast<T>((acc[0] + acc[1]) + (acc[2] + acc[3]));
  }
}

using Launch = void (*)(const SmallParams&, dim3, cudaStream_t);

template <typename T, bool kColumnMajor>
void launch(const SmallParams& p, dim3 grid, cudaStream_t stream) {
  small_segment_gemm<T, kColumnMajor><<<grid, kThreads, 0, stream>>>(p);
}

// [dtype][weight_column_major]
constexpr Launch kTable[3][2] = {
    {launch<float, false>, launch<float, true>},
    {launch<cutlass::half_t, false>, launch<cutlass::half_t, true>},
    {launch<cutlass::bfloat16_t, false>, launch<cutlass::bfloat16_t, true>},
};

}  // namespace

sgemm_status run_small(const sgemm_run_args& a, ErrorRecord* record, int sm_count,
                       cudaStream_t stream) {
  const int d = static_cast<int>(a.dtype);
  if (d < 0 || d > 2) return fail(SGEMM_UNSUPPORTED, "no small-call kernel for this dtype");
  // At most one tile per segment beyond the rows' own tiles; a persistent grid walks the rest.
  const int64_t max_tiles = a.x_rows / kTileM + a.batch_size;
  const int64_t col_tiles = (a.d_out + kTileN - 1) / kTileN;  // <= 256: small_call_fits
  const int64_t grid_rows = std::max<int64_t>(
      1, std::min<int64_t>(max_tiles, std::max<int64_t>(1, 8LL * sm_count / col_tiles)));
  const SmallParams p{a.x, a.weights, a.y, a.d_in, a.d_out, segment_args(a), record};
  kTable[d][a.weight_column_major ? 1 : 0](
      p, dim3(static_cast<unsigned>(grid_rows), static_cast<unsigned>(col_tiles)), stream);
  SGEMM_CUDA_TRY(cudaGetLastError());
  return SGEMM_OK;
}

}  // namespace sgemm
