// sm_90a segment GEMM: a CUTLASS 3.x pointer-array grouped GEMM (TMA loads and stores, wgmma,
// warp-specialised persistent kernel) whose per-problem shapes, pointers and strides are built
// on the device from the segment offsets. Included only by the generated one-configuration
// translation units (build/generated/sm90_*.cu), compiled for sm_90a alone.
//
// Pattern: CUTLASS examples/57_hopper_grouped_gemm (mainloop + epilogue from the collective
// builders, GroupProblemShape with shapes on the device only, get_workspace_size ->
// can_implement -> initialize -> run, each status checked).
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

#include <string>
#include <type_traits>

#include "error.hpp"
#include "grouped.hpp"
#include "cutlass_common.cuh"

namespace sgemm::sm90 {

template <TileClass>
struct Tiles;

// Tall problems: the tile CUTLASS's profiler favours for large bf16 GEMMs on H100. No cluster:
// a 2-CTA cluster idles its second CTA whenever a problem has a single tile along the paired
// mode (a 128-row segment, or d_out <= 256), which grouped calls hit all the time.
template <>
struct Tiles<TileClass::kLarge> {
  using Shape = cute::Shape<cute::_128, cute::_256, cute::_64>;
  using Cluster = cute::Shape<cute::_1, cute::_1, cute::_1>;
  using Mainloop = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative;
  using Epilogue = cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative;
};

// Short problems (decode-style segments): a 64-row tile wastes less of each wgmma, and the
// ping-pong schedule overlaps one warp group's epilogue with the other's mainloop.
template <>
struct Tiles<TileClass::kShortM> {
  using Shape = cute::Shape<cute::_64, cute::_128, cute::_64>;
  using Cluster = cute::Shape<cute::_1, cute::_1, cute::_1>;
  using Mainloop = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedPingpong;
  using Epilogue = cutlass::epilogue::PtrArrayTmaWarpSpecializedPingpong;
};

// Narrow outputs (LoRA shrink, d_out <= 32): memory-bound on x, so many small tiles keep every
// SM streaming; a 256-wide tile would leave most SMs idle.
template <>
struct Tiles<TileClass::kNarrow> {
  using Shape = cute::Shape<cute::_64, cute::_32, cute::_64>;
  using Cluster = cute::Shape<cute::_1, cute::_1, cute::_1>;
  using Mainloop = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedPingpong;
  using Epilogue = cutlass::epilogue::PtrArrayTmaWarpSpecializedPingpong;
};

template <class Element, bool kWeightColumnMajor, TileClass kTile>
struct Config {
  using T = Tiles<kTile>;
  using LayoutA = cutlass::layout::RowMajor;  // x: rows x d_in
  // weights (d_in, d_out) row-major are K x N with N contiguous (CUTLASS's RowMajor B);
  // (d_out, d_in) row-major are K-contiguous (CUTLASS's ColumnMajor B).
  using LayoutB = std::conditional_t<kWeightColumnMajor, cutlass::layout::ColumnMajor,
                                     cutlass::layout::RowMajor>;
  using LayoutD = cutlass::layout::RowMajor;  // y: rows x d_out
  static constexpr int kAlignment = 128 / cutlass::sizeof_bits<Element>::value;  // 16 bytes (TMA)
  using ProblemShape = cutlass::gemm::GroupProblemShape<cute::Shape<int, int, int>>;

  // y is written, never read: no C operand (ElementC = void), D = 1 * acc.
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, typename T::Shape, typename T::Cluster,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float, void, LayoutD*, kAlignment,
      Element, LayoutD*, kAlignment, typename T::Epilogue,
      cutlass::epilogue::fusion::LinearCombination<Element, float>>::CollectiveOp;

  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Element, LayoutA*, kAlignment, Element,
      LayoutB*, kAlignment, float, typename T::Shape, typename T::Cluster,
      cutlass::gemm::collective::StageCountAutoCarveout<
          static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      typename T::Mainloop>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  using Shape = typename ProblemShape::UnderlyingProblemShape;
  using StrideA = typename Kernel::InternalStrideA;
  using StrideB = typename Kernel::InternalStrideB;
  using StrideD = typename Kernel::InternalStrideD;
};

// Stores problem p's shape, operand pointers and strides (see write_problems), and, for the fp8
// kernels (a_scale set), its epilogue scale alpha = *a_scale * b_scales[w(p) * b_scale_stride].
template <class Cfg, class ElementA, class ElementB = ElementA, class ElementD = ElementA>
struct ProblemWriter {
  ProblemArrays<typename Cfg::Shape, ElementA, ElementB, ElementD, typename Cfg::StrideA,
                typename Cfg::StrideB, typename Cfg::StrideD>
      out;
  const ElementA* a;
  const ElementB* weights;
  ElementD* d;
  int64_t d_in;
  int64_t d_out;
  const float* a_scale = nullptr;
  const float* b_scales = nullptr;
  int64_t b_scale_stride = 0;

  __device__ void operator()(int64_t p, const ProblemView& v) const {
    const int m = static_cast<int>(v.rows);
    const int n = static_cast<int>(d_out);
    const int k = static_cast<int>(d_in);
    out.shapes[p] = cute::make_shape(m, n, k);
    // The arrays hold non-const pointers (shared with the sm80 kernels); the kernel only reads them.
    out.a[p] = const_cast<ElementA*>(a) + v.first_row * d_in;
    out.b[p] = const_cast<ElementB*>(weights) + v.weight * d_in * d_out;
    out.d[p] = d + v.first_row * d_out;
    out.stride_a[p] = cutlass::make_cute_packed_stride(typename Cfg::StrideA{}, cute::make_shape(m, k, 1));
    out.stride_b[p] = cutlass::make_cute_packed_stride(typename Cfg::StrideB{}, cute::make_shape(n, k, 1));
    out.stride_d[p] = cutlass::make_cute_packed_stride(typename Cfg::StrideD{}, cute::make_shape(m, n, 1));
    if (a_scale != nullptr) out.alpha[p] = a_scale[0] * b_scales[v.weight * b_scale_stride];
  }
};

template <class Element, bool kWeightColumnMajor, TileClass kTile>
sgemm_status run(const GroupedCall& call) {
  using Cfg = Config<Element, kWeightColumnMajor, kTile>;
  using Gemm = typename Cfg::Gemm;
  using Arrays = ProblemArrays<typename Cfg::Shape, Element, Element, Element,
                               typename Cfg::StrideA, typename Cfg::StrideB, typename Cfg::StrideD>;
  Arrays arrays;
  SGEMM_TRY(Arrays::carve(call.args, call.args_bytes, call.problems, &arrays));
  SGEMM_TRY(write_problems(call, ProblemWriter<Cfg, Element>{
                                      arrays, static_cast<const Element*>(call.a),
                                      static_cast<const Element*>(call.weights),
                                      static_cast<Element*>(call.d), call.d_in, call.d_out}));

  thread_local InitializedGemm<Gemm> cached;
  return cached.run(call, "sm90 grouped GEMM", [&](typename Gemm::Arguments* args) {
    *args = typename Gemm::Arguments{
        cutlass::gemm::GemmUniversalMode::kGrouped,
        {static_cast<int>(call.problems), arrays.shapes, nullptr},  // shapes live on the device only
        {const_cast<const Element**>(arrays.a), arrays.stride_a,
         const_cast<const Element**>(arrays.b), arrays.stride_b},
        {{}, nullptr, nullptr, arrays.d, arrays.stride_d},
        cutlass::KernelHardwareInfo{call.device, call.sm_count}};
    args->epilogue.thread.alpha = 1.0f;
    args->epilogue.thread.beta = 0.0f;
    return SGEMM_OK;
  });
}

}  // namespace sgemm::sm90

// One explicit instantiation per generated translation unit.
#define SGEMM_INSTANTIATE_SM90(ELEMENT, COLUMN_MAJOR, TILE) \
  template sgemm_status sgemm::sm90::run<ELEMENT, COLUMN_MAJOR, sgemm::TileClass::TILE>( \
      const sgemm::GroupedCall&);
