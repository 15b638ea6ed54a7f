// sm_80 segment GEMM: CUTLASS 2.x grouped GEMM (mma.sync tensor cores, cp.async multistage
// mainloop) with the problem visitor in device-only mode, so problem sizes never leave the
// device. Its persistent grid is sized for the device it runs on (occupancy x SM count), not a
// fixed handful of blocks. Included only by the generated one-configuration translation units,
// compiled for sm_80 and sm_90 (so the same kernels can be forced and tested on a Hopper GPU).
//
// Pattern: CUTLASS examples/24_gemm_grouped (DefaultGemmGrouped + GemmGrouped).
#pragma once

#include <cutlass/cutlass.h>
#include <cutlass/epilogue/thread/linear_combination.h>
#include <cutlass/gemm/device/gemm_grouped.h>
#include <cutlass/gemm/kernel/default_gemm_grouped.h>

#include <type_traits>

#include "cutlass_common.cuh"
#include "error.hpp"
#include "grouped.hpp"

namespace sgemm::sm80 {

template <class Element, bool kWeightColumnMajor>
struct Config {
  using LayoutB = std::conditional_t<kWeightColumnMajor, cutlass::layout::ColumnMajor,
                                     cutlass::layout::RowMajor>;
  static constexpr int kAlignment = 128 / cutlass::sizeof_bits<Element>::value;
  using Kernel = typename cutlass::gemm::kernel::DefaultGemmGrouped<
      Element, cutlass::layout::RowMajor, cutlass::ComplexTransform::kNone, kAlignment,  //
      Element, LayoutB, cutlass::ComplexTransform::kNone, kAlignment,                   //
      Element, cutlass::layout::RowMajor, float, cutlass::arch::OpClassTensorOp,
      cutlass::arch::Sm80, cutlass::gemm::GemmShape<128, 128, 32>,
      cutlass::gemm::GemmShape<64, 64, 32>, cutlass::gemm::GemmShape<16, 8, 16>,
      cutlass::epilogue::thread::LinearCombination<Element, kAlignment, float, float>,
      cutlass::gemm::threadblock::GemmBatchedIdentityThreadblockSwizzle, 4,
      cutlass::gemm::kernel::GroupScheduleMode::kDeviceOnly>::GemmKernel;
  using Gemm = cutlass::gemm::device::GemmGrouped<Kernel>;
  using Stride = int64_t;  // LayoutX::Stride::LongIndex for every operand
};

template <class Element>
using Arrays = ProblemArrays<cutlass::gemm::GemmCoord, Element, Element, Element, int64_t, int64_t, int64_t>;

// Stores problem p's size, operand pointers and leading dimensions (see write_problems).
template <class Element>
struct ProblemWriter {
  Arrays<Element> out;
  const Element* a;
  const Element* weights;
  Element* d;
  int64_t d_in;
  int64_t d_out;
  bool weight_column_major;

  __device__ void operator()(int64_t p, const ProblemView& v) const {
    out.shapes[p] = cutlass::gemm::GemmCoord(static_cast<int>(v.rows), static_cast<int>(d_out),
                                             static_cast<int>(d_in));
    out.a[p] = const_cast<Element*>(a) + v.first_row * d_in;
    out.b[p] = const_cast<Element*>(weights) + v.weight * d_in * d_out;
    out.d[p] = d + v.first_row * d_out;
    out.stride_a[p] = d_in;
    out.stride_b[p] = weight_column_major ? d_in : d_out;
    out.stride_d[p] = d_out;
  }
};

template <class Element, bool kWeightColumnMajor>
sgemm_status run(const GroupedCall& call) {
  using Cfg = Config<Element, kWeightColumnMajor>;
  using Gemm = typename Cfg::Gemm;
  Arrays<Element> arrays;
  SGEMM_TRY(Arrays<Element>::carve(call.args, call.args_bytes, call.problems, &arrays));
  SGEMM_TRY(write_problems(call, ProblemWriter<Element>{
                                      arrays, static_cast<const Element*>(call.a),
                                      static_cast<const Element*>(call.weights),
                                      static_cast<Element*>(call.d), call.d_in, call.d_out,
                                      kWeightColumnMajor}));

  thread_local InitializedGemm<Gemm> cached;
  return cached.run(call, "sm80 grouped GEMM", [&](typename Gemm::Arguments* args) {
    // As many resident blocks as the device holds: the persistent blocks walk every tile.
    const int per_sm = Gemm::maximum_active_blocks();
    if (per_sm <= 0) {
      return fail(SGEMM_INTERNAL_ERROR, "sm80 grouped GEMM: no block fits on an SM (" +
                                            std::string(cudaGetErrorString(cudaGetLastError())) + ")");
    }
    *args = typename Gemm::Arguments(arrays.shapes, static_cast<int>(call.problems),
                                     per_sm * call.sm_count, {1.0f, 0.0f}, arrays.a, arrays.b,
                                     arrays.d, arrays.d, arrays.stride_a, arrays.stride_b,
                                     arrays.stride_d, arrays.stride_d);
    return SGEMM_OK;
  });
}

}  // namespace sgemm::sm80

#define SGEMM_INSTANTIATE_SM80(ELEMENT, COLUMN_MAJOR) \
  template sgemm_status sgemm::sm80::run<ELEMENT, COLUMN_MAJOR>(const sgemm::GroupedCall&);
