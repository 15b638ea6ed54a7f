// Per-call fp8 quantisation of x for the segment GEMM with fp8 weights: one scale for the whole
// call, amax(|x|) / 448 (e4m3's largest finite value), so x / scale fills e4m3's range.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "segment_gemm.h"

namespace sgemm {

// Bytes quantize_e4m3 needs besides xq: the amax word and the scale.
constexpr size_t kQuantizeSlotBytes = 256;

// Enqueues xq = saturate_e4m3(x / scale) for `elements` values of x (float16 or bfloat16, 16-byte
// aligned, elements % 8 == 0) and writes scale (fp32) to slots + 4. slots: kQuantizeSlotBytes of
// device memory. The scale comes from the finite values (all zero: scale 1); a NaN stays NaN
// (its output row is NaN, as with the 16-bit kernels), an infinity saturates to +-448 * scale.
sgemm_status quantize_e4m3(sgemm_dtype dtype, const void* x, int64_t elements, void* xq, void* slots,
                           int sm_count, cudaStream_t stream);

// Where quantize_e4m3 leaves the scale inside slots.
inline const float* quantize_scale(const void* slots) {
  return reinterpret_cast<const float*>(static_cast<const char*>(slots) + 4);
}

}  // namespace sgemm
