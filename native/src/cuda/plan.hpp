// Host-side choice of the kernel for a call: backend family, tile class, whether segments that
// share a weight are coalesced, and the float workspace that needs. Uses only what the host
// knows without a device sync (shapes, counts, pointer alignment, the device's architecture).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "grouped.hpp"
#include "segment_gemm.h"

namespace sgemm {

struct FloatWorkspaceLayout {
  size_t args;            // per-problem argument arrays
  size_t args_bytes;
  size_t cutlass;         // CUTLASS's own workspace
  size_t quant;           // fp8 weights: quantize.hpp's slots, then x quantised (x_rows * d_in bytes)
  size_t coalesce_begin;  // the coalescing buffers (coalesce.hpp) start here when used
  size_t total;
};

struct Plan {
  sgemm_backend family = SGEMM_BACKEND_PORTABLE;  // PORTABLE, SM80 or SM90
  bool small = false;                             // AUTO: the fused small-call kernel (PORTABLE family)
  TileClass tile = TileClass::kLarge;
  bool coalesce = false;
  bool fp8 = false;                               // fp8 weights: x quantised, sm90 fp8 kernel
  int64_t problems = 0;                           // grouped GEMM problems
  GroupedLaunch launch = nullptr;                 // null for PORTABLE
  FloatWorkspaceLayout layout{};                  // of the float workspace, when not PORTABLE
};

size_t element_bytes(sgemm_dtype dtype);

// Bytes of one element of the weights and of the x the GEMM reads: 1 with fp8 weights
// (args.weight_scales set; x is then quantised too), else of args.dtype. y keeps args.dtype.
size_t operand_element_bytes(const sgemm_run_args& args);

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Whether the sm_90a kernels (16-bit and fp8) run on a device of compute capability major.minor.
bool runs_sm90(int major, int minor);

// The fp8 kernel for these operand and output types in the preferred tile class, else in the
// other one (updating *tile); nullptr when this build has neither (SEGMENTGEMM_KERNELS).
GroupedLaunch find_sm90_fp8_kernel(Fp8Type a, Fp8Type b, sgemm_dtype out, TileClass* tile);

// Float workspace for the tensor-core kernels running `problems` problems, plus coalescing
// buffers when coalesce is set.
FloatWorkspaceLayout float_workspace_layout(const sgemm_run_args& args, bool coalesce);

// True when gathering rows by weight moves fewer bytes than re-reading shared weights: the
// weight bytes saved, (batch_size - num_weights) * d_in * d_out, against two passes over x and y.
bool coalescing_pays(const sgemm_run_args& args);

// SGEMM_UNSUPPORTED when a forced tensor-core backend cannot run on a device of compute
// capability major.minor (checked once, at sgemm_create).
sgemm_status check_backend_device(sgemm_backend backend, int major, int minor);

// Chooses the kernel for args on a device of compute capability major.minor. Fails with
// SGEMM_UNSUPPORTED when a forced backend cannot run the call, SGEMM_WORKSPACE_TOO_SMALL when the
// float workspace cannot hold what the chosen kernel needs.
sgemm_status make_plan(sgemm_backend requested, int major, int minor, const sgemm_run_args& args,
                       size_t float_workspace_bytes, Plan* plan);

// E.g. "sm90 bf16 B=row tile=128x256x64 cooperative cluster 2x1, 32 problems, coalesced by weight".
std::string describe_plan(const Plan& plan, const sgemm_run_args& args);

const char* dtype_name(sgemm_dtype dtype);

// Rows and columns of the output tile of a kernel family's tile class (dispatch.cu).
void tile_extent(sgemm_backend backend, TileClass tile, int64_t* rows, int64_t* cols);

}  // namespace sgemm
