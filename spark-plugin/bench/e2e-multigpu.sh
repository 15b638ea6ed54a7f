#!/usr/bin/env bash
# The multi-GPU run (one job across the GPUs of one host): a Spark standalone master and one
# worker per GPU, each worker owning its GPU (dev/spark-cluster --gpus-per-worker 1) and each
# executor asking for one (spark.executor.resource.gpu.amount=1), the RAPIDS Accelerator and our
# plugin; the same job on one worker with one GPU first, then on all of them, outputs compared.
# From the repository root on the GPU machine, after `e2e.sh ... bench` wrote the data:
#   spark-plugin/bench/e2e-multigpu.sh STAGE WORK OUT [GPUS]
# STAGE, WORK, OUT as for e2e.sh; GPUS defaults to the GPUs nvidia-smi lists. Env: E2E_GPU=off
# (no RAPIDS: a dry run on a CPU machine, GPU addresses are still assigned), E2E_WORKER_MEM (48g),
# E2E_EXECUTOR_MEM (32g), E2E_CORES (all cores: the 1-GPU run gets them all, the N-GPU run
# E2E_CORES / N per worker, so that only the GPUs differ).
set -uo pipefail
stage=$(cd "${1:?stage folder}" && pwd); work=${2:?work folder}; out=${3:?output folder}
gpus=${4:-$(nvidia-smi -L 2>/dev/null | wc -l)}
[ "$gpus" -ge 1 ] || { echo "no GPU listed; give GPUS" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
libs=$stage/target/gpu-test-libs
gpu=${E2E_GPU:-on}
export JAVA_HOME=${JAVA_HOME_OVERRIDE:-$stage/.carry/jre} SPARK_LOCAL_IP=127.0.0.1
# A SPARK_HOME from the staged launcher scripts and Spark's jars (the GPU machine has no Spark).
export SPARK_HOME=$work/spark-home
mkdir -p "$SPARK_HOME" "$out" "$work"
work=$(cd "$work" && pwd)
cp -r "$libs/spark-home/bin" "$libs/spark-home/sbin" "$SPARK_HOME/"
ln -sfn "$libs/spark-jars" "$SPARK_HOME/jars"
rapids=$(ls "$libs"/rapids/rapids-4-spark_*.jar 2>/dev/null | head -1)
ours=$(ls "$libs"/app/segment-gemm-spark-plugin-*-all.jar)
total_cores=${E2E_CORES:-$(nproc)}

# run NAME WORKERS: a cluster of WORKERS one-GPU workers sharing the cores, the job on it (it
# waits for every executor: spark.cores.max makes Spark's registration wait count), the
# cluster stopped.
run() {
  local name=$1 workers=$2 cluster=$work/cluster-$1
  local cores=$((total_cores / workers))
  local url
  url=$("$root/dev/spark-cluster" start --workers "$workers" --cores-per-worker "$cores" \
    --memory-per-worker "${E2E_WORKER_MEM:-48g}" --gpus-per-worker 1 --dir "$cluster" | tail -1) \
    || { echo "$name: the cluster did not start" >&2; return 1; }
  local gpuconf=(--conf spark.plugins=com.sparksegmentgemm.spark.SegmentGemmPlugin)
  local jars=$ours
  if [ "$gpu" = on ]; then
    jars=$rapids,$ours
    gpuconf=(--conf spark.plugins=com.nvidia.spark.SQLPlugin,com.sparksegmentgemm.spark.SegmentGemmPlugin
      --conf spark.rapids.sql.enabled=true --conf spark.rapids.sql.concurrentGpuTasks=2
      --conf spark.rapids.memory.pinnedPool.size=4g --conf spark.rapids.sql.explain=NOT_ON_GPU)
  fi
  local start=$(date +%s%N)
  "$SPARK_HOME/bin/spark-submit" --master "$url" --driver-memory 8g --jars "$jars" \
    --conf spark.ui.enabled=false --conf spark.executor.cores="$cores" \
    --conf spark.executor.memory="${E2E_EXECUTOR_MEM:-32g}" \
    --conf spark.executor.resource.gpu.amount=1 \
    --conf spark.task.resource.gpu.amount="$(python3 -c "print(1/$cores)")" \
    --conf spark.cores.max=$((cores * workers)) \
    --conf spark.scheduler.minRegisteredResourcesRatio=1.0 \
    --conf spark.scheduler.maxRegisteredResourcesWaitingTime=120s \
    --conf spark.sql.files.maxPartitionBytes=512m "${gpuconf[@]}" \
    --class com.sparksegmentgemm.spark.SegmentGemmJob "$ours" \
    --input "$work/bench/input" --adapters "$work/bench/adapters" \
    --output "$work/bench/out-$name" --mode overwrite --progress-seconds 10 \
    > "$out/$name.log" 2>&1
  local rc=$?
  "$root/dev/spark-cluster" stop --dir "$cluster" > /dev/null 2>&1
  cp -r "$cluster/work" "$out/$name-executors" 2>/dev/null
  echo "$name.log: rc=$rc, $(( ($(date +%s%N) - start) / 1000000 )) ms"
  grep -E '^segment_gemm: |^  executor ' "$out/$name.log"
  return $rc
}

run e2e_1gpu 1 || exit 1
[ "$gpus" -ge 2 ] || exit 0
run "e2e_${gpus}gpu" "$gpus" || exit 1
python3 "$here/compare_outputs.py" "$work/bench/out-e2e_1gpu" "$work/bench/out-e2e_${gpus}gpu" \
  --tol 1e-2 | tee "$out/compare-1-vs-${gpus}gpu.log"
