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

  Table() {
#define SGEMM_SM90_ENTRY(DTYPE, ELEMENT, COLUMN_MAJOR, TILE) \
  sm90[DTYPE][COLUMN_MAJOR][static_cast<int>(TileClass::TILE)] = &sm90::run<ELEMENT, COLUMN_MAJOR, TileClass::TILE>;
#define SGEMM_SM80_ENTRY(DTYPE, ELEMENT, COLUMN_MAJOR) \
  sm80[DTYPE][COLUMN_MAJOR] = &sm80::run<ELEMENT, COLUMN_MAJOR>;
#include "kernel_table.inc"
#undef SGEMM_SM90_ENTRY
#undef SGEMM_SM80_ENTRY
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

GroupedLaunch sm80_kernel(sgemm_dtype dtype, bool weight_column_major) {
  return in_range(dtype) ? table().sm80[dtype][weight_column_major] : nullptr;
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
