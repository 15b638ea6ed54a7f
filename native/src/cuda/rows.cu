// Row gather with narrowing, and row scatter with widening to float32
// (include/segment_gemm_rows.h): the data movement around the segment GEMM of a columnar batch,
// one pass each. The integer conversions
// repeat com.sparksegmentgemm.nativelib.DType bit for bit (NaN payloads included), so the GPU
// and CPU paths of the UDF round identically.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "error.hpp"
#include "segment_gemm_rows.h"

namespace sgemm {
namespace {

__device__ __forceinline__ uint16_t to_bf16(float f) {
  const uint32_t b = __float_as_uint(f);
  if (f != f) return static_cast<uint16_t>((b >> 16) | 0x40);  // stay NaN after truncation
  return static_cast<uint16_t>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

__device__ __forceinline__ uint16_t to_half(float f) {
  const uint32_t b = __float_as_uint(f);
  const uint32_t sign = (b >> 16) & 0x8000u;
  const int exp = static_cast<int>((b >> 23) & 0xff);
  const uint32_t mant = b & 0x7fffffu;
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant != 0 ? 0x200u | (mant >> 13) : 0u));
  const int e = exp - 127 + 15;
  if (e >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {  // a float16 subnormal, or zero
    if (e < -10) return static_cast<uint16_t>(sign);
    const uint32_t m = mant | 0x800000u;
    const int shift = 14 - e;
    uint32_t h = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (h & 1u) != 0)) h++;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) != 0)) h++;  // a carry may reach infinity
  return static_cast<uint16_t>(sign | h);
}

__device__ __forceinline__ float from_bf16(uint16_t s) {
  return __uint_as_float(static_cast<uint32_t>(s) << 16);
}

__device__ __forceinline__ float from_half(uint16_t h) {
  const uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  const uint32_t m = h & 0x3ffu;
  if (e == 0) {
    const float v = static_cast<float>(m) * 0x1p-24f;
    return sign != 0 ? -v : v;
  }
  if (e == 31) return __uint_as_float(sign | 0x7f800000u | (m << 13));
  return __uint_as_float(sign | ((e - 15 + 127) << 23) | (m << 13));
}

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 32;  // one warp per row: coalesced reads and writes

template <sgemm_dtype kDtype>
__global__ void gather_rows(const float* values, const int32_t* offsets, const int32_t* rows,
                            int64_t n, int64_t d, void* dst) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (r >= n) return;
  const float* src = values + offsets[rows[r]];
  for (int64_t j = threadIdx.x % 32; j < d; j += 32) {
    const float v = src[j];
    if constexpr (kDtype == SGEMM_FLOAT32) {
      static_cast<float*>(dst)[r * d + j] = v;
    } else if constexpr (kDtype == SGEMM_FLOAT16) {
      static_cast<uint16_t*>(dst)[r * d + j] = to_half(v);
    } else {
      static_cast<uint16_t*>(dst)[r * d + j] = to_bf16(v);
    }
  }
}

template <sgemm_dtype kDtype>
__global__ void scatter_rows(const void* src, const int32_t* dest_rows, int64_t n, int64_t d,
                             float* dst) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (r >= n) return;
  float* out = dst + static_cast<int64_t>(dest_rows[r]) * d;
  for (int64_t j = threadIdx.x % 32; j < d; j += 32) {
    if constexpr (kDtype == SGEMM_FLOAT32) {
      out[j] = static_cast<const float*>(src)[r * d + j];
    } else if constexpr (kDtype == SGEMM_FLOAT16) {
      out[j] = from_half(static_cast<const uint16_t*>(src)[r * d + j]);
    } else {
      out[j] = from_bf16(static_cast<const uint16_t*>(src)[r * d + j]);
    }
  }
}

std::string str(long long v) { return std::to_string(v); }

}  // namespace
}  // namespace sgemm

using namespace sgemm;

extern "C" {

sgemm_status sgemm_gather_float_rows(const float* values, const int32_t* offsets,
                                     const int32_t* rows, int64_t n, int64_t d,
                                     sgemm_dtype dtype, void* dst, void* stream_ptr) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (n < 0 || d < 0) {
      return fail(SGEMM_INVALID_ARGUMENT, "negative size: n=" + str(n) + " d=" + str(d));
    }
    if (n == 0 || d == 0) return SGEMM_OK;
    if (values == nullptr || offsets == nullptr || rows == nullptr || dst == nullptr) {
      return fail(SGEMM_INVALID_ARGUMENT, "values, offsets, rows or dst is null");
    }
    auto stream = static_cast<cudaStream_t>(stream_ptr);
    const auto blocks = static_cast<unsigned>((n + kRowsPerBlock - 1) / kRowsPerBlock);
    switch (dtype) {
      case SGEMM_FLOAT32: gather_rows<SGEMM_FLOAT32><<<blocks, kThreads, 0, stream>>>(values, offsets, rows, n, d, dst); break;
      case SGEMM_FLOAT16: gather_rows<SGEMM_FLOAT16><<<blocks, kThreads, 0, stream>>>(values, offsets, rows, n, d, dst); break;
      case SGEMM_BFLOAT16: gather_rows<SGEMM_BFLOAT16><<<blocks, kThreads, 0, stream>>>(values, offsets, rows, n, d, dst); break;
      default: return fail(SGEMM_INVALID_ARGUMENT, "dtype " + str(dtype) + " is not float32, float16 or bfloat16");
    }
    SGEMM_CUDA_TRY(cudaGetLastError());
    return SGEMM_OK;
  });
}

sgemm_status sgemm_scatter_rows_to_float(const void* src, sgemm_dtype dtype,
                                         const int32_t* dest_rows, int64_t n, int64_t d,
                                         float* dst, void* stream_ptr) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (n < 0 || d < 0) {
      return fail(SGEMM_INVALID_ARGUMENT, "negative size: n=" + str(n) + " d=" + str(d));
    }
    if (n == 0 || d == 0) return SGEMM_OK;
    if (src == nullptr || dest_rows == nullptr || dst == nullptr) {
      return fail(SGEMM_INVALID_ARGUMENT, "src, dest_rows or dst is null");
    }
    auto stream = static_cast<cudaStream_t>(stream_ptr);
    const auto blocks = static_cast<unsigned>((n + kRowsPerBlock - 1) / kRowsPerBlock);
    switch (dtype) {
      case SGEMM_FLOAT32: scatter_rows<SGEMM_FLOAT32><<<blocks, kThreads, 0, stream>>>(src, dest_rows, n, d, dst); break;
      case SGEMM_FLOAT16: scatter_rows<SGEMM_FLOAT16><<<blocks, kThreads, 0, stream>>>(src, dest_rows, n, d, dst); break;
      case SGEMM_BFLOAT16: scatter_rows<SGEMM_BFLOAT16><<<blocks, kThreads, 0, stream>>>(src, dest_rows, n, d, dst); break;
      default: return fail(SGEMM_INVALID_ARGUMENT, "dtype " + str(dtype) + " is not float32, float16 or bfloat16");
    }
    SGEMM_CUDA_TRY(cudaGetLastError());
    return SGEMM_OK;
  });
}

}  // extern "C"
