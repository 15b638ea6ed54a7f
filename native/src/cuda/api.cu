// The C API (include/segment_gemm.h): argument checks, workspace handling, dispatch, errors.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "coalesce.hpp"
#include "error.hpp"
#include "grouped.hpp"
#include "plan.hpp"
#include "portable_gemm.hpp"
#include "prepare.hpp"
#include "quantize.hpp"
#include "small_gemm.hpp"
#include "workspace.hpp"

#ifndef SGEMM_VERSION
#define SGEMM_VERSION "0.0.0"
#endif

struct sgemm_handle {
  int device;
  sgemm_backend backend;
  int multiprocessor_count;
  int cc_major;  // compute capability, for the kernel choice
  int cc_minor;
  void* float_ws;
  size_t float_ws_bytes;
  void* int_ws;
  size_t int_ws_bytes;
  sgemm::ErrorRecord* host_record;  // pinned, for sgemm_check's read-back
};

namespace sgemm {

namespace {
thread_local std::string g_last_error;
// The message of a CUDA failure or of a C++ exception, formatted without allocating;
// sgemm_last_error returns it while g_fixed_error is set.
thread_local char g_fixed_message[512];
thread_local bool g_fixed_error = false;
thread_local cudaError_t g_cuda_error = cudaSuccess;

sgemm_status fail_fixed(sgemm_status status, const char* function, const char* what,
                        const char* detail) noexcept {
  std::snprintf(g_fixed_message, sizeof(g_fixed_message), "%s: %s%s", function, what, detail);
  g_fixed_error = true;
  return status;
}
}  // namespace

sgemm_status fail(sgemm_status status, std::string message) {
  g_fixed_error = false;
  g_cuda_error = cudaSuccess;
  g_last_error = std::move(message);
  return status;
}

void clear_error() noexcept {
  g_last_error.clear();
  g_fixed_error = false;
  g_cuda_error = cudaSuccess;
}

bool is_sticky_cuda_error(cudaError_t err) noexcept {
  switch (err) {
    // Documented in CUDA 13's driver_types.h as leaving the process in an inconsistent state
    // ("any further CUDA work will return the same error"; relaunch the process) ...
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchTimeout:
    case cudaErrorAssert:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorLaunchFailure:
    case cudaErrorTensorMemoryLeak:
    case cudaErrorContained:
    case cudaErrorMpsClientTerminated:
    case cudaErrorExternalDevice:
    // ... and the uncorrectable hardware errors, which the RAPIDS Accelerator also treats as
    // fatal for the executor.
    case cudaErrorECCUncorrectable:
    case cudaErrorNvlinkUncorrectable:
      return true;
    default:
      return false;
  }
}

sgemm_status cuda_fail(cudaError_t err, const char* what) noexcept {
  const sgemm_status status =
      is_sticky_cuda_error(err) ? SGEMM_CUDA_FATAL
      : (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) ? SGEMM_NO_DEVICE
                                                                          : SGEMM_CUDA_ERROR;
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  // Formatted without allocating, so that the status survives an exhausted host heap.
  std::snprintf(g_fixed_message, sizeof(g_fixed_message), "%s failed: %s: %s%s", what,
                cudaGetErrorName(err), cudaGetErrorString(err),
                status == SGEMM_CUDA_FATAL
                    ? " (the CUDA context is unusable: the process must be restarted)"
                    : "");
  g_fixed_error = true;
  g_cuda_error = err;
  return status;
}

sgemm_status exception_status(const char* function) noexcept {
  g_cuda_error = cudaSuccess;
  try {
    throw;
  } catch (const std::bad_alloc& e) {
    return fail_fixed(SGEMM_INTERNAL_ERROR, function, "out of host memory: ", e.what());
  } catch (const std::exception& e) {
    return fail_fixed(SGEMM_INTERNAL_ERROR, function, "C++ exception: ", e.what());
  } catch (...) {
    return fail_fixed(SGEMM_INTERNAL_ERROR, function, "unknown C++ exception", "");
  }
}

namespace {

std::string str(long long v) { return std::to_string(v); }

// The sizes every entry point that takes sgemm_run_args reads (segment_rules.hpp: size_error).
sgemm_status check_sizes(const sgemm_run_args& a) {
  const SizeError error = size_error(a);
  if (error == kSizeOk) return SGEMM_OK;
  const std::string sizes = "x_rows=" + str(a.x_rows) + " d_in=" + str(a.d_in) +
                            " d_out=" + str(a.d_out) + " num_weights=" + str(a.num_weights) +
                            " batch_size=" + str(a.batch_size);
  switch (error) {
    case kSizeOk:  // returned above
    case kSizeSegmentSums: break;
    case kSizeNegative: return fail(SGEMM_INVALID_ARGUMENT, "negative size: " + sizes);
    case kSizeTooLarge:
      return fail(SGEMM_INVALID_ARGUMENT, "a size exceeds 2^48: " + sizes);
    case kSizeX:
      return fail(SGEMM_INVALID_ARGUMENT, "x exceeds 2^60 elements (x_rows * d_in): " + sizes);
    case kSizeY:
      return fail(SGEMM_INVALID_ARGUMENT, "y exceeds 2^60 elements (x_rows * d_out): " + sizes);
    case kSizeWeights:
      return fail(SGEMM_INVALID_ARGUMENT,
                  "weights exceed 2^60 elements (num_weights * d_in * d_out): " + sizes);
  }
  return fail(SGEMM_INVALID_ARGUMENT,
              "batch_size * x_rows exceeds 2^62 (segment lengths are summed in int64): " + sizes);
}

sgemm_status check_args(const sgemm_run_args& a) {
  if (a.dtype != SGEMM_FLOAT32 && a.dtype != SGEMM_FLOAT16 && a.dtype != SGEMM_BFLOAT16) {
    return fail(SGEMM_INVALID_ARGUMENT, "dtype " + str(a.dtype) +
                                            " is not one of float32 (0), float16 (1), bfloat16 (2)");
  }
  SGEMM_TRY(check_sizes(a));
  if (a.weight_scales != nullptr && a.dtype == SGEMM_FLOAT32) {
    return fail(SGEMM_INVALID_ARGUMENT,
                "with fp8 weights (weight_scales set) x and y must be float16 or bfloat16, not float32");
  }
  if (a.seg_lens == nullptr && a.seg_indptr == nullptr) {
    return fail(SGEMM_INVALID_ARGUMENT, "one of seg_lens and seg_indptr must be given");
  }
  if (!implicit_weights_fit(a)) {
    return fail(SGEMM_INVALID_ARGUMENT,
                "batch_size " + str(a.batch_size) + " > num_weights " + str(a.num_weights) +
                    " without weight_indices (segment i uses weight i)");
  }
  if (a.weight_indices != nullptr && a.batch_size > 0 && a.num_weights == 0) {
    return fail(SGEMM_INVALID_ARGUMENT, "weight_indices given but there are no weights");
  }
  const bool has_rows = a.x_rows > 0;
  if (has_rows && a.d_in > 0 && a.x == nullptr) return fail(SGEMM_INVALID_ARGUMENT, "x is null");
  if (has_rows && a.d_out > 0 && a.y == nullptr) return fail(SGEMM_INVALID_ARGUMENT, "y is null");
  if (has_rows && a.d_in > 0 && a.d_out > 0 && a.weights == nullptr) {
    return fail(SGEMM_INVALID_ARGUMENT, "weights is null");
  }
  return SGEMM_OK;
}

sgemm_status set_workspace(sgemm_handle* h, void* fws, size_t fbytes, void* iws, size_t ibytes) {
  if (fws == nullptr && fbytes > 0) {
    return fail(SGEMM_INVALID_ARGUMENT, "float workspace is null but its size is " + str(fbytes));
  }
  if (iws == nullptr) return fail(SGEMM_INVALID_ARGUMENT, "int workspace is null");
  if (ibytes < sizeof(ErrorRecord)) {
    return fail(SGEMM_WORKSPACE_TOO_SMALL, "int workspace of " + str(ibytes) +
                                               " bytes is smaller than its header (" +
                                               str(sizeof(ErrorRecord)) + " bytes)");
  }
  h->float_ws = fws;
  h->float_ws_bytes = fbytes;
  h->int_ws = iws;
  h->int_ws_bytes = ibytes;
  // A fresh workspace carries no error: both words to kNoError. Not a hot path, so wait here.
  SGEMM_CUDA_TRY(cudaMemsetAsync(iws, 0xff, 2 * sizeof(unsigned long long), cudaStreamPerThread));
  SGEMM_CUDA_TRY(cudaStreamSynchronize(cudaStreamPerThread));
  return SGEMM_OK;
}

sgemm_status use_device(const sgemm_handle* h) {
  int current = -1;
  SGEMM_CUDA_TRY(cudaGetDevice(&current));
  if (current != h->device) SGEMM_CUDA_TRY(cudaSetDevice(h->device));
  return SGEMM_OK;
}

sgemm_status run_portable(const sgemm_handle* h, const sgemm_run_args& a,
                          const PreparedSegments& seg, cudaStream_t stream) {
  const PortableLaunch launch = portable_kernel_for(a.dtype, a.weight_column_major != 0);
  if (launch == nullptr) {
    return fail(SGEMM_UNSUPPORTED, std::string("no kernel for dtype ") + dtype_name(a.dtype));
  }
  const PortableParams p{a.x, a.weights, a.y, a.d_in, a.d_out, a.batch_size, seg.indptr,
                         a.weight_indices, seg.tile_offsets, seg.record};
  // Enough blocks to fill the device; the row tiles beyond that are walked by the same blocks.
  const int64_t max_tiles = (a.x_rows + kPortableTileRows - 1) / kPortableTileRows + a.batch_size;
  const int grid_rows = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(max_tiles, 8LL * h->multiprocessor_count)));
  const cudaError_t err = launch(p, grid_rows, stream);
  if (err != cudaSuccess) return cuda_fail(err, "portable segment GEMM launch");
  return SGEMM_OK;
}

std::string describe(const ErrorRecord& r) {
  const long long i = static_cast<long long>(r.sticky >> 4);
  switch (static_cast<SegmentError>(r.sticky & 15)) {
    case kSegNegativeLength:
      return "seg_lens[" + str(i) + "] = " + str(r.value) + " is negative";
    case kSegLengthTooLarge:
      return "seg_lens[" + str(i) + "] = " + str(r.value) + " exceeds the " + str(r.other) +
             " rows of x";
    case kSegIndptrStart:
      return "seg_indptr[0] = " + str(r.value) + " but must be 0";
    case kSegIndptrDecreasing:
      return "seg_indptr is not monotone: seg_indptr[" + str(i) + "] = " + str(r.other) +
             " > seg_indptr[" + str(i + 1) + "] = " + str(r.value);
    case kSegWeightIndexRange:
      return "weight_indices[" + str(i) + "] = " + str(r.value) + " is out of range [0, num_weights)";
    case kSegRowsMismatch:
      return "the segments cover " + str(r.value) + " rows but x has " + str(r.other) +
             " rows (sum of seg_lens, or seg_indptr[batch_size], must equal x_rows)";
    default:
      return "unknown segment error " + str(static_cast<long long>(r.sticky & 15)) +
             " at segment " + str(i);
  }
}

bool is_fp8(sgemm_dtype d) { return d == SGEMM_FLOAT8_E4M3 || d == SGEMM_FLOAT8_E5M2; }

// The checks of sgemm_bmm_fp8's sizes and dtypes.
sgemm_status check_bmm(const sgemm_bmm_fp8_args& a) {
  const std::string dims = "batch=" + str(a.batch) + " m=" + str(a.m) + " n=" + str(a.n) +
                           " k=" + str(a.k);
  if (!is_fp8(a.a_dtype) || !is_fp8(a.b_dtype)) {
    return fail(SGEMM_INVALID_ARGUMENT, "bmm_fp8: a_dtype " + str(a.a_dtype) + " and b_dtype " +
                                            str(a.b_dtype) +
                                            " must be float8_e4m3 (3) or float8_e5m2 (4)");
  }
  if (a.a_dtype == SGEMM_FLOAT8_E5M2 && a.b_dtype == SGEMM_FLOAT8_E5M2) {
    return fail(SGEMM_INVALID_ARGUMENT,
                "bmm_fp8: a and b cannot both be float8_e5m2 (fp8 tensor cores take e4m3 x e4m3, "
                "e4m3 x e5m2 and e5m2 x e4m3)");
  }
  if (a.out_dtype != SGEMM_BFLOAT16 && a.out_dtype != SGEMM_FLOAT16) {
    return fail(SGEMM_INVALID_ARGUMENT, "bmm_fp8: out_dtype " + str(a.out_dtype) +
                                            " must be bfloat16 (2) or float16 (1)");
  }
  if (a.batch < 0 || a.m < 0 || a.n < 0 || a.k < 0) {
    return fail(SGEMM_INVALID_ARGUMENT, "bmm_fp8: negative size: " + dims);
  }
  if (a.batch > INT_MAX || a.m > INT_MAX || a.n > INT_MAX || a.k > INT_MAX) {
    return fail(SGEMM_INVALID_ARGUMENT, "bmm_fp8: a size exceeds 2^31 - 1: " + dims);
  }
  const double elements = static_cast<double>(a.batch) *
                          std::max({a.m * static_cast<double>(a.k), a.n * static_cast<double>(a.k),
                                    a.m * static_cast<double>(a.n)});
  if (elements > static_cast<double>(1LL << 60)) {
    return fail(SGEMM_INVALID_ARGUMENT, "bmm_fp8: a tensor exceeds 2^60 elements: " + dims);
  }
  if (a.k % 16 != 0 || a.n % 8 != 0) {
    return fail(SGEMM_INVALID_ARGUMENT, "bmm_fp8: k must be a multiple of 16 and n of 8 (16-byte "
                                        "rows for TMA): " + dims);
  }
  return SGEMM_OK;
}

// The pointer checks of sgemm_bmm_fp8 (sgemm_bmm_fp8_workspace_size reads sizes and dtypes only).
sgemm_status check_bmm_pointers(const sgemm_bmm_fp8_args& a) {
  const bool work = a.batch > 0 && a.m > 0 && a.n > 0;
  if (work && (a.d == nullptr || (a.k > 0 && (a.a == nullptr || a.b == nullptr ||
                                              a.a_scale == nullptr || a.b_scale == nullptr)))) {
    return fail(SGEMM_INVALID_ARGUMENT, "bmm_fp8: a, b, a_scale, b_scale and d must not be null");
  }
  if (work && (!aligned16(a.a) || !aligned16(a.b) || !aligned16(a.d))) {
    return fail(SGEMM_INVALID_ARGUMENT, "bmm_fp8: a, b and d must be 16-byte aligned");
  }
  return SGEMM_OK;
}

size_t bmm_workspace_bytes(int64_t batch) { return args_bytes(batch) + kCutlassWorkspaceBytes; }

sgemm::Fp8Type fp8_type(sgemm_dtype d) { return d == SGEMM_FLOAT8_E5M2 ? kE5M2 : kE4M3; }

}  // namespace
}  // namespace sgemm

using namespace sgemm;

extern "C" {

const char* sgemm_last_error(void) { return g_fixed_error ? g_fixed_message : g_last_error.c_str(); }

int sgemm_last_cuda_error(void) { return static_cast<int>(g_cuda_error); }

const char* sgemm_version(void) { return SGEMM_VERSION; }

sgemm_status sgemm_device_count(int* count) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (count == nullptr) return fail(SGEMM_INVALID_ARGUMENT, "count is null");
    *count = 0;
    const cudaError_t err = cudaGetDeviceCount(count);
    if (err != cudaSuccess) {
      *count = 0;
      return cuda_fail(err, "cudaGetDeviceCount (no usable CUDA driver or GPU?)");
    }
    return SGEMM_OK;
  });
}

sgemm_status sgemm_device_query(int device, sgemm_device_info* info) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (info == nullptr) return fail(SGEMM_INVALID_ARGUMENT, "info is null");
    int count = 0;
    SGEMM_TRY(sgemm_device_count(&count));
    if (device < 0 || device >= count) {
      return fail(SGEMM_INVALID_ARGUMENT,
                  "device " + str(device) + " does not exist (" + str(count) + " CUDA devices)");
    }
    cudaDeviceProp prop;
    SGEMM_CUDA_TRY(cudaGetDeviceProperties(&prop, device));
    std::memset(info, 0, sizeof(*info));
    std::snprintf(info->name, sizeof(info->name), "%s", prop.name);
    info->major = prop.major;
    info->minor = prop.minor;
    info->multiprocessor_count = prop.multiProcessorCount;
    info->total_memory_bytes = prop.totalGlobalMem;
    SGEMM_CUDA_TRY(cudaDriverGetVersion(&info->driver_version));
    SGEMM_CUDA_TRY(cudaRuntimeGetVersion(&info->runtime_version));
    return SGEMM_OK;
  });
}

sgemm_status sgemm_workspace_size(const sgemm_run_args* args, sgemm_workspace_sizes* sizes) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (args == nullptr || sizes == nullptr) return fail(SGEMM_INVALID_ARGUMENT, "args or sizes is null");
    const sgemm_run_args& a = *args;
    SGEMM_TRY(check_sizes(a));
    IntWorkspaceLayout layout{};
    int_workspace_layout(a.batch_size, &layout);
    sizes->int_bytes = layout.total;
    sizes->float_bytes = float_workspace_layout(a, false).total;
    sizes->float_bytes_coalesced =
        coalescing_pays(a) ? std::max(sizes->float_bytes, float_workspace_layout(a, true).total)
                           : sizes->float_bytes;
    return SGEMM_OK;
  });
}

sgemm_status sgemm_describe_plan(sgemm_handle* h, const sgemm_run_args* args, char* buf,
                                 size_t buf_len) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (h == nullptr) return fail(SGEMM_INVALID_ARGUMENT, "handle is null");
    if (args == nullptr || buf == nullptr || buf_len == 0) {
      return fail(SGEMM_INVALID_ARGUMENT, "args or buf is null");
    }
    SGEMM_TRY(check_args(*args));
    Plan plan;
    SGEMM_TRY(make_plan(h->backend, h->cc_major, h->cc_minor, *args, h->float_ws_bytes, &plan));
    std::snprintf(buf, buf_len, "%s", describe_plan(plan, *args).c_str());
    return SGEMM_OK;
  });
}

sgemm_status sgemm_create(sgemm_handle** handle, sgemm_backend backend, void* float_ws,
                          size_t float_ws_bytes, void* int_ws, size_t int_ws_bytes) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (handle == nullptr) return fail(SGEMM_INVALID_ARGUMENT, "handle is null");
    *handle = nullptr;
    if (backend < SGEMM_BACKEND_AUTO || backend > SGEMM_BACKEND_SM90) {
      return fail(SGEMM_INVALID_ARGUMENT, "unknown backend " + str(backend) +
                                              " (AUTO 0, PORTABLE 1, SM80 2, SM90 3)");
    }
    // Frees what the handle holds on every path out, an exception's included.
    struct Free {
      void operator()(sgemm_handle* h) const {
        if (h->host_record != nullptr) cudaFreeHost(h->host_record);
        delete h;
      }
    };
    std::unique_ptr<sgemm_handle, Free> h(new sgemm_handle{});
    h->backend = backend;
    cudaError_t err = cudaGetDevice(&h->device);
    if (err == cudaSuccess) {
      err = cudaDeviceGetAttribute(&h->multiprocessor_count, cudaDevAttrMultiProcessorCount, h->device);
    }
    if (err == cudaSuccess) {
      err = cudaDeviceGetAttribute(&h->cc_major, cudaDevAttrComputeCapabilityMajor, h->device);
    }
    if (err == cudaSuccess) {
      err = cudaDeviceGetAttribute(&h->cc_minor, cudaDevAttrComputeCapabilityMinor, h->device);
    }
    if (err == cudaSuccess) err = cudaMallocHost(&h->host_record, sizeof(ErrorRecord));
    if (err != cudaSuccess) return cuda_fail(err, "sgemm_create: device setup");
    SGEMM_TRY(check_backend_device(backend, h->cc_major, h->cc_minor));
    SGEMM_TRY(set_workspace(h.get(), float_ws, float_ws_bytes, int_ws, int_ws_bytes));
    *handle = h.release();
    return SGEMM_OK;
  });
}

sgemm_status sgemm_reset_workspace(sgemm_handle* h, void* float_ws, size_t float_ws_bytes,
                                   void* int_ws, size_t int_ws_bytes) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (h == nullptr) return fail(SGEMM_INVALID_ARGUMENT, "handle is null");
    SGEMM_TRY(use_device(h));
    return set_workspace(h, float_ws, float_ws_bytes, int_ws, int_ws_bytes);
  });
}

sgemm_status sgemm_destroy(sgemm_handle* h) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (h == nullptr) return SGEMM_OK;
    const cudaError_t err = cudaFreeHost(h->host_record);
    delete h;
    if (err != cudaSuccess) return cuda_fail(err, "cudaFreeHost");
    return SGEMM_OK;
  });
}

sgemm_status sgemm_run(sgemm_handle* h, const sgemm_run_args* args, void* stream_ptr) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (h == nullptr) return fail(SGEMM_INVALID_ARGUMENT, "handle is null");
    if (args == nullptr) return fail(SGEMM_INVALID_ARGUMENT, "args is null");
    const sgemm_run_args& a = *args;
    SGEMM_TRY(check_args(a));
    IntWorkspaceLayout layout{};
    int_workspace_layout(a.batch_size, &layout);  // batch_size >= 0: checked above
    if (h->int_ws_bytes < layout.total) {
      return fail(SGEMM_WORKSPACE_TOO_SMALL,
                  "int workspace of " + str(h->int_ws_bytes) + " bytes is too small for " +
                      str(a.batch_size) + " segments: " + str(layout.total) +
                      " bytes needed (sgemm_workspace_size)");
    }
    SGEMM_TRY(use_device(h));
    auto stream = static_cast<cudaStream_t>(stream_ptr);

    Plan plan;
    SGEMM_TRY(make_plan(h->backend, h->cc_major, h->cc_minor, a, h->float_ws_bytes, &plan));

    // Nothing to write (a batch of no segments over rows is a mismatch the check records for
    // sgemm_check); the checks still run.
    const bool nothing_to_write = a.x_rows == 0 || a.d_out == 0 || a.batch_size == 0;
    if (plan.small && !nothing_to_write) {
      return run_small(a, error_record(h->int_ws, layout), h->multiprocessor_count, stream);
    }
    // The portable kernel and the coalescing kernels read offsets from the int workspace; the
    // tensor-core kernels of an uncoalesced call check the segments while writing their arguments.
    const bool fused_check = !nothing_to_write && plan.family != SGEMM_BACKEND_PORTABLE && !plan.coalesce;
    PreparedSegments seg{};
    if (!fused_check) SGEMM_TRY(prepare_segments(a, h->int_ws, layout, kPortableTileRows, stream, &seg));
    if (nothing_to_write) return SGEMM_OK;

    if (plan.family == SGEMM_BACKEND_PORTABLE) return run_portable(h, a, seg, stream);

    // A persistent grid no larger than the work: every CTA of a ptr-array kernel sets up its own
    // TMA descriptors before it looks for a tile, which dominates a call of a few tiles.
    int64_t tile_rows = 0, tile_cols = 0;
    if (plan.fp8) fp8_tile_extent(plan.tile, &tile_rows, &tile_cols);
    else tile_extent(plan.family, plan.tile, &tile_rows, &tile_cols);
    const int64_t max_tiles =
        (a.x_rows / tile_rows + plan.problems) * ((a.d_out + tile_cols - 1) / tile_cols);
    const int ctas = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(h->multiprocessor_count, max_tiles)));
    char* fws = static_cast<char*>(h->float_ws);
    GroupedCall call{a.x, a.weights, a.y, a.d_in, a.d_out, a.batch_size, fused_check,
                     segment_args(a), seg.indptr, a.weight_indices, error_record(h->int_ws, layout),
                     fws + plan.layout.args, plan.layout.args_bytes, fws + plan.layout.cutlass,
                     kCutlassWorkspaceBytes, h->device, ctas, stream};
    const size_t y_elt = element_bytes(a.dtype);
    const size_t x_elt = operand_element_bytes(a);
    if (plan.fp8) {
      void* slots = fws + plan.layout.quant;
      void* xq = fws + plan.layout.quant + kQuantizeSlotBytes;
      SGEMM_TRY(quantize_e4m3(a.dtype, a.x, a.x_rows * a.d_in, xq, slots, h->multiprocessor_count,
                              stream));
      call.a = xq;
      call.a_scale = quantize_scale(slots);
      call.b_scales = a.weight_scales;
      call.b_scale_stride = 1;
    }
    CoalesceBuffers buffers{};
    if (plan.coalesce) {
      const CoalesceLayout c = coalesce_layout(plan.layout.coalesce_begin, a.batch_size,
                                               a.num_weights, a.x_rows, a.d_in, a.d_out, x_elt,
                                               y_elt);
      buffers = CoalesceBuffers{reinterpret_cast<int64_t*>(fws + c.group_rows),
                                reinterpret_cast<int64_t*>(fws + c.group_ptr),
                                reinterpret_cast<int64_t*>(fws + c.cursor),
                                reinterpret_cast<int64_t*>(fws + c.seg_dest), fws + c.xg,
                                fws + c.yg};
      sgemm_run_args gather = a;
      gather.x = call.a;
      SGEMM_TRY(coalesce_gather(gather, seg.indptr, seg.record, buffers, x_elt, stream));
      call.a = buffers.xg;
      call.d = buffers.yg;
      call.problems = a.num_weights;
      call.indptr = buffers.group_ptr;
      call.weight_indices = nullptr;  // group w uses weight w
    }
    SGEMM_TRY(plan.launch(call));
    if (plan.coalesce) SGEMM_TRY(coalesce_scatter(a, seg.indptr, seg.record, buffers, y_elt, stream));
    return SGEMM_OK;
  });
}

sgemm_status sgemm_bmm_fp8_workspace_size(const sgemm_bmm_fp8_args* args, size_t* float_bytes) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (args == nullptr || float_bytes == nullptr) {
      return fail(SGEMM_INVALID_ARGUMENT, "args or float_bytes is null");
    }
    SGEMM_TRY(check_bmm(*args));
    *float_bytes = bmm_workspace_bytes(args->batch);
    return SGEMM_OK;
  });
}

sgemm_status sgemm_bmm_fp8(sgemm_handle* h, const sgemm_bmm_fp8_args* args, void* stream_ptr) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (h == nullptr) return fail(SGEMM_INVALID_ARGUMENT, "handle is null");
    if (args == nullptr) return fail(SGEMM_INVALID_ARGUMENT, "args is null");
    const sgemm_bmm_fp8_args& a = *args;
    SGEMM_TRY(check_bmm(a));
    SGEMM_TRY(check_bmm_pointers(a));
    if (h->backend != SGEMM_BACKEND_AUTO && h->backend != SGEMM_BACKEND_SM90) {
      return fail(SGEMM_UNSUPPORTED, "bmm_fp8 runs on the sm90 fp8 kernels only: use a handle of "
                                     "backend AUTO or SM90");
    }
    if (!runs_sm90(h->cc_major, h->cc_minor)) {
      return fail(SGEMM_UNSUPPORTED,
                  "bmm_fp8 needs fp8 tensor cores (compute capability 9.0, H100/H200); this device is " +
                      str(h->cc_major) + "." + str(h->cc_minor));
    }
    SGEMM_TRY(use_device(h));
    auto stream = static_cast<cudaStream_t>(stream_ptr);
    if (a.batch == 0 || a.m == 0 || a.n == 0) return SGEMM_OK;
    const size_t out_bytes = static_cast<size_t>(a.batch) * a.m * a.n * element_bytes(a.out_dtype);
    if (a.k == 0) {
      SGEMM_CUDA_TRY(cudaMemsetAsync(a.d, 0, out_bytes, stream));  // an empty sum
      return SGEMM_OK;
    }
    const size_t need = bmm_workspace_bytes(a.batch);
    if (h->float_ws_bytes < need) {
      return fail(SGEMM_WORKSPACE_TOO_SMALL,
                  "float workspace of " + str(h->float_ws_bytes) + " bytes is too small for bmm_fp8 of batch " +
                      str(a.batch) + ": " + str(need) + " bytes needed (sgemm_bmm_fp8_workspace_size)");
    }
    TileClass tile = a.n <= 32 ? TileClass::kNarrow : TileClass::kLarge;
    const GroupedLaunch launch =
        find_sm90_fp8_kernel(fp8_type(a.a_dtype), fp8_type(a.b_dtype), a.out_dtype, &tile);
    if (launch == nullptr) {
      return fail(SGEMM_UNSUPPORTED, std::string("bmm_fp8: no kernel for ") + dtype_name(a.a_dtype) +
                                         " x " + dtype_name(a.b_dtype) + " -> " +
                                         dtype_name(a.out_dtype) + " in this build (SEGMENTGEMM_KERNELS)");
    }
    int64_t tile_rows = 0, tile_cols = 0;
    fp8_tile_extent(tile, &tile_rows, &tile_cols);
    const int64_t tiles = a.batch * ((a.m + tile_rows - 1) / tile_rows) * ((a.n + tile_cols - 1) / tile_cols);
    const int ctas = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(h->multiprocessor_count, tiles)));
    IntWorkspaceLayout layout{};
    int_workspace_layout(0, &layout);
    char* fws = static_cast<char*>(h->float_ws);
    GroupedCall call{a.a, a.b, a.d, a.k, a.n, a.batch, false, SegmentArgs{}, nullptr, nullptr,
                     error_record(h->int_ws, layout), fws, args_bytes(a.batch),
                     fws + args_bytes(a.batch), kCutlassWorkspaceBytes, h->device, ctas, stream};
    call.uniform_rows = a.m;
    call.a_scale = a.a_scale;
    call.b_scales = a.b_scale;
    call.b_scale_stride = 0;
    return launch(call);
  });
}

sgemm_status sgemm_check(sgemm_handle* h, void* stream_ptr) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (h == nullptr) return fail(SGEMM_INVALID_ARGUMENT, "handle is null");
    SGEMM_TRY(use_device(h));
    auto stream = static_cast<cudaStream_t>(stream_ptr);
    auto* record = static_cast<ErrorRecord*>(h->int_ws);
    SGEMM_CUDA_TRY(cudaMemcpyAsync(h->host_record, record, sizeof(ErrorRecord),
                                   cudaMemcpyDeviceToHost, stream));
    SGEMM_CUDA_TRY(cudaStreamSynchronize(stream));
    if (h->host_record->sticky == kNoError) return SGEMM_OK;
    const std::string message = describe(*h->host_record);
    SGEMM_CUDA_TRY(cudaMemsetAsync(&record->sticky, 0xff, sizeof(record->sticky), stream));
    return fail(SGEMM_INVALID_ARGUMENT, message);
  });
}

}  // extern "C"
