// Layout of the int workspace, and the device-side error record kept in it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sgemm {

// Error kinds the device finds in segment data. The first (lowest segment index) wins.
enum SegmentError : uint32_t {
  kSegOk = 0,
  kSegNegativeLength = 1,       // seg_lens[i] < 0
  kSegLengthTooLarge = 2,       // seg_lens[i] > x_rows (also guards the prefix sum)
  kSegIndptrStart = 3,          // seg_indptr[0] != 0
  kSegIndptrDecreasing = 4,     // seg_indptr[i] > seg_indptr[i+1]
  kSegWeightIndexRange = 5,     // weight_indices[i] not in [0, num_weights)
  kSegRowsMismatch = 6,         // segments cover a number of rows other than x_rows
};

// Lives at the start of the int workspace.
struct ErrorRecord {
  // Gates the current run's GEMM: min over (segment index << 4 | kind); ~0 means no error.
  unsigned long long current;
  // First error since the last sgemm_check, with the offending values filled in.
  unsigned long long sticky;
  long long value;   // the offending value (a length, an index, an indptr entry, a row count)
  long long other;   // context: seg_indptr[i] for kSegIndptrDecreasing, x_rows for mismatches
};
constexpr unsigned long long kNoError = ~0ull;

constexpr size_t kAlign = 256;
constexpr size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Offsets into the int workspace for a call with batch_size segments.
struct IntWorkspaceLayout {
  size_t record = 0;        // ErrorRecord
  size_t indptr;            // (batch_size + 1) int64: seg_indptr built from seg_lens
  size_t tile_offsets;      // (batch_size + 1) int64: prefix sum of row tiles per segment
  size_t total;
};

// Fails only for a negative batch_size. Needs no device. Every batch_size the size rules accept
// (segment_rules.hpp: at most 2^48) gives sizes far from overflowing.
inline bool int_workspace_layout(int64_t batch_size, IntWorkspaceLayout* layout) {
  if (batch_size < 0) return false;
  const size_t n = static_cast<size_t>(batch_size + 1) * sizeof(int64_t);
  layout->record = 0;
  layout->indptr = align_up(sizeof(ErrorRecord));
  layout->tile_offsets = layout->indptr + align_up(n);
  layout->total = layout->tile_offsets + align_up(n);
  return true;
}

}  // namespace sgemm
