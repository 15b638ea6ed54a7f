// CPU fuzz test of the argument checks that stand between a caller and the kernels: the host's
// size rules (size_error, implicit_weights_fit) and the device's segment check (the passes of
// segment_rules.hpp, run here in the order check_segments in segments.cuh runs them in a block).
// Random arguments, biased to the edges (negative lengths, non-monotone or wrapping seg_indptr,
// indptr not starting at 0 or not ending at x_rows, weight indices out of range, int64 extremes,
// sizes whose products overflow, empty batches), are judged by an independent reference
// validator written from the rules' definitions in 128-bit arithmetic. The test fails on any
// disagreement (verdict, first error, recorded values) and checks that every accepted call
// addresses only rows of x and y and weights that exist, and that a rejected one emits nothing.
//
//   segment_check_fuzz [seconds=20] [seed]      prints the seed; exits 1 on a failure
//
// Needs no GPU: it is plain C++ built with the host compiler (CMake target segment_check_fuzz,
// run by the native module's Maven test phase).
#include <algorithm>
#include <array>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "segment_rules.hpp"
#include "workspace.hpp"

using namespace sgemm;

namespace {

using i128 = __int128;
constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();

std::mt19937_64 rng;
uint64_t seed_used;
long long iterations;

int64_t uniform(int64_t lo, int64_t hi) {  // inclusive
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}
bool chance(int percent) { return uniform(0, 99) < percent; }

const int64_t kEdges[] = {0, 1, 2, 3, 7, 8, 64, 127, 128, 129, 1023, 1024, 1025, int64_t(1) << 20,
                          int64_t(1) << 31, int64_t(1) << 47, kMaxExtent - 1, kMaxExtent,
                          kMaxExtent + 1, int64_t(1) << 60, int64_t(1) << 61, int64_t(1) << 62,
                          kI64Max - 1, kI64Max, -1, -2, -(int64_t(1) << 62), kI64Min + 1, kI64Min};

int64_t edge() { return kEdges[uniform(0, sizeof(kEdges) / sizeof(kEdges[0]) - 1)]; }

int64_t any_size() {
  switch (uniform(0, 3)) {
    case 0: return uniform(0, 16);
    case 1: return uniform(0, int64_t(1) << 24);
    case 2: return int64_t(1) << uniform(0, 62);
    default: return edge();
  }
}

[[noreturn]] void fail(const std::string& what, const sgemm_run_args& a) {
  std::fprintf(stderr,
               "segment_check_fuzz: FAILED after %lld iterations (seed %" PRIu64 "): %s\n"
               "  x_rows=%" PRId64 " d_in=%" PRId64 " d_out=%" PRId64 " num_weights=%" PRId64
               " batch_size=%" PRId64 " seg_lens=%s seg_indptr=%s weight_indices=%s\n",
               iterations, seed_used, what.c_str(), a.x_rows, a.d_in, a.d_out, a.num_weights,
               a.batch_size, a.seg_lens ? "set" : "null", a.seg_indptr ? "set" : "null",
               a.weight_indices ? "set" : "null");
  std::exit(1);
}

std::string num(i128 v) {
  if (v == 0) return "0";
  const bool neg = v < 0;
  unsigned __int128 u = neg ? -static_cast<unsigned __int128>(v) : static_cast<unsigned __int128>(v);
  std::string s;
  while (u != 0) { s.insert(s.begin(), char('0' + int(u % 10))); u /= 10; }
  return neg ? "-" + s : s;
}

// --- the host's size rules -------------------------------------------------------------------

// From the definitions, by division (no wide products): a * b <= limit for a, b >= 0.
bool product_within(uint64_t a, uint64_t b, uint64_t limit) { return a == 0 || b <= limit / a; }

SizeError reference_size_error(const sgemm_run_args& a) {
  const int64_t s[] = {a.x_rows, a.d_in, a.d_out, a.num_weights, a.batch_size};
  for (int64_t v : s) if (v < 0) return kSizeNegative;
  for (int64_t v : s) if (v > (int64_t(1) << 48)) return kSizeTooLarge;
  const uint64_t elements = uint64_t(1) << 60;  // 2^62 bytes of 4-byte elements
  if (!product_within(a.x_rows, a.d_in, elements)) return kSizeX;
  if (!product_within(a.x_rows, a.d_out, elements)) return kSizeY;
  if (a.num_weights != 0 && a.d_in != 0 && a.d_out != 0 &&
      !(product_within(a.num_weights, a.d_in, elements) &&
        product_within(uint64_t(a.num_weights) * uint64_t(a.d_in), a.d_out, elements))) {
    return kSizeWeights;
  }
  if (!product_within(a.batch_size, a.x_rows, uint64_t(1) << 62)) return kSizeSegmentSums;
  return kSizeOk;
}

long long size_counts[7];

void fuzz_sizes() {
  sgemm_run_args a{};
  a.dtype = SGEMM_BFLOAT16;
  a.x_rows = any_size();
  a.d_in = any_size();
  a.d_out = any_size();
  a.num_weights = any_size();
  a.batch_size = any_size();
  const SizeError got = size_error(a);
  const SizeError want = reference_size_error(a);
  if (got != want) {
    fail("size_error = " + std::to_string(got) + ", reference " + std::to_string(want), a);
  }
  size_counts[got]++;
  if (got != kSizeOk) return;
  // Accepted: every buffer and every derived count fits, with room to spare.
  const i128 max_bytes = i128(1) << 62;
  if (i128(a.x_rows) * a.d_in * kMaxElementBytes > max_bytes ||
      i128(a.x_rows) * a.d_out * kMaxElementBytes > max_bytes ||
      i128(a.num_weights) * a.d_in * a.d_out * kMaxElementBytes > max_bytes) {
    fail("accepted sizes whose buffers exceed 2^62 bytes", a);
  }
  IntWorkspaceLayout layout;
  if (!int_workspace_layout(a.batch_size, &layout)) fail("int_workspace_layout refused", a);
  const i128 arrays = i128(a.batch_size + 1) * 8;
  if (i128(layout.indptr) < i128(sizeof(ErrorRecord)) ||
      i128(layout.tile_offsets) < i128(layout.indptr) + arrays ||
      i128(layout.total) < i128(layout.tile_offsets) + arrays) {
    fail("int workspace layout overlaps or wrapped: total " + num(layout.total), a);
  }
  // Largest row tile count term: len + tile_rows - 1 with len <= x_rows, tile_rows <= 1024.
  if (i128(a.x_rows) + 1023 > kI64Max) fail("row tile arithmetic may overflow", a);
}

// --- the device's segment check --------------------------------------------------------------

struct Verdict {
  unsigned long long error;  // kNoError when accepted
  ErrorRecord record;
};

// The reference: the first error (lowest segment, then lowest kind) straight from the rules'
// definitions, with 128-bit sums.
Verdict reference_check(const SegmentArgs& a) {
  unsigned long long first = kNoError;
  auto report = [&](int64_t i, SegmentError kind) {
    first = std::min(first, (static_cast<unsigned long long>(i) << 4) | kind);
  };
  const int64_t b = a.batch_size;
  i128 covered = 0;
  if (a.seg_indptr != nullptr) {
    if (a.seg_indptr[0] != 0) report(0, kSegIndptrStart);
    for (int64_t i = 0; i < b; ++i) {
      if (a.seg_indptr[i] > a.seg_indptr[i + 1]) report(i, kSegIndptrDecreasing);
    }
    covered = i128(a.seg_indptr[b]) - a.seg_indptr[0];
  } else {
    for (int64_t i = 0; i < b; ++i) {
      if (a.seg_lens[i] < 0) report(i, kSegNegativeLength);
      else if (a.seg_lens[i] > a.x_rows) report(i, kSegLengthTooLarge);
      covered += a.seg_lens[i];
    }
  }
  if (a.weight_indices != nullptr) {
    for (int64_t i = 0; i < b; ++i) {
      if (a.weight_indices[i] < 0 || a.weight_indices[i] >= a.num_weights) {
        report(i, kSegWeightIndexRange);
      }
    }
  }
  if (first == kNoError && covered != a.x_rows) report(b, kSegRowsMismatch);
  Verdict v{first, ErrorRecord{first, first, 0, 0}};
  if (first == kNoError) return v;
  const int64_t i = static_cast<int64_t>(first >> 4);
  switch (static_cast<SegmentError>(first & 15)) {
    case kSegNegativeLength:
    case kSegLengthTooLarge: v.record.value = a.seg_lens[i]; v.record.other = a.x_rows; break;
    case kSegIndptrStart: v.record.value = a.seg_indptr[0]; break;
    case kSegIndptrDecreasing:
      v.record.value = a.seg_indptr[i + 1];
      v.record.other = a.seg_indptr[i];
      break;
    case kSegWeightIndexRange: v.record.value = a.weight_indices[i]; break;
    case kSegRowsMismatch: v.record.value = static_cast<long long>(covered); v.record.other = a.x_rows; break;
    default: break;
  }
  return v;
}

// check_segments (segments.cuh) with kThreads threads run one after another: pass 1 per thread,
// the block's exclusive scans (wrapping like the device's long long adds), the totals, pass 2.
Verdict library_check(const SegmentArgs& a, int threads, int64_t tile_rows,
                      std::vector<SegmentOut>* out, long long* total_tiles) {
  const int64_t b = a.batch_size;
  const int64_t chunk = (b + threads - 1) / threads;
  unsigned long long first_error = kNoError;
  auto report = [&](int64_t i, SegmentError kind) {
    first_error = std::min(first_error, error_code(i, kind));
  };
  const int64_t indptr0 = a.seg_indptr != nullptr ? a.seg_indptr[0] : 0;
  std::vector<RunSums> runs(threads);
  std::vector<int64_t> begin(threads), end(threads);
  for (int t = 0; t < threads; ++t) {
    begin[t] = std::min(b, t * chunk);
    end[t] = std::min(b, begin[t] + chunk);
    runs[t] = check_run(a, begin[t], end[t], tile_rows, report);
  }
  std::vector<long long> rows(threads), tiles(threads);
  uint64_t all_rows = 0, all_tiles = 0;
  for (int t = 0; t < threads; ++t) {
    rows[t] = static_cast<long long>(all_rows);
    tiles[t] = static_cast<long long>(all_tiles);
    all_rows += static_cast<uint64_t>(runs[t].rows);
    all_tiles += static_cast<uint64_t>(runs[t].tiles);
  }
  check_totals(a, indptr0, static_cast<long long>(all_rows), first_error, report);
  const bool ok = first_error == kNoError;
  auto emit = [&](const SegmentOut& s) { out->push_back(s); };
  for (int t = 0; t < threads; ++t) emit_run(a, begin[t], end[t], ok, rows[t], tiles[t], tile_rows, emit);
  Verdict v{first_error, ErrorRecord{kNoError, kNoError, 0, 0}};
  write_record(a, first_error, static_cast<long long>(all_rows), &v.record);
  *total_tiles = ok ? static_cast<long long>(all_tiles) : 0;
  return v;
}

// A valid partition of x_rows into b segments (b == 0 only covers x_rows == 0).
std::vector<int64_t> partition(int64_t x_rows, int64_t b) {
  std::vector<int64_t> cuts(b + 1, 0);
  for (int64_t i = 1; i < b; ++i) cuts[i] = chance(20) ? 0 : uniform(0, x_rows);
  std::sort(cuts.begin() + 1, cuts.end() - (b > 0 ? 1 : 0));
  if (b > 0) cuts[b] = x_rows;
  if (b > 1 && chance(10)) std::fill(cuts.begin() + 1, cuts.end() - 1, x_rows);  // empty tail
  return cuts;
}

// A value that breaks (or, by chance, keeps) an entry: extremes, off-by-one, wrap-arounds.
int64_t mutant(int64_t value, int64_t x_rows) {
  switch (uniform(0, 6)) {
    case 0: return edge();
    case 1: return value + (chance(50) ? 1 : -1);
    case 2: return x_rows + uniform(-1, 1);
    case 3: return -value;
    case 4: return kI64Min + uniform(0, 3);
    case 5: return kI64Max - uniform(0, 3);
    default: return static_cast<int64_t>(static_cast<uint64_t>(value) + (uint64_t(1) << 63));
  }
}

long long segment_counts[8];
long long accepted_nonempty;

void fuzz_segments() {
  int64_t b;
  switch (uniform(0, 3)) {
    case 0: b = uniform(0, 3); break;
    case 1: b = uniform(0, 140); break;
    case 2: b = uniform(120, 1100); break;
    default: b = uniform(1000, 3000); break;
  }
  int64_t x_rows;
  switch (uniform(0, 3)) {
    case 0: x_rows = uniform(0, 4 * b + 4); break;
    case 1: x_rows = uniform(0, int64_t(1) << 40); break;
    case 2: x_rows = kMaxExtent - uniform(0, 2); break;
    default: x_rows = b == 0 ? 0 : uniform(0, b); break;
  }
  sgemm_run_args host{};
  host.dtype = SGEMM_FLOAT16;
  host.x_rows = x_rows;
  host.d_in = host.d_out = 1;
  host.batch_size = b;
  const bool with_indices = chance(50);
  host.num_weights = chance(10)   ? uniform(0, kMaxExtent)
                     : chance(10) ? uniform(0, b)  // may leave a segment without a weight
                                  : uniform(with_indices ? 0 : b, b + 3);

  std::vector<int64_t> indptr = partition(x_rows, b);
  std::vector<int64_t> lens(std::max<int64_t>(b, 1));
  for (int64_t i = 0; i < b; ++i) lens[i] = indptr[i + 1] - indptr[i];
  std::vector<int64_t> weights(std::max<int64_t>(b, 1));
  for (int64_t i = 0; i < b; ++i) {
    weights[i] = host.num_weights > 0 ? uniform(0, host.num_weights - 1) : 0;
  }
  const bool use_indptr = chance(50);
  const int mutations = chance(30) ? 0 : int(uniform(1, 3));
  for (int m = 0; m < mutations; ++m) {
    const int64_t what = uniform(0, 3);
    if (what == 0 && use_indptr) {
      if (chance(25) && b >= 2) {  // a descent that a wrapped subtraction would hide
        indptr[uniform(1, b - 1)] = kI64Min + uniform(0, 2) * (int64_t(1) << 61);
      } else {
        const int64_t i = uniform(0, b);
        indptr[i] = mutant(indptr[i], x_rows);
      }
    } else if (what == 0 && b > 0) {
      const int64_t i = uniform(0, b - 1);
      lens[i] = mutant(lens[i], x_rows);
    } else if (what == 1 && b > 0) {  // several long segments, whose sum could wrap
      for (int64_t k = 0; k < b; ++k) if (chance(50)) lens[k] = x_rows;
    } else if (what == 2 && with_indices && b > 0) {
      const int64_t i = uniform(0, b - 1);
      weights[i] = chance(50) ? mutant(weights[i], host.num_weights)
                              : host.num_weights - uniform(0, 1);
    } else if (what == 3 && b > 0) {  // garbage in seg_lens: ignored when seg_indptr is given
      lens[uniform(0, b - 1)] = edge();
    }
  }
  host.seg_indptr = use_indptr ? indptr.data() : nullptr;
  host.seg_lens = (!use_indptr || chance(30)) ? lens.data() : nullptr;
  host.weight_indices = with_indices ? weights.data() : nullptr;
  // The host rules run first; the device check only ever sees what they accept.
  if (size_error(host) != kSizeOk || !implicit_weights_fit(host)) {
    segment_counts[7]++;
    return;
  }
  const SegmentArgs a = segment_args(host);
  const int64_t tile_rows = std::array<int64_t, 3>{1, 64, 128}[uniform(0, 2)];
  const int threads = b <= 128 ? 128 : 1024;  // launch_check_segments' block size
  std::vector<SegmentOut> out;
  long long total_tiles = 0;
  const Verdict got = library_check(a, threads, tile_rows, &out, &total_tiles);
  const Verdict want = reference_check(a);
  auto code = [](unsigned long long e) {
    return e == kNoError ? std::string("none")
                         : "segment " + std::to_string(e >> 4) + " kind " + std::to_string(e & 15);
  };
  if (got.error != want.error) {
    fail("check reports " + code(got.error) + ", reference " + code(want.error), host);
  }
  if (got.record.current != want.record.current || got.record.sticky != want.record.sticky ||
      got.record.value != want.record.value || got.record.other != want.record.other) {
    fail("error record (" + num(got.record.value) + ", " + num(got.record.other) +
             ") differs from the reference (" + num(want.record.value) + ", " +
             num(want.record.other) + ") for " + code(got.error), host);
  }
  segment_counts[got.error == kNoError ? 0 : (got.error & 15)]++;
  if (static_cast<int64_t>(out.size()) != b) fail("emitted " + std::to_string(out.size()) + " segments", host);
  std::vector<char> seen(b, 0);
  i128 row = 0, tile = 0;
  const bool ok = got.error == kNoError;
  for (const SegmentOut& s : out) {
    if (s.index < 0 || s.index >= b || seen[s.index]) fail("segment emitted twice or out of range", host);
    seen[s.index] = 1;
  }
  std::sort(out.begin(), out.end(), [](const SegmentOut& l, const SegmentOut& r) { return l.index < r.index; });
  for (const SegmentOut& s : out) {
    if (!ok) {
      if (s.rows != 0 || s.first_row != 0 || s.weight != 0 || s.tiles != 0) {
        fail("rejected call emits work for segment " + std::to_string(s.index), host);
      }
      continue;
    }
    const i128 expect_first = use_indptr ? i128(indptr[s.index]) : row;
    const i128 expect_rows = use_indptr ? i128(indptr[s.index + 1]) - indptr[s.index] : i128(lens[s.index]);
    if (s.first_row != expect_first || s.rows != expect_rows) {
      fail("segment " + std::to_string(s.index) + " emitted rows [" + num(s.first_row) + ", +" +
               num(s.rows) + ") but the input says [" + num(expect_first) + ", +" +
               num(expect_rows) + ")", host);
    }
    // Within x and y: rows [first_row, first_row + rows) of x_rows; within the weights.
    if (s.first_row < 0 || s.rows < 0 || i128(s.first_row) + s.rows > x_rows) {
      fail("segment " + std::to_string(s.index) + " addresses rows outside x", host);
    }
    const int64_t expect_weight = with_indices ? weights[s.index] : s.index;
    if (s.weight != expect_weight || s.weight < 0 || s.weight >= host.num_weights) {
      fail("segment " + std::to_string(s.index) + " addresses weight " + num(s.weight) +
               " of " + num(host.num_weights), host);
    }
    const i128 t = (i128(s.rows) + tile_rows - 1) / tile_rows;
    if (s.first_tile != tile || s.tiles != t) fail("row tiles of segment " + std::to_string(s.index), host);
    row += s.rows;
    tile += t;
  }
  if (ok) {
    if (row != x_rows) fail("accepted segments cover " + num(row) + " rows of " + num(x_rows), host);
    if (total_tiles != tile) fail("total row tiles", host);
    if (x_rows > 0) accepted_nonempty++;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 20.0;
  seed_used = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : std::random_device{}();
  rng.seed(seed_used);
  std::printf("segment_check_fuzz: seed %" PRIu64 ", %.0f s (rerun: segment_check_fuzz %.0f %" PRIu64 ")\n",
              seed_used, seconds, seconds, seed_used);
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  const auto limit = std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() - start < limit) {
    for (int k = 0; k < 64; ++k, ++iterations) {
      if (iterations % 4 == 0) fuzz_sizes();
      else fuzz_segments();
    }
  }
  std::printf("segment_check_fuzz: %lld iterations, no disagreement.\n  sizes: ok %lld, negative %lld, "
              "too large %lld, x %lld, y %lld, weights %lld, segment sums %lld\n  segments: accepted %lld "
              "(%lld with rows), negative %lld, too long %lld, indptr start %lld, indptr descent %lld, "
              "weight index %lld, rows mismatch %lld; rejected by the host rules first %lld\n",
              iterations, size_counts[0], size_counts[1], size_counts[2], size_counts[3],
              size_counts[4], size_counts[5], size_counts[6], segment_counts[0], accepted_nonempty,
              segment_counts[1], segment_counts[2], segment_counts[3], segment_counts[4],
              segment_counts[5], segment_counts[6], segment_counts[7]);
  // Every outcome must have been reached, or the run proved less than it claims.
  for (long long c : size_counts) {
    if (c == 0) { std::fprintf(stderr, "segment_check_fuzz: a size outcome was never reached\n"); return 1; }
  }
  for (int k = 0; k < 7; ++k) {
    if (segment_counts[k] == 0) { std::fprintf(stderr, "segment_check_fuzz: segment outcome %d never reached\n", k); return 1; }
  }
  if (accepted_nonempty == 0) { std::fprintf(stderr, "segment_check_fuzz: no accepted call with rows\n"); return 1; }
  return 0;
}
