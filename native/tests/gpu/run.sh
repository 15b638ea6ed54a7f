#!/usr/bin/env bash
# The GPU machine's one command, from the repo root:
#
#   bash native/tests/gpu/run.sh            # tests, then the benchmark
#
# - libsegmentgemm.so: $SGEMM_LIB, else native/target/classes/com/sparksegmentgemm/nativelib/
#   linux/amd64/libsegmentgemm.so (git-ignored: carry it, or the build folder, with the call).
# - If .carry/flashinfer exists (made by ../shared/gpu/flashinfer-pack), FlashInfer is installed
#   into /tmp/site as that script's header says, for the benchmark only.
# - Results go to $OUT (else /tmp/sgemm-gpu-out): pytest.log, pytest.xml (JUnit),
#   segment_gemm_random_configs.tsv, bench.log, bench.csv, bench.md.
# - Exits non-zero if a test fails (or, tests passing, if the benchmark finds a wrong result
#   of ours or crashes). Budget: ~9 minutes on an H100 (tests <= 5.5 min, the rest to the
#   benchmark, FlashInfer's ~80 s JIT build included). Knobs: SGEMM_TEST_TIMEOUT_S,
#   SGEMM_TOTAL_BUDGET_S, SGEMM_BENCH_ARGS (extra arguments, e.g. "--skip flashinfer --reps 50"),
#   SGEMM_SKIP_BENCH=1, SGEMM_SKIP_TESTS=1, PYTEST_ARGS (e.g. "-k doc_example").
set -uo pipefail
start=$(date +%s)
top=$(git rev-parse --show-toplevel 2>/dev/null || pwd)
cd "$top"
here=native/tests/gpu
out=${OUT:-/tmp/sgemm-gpu-out}
mkdir -p "$out"
py=${PYTHON:-python3}
total_budget=${SGEMM_TOTAL_BUDGET_S:-530}
test_timeout=${SGEMM_TEST_TIMEOUT_S:-330}

lib=${SGEMM_LIB:-$top/native/target/classes/com/sparksegmentgemm/nativelib/linux/amd64/libsegmentgemm.so}
if [ ! -f "$lib" ]; then
  echo "run.sh: libsegmentgemm.so not found at $lib (set SGEMM_LIB, or carry the built library)" >&2
  exit 3
fi
export SGEMM_LIB=$lib PYTHONDONTWRITEBYTECODE=1
echo "== $(date -u +%FT%TZ) lib $SGEMM_LIB ($(stat -c %s "$SGEMM_LIB") bytes)"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader 2>&1 | head -4
"$py" -c "import torch, sys; sys.path.insert(0, '$here'); import sgemm; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| libsegmentgemm', sgemm.version(), '| devices', sgemm.device_count())" 2>&1

# --- FlashInfer (optional, benchmark only) ---
fi_env=()
if [ -d .carry/flashinfer ] && [ "${SGEMM_SKIP_BENCH:-0}" != 1 ]; then
  if [ ! -d /tmp/site/flashinfer ]; then
    echo "== installing the carried FlashInfer into /tmp/site"
    mkdir -p /tmp/site && tar -xJf .carry/flashinfer/flashinfer.tar.xz -C /tmp/site \
      && "$py" -m pip install -q --no-index --no-deps --target /tmp/site .carry/flashinfer/*.whl \
      || echo "run.sh: FlashInfer install failed; the benchmark records it as unavailable" >&2
  fi
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' ')
  case "$cap" in 9.*|1[0-9].*) arch="${cap}a" ;; "") arch="9.0a" ;; *) arch="$cap" ;; esac
  cuda_home=/usr/local/cuda; [ -d "$cuda_home" ] || cuda_home=$(dirname "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")
  fi_env=(env "PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}" "PATH=/tmp/site/bin:$PATH"
          "CUDA_HOME=$cuda_home" "FLASHINFER_CUDA_ARCH_LIST=$arch")
  echo "== FlashInfer for the benchmark: ${fi_env[*]:1}"
fi

# --- tests ---
test_rc=0
if [ "${SGEMM_SKIP_TESTS:-0}" != 1 ]; then
  echo "== pytest (timeout ${test_timeout}s)"
  # shellcheck disable=SC2086
  timeout -s INT -k 30 "$test_timeout" "$py" -m pytest -q -rfEs -p no:cacheprovider \
    --junitxml="$out/pytest.xml" --durations=15 ${PYTEST_ARGS:-} "$here" 2>&1 | tee "$out/pytest.log"
  test_rc=${PIPESTATUS[0]}
  echo "== pytest exit code $test_rc ($(( $(date +%s) - start )) s so far)"
fi

# --- benchmark ---
bench_rc=0
if [ "${SGEMM_SKIP_BENCH:-0}" != 1 ]; then
  left=$(( total_budget - ($(date +%s) - start) ))
  [ "$left" -lt 60 ] && left=60
  echo "== benchmark (timeout ${left}s)"
  # shellcheck disable=SC2086
  timeout -s TERM -k 20 "$left" "${fi_env[@]}" "$py" "$here/bench_kernels.py" \
    --csv "$out/bench.csv" --md "$out/bench.md" ${SGEMM_BENCH_ARGS:-} 2>&1 | tee "$out/bench.log"
  bench_rc=${PIPESTATUS[0]}
  echo "== benchmark exit code $bench_rc"
fi

echo "== done in $(( $(date +%s) - start )) s; results in $out: $(ls "$out" | tr '\n' ' ')"
if [ "$test_rc" -ne 0 ]; then exit "$test_rc"; fi
exit "$bench_rc"
