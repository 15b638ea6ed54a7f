// Status + message plumbing shared by the C API and the kernels' host code.
// A failing call sets a thread-local message and returns its status; nothing prints or exits.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "segment_gemm.h"

namespace sgemm {

// Sets the calling thread's last error message and returns status, for `return fail(...)`.
sgemm_status fail(sgemm_status status, std::string message);
void clear_error();

// A CUDA runtime error as a status, with the failing call named.
sgemm_status cuda_fail(cudaError_t err, const char* what);

}  // namespace sgemm

// Evaluates a CUDA runtime call; on failure returns SGEMM_CUDA_ERROR (or SGEMM_NO_DEVICE) with
// the call's text and CUDA's own message from the enclosing function.
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
