// The tensor-core grouped GEMMs (CUTLASS 3.x on sm_90a, CUTLASS 2.x on sm_80) as the C API sees
// them: one call shape for every kernel, one dispatch table (dtype x weight layout x arch x tile
// class) filled from templates that are instantiated one configuration per translation unit.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "prepare.hpp"
#include "segment_gemm.h"
#include "workspace.hpp"

namespace sgemm {

// Tile shapes by problem class. The host picks one from what it knows without a device sync:
// the average rows per problem (x_rows / problems) and d_out.
enum class TileClass : int {
  kLarge = 0,   // tall problems: 128x256x64 cooperative (sm90), 128x128x32 (sm80)
  kShortM = 1,  // <= 64 rows per problem on average: 64x128x64 ping-pong (sm90)
  kNarrow = 2,  // d_out <= 32 (LoRA shrink): 64x32x64 ping-pong (sm90)
};
constexpr int kTileClassCount = 3;

// One grouped GEMM: problem p multiplies rows [indptr[p], indptr[p+1]) of a (row-major, d_in
// wide) by weight w(p) = weight_indices ? weight_indices[p] : p and writes the same rows of d.
// Problems are the segments, or the weights when segments sharing a weight were coalesced.
//
// Where the per-problem arguments come from: with check_segments set (problems are the caller's
// segments), the launch runs the segment check itself and writes them in its second pass, one
// small kernel before the GEMM; indptr and weight_indices are then unused. Otherwise the
// segments were checked already (record) and a fill kernel reads indptr.
struct GroupedCall {
  const void* a;
  const void* weights;
  void* d;
  int64_t d_in;
  int64_t d_out;
  int64_t problems;
  bool check_segments;            // run the segment check of `segments` and fill in one kernel
  SegmentArgs segments;           // the caller's segments, when check_segments
  const int64_t* indptr;          // (problems + 1), checked on the device before the GEMM runs
  const int64_t* weight_indices;  // (problems,) or nullptr
  ErrorRecord* record;            // if it holds an error, every problem is given zero rows
  void* args;                     // per-problem shapes, pointers and strides
  size_t args_bytes;
  void* cutlass_workspace;
  size_t cutlass_workspace_bytes;
  int device;
  int sm_count;
  cudaStream_t stream;
  // bmm (sgemm_bmm_fp8): problem p is rows [p * uniform_rows, (p + 1) * uniform_rows) with
  // weight p; no segment data is read. 0 for segment calls.
  int64_t uniform_rows = 0;
  // fp8 kernels: the epilogue scales problem p by *a_scale * b_scales[w(p) * b_scale_stride]
  // (dequantisation scales of a and of the weights; stride 0 for one scale for every weight).
  const float* a_scale = nullptr;
  const float* b_scales = nullptr;
  int64_t b_scale_stride = 0;
};

// Bytes of per-problem argument arrays the kernels may use (shapes, 3 pointers, 3 strides, each
// array 256-byte aligned); every configuration static_asserts that it fits.
constexpr size_t kArgsBytesPerProblem = 96;
constexpr size_t args_bytes(int64_t problems) {
  return align_up(static_cast<size_t>(problems) * kArgsBytesPerProblem) + 8 * kAlign;
}
// CUTLASS's own workspace (ptr-array TMA descriptors per SM, scheduler state); checked against
// get_workspace_size on every call.
constexpr size_t kCutlassWorkspaceBytes = size_t(4) << 20;

using GroupedLaunch = sgemm_status (*)(const GroupedCall&);

// The kernel for one configuration, or nullptr where none was built (SEGMENTGEMM_KERNELS).
GroupedLaunch sm90_kernel(sgemm_dtype dtype, bool weight_column_major, TileClass tile);
GroupedLaunch sm80_kernel(sgemm_dtype dtype, bool weight_column_major);
const char* tile_class_name(sgemm_backend backend, TileClass tile);

// fp8 x fp8 -> bf16/fp16 on sm_90a (sm90_fp8.cuh): a row-major, weights K-major ("column-major",
// (d_out, d_in)): fp8 wgmma reads both operands K-major. Tile classes kLarge and kNarrow.
enum Fp8Type : int { kE4M3 = 0, kE5M2 = 1 };
GroupedLaunch sm90_fp8_kernel(Fp8Type a, Fp8Type b, sgemm_dtype out, TileClass tile);
const char* fp8_tile_class_name(TileClass tile);
void fp8_tile_extent(TileClass tile, int64_t* rows, int64_t* cols);

// Defined in sm90_grouped.cuh / sm80_grouped.cuh, instantiated in generated translation units.
namespace sm90 {
template <class Element, bool kWeightColumnMajor, TileClass kTile>
sgemm_status run(const GroupedCall& call);
template <class ElementA, class ElementB, class ElementD, TileClass kTile>
sgemm_status run_fp8(const GroupedCall& call);
}
namespace sm80 {
template <class Element, bool kWeightColumnMajor>
sgemm_status run(const GroupedCall& call);
}

}  // namespace sgemm
