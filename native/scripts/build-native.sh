#!/usr/bin/env bash
# Builds libsegmentgemm.so: installs the toolchain if needed, configures and builds with CMake.
#   native/scripts/build-native.sh <build-dir> <output-dir>
# The library is copied to <output-dir>/libsegmentgemm.so (Maven puts it inside the jar).
# SEGMENTGEMM_KERNELS (e.g. "sm90_bf16_row_large;sm80_bf16_row") builds a subset, for quick local
# iterations; the default builds every tensor-core kernel.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?build dir}; out=${2:?output dir}
eval "$("$here/scripts/install-toolchain.sh")"
jobs=${SEGMENTGEMM_BUILD_JOBS:-$(nproc)}
start=$(date +%s)
mkdir -p "$build"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_COMPILER="$CUDA_TOOLKIT_ROOT/bin/nvcc" -DCUDAToolkit_ROOT="$CUDA_TOOLKIT_ROOT" \
  -DCUTLASS_INCLUDE_DIRS="$CUTLASS_INCLUDE_DIRS" -DSEGMENTGEMM_KERNELS="${SEGMENTGEMM_KERNELS:-all}" \
  >"$build.configure.log" 2>&1 \
  || { cat "$build.configure.log" >&2; exit 1; }
cmake --build "$build" --parallel "$jobs"
# The jar must carry SASS for sm_80 and sm_90a and PTX for newer GPUs: check, and show it.
elfs=$("$CUOBJDUMP" --list-elf "$build/libsegmentgemm.so")
ptx=$("$CUOBJDUMP" --list-ptx "$build/libsegmentgemm.so")
for arch in sm_80 sm_90a; do
  grep -q "\.$arch\." <<<"$elfs" || { echo "no $arch SASS in libsegmentgemm.so:" >&2; echo "$elfs" >&2; exit 1; }
done
grep -q 'sm_90\.' <<<"$ptx" || { echo "no compute_90 PTX in libsegmentgemm.so" >&2; exit 1; }
echo "libsegmentgemm.so carries SASS for: $(grep -o 'sm_[0-9a-z]*' <<<"$elfs" | sort -u | tr '\n' ' ')and PTX for: $(grep -o 'sm_[0-9a-z]*' <<<"$ptx" | sort -u | tr '\n' ' ')"
mkdir -p "$out"
cp "$build/libsegmentgemm.so" "$out/libsegmentgemm.so"
echo "native build took $(( $(date +%s) - start )) s ($jobs jobs)"
