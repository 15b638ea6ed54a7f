// What the sm80 and sm90 grouped GEMMs share: the per-problem view of a GroupedCall, the
// per-problem argument arrays carved from the float workspace, and CUTLASS status checks.
#pragma once

#include <cutlass/cutlass.h>

#include <string>

#include "error.hpp"
#include "grouped.hpp"
#include "segments.cuh"

// Evaluates a cutlass::Status; on failure returns SGEMM_INTERNAL_ERROR naming the step.
#define SGEMM_CUTLASS_TRY(call, what)                                                     \
  do {                                                                                    \
    const cutlass::Status sgemm_cs_ = (call);                                             \
    if (sgemm_cs_ != cutlass::Status::kSuccess) {                                         \
      const cudaError_t sgemm_ce_ = cudaGetLastError();                                   \
      return ::sgemm::fail(SGEMM_INTERNAL_ERROR,                                          \
                           std::string(what) + " failed: " +                              \
                               cutlassGetStatusString(sgemm_cs_) +                        \
                               (sgemm_ce_ != cudaSuccess                                  \
                                    ? std::string(" (") + cudaGetErrorString(sgemm_ce_) + ")" \
                                    : std::string()));                                    \
    }                                                                                     \
  } while (0)

namespace sgemm {

constexpr int kFillThreads = 256;

struct ProblemView {
  int64_t first_row;
  int64_t rows;
  int64_t weight;
};

// Problem p of a call whose segments were checked already. When the check recorded an error, the
// offsets may be garbage: every problem then gets zero rows, and its pointers are never
// dereferenced.
__device__ __forceinline__ ProblemView problem_view(const GroupedCall& call, int64_t p) {
  if (call.uniform_rows > 0) return {p * call.uniform_rows, call.uniform_rows, p};  // bmm
  const bool failed = call.record->current != kNoError;
  const int64_t first = call.indptr[p];
  const int64_t rows = failed ? 0 : call.indptr[p + 1] - first;
  const int64_t weight = call.weight_indices != nullptr ? call.weight_indices[p] : p;
  return {failed ? 0 : first, rows, failed ? 0 : weight};
}

// One thread per problem: Writer(p, ProblemView) stores the kernel's arguments of problem p.
template <class Writer>
__global__ void fill_problems(GroupedCall call, Writer write) {
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p < call.problems) write(p, problem_view(call, p));
}

// The segment check's emitter that stores each segment's arguments as it is checked.
template <class Writer>
struct FillEmit {
  Writer write;
  __device__ void operator()(const SegmentOut& s) const {
    write(s.index, ProblemView{s.first_row, s.rows, s.weight});
  }
};

// Enqueues what writes the per-problem arguments before the GEMM: the segment check with the
// fill in its second pass (call.check_segments), or the fill alone.
template <class Writer>
sgemm_status write_problems(const GroupedCall& call, const Writer& write) {
  if (call.check_segments) {
    // Tile rows only matter to the portable kernel's scheduler; any positive value will do.
    SGEMM_CUDA_TRY(launch_check_segments(call.segments, 1, call.record, FillEmit<Writer>{write},
                                         call.stream));
  } else {
    const unsigned blocks = static_cast<unsigned>((call.problems + kFillThreads - 1) / kFillThreads);
    fill_problems<Writer><<<blocks, kFillThreads, 0, call.stream>>>(call, write);
    SGEMM_CUDA_TRY(cudaGetLastError());
  }
  return SGEMM_OK;
}

// Device arrays of one kernel's per-problem arguments, carved from GroupedCall::args. alpha (the
// epilogue's per-problem scale) is used by the fp8 kernels only.
template <class Shape, class ElementA, class ElementB, class ElementD, class StrideA,
          class StrideB, class StrideD>
struct ProblemArrays {
  Shape* shapes;
  ElementA** a;
  ElementB** b;
  ElementD** d;
  StrideA* stride_a;
  StrideB* stride_b;
  StrideD* stride_d;
  float* alpha;

  static constexpr size_t kBytesPerProblem = sizeof(Shape) + 3 * sizeof(void*) + sizeof(StrideA) +
                                             sizeof(StrideB) + sizeof(StrideD) + sizeof(float);
  static_assert(kBytesPerProblem <= kArgsBytesPerProblem,
                "per-problem arguments outgrow kArgsBytesPerProblem (workspace sizing)");

  static sgemm_status carve(void* base, size_t bytes, int64_t problems, ProblemArrays* out) {
    char* p = static_cast<char*>(base);
    size_t used = 0;
    auto take = [&](size_t size) {
      char* at = p + used;
      used += align_up(size * static_cast<size_t>(problems));
      return at;
    };
    out->shapes = reinterpret_cast<Shape*>(take(sizeof(Shape)));
    out->a = reinterpret_cast<ElementA**>(take(sizeof(void*)));
    out->b = reinterpret_cast<ElementB**>(take(sizeof(void*)));
    out->d = reinterpret_cast<ElementD**>(take(sizeof(void*)));
    out->stride_a = reinterpret_cast<StrideA*>(take(sizeof(StrideA)));
    out->stride_b = reinterpret_cast<StrideB*>(take(sizeof(StrideB)));
    out->stride_d = reinterpret_cast<StrideD*>(take(sizeof(StrideD)));
    out->alpha = reinterpret_cast<float*>(take(sizeof(float)));
    if (used > bytes) {
      return fail(SGEMM_INTERNAL_ERROR, "per-problem arguments need " + std::to_string(used) +
                                            " bytes, " + std::to_string(bytes) + " reserved");
    }
    return SGEMM_OK;
  }
};

// A CUTLASS operator initialised for one GroupedCall layout, kept per thread and configuration.
// Its parameters depend only on where the per-problem arrays and CUTLASS's workspace live, the
// problem count and the device, not on the data: a repeated call with the same workspace and
// batch size skips initialize() (TMA descriptor encoding, occupancy queries), which is most of
// the host cost of a small call. The kernels set up their per-SM state themselves on each run.
template <class Gemm>
struct InitializedGemm {
  Gemm gemm;
  const void* args = nullptr;
  const void* workspace = nullptr;
  int64_t problems = -1;
  int device = -1;
  int sm_count = -1;

  // Runs the operator on call.stream, initialising it first (get_workspace_size ->
  // can_implement -> initialize, each checked) unless it already is for this call's layout.
  // make_args(typename Gemm::Arguments*) fills the CUTLASS arguments, or fails.
  template <class MakeArgs>
  sgemm_status run(const GroupedCall& c, const char* name, MakeArgs make_args) {
    const std::string what(name);
    if (!matches(c)) {
      problems = -1;  // a failed initialisation must not count as done
      typename Gemm::Arguments arguments;
      SGEMM_TRY(make_args(&arguments));
      const size_t need = Gemm::get_workspace_size(arguments);
      if (need > c.cutlass_workspace_bytes) {
        return fail(SGEMM_INTERNAL_ERROR, what + " needs " + std::to_string(need) +
                                              " bytes of CUTLASS workspace, more than the " +
                                              std::to_string(c.cutlass_workspace_bytes) +
                                              " reserved for it");
      }
      SGEMM_CUTLASS_TRY(gemm.can_implement(arguments), what + " can_implement");
      SGEMM_CUTLASS_TRY(gemm.initialize(arguments, c.cutlass_workspace, c.stream),
                        what + " initialize");
      remember(c);
    }
    SGEMM_CUTLASS_TRY(gemm.run(c.stream), what + " run");
    SGEMM_CUDA_TRY(cudaGetLastError());
    return SGEMM_OK;
  }

 private:
  bool matches(const GroupedCall& c) const {
    return problems == c.problems && args == c.args && workspace == c.cutlass_workspace &&
           device == c.device && sm_count == c.sm_count;
  }
  void remember(const GroupedCall& c) {
    args = c.args;
    workspace = c.cutlass_workspace;
    problems = c.problems;
    device = c.device;
    sm_count = c.sm_count;
  }
};

}  // namespace sgemm
