// The group phase of a columnar batch (include/segment_gemm_rows.h, sgemm_group_rows): one
// classify pass (validity, adapter counts, the first bad row, the result's validity bits), a
// scan for each computed row's result row, a stable radix sort of the rows by adapter, and a
// pass writing the result's offsets and each sorted row's destination. It replaces ~15 cuDF
// calls and three host round trips of the UDF with four launches and no synchronisation; the
// caller copies the small summary to the host once. Also the event timer of the same header.
#include <cuda_runtime.h>

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <climits>
#include <memory>
#include <cstdint>
#include <string>
#include <vector>

#include "error.hpp"
#include "segment_gemm_rows.h"

namespace sgemm {
namespace {

constexpr int kThreads = 256;  // a multiple of 32: each warp owns one word of the bitmask

size_t aligned(size_t bytes) { return (bytes + 255) & ~static_cast<size_t>(255); }

// Bits of the sort key: adapters 0 .. num_adapters - 1, and num_adapters for the rows that are
// not computed (sorted last).
int key_bits(int32_t num_adapters) {
  int bits = 1;
  while (bits < 31 && (1LL << bits) <= num_adapters) bits++;
  return bits;
}

struct Layout {
  size_t key, key_sorted, index, flag, rank, temp, temp_bytes, total;
};

sgemm_status layout(int64_t rows, int32_t num_adapters, Layout* l) {
  const int n = static_cast<int>(rows);
  size_t sort_bytes = 0, scan_bytes = 0;
  SGEMM_CUDA_TRY(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, static_cast<const int32_t*>(nullptr),
                                                 static_cast<int32_t*>(nullptr),
                                                 static_cast<const int32_t*>(nullptr),
                                                 static_cast<int32_t*>(nullptr), n, 0,
                                                 key_bits(num_adapters)));
  SGEMM_CUDA_TRY(cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, static_cast<const int32_t*>(nullptr),
                                               static_cast<int32_t*>(nullptr), n));
  const size_t column = aligned(static_cast<size_t>(rows) * sizeof(int32_t));
  l->key = 0;
  l->key_sorted = l->key + column;
  l->index = l->key_sorted + column;
  l->flag = l->index + column;
  l->rank = l->flag + column;
  l->temp = l->rank + column;
  l->temp_bytes = aligned(sort_bytes > scan_bytes ? sort_bytes : scan_bytes);
  l->total = l->temp + l->temp_bytes;
  return SGEMM_OK;
}

__global__ void classify(const int32_t* adapter, const uint8_t* known, const uint8_t* present,
                         const int32_t* offsets, const uint8_t* has_null, int64_t rows,
                         int64_t d_in, int32_t num_adapters, int32_t* key, int32_t* index,
                         int32_t* flag, uint32_t* valid, int32_t* counts,
                         unsigned int* first_bad) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  bool computed = false;
  if (r < rows) {
    const bool is_present = present == nullptr || present[r] != 0;
    const int32_t a = adapter[r];
    const bool is_known = (known == nullptr || known[r] != 0) && a >= 0 && a < num_adapters;
    const bool length_ok = static_cast<int64_t>(offsets[r + 1]) - offsets[r] == d_in;
    const bool no_null = has_null == nullptr || has_null[r] == 0;
    computed = is_present && is_known && length_ok && no_null;
    key[r] = computed ? a : num_adapters;
    index[r] = static_cast<int32_t>(r);
    flag[r] = computed ? 1 : 0;
    if (computed) {
      atomicAdd(&counts[a], 1);
    } else if (is_present) {
      atomicMin(first_bad, static_cast<unsigned int>(r));
    }
  }
  // The whole warp takes part (rows past the end count as not computed), and its first lane
  // writes the warp's 32 bits: a warp covers rows 32w .. 32w + 31, one bitmask word.
  const unsigned int bits = __ballot_sync(0xffffffffu, computed);
  if ((threadIdx.x & 31) == 0 && r < rows) valid[r / 32] = bits;
}

__global__ void finish(const int32_t* key_sorted, const int32_t* order, const int32_t* flag,
                       const int32_t* rank, int64_t rows, int32_t num_adapters, int64_t d_out,
                       int32_t* dest, int32_t* out_offsets, int32_t* n_out) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (r >= rows) return;
  out_offsets[r] = static_cast<int32_t>(rank[r] * d_out);
  if (key_sorted[r] < num_adapters) dest[r] = rank[order[r]];
  if (r == rows - 1) {
    const int32_t n = rank[r] + flag[r];
    out_offsets[rows] = static_cast<int32_t>(n * d_out);
    *n_out = n;
  }
}

std::string str(long long v) { return std::to_string(v); }

}  // namespace
}  // namespace sgemm

struct sgemm_timer {
  std::vector<cudaEvent_t> events;
  std::vector<char> recorded;  // per mark: recorded at least once
};

using namespace sgemm;

extern "C" {

sgemm_status sgemm_group_rows_workspace_size(int64_t rows, int32_t num_adapters, size_t* bytes) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (bytes == nullptr) return fail(SGEMM_INVALID_ARGUMENT, "bytes is null");
    if (rows < 0 || rows > INT32_MAX || num_adapters < 1) {
      return fail(SGEMM_INVALID_ARGUMENT, "rows " + str(rows) + " must be in [0, 2^31) and num_adapters "
                                              + str(num_adapters) + " at least 1");
    }
    Layout l{};
    SGEMM_TRY(layout(rows, num_adapters, &l));
    *bytes = l.total;
    return SGEMM_OK;
  });
}

sgemm_status sgemm_group_rows(const int32_t* adapter, const uint8_t* known,
                              const uint8_t* present, const int32_t* offsets,
                              const uint8_t* has_null, int64_t rows, int64_t d_in,
                              int32_t num_adapters, int64_t d_out, int32_t* order,
                              int32_t* dest, int32_t* out_offsets, uint32_t* valid,
                              int32_t* summary, void* workspace, size_t workspace_bytes,
                              void* stream_ptr) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (rows < 0 || rows > INT32_MAX || num_adapters < 1 || d_in < 0 || d_out < 0) {
      return fail(SGEMM_INVALID_ARGUMENT, "bad size: rows=" + str(rows) + " num_adapters="
                                              + str(num_adapters) + " d_in=" + str(d_in)
                                              + " d_out=" + str(d_out));
    }
    if (summary == nullptr || out_offsets == nullptr) {
      return fail(SGEMM_INVALID_ARGUMENT, "summary or out_offsets is null");
    }
    auto stream = static_cast<cudaStream_t>(stream_ptr);
    // summary: zero counts and n; the first bad row starts at all ones (-1, and the largest
    // unsigned value for atomicMin).
    SGEMM_CUDA_TRY(cudaMemsetAsync(summary, 0, sizeof(int32_t) * (static_cast<size_t>(num_adapters) + 1), stream));
    SGEMM_CUDA_TRY(cudaMemsetAsync(summary + num_adapters + 1, 0xff, sizeof(int32_t), stream));
    if (rows == 0) {
      SGEMM_CUDA_TRY(cudaMemsetAsync(out_offsets, 0, sizeof(int32_t), stream));
      return SGEMM_OK;
    }
    if (adapter == nullptr || offsets == nullptr || order == nullptr || dest == nullptr
        || valid == nullptr || workspace == nullptr) {
      return fail(SGEMM_INVALID_ARGUMENT, "adapter, offsets, order, dest, valid or workspace is null");
    }
    Layout l{};
    SGEMM_TRY(layout(rows, num_adapters, &l));
    if (workspace_bytes < l.total) {
      return fail(SGEMM_WORKSPACE_TOO_SMALL, "group workspace of " + str(static_cast<long long>(workspace_bytes))
                                                 + " bytes, " + str(static_cast<long long>(l.total)) + " needed");
    }
    auto* base = static_cast<char*>(workspace);
    auto* key = reinterpret_cast<int32_t*>(base + l.key);
    auto* key_sorted = reinterpret_cast<int32_t*>(base + l.key_sorted);
    auto* index = reinterpret_cast<int32_t*>(base + l.index);
    auto* flag = reinterpret_cast<int32_t*>(base + l.flag);
    auto* rank = reinterpret_cast<int32_t*>(base + l.rank);
    void* temp = base + l.temp;
    size_t temp_bytes = l.temp_bytes;
    const int n = static_cast<int>(rows);
    const auto blocks = static_cast<unsigned>((rows + kThreads - 1) / kThreads);
    classify<<<blocks, kThreads, 0, stream>>>(adapter, known, present, offsets, has_null, rows,
                                              d_in, num_adapters, key, index, flag, valid, summary,
                                              reinterpret_cast<unsigned int*>(summary + num_adapters + 1));
    SGEMM_CUDA_TRY(cudaGetLastError());
    SGEMM_CUDA_TRY(cub::DeviceScan::ExclusiveSum(temp, temp_bytes, flag, rank, n, stream));
    temp_bytes = l.temp_bytes;
    SGEMM_CUDA_TRY(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, key, key_sorted, index, order, n,
                                                   0, key_bits(num_adapters), stream));
    finish<<<blocks, kThreads, 0, stream>>>(key_sorted, order, flag, rank, rows, num_adapters, d_out,
                                            dest, out_offsets, summary + num_adapters);
    SGEMM_CUDA_TRY(cudaGetLastError());
    return SGEMM_OK;
  });
}

sgemm_status sgemm_timer_create(sgemm_timer** timer, int marks) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (timer == nullptr || marks < 2 || marks > 64) {
      return fail(SGEMM_INVALID_ARGUMENT, "timer is null or marks not in [2, 64]");
    }
    *timer = nullptr;
    auto t = std::make_unique<sgemm_timer>();
    for (int i = 0; i < marks; i++) {
      cudaEvent_t e;
      const cudaError_t err = cudaEventCreate(&e);
      if (err != cudaSuccess) {
        for (cudaEvent_t made : t->events) cudaEventDestroy(made);
        return cuda_fail(err, "cudaEventCreate");
      }
      t->events.push_back(e);
    }
    t->recorded.assign(t->events.size(), 0);
    *timer = t.release();
    return SGEMM_OK;
  });
}

sgemm_status sgemm_timer_mark(sgemm_timer* timer, int mark, void* stream) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (timer == nullptr || mark < 0 || mark >= static_cast<int>(timer->events.size())) {
      return fail(SGEMM_INVALID_ARGUMENT, "no timer, or mark " + str(mark) + " out of range");
    }
    SGEMM_CUDA_TRY(cudaEventRecord(timer->events[mark], static_cast<cudaStream_t>(stream)));
    timer->recorded[mark] = 1;
    return SGEMM_OK;
  });
}

sgemm_status sgemm_timer_read(sgemm_timer* timer, float* ms) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (timer == nullptr || ms == nullptr) return fail(SGEMM_INVALID_ARGUMENT, "timer or ms is null");
    for (char r : timer->recorded) {
      if (r == 0) return fail(SGEMM_INVALID_ARGUMENT, "not every mark was recorded");
    }
    SGEMM_CUDA_TRY(cudaEventSynchronize(timer->events.back()));
    for (size_t i = 0; i + 1 < timer->events.size(); i++) {
      SGEMM_CUDA_TRY(cudaEventElapsedTime(&ms[i], timer->events[i], timer->events[i + 1]));
    }
    return SGEMM_OK;
  });
}

sgemm_status sgemm_timer_destroy(sgemm_timer* timer) {
  return guarded(__func__, [&]() -> sgemm_status {
    if (timer == nullptr) return SGEMM_OK;
    cudaError_t first = cudaSuccess;
    for (cudaEvent_t e : timer->events) {
      const cudaError_t err = cudaEventDestroy(e);
      if (first == cudaSuccess) first = err;
    }
    delete timer;
    if (first != cudaSuccess) return cuda_fail(first, "cudaEventDestroy");
    return SGEMM_OK;
  });
}

}  // extern "C"
