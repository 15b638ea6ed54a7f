// sm_90a fp8 grouped GEMM: a CUTLASS 3.x pointer-array grouped GEMM whose operands are fp8 (e4m3
// or e5m2) and whose output is bf16 or fp16, D = alpha[p] * (A . B) with one fp32 alpha per
// problem (the product of the two dequantisation scales). It serves sgemm_bmm_fp8 (problems of
// one shape) and the segment GEMM with fp8 weights (x quantised per call, quantize.cu).
// Included only by the generated one-configuration translation units (sm90_fp8_*.cu).
//
// Pattern: CUTLASS examples/57_hopper_grouped_gemm (fp8 pointer-array grouped GEMM, FP8FastAccum
// schedules). The per-problem alpha rides the epilogue's scalar broadcast with an L stride of 1:
// Sm90ScalarBroadcastPtrArray reads alpha_ptr[group] for each tile's group
// (epilogue/fusion/sm90_visitor_load_tma_warpspecialized.hpp), so no pointer array is needed.
#pragma once

#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/operations.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/group_array_problem_shape.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/util/packed_stride.hpp>

#include "error.hpp"
#include "grouped.hpp"
#include "cutlass_common.cuh"
#include "sm90_grouped.cuh"  // ProblemWriter

namespace sgemm::sm90 {

template <TileClass>
struct Fp8Tiles;

// Compute-bound and weight-streaming problems: 128 x 256 output tiles, 128-deep k blocks (128
// bytes of fp8, one TMA box row), cooperative. Fast accumulation (no periodic promotion of the
// wgmma accumulators), as FlashInfer's sm90 fp8 segment GEMM and cuBLASLt's fast-accum mode do.
template <>
struct Fp8Tiles<TileClass::kLarge> {
  using Shape = cute::Shape<cute::_128, cute::_256, cute::_128>;
  using Mainloop = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperativeFP8FastAccum;
  using Epilogue = cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative;
};

// Narrow outputs (n <= 32, a LoRA shrink): many small tiles keep every SM streaming A.
template <>
struct Fp8Tiles<TileClass::kNarrow> {
  using Shape = cute::Shape<cute::_64, cute::_32, cute::_128>;
  using Mainloop = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedPingpongFP8FastAccum;
  using Epilogue = cutlass::epilogue::PtrArrayTmaWarpSpecializedPingpong;
};

template <class ElementA, class ElementB, class ElementD, TileClass kTile>
struct Fp8Config {
  using T = Fp8Tiles<kTile>;
  using Cluster = cute::Shape<cute::_1, cute::_1, cute::_1>;
  using LayoutA = cutlass::layout::RowMajor;     // (m, k), k contiguous
  using LayoutB = cutlass::layout::ColumnMajor;  // (k, n) with k contiguous: weights (n, k)
  using LayoutD = cutlass::layout::RowMajor;
  static constexpr int kAlignAB = 16;            // 16 bytes of fp8 (TMA)
  static constexpr int kAlignD = 128 / cutlass::sizeof_bits<ElementD>::value;
  using ProblemShape = cutlass::gemm::GroupProblemShape<cute::Shape<int, int, int>>;

  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, typename T::Shape, Cluster,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float, void, LayoutD*, kAlignD,
      ElementD, LayoutD*, kAlignD, typename T::Epilogue,
      cutlass::epilogue::fusion::LinearCombination<ElementD, float>>::CollectiveOp;

  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, ElementA, LayoutA*, kAlignAB, ElementB,
      LayoutB*, kAlignAB, float, typename T::Shape, Cluster,
      cutlass::gemm::collective::StageCountAutoCarveout<
          static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      typename T::Mainloop>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  using Shape = typename ProblemShape::UnderlyingProblemShape;
  using StrideA = typename Kernel::InternalStrideA;
  using StrideB = typename Kernel::InternalStrideB;
  using StrideD = typename Kernel::InternalStrideD;
  using Arrays = ProblemArrays<Shape, ElementA, ElementB, ElementD, StrideA, StrideB, StrideD>;
};

template <class ElementA, class ElementB, class ElementD, TileClass kTile>
sgemm_status run_fp8(const GroupedCall& call) {
  using Cfg = Fp8Config<ElementA, ElementB, ElementD, kTile>;
  using Gemm = typename Cfg::Gemm;
  typename Cfg::Arrays arrays;
  if (call.a_scale == nullptr || call.b_scales == nullptr) {
    return fail(SGEMM_INTERNAL_ERROR, "fp8 grouped GEMM called without its scales");
  }
  SGEMM_TRY(Cfg::Arrays::carve(call.args, call.args_bytes, call.problems, &arrays));
  SGEMM_TRY(write_problems(call, ProblemWriter<Cfg, ElementA, ElementB, ElementD>{
                                      arrays, static_cast<const ElementA*>(call.a),
                                      static_cast<const ElementB*>(call.weights),
                                      static_cast<ElementD*>(call.d), call.d_in, call.d_out,
                                      call.a_scale, call.b_scales, call.b_scale_stride}));

  thread_local InitializedGemm<Gemm> cached;
  return cached.run(call, "sm90 fp8 grouped GEMM", [&](typename Gemm::Arguments* args) {
    *args = typename Gemm::Arguments{
        cutlass::gemm::GemmUniversalMode::kGrouped,
        {static_cast<int>(call.problems), arrays.shapes, nullptr},
        {const_cast<const ElementA**>(arrays.a), arrays.stride_a,
         const_cast<const ElementB**>(arrays.b), arrays.stride_b},
        {{}, nullptr, nullptr, arrays.d, arrays.stride_d},
        cutlass::KernelHardwareInfo{call.device, call.sm_count}};
    auto& fusion = args->epilogue.thread;
    fusion.alpha_ptr = arrays.alpha;  // alpha_ptr[group]: L stride 1
    fusion.dAlpha = {cute::_0{}, cute::_0{}, 1};
    fusion.beta = 0.0f;
    return SGEMM_OK;
  });
}

}  // namespace sgemm::sm90

// One explicit instantiation per generated translation unit.
#define SGEMM_INSTANTIATE_SM90_FP8(ELEMENT_A, ELEMENT_B, ELEMENT_D, TILE)                      \
  template sgemm_status sgemm::sm90::run_fp8<ELEMENT_A, ELEMENT_B, ELEMENT_D,                   \
                                             sgemm::TileClass::TILE>(const sgemm::GroupedCall&);
