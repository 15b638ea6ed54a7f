#!/usr/bin/env bash
# Installs (once) what the native build needs and prints two lines for `eval`:
#   CUDA_TOOLKIT_ROOT=<a CUDA 13.0 toolkit tree: bin/ include/ lib/ lib64/ nvvm/>
#   CUTLASS_INCLUDE_DIRS=<cutlass include>;<cutlass tools/util include>
#
# A system CUDA 13.x (nvcc on PATH, $CUDA_HOME or /usr/local/cuda) is used when present;
# otherwise CUDA 13.0 comes from NVIDIA's pip wheels, pinned to 13.0.x because the GPU
# machines run driver 580 (CUDA 13.0): a newer nvcc would emit PTX that driver cannot JIT.
# CUTLASS 4.2 always comes from the nvidia-cutlass wheel (headers only).
# Everything lands in <repo>/.toolchain (git-ignored); re-runs reuse it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=${SEGMENTGEMM_TOOLCHAIN_DIR:-$root/.toolchain}
mkdir -p "$dest"

CUDA_WHEELS=(nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
             nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85)
CUTLASS_WHEEL=nvidia-cutlass==4.2.0.0
# Only to list the architectures inside the built library (13.2 is the oldest wheel; it reads
# 13.0 binaries). Not used to compile.
CUOBJDUMP_WHEEL=nvidia-cuda-cuobjdump==13.2.51

pip_install() { # <target> <wheels...>
  local target=$1; shift
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
    --root-user-action=ignore --target "$target.partial" "$@" >&2
  rm -rf "$target" && mv "$target.partial" "$target"
}

system_cuda() {
  local c
  for c in "$(command -v nvcc 2>/dev/null || true)" "${CUDA_HOME:-}/bin/nvcc" /usr/local/cuda/bin/nvcc; do
    [ -x "$c" ] || continue
    if "$c" --version | grep -q 'release 13\.'; then (cd "$(dirname "$c")/.." && pwd); return 0; fi
  done
  return 1
}

if cuda=$(system_cuda); then
  echo "using system CUDA toolkit at $cuda" >&2
else
  cuda=$dest/cuda-13.0/nvidia/cu13
  if [ ! -x "$cuda/bin/nvcc" ]; then
    echo "installing CUDA 13.0 from pip wheels into $dest/cuda-13.0" >&2
    pip_install "$dest/cuda-13.0" "${CUDA_WHEELS[@]}"
  fi
  # nvcc's own profile and CMake look for lib64/; CMake's FindCUDAToolkit for libcudart.so.
  [ -e "$cuda/lib64" ] || ln -s lib "$cuda/lib64"
  [ -e "$cuda/lib/libcudart.so" ] || ln -s libcudart.so.13 "$cuda/lib/libcudart.so"
fi

cutlass=$dest/cutlass-4.2/cutlass_library/source
if [ ! -f "$cutlass/include/cutlass/cutlass.h" ]; then
  echo "installing CUTLASS 4.2 headers from the $CUTLASS_WHEEL wheel into $dest/cutlass-4.2" >&2
  pip_install "$dest/cutlass-4.2" "$CUTLASS_WHEEL"
fi

cuobjdump=$(command -v cuobjdump 2>/dev/null || true)
[ -x "$cuda/bin/cuobjdump" ] && cuobjdump=$cuda/bin/cuobjdump
if [ -z "$cuobjdump" ]; then
  cuobjdump=$dest/cuobjdump/nvidia/cu13/bin/cuobjdump
  if [ ! -x "$cuobjdump" ]; then
    echo "installing cuobjdump from the $CUOBJDUMP_WHEEL wheel into $dest/cuobjdump" >&2
    pip_install "$dest/cuobjdump" "$CUOBJDUMP_WHEEL"
  fi
fi

echo "CUDA_TOOLKIT_ROOT=$cuda"
echo "CUOBJDUMP=$cuobjdump"
echo "CUTLASS_INCLUDE_DIRS='$cutlass/include;$cutlass/tools/util/include'"
