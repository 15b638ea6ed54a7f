// The one dispatch table of the tensor-core kernels: dtype x weight layout x arch x tile class.
// Its entries come from build/generated/kernel_table.inc, written by CMake next to the
// one-configuration translation units it generates, so the table lists exactly what was built.
#include <cutlass/numeric_types.h>

#include "grouped.hpp"
#include "plan.hpp"

namespace sgemm {
namespace {

constexpr int kDtypes = 3;  // sgemm_dtype codes; FLOAT32 never has a tensor-core entry

struct Table {
  GroupedLaunch sm90[kDtypes][2][kTileClassCount] = {};
  GroupedLaunch sm80[kDtypes][2] = {};
  GroupedLaunch sm90_fp8[2][2][kDtypes][kTileClassCount] = {};  // a x b x out x tile

  Table() {
#define SGEMM_SM90_ENTRY(DTYPE, ELEMENT, COLUMN_MAJOR, TILE) \
  sm90[DTYPE][COLUMN_MAJOR][static_cast<int>(TileClass::TILE)] = &sm90::run<ELEMENT, COLUMN_MAJOR, TileClass::TILE>;
#define SGEMM_SM80_ENTRY(DTYPE, ELEMENT, COLUMN_MAJOR) \
  sm80[DTYPE][COLUMN_MAJOR] = &sm80::run<ELEMENT, COLUMN_MAJOR>;
#define SGEMM_SM90_FP8_ENTRY(A, ELEMENT_A, B, ELEMENT_B, OUT, ELEMENT_OUT, TILE) \
  sm90_fp8[A][B][OUT][static_cast<int>(TileClass::TILE)] = \
      &sm90::run_fp8<ELEMENT_A, ELEMENT_B, ELEMENT_OUT, TileClass::TILE>;
#include "kernel_table.inc"
#undef SGEMM_SM90_ENTRY
#undef SGEMM_SM80_ENTRY
#undef SGEMM_SM90_FP8_ENTRY
  }
};

const Table& table() {
  static const Table t;
  return t;
}

bool in_range(sgemm_dtype dtype) { return dtype >= 0 && dtype < kDtypes; }

}  // namespace

GroupedLaunch sm90_kernel(sgemm_dtype dtype, bool weight_column_major, TileClass tile) {
  return in_range(dtype) ? table().sm90[dtype][weight_column_major][static_cast<int>(tile)] : nullptr;
}

GroupedLaunch sm90_fp8_kernel(Fp8Type a, Fp8Type b, sgemm_dtype out, TileClass tile) {
  if (a < 0 || a > 1 || b < 0 || b > 1 || (out != SGEMM_FLOAT16 && out != SGEMM_BFLOAT16)) return nullptr;
  return table().sm90_fp8[a][b][out][static_cast<int>(tile)];
}

GroupedLaunch find_sm90_fp8_kernel(Fp8Type a, Fp8Type b, sgemm_dtype out, TileClass* tile) {
  if (GroupedLaunch k = sm90_fp8_kernel(a, b, out, *tile)) return k;
  const TileClass other = *tile == TileClass::kNarrow ? TileClass::kLarge : TileClass::kNarrow;
  GroupedLaunch k = sm90_fp8_kernel(a, b, out, other);
  if (k != nullptr) *tile = other;
  return k;
}

GroupedLaunch sm80_kernel(sgemm_dtype dtype, bool weight_column_major) {
  return in_range(dtype) ? table().sm80[dtype][weight_column_major] : nullptr;
}

const char* fp8_tile_class_name(TileClass tile) {
  return tile == TileClass::kNarrow ? "64x32x128 ping-pong" : "128x256x128 cooperative";
}

void fp8_tile_extent(TileClass tile, int64_t* rows, int64_t* cols) {
  *rows = tile == TileClass::kNarrow ? 64 : 128;
  *cols = tile == TileClass::kNarrow ? 32 : 256;
}

const char* tile_class_name(sgemm_backend backend, TileClass tile) {
  if (backend == SGEMM_BACKEND_SM80) return "128x128x32 4-stage";
  switch (tile) {
    case TileClass::kLarge: return "128x256x64 cooperative";
    case TileClass::kShortM: return "64x128x64 ping-pong";
    case TileClass::kNarrow: return "64x32x64 ping-pong";
  }
  return "?";
}

void tile_extent(sgemm_backend backend, TileClass tile, int64_t* rows, int64_t* cols) {
  if (backend == SGEMM_BACKEND_SM80) {
    *rows = 128;
    *cols = 128;
    return;
  }
  switch (tile) {
    case TileClass::kLarge: *rows = 128; *cols = 256; return;
    case TileClass::kShortM: *rows = 64; *cols = 128; return;
    case TileClass::kNarrow: *rows = 64; *cols = 32; return;
  }
}

}  // namespace sgemm
