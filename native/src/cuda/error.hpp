// Status + message plumbing shared by the C API and the kernels' host code.
// A failing call sets a thread-local message and returns its status; nothing prints or exits,
// and no C++ exception leaves the library: every exported function runs its body in guarded().
#pragma once

#include <cuda_runtime.h>

#include <string>
#include <utility>

#include "segment_gemm.h"

namespace sgemm {

// Sets the calling thread's last error message and returns status, for `return fail(...)`.
sgemm_status fail(sgemm_status status, std::string message);
void clear_error() noexcept;

// A CUDA runtime error as a status, with the failing call named: SGEMM_CUDA_FATAL for the errors
// that leave the context unusable (is_sticky_cuda_error), SGEMM_NO_DEVICE without a driver or
// device, else SGEMM_CUDA_ERROR. The code is kept for sgemm_last_cuda_error.
sgemm_status cuda_fail(cudaError_t err, const char* what) noexcept;

// Whether err leaves the process's CUDA context unusable ("any further CUDA work will return the
// same error; the process must be terminated and relaunched", as driver_types.h documents them).
bool is_sticky_cuda_error(cudaError_t err) noexcept;

// The status and message for the C++ exception being handled; call only inside a catch block.
// Allocates nothing (the message of an out-of-memory failure must not need memory).
sgemm_status exception_status(const char* function) noexcept;

// Runs body() (which returns an sgemm_status) for the exported C function `function`, after
// clearing the thread's last error; a C++ exception it throws becomes SGEMM_INTERNAL_ERROR with
// its message (std::bad_alloc: "out of host memory") instead of crossing the C ABI.
template <class Body>
sgemm_status guarded(const char* function, Body&& body) noexcept {
  try {
    clear_error();
    return std::forward<Body>(body)();
  } catch (...) {
    return exception_status(function);
  }
}

}  // namespace sgemm

// Evaluates a CUDA runtime call; on failure returns its status (cuda_fail) with the call's text
// and CUDA's own message from the enclosing function.
#define SGEMM_CUDA_TRY(call)                                                   \
  do {                                                                         \
    cudaError_t sgemm_err_ = (call);                                           \
    if (sgemm_err_ != cudaSuccess) return ::sgemm::cuda_fail(sgemm_err_, #call); \
  } while (0)

// Propagates a non-OK sgemm_status (the message is already set).
#define SGEMM_TRY(call)                                \
  do {                                                 \
    sgemm_status sgemm_st_ = (call);                   \
    if (sgemm_st_ != SGEMM_OK) return sgemm_st_;       \
  } while (0)
