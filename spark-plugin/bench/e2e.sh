#!/usr/bin/env bash
# The Spark integration's GPU proof and end-to-end benchmark, on a machine with a GPU, Python
# (numpy, pyarrow, safetensors) and no Java or Spark install: the JVM, Spark's jars, the RAPIDS
# Accelerator jar and ours come from dev/gpu-stage. From the repository root:
#   spark-plugin/bench/e2e.sh STAGE WORK OUT [proof] [badinput] [concurrency] [sharedgpu] [oom] [bench]
# STAGE: the unpacked stage (target/gpu-test-libs, .carry/jre); WORK: scratch (~20 GB for the
# benchmark); OUT: logs. Steps (default: proof bench):
#   proof        the job with --explain, asserted (check_run.py): RAPIDS' plan runs gpu_segment_gemm
#                in a GpuProject, our metrics count every row on the GPU, the output matches the
#                job with RAPIDS off; the README's demo; lora_apply's demo and its job's plan.
#   badinput     BadInputSuiteTest (50 bad or edge inputs through the job) in a spark-submit JVM
#                under the RAPIDS Accelerator: every case's outcome as on the CPU, computed rows
#                on the GPU; and GpuOutOfMemoryTest: a GPU out-of-memory aimed at the UDF makes
#                RAPIDS split its batches, the values stay right.
#   concurrency  the job on local[16] with 4 concurrent GPU tasks and on local[1] with 1, the
#                same input splits: outputs bit-identical.
#   sharedgpu    two executors of a standalone cluster sharing one GPU (both workers own GPU 0;
#                spark.task.resource.gpu.amount=0.25): output bit-identical to local[1]'s.
#   oom          the job under RAPIDS' GPU out-of-memory injection (a retry in every retry block,
#                the UDF's included): it completes, RAPIDS counts the retries, output as before.
#                (Splits: GpuOutOfMemoryTest, step badinput.)
#   bench        the end-to-end benchmark (docs/benchmarks.md#end-to-end): per case, on the same
#                Parquet input and with the same output columns (id, adapter_id, output):
#                  gpu_rapids        SegmentGemmJob with the RAPIDS Accelerator (the reference)
#                  cpu_fallback      the same job without it, all cores, on the case's slice
#                                    (a and c: the whole input)
#                  io_floor          the same read and write with no math (bench.IoFloor), the
#                                    same launcher and confs as gpu_rapids
#                  gpu_rapids_fp8    gpu_rapids with spark.segmentgemm.weightDtype=fp8e4m3 (not
#                                    in the default list; compared at E2E_FP8_TOL, 1.5e-1: x and
#                                    the weights of every stage rounded to e4m3)
#                  pyspark_torch     plain PySpark mapInArrow + torch bf16 on the GPU (peers.py)
#                  pandas_numpy_cpu  plain PySpark mapInArrow + numpy fp32, CPU only (peers.py)
#                  sql_explode       plain Spark SQL (case a only, on E2E_TINY rows)
#                each one's output compared with gpu_rapids' (compare_outputs.py --tol E2E_TOL,
#                1e-2: bfloat16; io_floor: columns and rows only); one failing does not stop the
#                others. Rows of OUT/e2e.csv (wall seconds of the whole process, start-up
#                included) and OUT/e2e-injob.csv (the seconds the job itself reports), logs
#                OUT/bench-CASE-IMPL.log, verdicts in OUT/bench-summary.txt. Cases (E2E_CASES,
#                default "a b c"): a 2M rows x 1024 -> 1024, 100 adapters; b lora_apply over 1,000
#                PEFT adapters 4096 -> r 16 -> 4096, Zipf (s 1.1) traffic, 1M rows; c 10M rows x
#                256 -> 32, 10,000 adapters. Each case's data is deleted after it (E2E_KEEP_DATA=1
#                keeps it), every output but the reference after its comparison (E2E_KEEP_OUTPUTS=1).
# Every step fails if any log holds cuDF's "LEAKED" (E2E_REFCOUNT=true turns the tracking on).
# Sizes: E2E_PROOF_ROWS (200000), E2E_PROOF_DIM (256); E2E_HEAP (64g) per JVM; bench:
# E2E_IMPLS (all six), E2E_A_ROWS (or E2E_ROWS, 2000000), E2E_A_DIM (or E2E_DIM, 1024),
# E2E_A_ADAPTERS (or E2E_ADAPTERS, 100), E2E_B_ROWS (1000000), E2E_B_DIM (4096), E2E_B_RANK (16),
# E2E_B_ADAPTERS (1000), E2E_B_ZIPF (1.1), E2E_C_ROWS (10000000), E2E_C_DIN (256), E2E_C_DOUT (32),
# E2E_C_ADAPTERS (10000); the CPU fallback's slice (the input's first rows) E2E_A_SLICE (or
# E2E_SLICE; default: the whole input), E2E_B_SLICE (or E2E_SLICE, 250000), E2E_C_SLICE (or
# E2E_SLICE; default: the whole input); E2E_TINY (200 rows for sql_explode);
# E2E_GPU_SPLIT (512m, spark.sql.files.maxPartitionBytes of gpu_rapids and io_floor); the peers:
# E2E_TORCH_TASKS (8: local[N], N Python workers sharing the GPU), E2E_TORCH_MODE (auto: one
# torch._grouped_mm per batch where torch has it, else loop: one matmul per adapter),
# E2E_ARROW_BATCH (rows per Arrow batch: 32768 for a, 16384 for b, 65536 for c), E2E_NUMPY_ON
# (input, or slice: the CPU fallback's slice). The peers need PySpark's Python code, which
# dev/gpu-stage stages under target/gpu-test-libs/pyspark.
# A case across calls (10 minutes each on the GPU machine): E2E_KEEP_DATA=1 keeps its data and
# gpu_rapids' output, the reference, so that a next call with E2E_IMPLS naming the rest compares
# against it (a gpu_rapids run replaces it); the CSVs and the summary are appended to, a line per
# call. E2E_FLOOR_CONFS="KEY=VALUE ..." adds Spark/RAPIDS confs to gpu_rapids and io_floor alone
# (their Parquet reads and writes: floor_sweep.sh), the case name suffixed with E2E_TAG (default:
# the confs, shortened: _codec-none, ...). Tolerances: E2E_TOL (1e-2) for bf16 results compared
# with ours, E2E_LORA_TOL (2e-2) for lora_apply's two bf16 stages, E2E_FP32_TOL (2e-2) for the
# numpy fp32 peer (see the bench step's comment). io_floor writes d_out floats a row (case c: 32).
# E2E_GPU=off runs everything without the RAPIDS Accelerator (a dry run on a CPU machine: the
# checks then expect every row on the CPU and skip the plan's; the torch peer runs on the CPU).
set -uo pipefail
stage=$(cd "${1:?stage folder}" && pwd); work=${2:?work folder}; out=${3:?output folder}; shift 3
steps=${*:-proof bench}
here=$(cd "$(dirname "$0")" && pwd)
opens=$here/../../dev/spark-java17.args   # Spark's Java 17 module opens, a java argument file
libs=$stage/target/gpu-test-libs
java=${JAVA:-$stage/.carry/jre/bin/java}
cores=$(nproc)
gpu=${E2E_GPU:-on}
refcount=${E2E_REFCOUNT:-false}
mkdir -p "$work" "$out"
work=$(cd "$work" && pwd); out=$(cd "$out" && pwd)
check() { python3 "$here/check_run.py" "$@" | tee -a "$out/checks.log"; [ "${PIPESTATUS[0]}" = 0 ] || failed=1; }
# compare NAME A B OPTIONS...: compare_outputs.py A B, its verdict in OUT/NAME.log; a difference fails.
compare() {
  local name=$1; shift
  python3 "$here/compare_outputs.py" "$@" | tee "$out/$name.log"; [ "${PIPESTATUS[0]}" = 0 ] || failed=1
}
where() { [ "$gpu" = on ] && echo gpu || echo cpu; }
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
# loader); the JVM is the driver and, in local mode, the executor. sparkopts: spark-submit
# options for this run (later --master / --conf win over the defaults here).
sparkopts=()
javaopts=()   # extra JVM options for this run (local mode: the driver is the executor)
submit() {
  local log=$1; shift
  local jars=$ours,$tests
  [ "$gpu" = on ] && jars=$rapids,$ours,$tests
  local gpuconf=()
  [ "$gpu" = on ] && gpuconf=(--conf spark.plugins=com.nvidia.spark.SQLPlugin,com.sparksegmentgemm.spark.SegmentGemmPlugin
    --conf spark.rapids.sql.enabled=true --conf spark.rapids.sql.explain=NOT_ON_GPU
    --conf spark.rapids.sql.concurrentGpuTasks=2 --conf spark.rapids.memory.pinnedPool.size=8g
    # Some steps run two GPU JVMs at once: each may take 40-45% of the GPU (RAPIDS' default
    # takes it all and the second JVM's pool fails to start).
    --conf spark.rapids.memory.gpu.allocFraction=0.4
    --conf spark.rapids.memory.gpu.maxAllocFraction=0.45
    --conf spark.rapids.memory.gpu.minAllocFraction=0)
  local start=$(date +%s%N)
  "$java" -Xmx${E2E_HEAP:-64g} -Dai.rapids.refcount.debug=$refcount "${vector[@]}" \
    "${javaopts[@]}" @"$opens" \
    -cp "$libs/spark-jars/*" org.apache.spark.deploy.SparkSubmit --master "local[$cores]" \
    --conf spark.ui.enabled=false --conf spark.local.dir="$work/spark-local" \
    --conf spark.sql.shuffle.partitions=$((2 * cores)) "${gpuconf[@]}" "${sparkopts[@]}" \
    --jars "$jars" "$@" >"$log" 2>&1
  local rc=$?
  echo "$(basename "$log"): rc=$rc, $(( ($(date +%s%N) - start) / 1000000 )) ms"
  grep -E '^(segment_gemm|lora_apply|sql_explode|io_floor): |^  executor |OK$|FAILED|GpuProject|gpu_segment_gemm|gpu_lora_apply|NOT_ON_GPU|cannot run on GPU|!Expression|Exception|LEAKED' "$log" | head -40
  [ $rc = 0 ] || failed=1
  return $rc
}
job() { local log=$1; shift; submit "$log" --class com.sparksegmentgemm.spark.SegmentGemmJob "$ours" --gpu "$gpu" "$@"; }

prows=${E2E_PROOF_ROWS:-200000}; pdim=${E2E_PROOF_DIM:-256}
# The proof's data: 4 files (row groups of 32768 rows: batches of up to 32768 rows).
proof_data() {
  [ -f "$work/proof/.done-$prows-$pdim" ] && return 0
  python3 "$here/gen_e2e.py" --out "$work/proof" --rows "$prows" --d-in "$pdim" --d-out "$pdim" \
    --adapters 32 --files 4 | tee "$out/proof-gen.log" && touch "$work/proof/.done-$prows-$pdim"
}
# The same rows in 16 files of one row group each: 16 non-empty tasks, so that every executor
# and task slot of the concurrency runs gets work.
conc_data() {
  [ -f "$work/conc/.done-$prows-$pdim" ] && return 0
  python3 "$here/gen_e2e.py" --out "$work/conc" --rows "$prows" --d-in "$pdim" --d-out "$pdim" \
    --adapters 32 --files 16 | tee "$out/conc-gen.log" && touch "$work/conc/.done-$prows-$pdim"
}
# Input splits that do not depend on the number of cores (Spark sizes splits by
# total bytes / default parallelism otherwise): 16 MB, at least one partition.
same_splits=(--conf spark.sql.files.maxPartitionBytes=16m --conf spark.sql.files.minPartitionNum=1)
# A SPARK_HOME from the staged launcher scripts and Spark's jars (the GPU machine has no Spark),
# in $spark_home: the standalone cluster's and PySpark's.
make_spark_home() {
  spark_home=$work/spark-home
  mkdir -p "$spark_home" && cp -r "$libs/spark-home/bin" "$libs/spark-home/sbin" "$spark_home/"
  ln -sfn "$libs/spark-jars" "$spark_home/jars"
}
# Runs "job LOG args..." in the background; its pid in $!.
bg_job() { job "$@" & }
# Waits for a background run; a failure fails the script.
await() { wait "$1" || failed=1; }

if [[ " $steps " == *" proof "* ]]; then
  echo "== proof: the UDF in RAPIDS' physical plan, the same rows as the CPU, our metrics"
  proof_data || failed=1
  # The GPU run and the CPU reference (RAPIDS off) at once: they share nothing but the input.
  bg_job "$out/proof-gpu.log" --input "$work/proof/input" --adapters "$work/proof/adapters" \
    --output "$work/proof/out-gpu" --mode overwrite --explain
  p1=$!
  E2E_GPU_SAVED=$gpu; gpu=off
  bg_job "$out/proof-cpu.log" --input "$work/proof/input" --adapters "$work/proof/adapters" \
    --output "$work/proof/out-cpu" --mode overwrite
  p2=$!
  gpu=$E2E_GPU_SAVED
  await $p1; await $p2
  compare proof-compare "$work/proof/out-gpu" "$work/proof/out-cpu" --tol 1e-2
  sed -n '/^physical plan:/,/^$/p' "$out/proof-gpu.log" | head -30 > "$out/proof-plan.txt"
  if [ "$gpu" = on ]; then
    check job "$out/proof-gpu.log" --rows "$prows" --where gpu --plan segment_gemm
  else
    check job "$out/proof-gpu.log" --rows "$prows" --where cpu
  fi
  check job "$out/proof-cpu.log" --rows "$prows" --where cpu
  echo "== the README's demo (dev/run-demo's main), and lora_apply's, with the GPU"
  submit "$out/demo.log" --class com.sparksegmentgemm.spark.SegmentGemmDemo "$ours" \
    --gpu "$gpu" --dir "$work/demo" --rows "$prows" &
  p1=$!
  submit "$out/demo-lora.log" --class com.sparksegmentgemm.spark.SegmentGemmDemo "$ours" \
    --gpu "$gpu" --dir "$work/demo-lora" --rows "$prows" --function lora_apply &
  p2=$!
  await $p1; await $p2
  check demo "$out/demo.log" --rows "$prows" --where "$(where)"
  check demo "$out/demo-lora.log" --rows "$prows" --where "$(where)"
  # lora_apply's plan: the job over the demo's data and PEFT adapters, with --explain.
  job "$out/proof-lora-gpu.log" --function lora_apply --input "$work/demo-lora/input" \
    --adapters "$work/demo-lora/adapters" --output "$work/demo-lora/out-job" --mode overwrite \
    --explain
  sed -n '/^physical plan:/,/^$/p' "$out/proof-lora-gpu.log" | head -30 >> "$out/proof-plan.txt"
  if [ "$gpu" = on ]; then
    check job "$out/proof-lora-gpu.log" --rows "$prows" --where gpu --plan lora_apply
  else
    check job "$out/proof-lora-gpu.log" --rows "$prows" --where cpu
  fi
fi

if [[ " $steps " == *" badinput "* ]]; then
  echo "== the bad-input suite (BadInputSuiteTest) and the split test (GpuOutOfMemoryTest) under the RAPIDS Accelerator"
  # JUnit's console launcher is the application, so the tests load through spark-submit's class
  # loader, which RAPIDS' shim loader needs; without --class-path JUnit uses that loader. The
  # test classes travel as jars (--jars takes jars only).
  console=$(ls "$libs"/jars/junit-platform-console-standalone-*.jar | head -1)
  for m in native udfs; do
    python3 -c "import shutil, sys; shutil.make_archive(sys.argv[1], 'zip', sys.argv[2])" \
      "$work/$m-tests" "$libs/$m-test-classes" && mv "$work/$m-tests.zip" "$work/$m-tests.jar" \
      || { echo "check badinput: FAIL could not jar $m's test classes" | tee -a "$out/checks.log"; failed=1; }
  done
  testjars=$tests,$work/native-tests.jar,$work/udfs-tests.jar
  [ "$gpu" = on ] && testjars=$rapids,$ours,$testjars || testjars=$ours,$testjars
  start=$(date +%s%N)
  "$java" -Xmx${E2E_HEAP:-16g} -Dai.rapids.refcount.debug=$refcount -Dsegmentgemm.test.rapids=$([ "$gpu" = on ] && echo true || echo false) \
    "${vector[@]}" @"$opens" -cp "$libs/spark-jars/*" org.apache.spark.deploy.SparkSubmit \
    --master "local[2]" --conf spark.ui.enabled=false --conf spark.local.dir="$work/spark-local" \
    $([ "$gpu" = on ] && echo "--conf spark.plugins=com.sparksegmentgemm.spark.SegmentGemmPlugin,com.nvidia.spark.SQLPlugin --conf spark.rapids.sql.enabled=true") \
    --jars "$testjars" --class org.junit.platform.console.ConsoleLauncher "$console" \
    execute --select-class com.sparksegmentgemm.spark.BadInputSuiteTest \
    --select-class com.sparksegmentgemm.spark.GpuOutOfMemoryTest --details=summary \
    --disable-banner > "$out/badinput.log" 2>&1
  rc=$?
  echo "badinput.log: rc=$rc, $(( ($(date +%s%N) - start) / 1000000 )) ms"
  grep -E "tests (found|successful|failed|skipped)|under the RAPIDS|LEAKED" "$out/badinput.log" | tee -a "$out/checks.log"
  # Under RAPIDS the split test must have run its GPU assertions (it prints this line first).
  split_ran=yes
  [ "$gpu" = on ] && ! grep -q '^GpuOutOfMemoryTest under the RAPIDS Accelerator' "$out/badinput.log" && split_ran=no
  if [ $rc = 0 ] && grep -qE '\[ +[1-9][0-9]* tests successful' "$out/badinput.log" \
      && grep -qE '\[ +0 tests failed' "$out/badinput.log" && [ $split_ran = yes ]; then
    echo "check badinput: PASS" | tee -a "$out/checks.log"
  else
    echo "check badinput: FAIL (rc=$rc, split test under RAPIDS: $split_ran; see badinput.log)" | tee -a "$out/checks.log"
    failed=1
  fi
fi

if [[ " $steps " == *" concurrency "* ]]; then
  echo "== concurrency: local[16] x 4 GPU tasks vs local[1] x 1, the same splits: bit-identical"
  conc_data || failed=1
  sparkopts=(--master "local[16]" "${same_splits[@]}" --conf spark.rapids.sql.concurrentGpuTasks=4)
  bg_job "$out/conc-16x4.log" --input "$work/conc/input" --adapters "$work/conc/adapters" \
    --output "$work/conc/out-16x4" --mode overwrite
  p1=$!
  sparkopts=(--master "local[1]" "${same_splits[@]}" --conf spark.rapids.sql.concurrentGpuTasks=1)
  bg_job "$out/conc-1x1.log" --input "$work/conc/input" --adapters "$work/conc/adapters" \
    --output "$work/conc/out-1x1" --mode overwrite
  p2=$!
  sparkopts=()
  await $p1; await $p2
  check job "$out/conc-16x4.log" --rows "$prows" --where "$(where)"
  check job "$out/conc-1x1.log" --rows "$prows" --where "$(where)"
  compare conc-compare "$work/conc/out-16x4" "$work/conc/out-1x1" --exact
fi

if [[ " $steps " == *" sharedgpu "* ]]; then
  echo "== two executors sharing one GPU (standalone cluster, both workers own GPU 0)"
  conc_data || failed=1
  [ -d "$work/conc/out-1x1" ] || {
    sparkopts=(--master "local[1]" "${same_splits[@]}" --conf spark.rapids.sql.concurrentGpuTasks=1)
    job "$out/conc-1x1.log" --input "$work/conc/input" --adapters "$work/conc/adapters" \
      --output "$work/conc/out-1x1" --mode overwrite
    sparkopts=()
  }
  make_spark_home
  cluster=$work/cluster-shared
  url=$(JAVA_HOME=$(dirname "$(dirname "$java")") SPARK_HOME=$spark_home \
    "$here/../../dev/spark-cluster" start --workers 2 --cores-per-worker 4 --memory-per-worker 20g \
    --gpus-per-worker 1 --gpu-addresses 0 --dir "$cluster" 2>"$out/sharedgpu-cluster.log" | tail -1)
  if [ -z "$url" ]; then
    echo "sharedgpu: the cluster did not start (sharedgpu-cluster.log)"; failed=1
  else
    jars=$ours
    conf=(--conf spark.plugins=com.sparksegmentgemm.spark.SegmentGemmPlugin)
    if [ "$gpu" = on ]; then
      jars=$rapids,$ours
      # Two RAPIDS executors on one GPU: each pools at most 40% of it.
      conf=(--conf spark.plugins=com.nvidia.spark.SQLPlugin,com.sparksegmentgemm.spark.SegmentGemmPlugin
        --conf spark.rapids.sql.enabled=true --conf spark.rapids.sql.explain=NOT_ON_GPU
        --conf spark.rapids.sql.concurrentGpuTasks=2 --conf spark.rapids.memory.pinnedPool.size=2g
        --conf spark.rapids.memory.gpu.allocFraction=0.4 --conf spark.rapids.memory.gpu.maxAllocFraction=0.4
        # The second executor sees only the first's leftover: 0.4 of it is below RAPIDS' default
        # minimum pool (25% of the GPU), which failed its start on the H200 (2026-12-03).
        --conf spark.rapids.memory.gpu.minAllocFraction=0)
    fi
    start=$(date +%s)
    JAVA_HOME=$(dirname "$(dirname "$java")") SPARK_HOME=$spark_home SPARK_LOCAL_IP=127.0.0.1 \
      "$spark_home/bin/spark-submit" --master "$url" --driver-memory 8g --jars "$jars" \
      --conf spark.ui.enabled=false --conf spark.executor.cores=4 --conf spark.executor.memory=16g \
      --conf spark.executor.resource.gpu.amount=1 --conf spark.task.resource.gpu.amount=0.25 \
      --conf spark.cores.max=8 --conf spark.scheduler.minRegisteredResourcesRatio=1.0 \
      --conf spark.scheduler.maxRegisteredResourcesWaitingTime=60s \
      --conf "spark.driver.extraJavaOptions=-Dai.rapids.refcount.debug=$refcount" \
      --conf "spark.executor.extraJavaOptions=-Dai.rapids.refcount.debug=$refcount" \
      "${same_splits[@]}" "${conf[@]}" --class com.sparksegmentgemm.spark.SegmentGemmJob "$ours" \
      --input "$work/conc/input" --adapters "$work/conc/adapters" \
      --output "$work/conc/out-shared" --mode overwrite > "$out/sharedgpu.log" 2>&1
    rc=$?
    echo "sharedgpu.log: rc=$rc, $(( $(date +%s) - start )) s"
    grep -E '^segment_gemm: |^  executor ' "$out/sharedgpu.log"
    [ $rc = 0 ] || failed=1
    "$here/../../dev/spark-cluster" stop --dir "$cluster" > /dev/null 2>&1
    # The executors' stdout/stderr (their LEAKED lines, if any), and the daemons' logs.
    mkdir -p "$out/sharedgpu-cluster"
    cp -r "$cluster/work" "$cluster/logs" "$out/sharedgpu-cluster/" 2>/dev/null
    find "$out/sharedgpu-cluster" -name '*.jar' -delete
    check job "$out/sharedgpu.log" --rows "$prows" --where "$(where)" --executors 2 --assigned-gpu 0
    compare sharedgpu-compare "$work/conc/out-shared" "$work/conc/out-1x1" --exact
  fi
fi

if [[ " $steps " == *" oom "* ]]; then
  echo "== out of memory: a GPU out-of-memory in every retry block, the batch retried"
  proof_data || failed=1
  [ -d "$work/proof/out-gpu" ] || job "$out/proof-gpu.log" --input "$work/proof/input" \
    --adapters "$work/proof/adapters" --output "$work/proof/out-gpu" --mode overwrite
  # The RAPIDS Accelerator's own fault injection (spark.rapids.sql.test.injectRetryOOM): a
  # GpuRetryOOM at the first GPU allocation of every retry block, GpuProjectExec's included,
  # whose first allocation is our UDF's; the UDF frees what it holds and runs again on the same
  # batch. RAPIDS reads that conf only when the JVM runs with
  # -Dcom.nvidia.spark.rapids.runningTests=true (RapidsConf.testRetryOOMInjectionMode): without
  # it nothing was injected (0 retries on the H200, 2026-12-03). A split injected this way fails
  # the job in the Parquet scan, whose retry block cannot split (seen on the H200, 2026-12-03):
  # GpuOutOfMemoryTest (step badinput) aims the split at the UDF instead.
  rm -rf "$work/oom-events" && mkdir -p "$work/oom-events"
  javaopts=(-Dcom.nvidia.spark.rapids.runningTests=true)
  sparkopts=(--conf spark.rapids.sql.concurrentGpuTasks=1
    --conf spark.rapids.sql.test.injectRetryOOM=num_ooms=1,type=GPU
    --conf spark.eventLog.enabled=true --conf spark.eventLog.dir="file://$work/oom-events"
    --conf spark.eventLog.compress=false --conf spark.eventLog.rolling.enabled=false)
  job "$out/oom.log" --input "$work/proof/input" --adapters "$work/proof/adapters" \
    --output "$work/proof/out-oom" --mode overwrite
  sparkopts=(); javaopts=()
  check retries "$out/oom.log" "$work/oom-events" --metric gpuRetryCount
  check job "$out/oom.log" --rows "$prows" --where "$(where)"
  compare oom-compare "$work/proof/out-oom" "$work/proof/out-gpu" --tol 1e-2
fi

if [[ " $steps " == *" bench "* ]]; then
  # One command for every case and implementation; see the header and docs/benchmarks.md.
  # Each implementation runs on its own: one failing is recorded and the others still run.
  if [ "$gpu" = on ] && command -v nvidia-smi >/dev/null; then
    device=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  fi
  [ -n "${device:-}" ] || device="CPU ($cores cores)"
  csv=$out/e2e.csv; injob_csv=$out/e2e-injob.csv; summary=$out/bench-summary.txt
  # Appended, as the CSVs are: OUT may gather several calls (a case split across calls).
  echo "== bench $(date -u '+%F %T UTC'): cases ${E2E_CASES:-a b c}; impls ${E2E_IMPLS:-all}; floor confs '${E2E_FLOOR_CONFS:-}'${E2E_TAG:+; tag $E2E_TAG}" >> "$summary"
  # Tolerances of compare_outputs.py (max |a - b| / max |b| per row). Two bf16 results (ours,
  # cpu_fallback, torch) differ where one rounding lands one bf16 ulp (2^-7, 7.8e-3 relative)
  # away from the other's: under 1e-2 for one stage, under 2e-2 for lora_apply's two (x . A^T
  # rounded, then the output). numpy fp32 against our bf16 differs by the rounding of x, the
  # weights and the output, which has no such bound: simulated here (2026-12-03), the worst row
  # was 1.1e-2 over 4M rows of 256 -> 32 and 1.0e-2 over 200k rows of LoRA 4096 -> 16 -> 4096,
  # so over case c's 10M and case b's 1M rows some rows exceed 1e-2: 2e-2 for the fp32 peer.
  # compare_outputs.py prints the rows above 1e-2 whatever the tolerance.
  tol_bf16=${E2E_TOL:-1e-2}; tol_lora=${E2E_LORA_TOL:-2e-2}; tol_fp32=${E2E_FP32_TOL:-2e-2}
  tol_fp8=${E2E_FP8_TOL:-1.5e-1}
  # E2E_FLOOR_CONFS: "KEY=VALUE ..." added to gpu_rapids' and io_floor's confs alone (their own
  # Parquet reads and writes: codec, reader type and threads, row group and batch sizes), the
  # rows' case name suffixed with E2E_TAG (default: the confs, shortened).
  floor_conf=()
  for kv in ${E2E_FLOOR_CONFS:-}; do floor_conf+=(--conf "$kv"); done
  short() {  # a conf as a file-name-safe tag: codec-zstd, reader-MULTITHREADED, ...
    local k=${1%%=*} v=${1#*=}
    case $k in
      *parquet.compression.codec) k=codec ;; *parquet.reader.type) k=reader ;;
      *multiThreadedRead.numThreads) k=readThreads ;; *.batchSizeBytes) k=batch ;;
      *.maxPartitionBytes) k=split ;; *parquet.block.size|*writer.rowGroupSizeBytes) k=rowgroup ;;
      *asyncWrite.queryOutput.enabled) k=asyncWrite ;; *writer.dictionaryPolicy) k=dict ;;
      *) k=${k##*.} ;;
    esac
    printf '%s-%s' "$k" "$v" | tr -c 'A-Za-z0-9.-' '_'
  }
  tag=${E2E_TAG:-$(for kv in ${E2E_FLOOR_CONFS:-}; do printf '_%s' "$(short "$kv")"; done | cut -c2-)}
  tag=$(printf '%s' "$tag" | tr -c 'A-Za-z0-9._-' '_')
  # Every implementation's Spark settings for the big input: larger splits give the GPU fewer,
  # larger batches (the RAPIDS Accelerator's own advice). ours and io_floor share them exactly.
  split_conf=(--conf spark.sql.files.maxPartitionBytes=${E2E_GPU_SPLIT:-512m} "${floor_conf[@]}")
  pyroot=$libs/pyspark
  make_spark_home
  # note CASE IMPL VERDICT...: one line of the summary (and of stdout).
  note() { local c=$1 i=$2; shift 2; printf '%-40s %-17s %s\n' "$c" "$i" "$*" | tee -a "$summary"; }
  # record CASE IMPL OUTPUT LOG DIN WALL_MS: the CSV rows, or why none.
  record() {
    python3 "$here/bench_csv.py" --csv "$csv" --injob-csv "$injob_csv" --case "$1" --impl "$2" \
      --device "$device" --output "$3" --log "$4" --d-in "$5" \
      --seconds "$(awk -v ms="$6" 'BEGIN { printf "%.3f", ms / 1000 }')" | tee -a "$summary"
    return "${PIPESTATUS[0]}"
  }
  # verdict CASE IMPL OUTPUT OPTIONS...: compare_outputs.py OUTPUT against the case's reference.
  verdict() {
    local c=$1 i=$2 o=$3; shift 3
    if [ ! -d "$ref" ]; then
      note "$c" "$i" "compare: SKIPPED (no reference: gpu_rapids did not produce one)"; return
    fi
    local cs=$(date +%s)
    python3 "$here/compare_outputs.py" "$o" "$ref" "$@" > "$out/bench-$c-$i-compare.log" 2>&1
    local rc=$?
    note "$c" "$i" "compare vs gpu_rapids: $([ $rc = 0 ] && echo PASS || echo FAIL)" \
      "in $(( $(date +%s) - cs )) s ($(tail -1 "$out/bench-$c-$i-compare.log"))"
    [ $rc = 0 ] || failed=1
  }
  # peer LOG IMPL ARGS...: peers.py under plain PySpark (no RAPIDS), the staged Spark and JVM.
  peer() {
    local log=$1 impl=$2; shift 2
    local py4j=$(ls "$pyroot"/py4j-*-src.zip 2>/dev/null | head -1)
    if [ ! -d "$pyroot/pyspark" ] || [ -z "$py4j" ]; then
      echo "no PySpark under $pyroot (dev/gpu-stage stages pyspark/ and py4j's zip there)" | tee "$log"
      return 2
    fi
    SPARK_HOME=$spark_home JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$java")")") \
      PYSPARK_PYTHON=python3 PYSPARK_DRIVER_PYTHON=python3 \
      PYTHONPATH=$pyroot:$py4j:$here${PYTHONPATH:+:$PYTHONPATH} \
      python3 "$here/peers.py" --impl "$impl" --driver-memory "${E2E_HEAP:-64g}" \
      --local-dir "$work/spark-local" --batch-rows "${E2E_ARROW_BATCH:-$batch}" "$@" >"$log" 2>&1
  }
  impls=${E2E_IMPLS:-gpu_rapids cpu_fallback io_floor pyspark_torch pandas_numpy_cpu sql_explode}
  for c in ${E2E_CASES:-a b c}; do
    # Each case's sizes (env overrides; tiny ones make a CPU dry run). batch: the peers' rows per
    # Arrow batch, about 64-270 MB of features each (16 Python workers hold a few batches each).
    # Slices: the CPU fallback runs on the whole input (the numpy peer's rows: like with like)
    # where it fits a call; each task of the CPU path pays seconds of fixed cost first (code
    # generation, the JIT, the weights' rounding), so a slice a tenth of the peer's rows
    # understates its rate (H200, 2026-12-03, case c: 1M rows at 0.48x numpy's 10M). Case b's
    # stays 250,000 rows (its CPU path runs ~10,000 rows/s on 16 cores). A slice of at least the
    # input's rows is the input itself (not written twice).
    fn=segment_gemm; rank=0; gen=(); batch=32768
    case $c in
      a) rows=${E2E_A_ROWS:-${E2E_ROWS:-2000000}}; din=${E2E_A_DIM:-${E2E_DIM:-1024}}; dout=$din
         adapters=${E2E_A_ADAPTERS:-${E2E_ADAPTERS:-100}}; slice=${E2E_A_SLICE:-${E2E_SLICE:-$rows}}
         gen=(--weights-rows) ;;
      b) fn=lora_apply; rows=${E2E_B_ROWS:-1000000}; din=${E2E_B_DIM:-4096}; dout=$din
         rank=${E2E_B_RANK:-16}; adapters=${E2E_B_ADAPTERS:-1000}; batch=16384
         slice=${E2E_B_SLICE:-${E2E_SLICE:-250000}}
         gen=(--function lora_apply --rank "$rank" --skew zipf --zipf-s "${E2E_B_ZIPF:-1.1}") ;;
      c) rows=${E2E_C_ROWS:-10000000}; din=${E2E_C_DIN:-256}; dout=${E2E_C_DOUT:-32}
         adapters=${E2E_C_ADAPTERS:-10000}; slice=${E2E_C_SLICE:-${E2E_SLICE:-$rows}}
         batch=65536 ;;
      *) echo "bench: unknown case '$c' (E2E_CASES takes a, b, c)"; failed=1; continue ;;
    esac
    [ "$slice" -ge "$rows" ] && slice=0   # no slice: the slow baselines read the input
    human=$(awk -v n="$rows" 'BEGIN { if (n % 1000000 == 0) print n / 1000000 "m";
      else if (n % 1000 == 0) print n / 1000 "k"; else print n }')
    if [ $fn = lora_apply ]; then
      name=lora_${human}_${din}r${rank}x${dout}_${adapters}adapters_zipf${E2E_B_ZIPF:-1.1}_bf16
    else
      name=e2e_${human}_${din}x${dout}_${adapters}adapters_bf16
    fi
    [ -n "$tag" ] && name=${name}_$tag
    tol=$tol_bf16; [ $fn = lora_apply ] && tol=$tol_lora
    d=$work/bench-$c
    echo "== benchmark case $c ($name): $rows rows, $fn $din -> $dout, $adapters adapters"
    stamp="$rows $din $dout $adapters $fn $rank $slice ${gen[*]}"
    if [ "$(cat "$d/.done" 2>/dev/null)" != "$stamp" ]; then
      rm -rf "$d"
      gs=$(date +%s)
      python3 "$here/gen_e2e.py" --out "$d" --rows "$rows" --d-in "$din" --d-out "$dout" \
        --adapters "$adapters" --files "$cores" --slice-rows "$slice" --tiny-rows "${E2E_TINY:-200}" \
        "${gen[@]}" > "$out/bench-$c-gen.log" 2>&1 && echo "$stamp" > "$d/.done"
      grc=$?
      note "$name" gen "rc=$grc, $(( $(date +%s) - gs )) s: $(tail -1 "$out/bench-$c-gen.log")"
      if [ $grc != 0 ]; then failed=1; continue; fi
      sync
      note "$name" gen "written and synced in $(( $(date +%s) - gs )) s; $(du -sh "$d" | cut -f1) under $d; $(df -h --output=avail "$work" | tail -1 | tr -d ' ') free"
    else
      note "$name" gen "reused (E2E_KEEP_DATA=1 of an earlier call): $(du -sh "$d" | cut -f1) under $d; $(df -h --output=avail "$work" | tail -1 | tr -d ' ') free"
    fi
    # The reference: gpu_rapids' output, from this call or (E2E_KEEP_DATA=1) an earlier one on
    # the same data; a gpu_rapids run below replaces it.
    ref=$d/out-gpu_rapids
    [ -d "$ref" ] && [[ " $impls " != *" gpu_rapids "* ]] && note "$name" gpu_rapids "reference reused from an earlier call"
    fnargs=(); [ $fn = lora_apply ] && fnargs=(--function lora_apply)
    slice_dir=slice; [ "$slice" = 0 ] && slice_dir=input
    for impl in $impls; do
      o=$d/out-$impl; log=$out/bench-$c${tag:+-$tag}-$impl.log; subset=()
      rm -rf "$o"
      t0=$(date +%s%N)
      # Each branch runs one implementation and leaves its exit code in rc.
      case $impl in
        gpu_rapids)
          sparkopts=("${split_conf[@]}")
          job "$log" "${fnargs[@]}" --input "$d/input" --adapters "$d/adapters" --output "$o" \
            --mode overwrite --progress-seconds 10
          rc=$? ;;
        gpu_rapids_fp8)
          # The same job with the adapters kept as fp8 e4m3 (spark.segmentgemm.weightDtype), x
          # quantised per native call: compared with gpu_rapids at E2E_FP8_TOL.
          sparkopts=("${split_conf[@]}" --conf spark.segmentgemm.weightDtype=fp8e4m3)
          job "$log" "${fnargs[@]}" --input "$d/input" --adapters "$d/adapters" --output "$o" \
            --mode overwrite --progress-seconds 10
          rc=$? ;;
        cpu_fallback)
          # A slice of the input (rows/s is what counts), the whole JVM without RAPIDS.
          subset=(--a-subset)
          E2E_GPU_SAVED=$gpu; gpu=off
          job "$log" "${fnargs[@]}" --input "$d/$slice_dir" --adapters "$d/adapters" --output "$o" \
            --mode overwrite --progress-seconds 10
          rc=$?
          gpu=$E2E_GPU_SAVED ;;
        io_floor)
          sparkopts=("${split_conf[@]}")
          # The job's output width: case c writes 32 floats a row, not its 256 features. A
          # tests jar older than IoFloor's WIDTH writes them all: recorded as io_floor_din.
          width=()
          if [ "$dout" != "$din" ]; then
            if python3 -c "import sys, zipfile; sys.exit(b'[WIDTH]' not in zipfile.ZipFile(sys.argv[1]).read('com/sparksegmentgemm/spark/bench/IoFloor.class'))" "$tests"; then
              width=("$dout")
            else
              note "$name" "$impl" "the staged tests jar's IoFloor has no WIDTH (rebuild and restage): it writes all $din features, recorded as io_floor_din"
              impl=io_floor_din
            fi
          fi
          submit "$log" --class com.sparksegmentgemm.spark.bench.IoFloor "$tests" "$d/input" "$o" "${width[@]}"
          rc=$? ;;
        pyspark_torch)
          peer "$log" pyspark_torch --function $fn --input "$d/input" --adapters "$d/adapters" \
            --output "$o" --master "local[${E2E_TORCH_TASKS:-8}]" \
            --device "$([ "$gpu" = on ] && echo cuda || echo cpu)" --torch-mode "${E2E_TORCH_MODE:-auto}"
          rc=$? ;;
        pandas_numpy_cpu)
          in=$d/input
          [ "${E2E_NUMPY_ON:-input}" = slice ] && { in=$d/$slice_dir; subset=(--a-subset); }
          peer "$log" pandas_numpy_cpu --function $fn --input "$in" --adapters "$d/adapters" \
            --output "$o" --master "local[$cores]"
          rc=$? ;;
        sql_explode)
          # Its weights as rows exist for case a only (the plain-SQL plan is the same for all).
          if [ $c != a ]; then note "$name" "$impl" "not run (case a only)"; continue; fi
          subset=(--a-subset)
          submit "$log" --class com.sparksegmentgemm.spark.bench.SqlExplodeBaseline "$tests" \
            "$d/tiny" "$d/weights_rows" "$o"
          rc=$? ;;
        *) note "$name" "$impl" "unknown impl (E2E_IMPLS)"; failed=1; continue ;;
      esac
      sparkopts=()
      ms=$(( ($(date +%s%N) - t0) / 1000000 ))
      [ $rc = 0 ] || failed=1
      note "$name" "$impl" "rc=$rc, wall $(awk -v ms=$ms 'BEGIN { printf "%.2f", ms / 1000 }') s, log $(basename "$log")"
      if [ $rc != 0 ]; then
        note "$name" "$impl" "FAILED: $(grep -vE ' (WARN|INFO) ' "$log" | grep -E 'Error|Exception|error|FAIL|no PySpark|: ' | head -1 | cut -c1-200)"
        continue
      fi
      record "$name" "$impl" "$o" "$log" "$din" "$ms" || failed=1
      # Whatever RAPIDS left on the CPU in the two GPU runs (spark.rapids.sql.explain=NOT_ON_GPU).
      if [ "$gpu" = on ] && { [ ${impl%_fp8} = gpu_rapids ] || [ ${impl%_din} = io_floor ]; }; then
        cpu_ops=$(grep -c 'cannot run on GPU' "$log")
        [ "$cpu_ops" = 0 ] || note "$name" "$impl" "plan: $cpu_ops line(s) 'cannot run on GPU' in $(basename "$log")"
      fi
      case $impl in
        gpu_rapids) ;;  # the reference
        io_floor) verdict "$name" "$impl" "$o" --schema-only ;;
        io_floor_din) ;;  # not the job's output width: nothing to compare
        pandas_numpy_cpu) verdict "$name" "$impl" "$o" --tol "$tol_fp32" "${subset[@]}" ;;
        gpu_rapids_fp8) verdict "$name" "$impl" "$o" --tol "$tol_fp8" ;;
        *) verdict "$name" "$impl" "$o" --tol "$tol" "${subset[@]}" ;;
      esac
      # Outputs are as large as the input: keep only the reference (E2E_KEEP_OUTPUTS=1 keeps all).
      [ "$impl" != gpu_rapids ] && [ "${E2E_KEEP_OUTPUTS:-0}" != 1 ] && rm -rf "$o"
    done
    # The disk holds one case at a time (case b is 16 GB in, 16 GB per output); E2E_KEEP_DATA=1
    # keeps the data (and the reference) for another run on a warm machine.
    [ "${E2E_KEEP_DATA:-0}" = 1 ] || rm -rf "$d"
  done
  echo "== benchmark summary ($summary; rows: $csv, in-job times: $injob_csv)"
  cat "$summary"
fi
# No leaked device or host buffer in any log (cuDF's leak tracking, E2E_REFCOUNT=true).
check leaks "$out"
exit $failed
