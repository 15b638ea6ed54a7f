#!/usr/bin/env bash
# The Spark integration's GPU proof and end-to-end benchmark, on a machine with a GPU, Python
# (numpy, pyarrow, safetensors) and no Java or Spark install: the JVM, Spark's jars, the RAPIDS
# Accelerator jar and ours come from dev/gpu-stage. From the repository root:
#   spark-plugin/bench/e2e.sh STAGE WORK OUT [proof] [bench]
# STAGE: the unpacked stage (target/gpu-test-libs, .carry/jre); WORK: scratch (~20 GB for the
# benchmark); OUT: logs. Sizes: E2E_ROWS (2000000), E2E_DIM (1024), E2E_ADAPTERS (100),
# E2E_SLICE (100000 rows for the CPU fallback), E2E_TINY (200 rows for the SQL baseline),
# E2E_PROOF_ROWS (200000), E2E_PROOF_DIM (256);
# E2E_GPU=off runs everything without the RAPIDS Accelerator (a dry run on a CPU machine).
set -uo pipefail
stage=$(cd "${1:?stage folder}" && pwd); work=${2:?work folder}; out=${3:?output folder}; shift 3
steps=${*:-proof bench}
here=$(cd "$(dirname "$0")" && pwd)
opens=$here/../../dev/spark-java17.args   # Spark's Java 17 module opens, a java argument file
libs=$stage/target/gpu-test-libs
java=${JAVA:-$stage/.carry/jre/bin/java}
cores=$(nproc)
gpu=${E2E_GPU:-on}
mkdir -p "$work" "$out"
rapids=$(ls "$libs"/rapids/rapids-4-spark_*.jar 2>/dev/null | head -1)
if [ "$gpu" = on ] && [ -z "$rapids" ]; then
  echo "no RAPIDS Accelerator jar under $libs/rapids (E2E_GPU=off runs without it)" >&2
  exit 2
fi
failed=0   # any step that fails makes the script fail, after the others ran
ours=$(ls "$libs"/app/segment-gemm-spark-plugin-*-all.jar)
tests=$(ls "$libs"/app/segment-gemm-spark-plugin-*-tests.jar)

# netlib's vectorised Java BLAS (the CPU path) needs the vector module, where the runtime has it.
vector=()
"$java" --list-modules 2>/dev/null | grep -q '^jdk.incubator.vector' && vector=(--add-modules=jdk.incubator.vector)

# Spark's launcher, as spark-submit runs it (RAPIDS' shim loader needs SparkSubmit's class
# loader); the JVM is the driver and, in local mode, the executor.
submit() {
  local log=$1; shift
  local jars=$ours,$tests
  [ "$gpu" = on ] && jars=$rapids,$ours,$tests
  local gpuconf=()
  [ "$gpu" = on ] && gpuconf=(--conf spark.plugins=com.nvidia.spark.SQLPlugin,com.sparksegmentgemm.spark.SegmentGemmPlugin
    --conf spark.rapids.sql.enabled=true --conf spark.rapids.sql.explain=NOT_ON_GPU
    --conf spark.rapids.sql.concurrentGpuTasks=2 --conf spark.rapids.memory.pinnedPool.size=8g)
  local start=$(date +%s%N)
  "$java" -Xmx${E2E_HEAP:-64g} -Dai.rapids.refcount.debug=${E2E_REFCOUNT:-false} "${vector[@]}" \
    @"$opens" \
    -cp "$libs/spark-jars/*" org.apache.spark.deploy.SparkSubmit --master "local[$cores]" \
    --conf spark.ui.enabled=false --conf spark.local.dir="$work/spark-local" \
    --conf spark.sql.shuffle.partitions=$((2 * cores)) "${gpuconf[@]}" --jars "$jars" "$@" \
    >"$log" 2>&1
  local rc=$?
  echo "$(basename "$log"): rc=$rc, $(( ($(date +%s%N) - start) / 1000000 )) ms"
  grep -E '^(segment_gemm|lora_apply|sql_explode): |^  executor |OK$|FAILED|GpuProject|gpu_segment_gemm|NOT_ON_GPU|cannot run on GPU|!Expression|Exception' "$log" | head -40
  [ $rc = 0 ] || failed=1
  return $rc
}
job() { local log=$1; shift; submit "$log" --class com.sparksegmentgemm.spark.SegmentGemmJob "$ours" --gpu "$gpu" "$@"; }

if [[ " $steps " == *" proof "* ]]; then
  echo "== proof: the UDF in RAPIDS' physical plan, the same rows as the CPU, our metrics"
  prows=${E2E_PROOF_ROWS:-200000}; pdim=${E2E_PROOF_DIM:-256}
  python3 "$here/gen_e2e.py" --out "$work/proof" --rows "$prows" --d-in "$pdim" --d-out "$pdim" \
    --adapters 32 --files 4 | tee "$out/proof-gen.log"
  job "$out/proof-gpu.log" --input "$work/proof/input" --adapters "$work/proof/adapters" \
    --output "$work/proof/out-gpu" --mode overwrite --explain
  E2E_GPU_SAVED=$gpu; gpu=off
  job "$out/proof-cpu.log" --input "$work/proof/input" --adapters "$work/proof/adapters" \
    --output "$work/proof/out-cpu" --mode overwrite
  gpu=$E2E_GPU_SAVED
  python3 "$here/compare_outputs.py" "$work/proof/out-gpu" "$work/proof/out-cpu" --tol 1e-2 \
    | tee "$out/proof-compare.log" || failed=1
  sed -n '/^physical plan:/,/^$/p' "$out/proof-gpu.log" | head -30 > "$out/proof-plan.txt"
  echo "== the README's demo (dev/run-demo's main) with the GPU"
  submit "$out/demo.log" --class com.sparksegmentgemm.spark.SegmentGemmDemo "$ours" \
    --gpu "$gpu" --dir "$work/demo" --rows "$prows"
fi

if [[ " $steps " == *" bench "* ]]; then
  rows=${E2E_ROWS:-2000000}; dim=${E2E_DIM:-1024}
  echo "== benchmark data: $rows rows x $dim, ${E2E_ADAPTERS:-100} adapters"
  python3 "$here/gen_e2e.py" --out "$work/bench" --rows "$rows" \
    --d-in "$dim" --d-out "$dim" --adapters "${E2E_ADAPTERS:-100}" --files "$cores" \
    --slice-rows "${E2E_SLICE:-100000}" --tiny-rows "${E2E_TINY:-200}" 2>&1 | tee "$out/bench-gen.log"
  echo "gen: $SECONDS s since the script started" | tee -a "$out/bench-gen.log"
  sync
  # Larger input splits give the GPU fewer, larger batches (the RAPIDS Accelerator's own advice).
  job "$out/bench-gpu.log" --input "$work/bench/input" --adapters "$work/bench/adapters" \
    --output "$work/bench/out-gpu" --mode overwrite --progress-seconds 10 \
    --conf spark.sql.files.maxPartitionBytes=${E2E_GPU_SPLIT:-512m}
  E2E_GPU_SAVED=$gpu; gpu=off
  job "$out/bench-cpu.log" --input "$work/bench/slice" --adapters "$work/bench/adapters" \
    --output "$work/bench/out-cpu" --mode overwrite --progress-seconds 10
  gpu=$E2E_GPU_SAVED
  submit "$out/bench-sql.log" --class com.sparksegmentgemm.spark.bench.SqlExplodeBaseline "$tests" \
    "$work/bench/tiny" "$work/bench/weights_rows" "$work/bench/out-sql"
fi
exit $failed
