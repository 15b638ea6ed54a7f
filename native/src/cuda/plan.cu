// Kernel choice (plan.hpp). Plain host code; compiled by nvcc with the rest of the library.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>

#include "coalesce.hpp"
#include "quantize.hpp"
#include "error.hpp"
#include "plan.hpp"
#include "small_gemm.hpp"

namespace sgemm {

const char* dtype_name(sgemm_dtype d) {
  switch (d) {
    case SGEMM_FLOAT32: return "float32";
    case SGEMM_FLOAT16: return "float16";
    case SGEMM_BFLOAT16: return "bfloat16";
    case SGEMM_FLOAT8_E4M3: return "float8_e4m3";
    case SGEMM_FLOAT8_E5M2: return "float8_e5m2";
  }
  return "unknown";
}

size_t element_bytes(sgemm_dtype dtype) {
  switch (dtype) {
    case SGEMM_FLOAT32: return 4;
    case SGEMM_FLOAT8_E4M3:
    case SGEMM_FLOAT8_E5M2: return 1;
    default: return 2;
  }
}

size_t operand_element_bytes(const sgemm_run_args& a) {
  return a.weight_scales != nullptr ? 1 : element_bytes(a.dtype);
}

bool runs_sm90(int major, int minor) { return major == 9 && minor == 0; }

FloatWorkspaceLayout float_workspace_layout(const sgemm_run_args& a, bool coalesce) {
  FloatWorkspaceLayout l;
  const int64_t problems = coalesce ? a.num_weights : a.batch_size;
  const bool fp8 = a.weight_scales != nullptr;
  l.args = 0;
  l.args_bytes = args_bytes(problems);
  l.cutlass = l.args + l.args_bytes;
  l.quant = l.cutlass + kCutlassWorkspaceBytes;
  l.coalesce_begin =
      fp8 ? l.quant + kQuantizeSlotBytes + align_up(static_cast<size_t>(a.x_rows) * a.d_in)
          : l.quant;
  // Coalescing gathers the rows the GEMM reads: x quantised (1 byte) with fp8 weights.
  l.total = coalesce ? coalesce_layout(l.coalesce_begin, a.batch_size, a.num_weights, a.x_rows,
                                       a.d_in, a.d_out, operand_element_bytes(a),
                                       element_bytes(a.dtype))
                           .end
                     : l.coalesce_begin;
  return l;
}

bool coalescing_pays(const sgemm_run_args& a) {
  if (a.weight_indices == nullptr || a.batch_size <= a.num_weights) return false;
  // In bytes: weights re-read per segment against one more read and write of x and of y.
  const double w = static_cast<double>(operand_element_bytes(a));  // weights and x alike
  const double ye = static_cast<double>(element_bytes(a.dtype));
  const double saved = static_cast<double>(a.batch_size - a.num_weights) * a.d_in * a.d_out * w;
  const double cost = 2.0 * a.x_rows * (a.d_in * w + a.d_out * ye);
  return saved > cost;
}

namespace {

std::string str(long long v) { return std::to_string(v); }


// What every CUTLASS kernel needs beyond its dtypes and row widths: TMA / cp.async alignment and
// sizes CUTLASS's int problem shapes hold. Empty when met, else why not.
std::string pointer_and_size_obstacle(const sgemm_run_args& a) {
  if (!aligned16(a.x) || !aligned16(a.weights) || !aligned16(a.y)) {
    return "x, weights and y must be 16-byte aligned";
  }
  if (a.x_rows > INT_MAX || a.d_in > INT_MAX || a.d_out > INT_MAX || a.batch_size > INT_MAX ||
      a.num_weights > INT_MAX) {
    return "x_rows, d_in, d_out, batch_size and num_weights must each fit in 32 bits";
  }
  return "";
}

// Empty when the tensor-core kernels can run args, else why not.
std::string tensor_core_obstacle(const sgemm_run_args& a) {
  if (a.dtype != SGEMM_FLOAT16 && a.dtype != SGEMM_BFLOAT16) {
    return std::string("dtype ") + dtype_name(a.dtype) +
           " runs on the portable kernel only (exact fp32); use float16 or bfloat16";
  }
  if (a.d_in <= 0 || a.d_out <= 0 || a.d_in % 8 != 0 || a.d_out % 8 != 0) {
    return "d_in = " + str(a.d_in) + " and d_out = " + str(a.d_out) +
           " must be positive multiples of 8 (16-byte rows for TMA / cp.async)";
  }
  return pointer_and_size_obstacle(a);
}

// Which devices each tensor-core family has code for: sm_90a SASS only runs on 9.0; the sm80
// kernels carry sm_80 SASS (all of 8.x) and sm_90 SASS.
bool runs_sm80(int major, int minor) { return major == 8 || runs_sm90(major, minor); }

TileClass tile_for(const sgemm_run_args& a, int64_t problems) {
  if (a.d_out <= 32) return TileClass::kNarrow;
  const int64_t busy = std::max<int64_t>(1, std::min(problems, a.x_rows));
  return a.x_rows / busy <= 64 ? TileClass::kShortM : TileClass::kLarge;
}

// The sm90 kernel for the preferred tile class, or another built one.
GroupedLaunch find_sm90(const sgemm_run_args& a, TileClass* tile) {
  const bool col = a.weight_column_major != 0;
  if (GroupedLaunch k = sm90_kernel(a.dtype, col, *tile)) return k;
  for (TileClass t : {TileClass::kLarge, TileClass::kShortM, TileClass::kNarrow}) {
    if (GroupedLaunch k = sm90_kernel(a.dtype, col, t)) {
      *tile = t;
      return k;
    }
  }
  return nullptr;
}

}  // namespace

sgemm_status check_backend_device(sgemm_backend backend, int major, int minor) {
  const std::string cc = str(major) + "." + str(minor);
  if (backend == SGEMM_BACKEND_SM90 && !runs_sm90(major, minor)) {
    return fail(SGEMM_UNSUPPORTED, "SM90 backend needs a compute capability 9.0 GPU (H100/H200); "
                                   "this one is " + cc + " (use AUTO)");
  }
  if (backend == SGEMM_BACKEND_SM80 && !runs_sm80(major, minor)) {
    return fail(SGEMM_UNSUPPORTED, "SM80 backend needs a compute capability 8.x or 9.0 GPU; "
                                   "this one is " + cc + " (use AUTO)");
  }
  return SGEMM_OK;
}

namespace {

// Empty when the fp8 kernels can run a call with fp8 weights, else why not.
std::string fp8_obstacle(sgemm_backend requested, int major, int minor, const sgemm_run_args& a) {
  if (requested == SGEMM_BACKEND_PORTABLE || requested == SGEMM_BACKEND_SM80) {
    return std::string("fp8 weights run on the sm90 fp8 kernels only, not the ") +
           (requested == SGEMM_BACKEND_PORTABLE ? "PORTABLE" : "SM80") + " backend (use AUTO or SM90)";
  }
  if (!runs_sm90(major, minor)) {
    return "fp8 weights need fp8 tensor cores (compute capability 9.0, H100/H200); this device is " +
           str(major) + "." + str(minor);
  }
  if (!a.weight_column_major) {
    return "fp8 weights must be column-major, (num_weights, d_out, d_in): fp8 tensor cores read "
           "both operands K-major";
  }
  if (a.d_in <= 0 || a.d_out <= 0 || a.d_in % 16 != 0 || a.d_out % 8 != 0) {
    return "with fp8 weights d_in = " + str(a.d_in) + " must be a positive multiple of 16 and d_out = " +
           str(a.d_out) + " of 8 (16-byte rows for TMA)";
  }
  return pointer_and_size_obstacle(a);
}

sgemm_status make_fp8_plan(sgemm_backend requested, int major, int minor, const sgemm_run_args& a,
                           size_t float_ws_bytes, Plan* plan) {
  const std::string obstacle = fp8_obstacle(requested, major, minor, a);
  if (!obstacle.empty()) return fail(SGEMM_UNSUPPORTED, obstacle);
  const bool coalesce = coalescing_pays(a) && float_workspace_layout(a, true).total <= float_ws_bytes;
  TileClass tile = a.d_out <= 32 ? TileClass::kNarrow : TileClass::kLarge;
  const GroupedLaunch launch = find_sm90_fp8_kernel(kE4M3, kE4M3, a.dtype, &tile);
  if (launch == nullptr) {
    return fail(SGEMM_UNSUPPORTED, std::string("no fp8 e4m3 kernel with ") + dtype_name(a.dtype) +
                                       " output in this build (SEGMENTGEMM_KERNELS)");
  }
  plan->family = SGEMM_BACKEND_SM90;
  plan->fp8 = true;
  plan->tile = tile;
  plan->coalesce = coalesce;
  plan->problems = coalesce ? a.num_weights : a.batch_size;
  plan->launch = launch;
  plan->layout = float_workspace_layout(a, coalesce);
  if (plan->layout.total > float_ws_bytes) {
    return fail(SGEMM_WORKSPACE_TOO_SMALL,
                "float workspace of " + str(float_ws_bytes) + " bytes is too small for " +
                    str(a.batch_size) + " segments with fp8 weights (x is quantised into it): " +
                    str(plan->layout.total) + " bytes needed (sgemm_workspace_size)");
  }
  return SGEMM_OK;
}

}  // namespace

sgemm_status make_plan(sgemm_backend requested, int major, int minor, const sgemm_run_args& a,
                       size_t float_ws_bytes, Plan* plan) {
  *plan = Plan{};
  plan->problems = a.batch_size;
  if (a.weight_scales != nullptr) return make_fp8_plan(requested, major, minor, a, float_ws_bytes, plan);
  if (requested == SGEMM_BACKEND_PORTABLE) return SGEMM_OK;
  // A call this small costs its launches, not its FLOPs: one fused kernel beats a check kernel
  // plus a tensor-core GEMM whose per-CTA set-up alone takes longer.
  if (requested == SGEMM_BACKEND_AUTO && small_call_fits(a)) {
    plan->small = true;
    return SGEMM_OK;
  }
  const bool forced = requested != SGEMM_BACKEND_AUTO;
  const std::string obstacle = tensor_core_obstacle(a);
  if (!obstacle.empty()) {
    if (!forced) return SGEMM_OK;
    return fail(SGEMM_UNSUPPORTED, std::string(requested == SGEMM_BACKEND_SM90 ? "SM90" : "SM80") +
                                       " backend cannot run this call: " + obstacle);
  }

  const bool coalesce_wanted = coalescing_pays(a);
  const bool coalesce =
      coalesce_wanted && float_workspace_layout(a, true).total <= float_ws_bytes;
  const int64_t problems = coalesce ? a.num_weights : a.batch_size;
  TileClass tile = tile_for(a, problems);
  sgemm_backend family = SGEMM_BACKEND_PORTABLE;
  GroupedLaunch launch = nullptr;
  if ((requested == SGEMM_BACKEND_SM90 || requested == SGEMM_BACKEND_AUTO) && runs_sm90(major, minor)) {
    launch = find_sm90(a, &tile);
    if (launch != nullptr) family = SGEMM_BACKEND_SM90;
  }
  if (launch == nullptr && requested != SGEMM_BACKEND_SM90 && runs_sm80(major, minor)) {
    launch = sm80_kernel(a.dtype, a.weight_column_major != 0);
    if (launch != nullptr) {
      family = SGEMM_BACKEND_SM80;
      tile = TileClass::kLarge;
    }
  }
  if (launch == nullptr) {
    if (!forced) return SGEMM_OK;  // portable
    return fail(SGEMM_UNSUPPORTED,
                std::string(requested == SGEMM_BACKEND_SM90 ? "SM90" : "SM80") +
                    " backend has no kernel for " + dtype_name(a.dtype) +
                    (a.weight_column_major ? " column-major" : " row-major") + " weights on compute capability " +
                    str(major) + "." + str(minor) + " in this build");
  }

  plan->family = family;
  plan->tile = tile;
  plan->coalesce = coalesce;
  plan->problems = problems;
  plan->launch = launch;
  plan->layout = float_workspace_layout(a, coalesce);
  if (plan->layout.total > float_ws_bytes) {
    return fail(SGEMM_WORKSPACE_TOO_SMALL,
                "float workspace of " + str(float_ws_bytes) + " bytes is too small for " +
                    str(a.batch_size) + " segments on the " +
                    (family == SGEMM_BACKEND_SM90 ? "sm90" : "sm80") + " kernels: " +
                    str(plan->layout.total) + " bytes needed (sgemm_workspace_size)");
  }
  return SGEMM_OK;
}

std::string describe_plan(const Plan& p, const sgemm_run_args& a) {
  const char* dt = a.dtype == SGEMM_FLOAT16 ? "fp16" : a.dtype == SGEMM_BFLOAT16 ? "bf16" : "fp32";
  const char* layout = a.weight_column_major ? "col" : "row";
  if (p.fp8) {
    std::string s = std::string("sm90 fp8e4m3 weights, x ") + dt +
                    " quantised to e4m3 per call, B=col tile=" + fp8_tile_class_name(p.tile) +
                    ", " + str(p.problems) + " problems";
    if (p.coalesce) s += ", coalesced by weight";
    return s;
  }
  if (p.small) {
    return std::string("small ") + dt + " B=" + layout + " fused check + simt 4x64x64, " +
           str(a.batch_size) + " segments";
  }
  if (p.family == SGEMM_BACKEND_PORTABLE) {
    return std::string("portable ") + dt + " B=" + layout + " simt 64x64x16, " +
           str(a.batch_size) + " segments";
  }
  std::string s = std::string(p.family == SGEMM_BACKEND_SM90 ? "sm90 " : "sm80 ") + dt + " B=" +
                  layout + " tile=" + tile_class_name(p.family, p.tile) + ", " +
                  str(p.problems) + " problems";
  if (p.coalesce) s += ", coalesced by weight";
  return s;
}

}  // namespace sgemm
