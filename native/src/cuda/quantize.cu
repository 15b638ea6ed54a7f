// quantize.hpp: two grid-stride passes over x, 16 bytes per load, four loads in flight per thread. Pass 1 reduces
// |x| to its maximum (per block, then one atomicMax on the float's bits: for non-negative floats
// the unsigned order is the float order); pass 2 derives the scale and writes 8 fp8 bytes per
// 8 inputs with saturating conversion (cuda_fp8.h's __nv_cvt_float2_to_fp8x2, __NV_SATFINITE).
#include <cub/block/block_reduce.cuh>
#include <cuda/functional>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cfloat>
#include <string>

#include "error.hpp"
#include "quantize.hpp"

namespace sgemm {
namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 4;
constexpr float kE4M3Max = 448.0f;

__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

// Calls f(i, x[i]) for every vector i < vectors, grid-stride, with kUnroll independent 16-byte
// loads in flight per thread (one at a time leaves HBM idle).
template <class F>
__device__ __forceinline__ void for_each_vector(const int4* x, int64_t vectors, F f) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  for (; i + (kUnroll - 1) * stride < vectors; i += kUnroll * stride) {
    int4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = x[i + u * stride];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) f(i + u * stride, v[u]);
  }
  for (; i < vectors; i += stride) f(i, x[i]);
}

template <class T>
__device__ __forceinline__ float absmax8(const int4& v, float m) {
  const T* e = reinterpret_cast<const T*>(&v);
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const float a = fabsf(to_float(e[j]));
    if (a <= FLT_MAX) m = fmaxf(m, a);  // finite values only: a NaN or inf must not scale the rest
  }
  return m;
}

template <class T>
__global__ void __launch_bounds__(kThreads) absmax(const int4* x, int64_t vectors, unsigned* amax) {
  float m = 0.0f;
  for_each_vector(x, vectors, [&](int64_t, const int4& v) { m = absmax8<T>(v, m); });
  using Reduce = cub::BlockReduce<unsigned, kThreads>;
  __shared__ typename Reduce::TempStorage storage;
  const unsigned block = Reduce(storage).Reduce(__float_as_uint(m), ::cuda::maximum<unsigned>{});
  if (threadIdx.x == 0) atomicMax(amax, block);
}

template <class T>
__device__ __forceinline__ uint2 quantize8(const int4& v, float inv) {
  const T* e = reinterpret_cast<const T*>(&v);
  unsigned short q[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 f = make_float2(to_float(e[2 * j]) * inv, to_float(e[2 * j + 1]) * inv);
    q[j] = __nv_cvt_float2_to_fp8x2(f, __NV_SATFINITE, __NV_E4M3);
  }
  return make_uint2(q[0] | (static_cast<unsigned>(q[1]) << 16),
                    q[2] | (static_cast<unsigned>(q[3]) << 16));
}

template <class T>
__global__ void __launch_bounds__(kThreads) quantize(const int4* x, int64_t vectors,
                                                     const unsigned* amax, float* scale_out,
                                                     uint2* xq) {
  const float a = __uint_as_float(*amax);
  // At least FLT_MIN, so that inv stays finite (0 * inf would turn zeros into NaN).
  const float scale = a > 0.0f ? fmaxf(a / kE4M3Max, FLT_MIN) : 1.0f;
  const float inv = 1.0f / scale;
  if (blockIdx.x == 0 && threadIdx.x == 0) *scale_out = scale;
  for_each_vector(x, vectors, [&](int64_t i, const int4& v) { xq[i] = quantize8<T>(v, inv); });
}

template <class T>
sgemm_status launch(const void* x, int64_t elements, void* xq, void* slots, int sm_count,
                    cudaStream_t stream) {
  const int64_t vectors = elements / 8;
  // Enough resident threads to cover HBM latency: 8 blocks of 256 per SM, each thread kUnroll
  // loads deep.
  const unsigned blocks = static_cast<unsigned>(
      std::max<int64_t>(1, std::min<int64_t>((vectors + kThreads - 1) / kThreads, 8LL * sm_count)));
  auto* amax = static_cast<unsigned*>(slots);
  SGEMM_CUDA_TRY(cudaMemsetAsync(amax, 0, sizeof(unsigned), stream));
  absmax<T><<<blocks, kThreads, 0, stream>>>(static_cast<const int4*>(x), vectors, amax);
  SGEMM_CUDA_TRY(cudaGetLastError());
  quantize<T><<<blocks, kThreads, 0, stream>>>(static_cast<const int4*>(x), vectors, amax,
                                                const_cast<float*>(quantize_scale(slots)),
                                                static_cast<uint2*>(xq));
  SGEMM_CUDA_TRY(cudaGetLastError());
  return SGEMM_OK;
}

}  // namespace

sgemm_status quantize_e4m3(sgemm_dtype dtype, const void* x, int64_t elements, void* xq, void* slots,
                           int sm_count, cudaStream_t stream) {
  if (elements % 8 != 0) {
    return fail(SGEMM_INTERNAL_ERROR, "quantize_e4m3: " + std::to_string(elements) +
                                          " elements is not a multiple of 8");
  }
  switch (dtype) {
    case SGEMM_BFLOAT16: return launch<__nv_bfloat16>(x, elements, xq, slots, sm_count, stream);
    case SGEMM_FLOAT16: return launch<__half>(x, elements, xq, slots, sm_count, stream);
    default: return fail(SGEMM_INTERNAL_ERROR, "quantize_e4m3: x must be float16 or bfloat16");
  }
}

}  // namespace sgemm
