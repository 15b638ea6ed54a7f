// The argument rules that keep every kernel inside x, y, the weights and the workspaces, as plain
// functions shared by the host code, the device check (segments.cuh) and the CPU fuzz test
// (tests/native/segment_check_fuzz.cpp), so the test runs the very rules the library runs.
// Plain C++: no CUDA header is needed to compile it for the host.
#pragma once

#include <cstdint>

#include "segment_gemm.h"
#include "workspace.hpp"

#if defined(__CUDACC__)
#define SGEMM_HD __host__ __device__
#else
#define SGEMM_HD
#endif

namespace sgemm {

// --- host: the sizes of a call (check_sizes in api.cu words the message) --------------------

// Every size is at most 2^48, so that no count the library derives from one (segments + 1, row
// tiles, workspace bytes) can overflow; and every buffer the sizes imply (at 4 bytes an element)
// is at most 2^62 bytes, so that every byte offset into it fits in int64.
constexpr int64_t kMaxExtent = int64_t(1) << 48;
constexpr int64_t kMaxBytes = int64_t(1) << 62;
constexpr int64_t kMaxElementBytes = 4;

enum SizeError {
  kSizeOk = 0,
  kSizeNegative,       // a size is negative
  kSizeTooLarge,       // a size exceeds kMaxExtent
  kSizeX,              // x_rows * d_in elements exceed kMaxBytes
  kSizeY,              // x_rows * d_out elements exceed kMaxBytes
  kSizeWeights,        // num_weights * d_in * d_out elements exceed kMaxBytes
  kSizeSegmentSums,    // batch_size * x_rows exceeds kMaxBytes: the device sums seg_lens in int64
};

// Whether a * b * c elements of kMaxElementBytes stay within kMaxBytes (all >= 0, <= kMaxExtent).
inline bool bytes_fit(int64_t a, int64_t b, int64_t c = 1) {
  const __int128 ab = static_cast<__int128>(a) * b;  // <= 2^96
  if (ab * kMaxElementBytes > kMaxBytes) return c == 0;
  return ab * c * kMaxElementBytes <= kMaxBytes;      // <= 2^62 * 2^48
}

inline SizeError size_error(const sgemm_run_args& a) {
  const int64_t sizes[] = {a.x_rows, a.d_in, a.d_out, a.num_weights, a.batch_size};
  for (int64_t s : sizes) {
    if (s < 0) return kSizeNegative;
  }
  for (int64_t s : sizes) {
    if (s > kMaxExtent) return kSizeTooLarge;
  }
  if (!bytes_fit(a.x_rows, a.d_in)) return kSizeX;
  if (!bytes_fit(a.x_rows, a.d_out)) return kSizeY;
  if (!bytes_fit(a.num_weights, a.d_in, a.d_out)) return kSizeWeights;
  // Each seg_lens entry the device accepts is <= x_rows, so no prefix sum exceeds this.
  if (static_cast<__int128>(a.batch_size) * a.x_rows > kMaxBytes) return kSizeSegmentSums;
  return kSizeOk;
}

// Without weight_indices segment i uses weight i, so there must be a weight per segment.
inline bool implicit_weights_fit(const sgemm_run_args& a) {
  return a.weight_indices != nullptr || a.batch_size <= a.num_weights;
}

// --- host and device: the segments --------------------------------------------------------------

// The caller's segment description, as the device check reads it.
struct SegmentArgs {
  const int64_t* seg_lens;
  const int64_t* seg_indptr;  // wins over seg_lens when both are given
  const int64_t* weight_indices;
  int64_t batch_size;
  int64_t num_weights;
  int64_t x_rows;
};

inline SegmentArgs segment_args(const sgemm_run_args& a) {
  return SegmentArgs{a.seg_lens, a.seg_indptr, a.weight_indices, a.batch_size, a.num_weights,
                     a.x_rows};
}

// One segment as the emitter sees it. After an error every segment has rows = 0 and weight = 0,
// so whatever is built from it reads and writes nothing.
struct SegmentOut {
  int64_t index;
  int64_t first_row;   // prefix sum of the lengths before it (= seg_indptr[index] when valid)
  int64_t rows;
  int64_t weight;      // weight_indices[index], or index without weight indices
  int64_t first_tile;  // prefix sum of ceil(rows / tile_rows) before it
  int64_t tiles;
};

// An error as the check orders them: the lowest segment index, then the lowest kind, wins.
SGEMM_HD inline unsigned long long error_code(int64_t segment, SegmentError kind) {
  return (static_cast<unsigned long long>(segment) << 4) | kind;
}

// Length of segment i, or -1 if it is invalid, with report(i, kind) for each reason. Neither
// branch overflows: an indptr pair is compared before it is subtracted (in unsigned arithmetic;
// a wrapped length can only come from an entry below 0, which seg_indptr[0] == 0 and the
// monotone check already reject elsewhere in the batch).
template <class Report>
SGEMM_HD int64_t segment_length(const SegmentArgs& a, int64_t i, Report&& report) {
  int64_t len = 0;
  bool ok = true;
  if (a.seg_indptr != nullptr) {
    const int64_t lo = a.seg_indptr[i];
    const int64_t hi = a.seg_indptr[i + 1];
    if (hi < lo) {
      report(i, kSegIndptrDecreasing);
      ok = false;
    } else {
      len = static_cast<int64_t>(static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo));
    }
  } else {
    len = a.seg_lens[i];
    if (len < 0) { report(i, kSegNegativeLength); ok = false; }
    else if (len > a.x_rows) { report(i, kSegLengthTooLarge); ok = false; }
  }
  if (a.weight_indices != nullptr) {
    const int64_t w = a.weight_indices[i];
    if (w < 0 || w >= a.num_weights) {
      report(i, kSegWeightIndexRange);
      ok = false;
    }
  }
  return ok ? len : -1;
}

struct NoReport {
  SGEMM_HD void operator()(int64_t, SegmentError) const {}
};

// The check runs over the batch in contiguous runs of segments (one per thread of a block):
// pass 1 checks a run and sums its rows and row tiles; the runs' sums are scanned (a block
// scan on the device); one thread then checks the totals; pass 2 emits every segment of a run
// from its run's starting row and tile.
struct RunSums {
  long long rows;
  long long tiles;
};

// Pass 1 over segments [begin, end).
template <class Report>
SGEMM_HD RunSums check_run(const SegmentArgs& a, int64_t begin, int64_t end, int64_t tile_rows,
                           Report&& report) {
  RunSums s{0, 0};
  for (int64_t i = begin; i < end; ++i) {
    const int64_t len = segment_length(a, i, report);
    if (len > 0) { s.rows += len; s.tiles += (len + tile_rows - 1) / tile_rows; }
  }
  return s;
}

// The batch-wide rules, after pass 1: seg_indptr starts at 0, and (only once every segment is
// valid, when the sum is meaningful) the segments cover exactly x_rows. first_error is the
// lowest error reported so far, read after report() has run.
template <class Report>
SGEMM_HD void check_totals(const SegmentArgs& a, int64_t indptr0, long long all_rows,
                           const unsigned long long& first_error, Report&& report) {
  if (indptr0 != 0) report(0, kSegIndptrStart);
  if (first_error == kNoError && all_rows != a.x_rows) report(a.batch_size, kSegRowsMismatch);
}

// Pass 2 over segments [begin, end), from the run's exclusive prefix sums (rows, tiles).
template <class Emit>
SGEMM_HD void emit_run(const SegmentArgs& a, int64_t begin, int64_t end, bool ok, long long rows,
                       long long tiles, int64_t tile_rows, Emit& emit) {
  for (int64_t i = begin; i < end; ++i) {
    const int64_t checked = ok ? segment_length(a, i, NoReport{}) : 0;
    const int64_t len = checked > 0 ? checked : 0;
    const int64_t t = (len + tile_rows - 1) / tile_rows;
    const int64_t weight = !ok ? 0 : a.weight_indices != nullptr ? a.weight_indices[i] : i;
    emit(SegmentOut{i, ok ? rows : 0, len, weight, tiles, t});
    rows += len;
    tiles += t;
  }
}

// Stores this call's first error (kNoError if none) as record->current, and, if there is one and
// no earlier unchecked call failed, keeps it for sgemm_check with the offending values. Only the
// error path reads the segment arrays again, at the failing segment.
SGEMM_HD inline void write_record(const SegmentArgs& a, unsigned long long error,
                                  long long covered_rows, ErrorRecord* record) {
  record->current = error;
  if (error == kNoError || error >= record->sticky) return;
  record->sticky = error;
  const int64_t i = static_cast<int64_t>(error >> 4);
  switch (static_cast<SegmentError>(error & 15)) {
    case kSegNegativeLength:
    case kSegLengthTooLarge: record->value = a.seg_lens[i]; record->other = a.x_rows; break;
    case kSegIndptrStart: record->value = a.seg_indptr[0]; record->other = 0; break;
    case kSegIndptrDecreasing: record->value = a.seg_indptr[i + 1]; record->other = a.seg_indptr[i]; break;
    case kSegWeightIndexRange: record->value = a.weight_indices[i]; record->other = 0; break;
    case kSegRowsMismatch: record->value = covered_rows; record->other = a.x_rows; break;
    default: break;
  }
}

}  // namespace sgemm
