#!/usr/bin/env bash
# The I/O floor before and after the job's own Parquet settings (issue 14: "the floor itself
# raised by whatever the job can set for its own reads and writes, measured before and after"):
# e2e.sh's bench step on case a with gpu_rapids and io_floor only, once per setting, on the same
# data (generated once, deleted after the last setting unless E2E_KEEP_DATA=1). From the
# repository root, as e2e.sh:
#   spark-plugin/bench/floor_sweep.sh STAGE WORK OUT
# E2E_SWEEP: the settings, separated by '|', each a space-separated list of KEY=VALUE confs given
# to both runs (E2E_FLOOR_CONFS); an empty setting is the defaults. Default: the defaults; an
# uncompressed output; the RAPIDS Accelerator's multithreaded Parquet reader with 32 threads; 4
# concurrent GPU tasks instead of e2e.sh's 2; its asynchronous output write; its reader without
# chunking; all but the last together. Each setting's rows carry its tag in the case name
# (..._codec-none, ...). Other E2E_* variables pass through (E2E_A_ROWS, E2E_HEAP, E2E_GPU, ...);
# E2E_A_SLICE defaults to 1000 here (no CPU run needs the slice).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
codec=spark.sql.parquet.compression.codec=none
reader="spark.rapids.sql.format.parquet.reader.type=MULTITHREADED spark.rapids.sql.multiThreadedRead.numThreads=32"
tasks=spark.rapids.sql.concurrentGpuTasks=4
async=spark.rapids.sql.asyncWrite.queryOutput.enabled=true
sweep=${E2E_SWEEP-"|$codec|$reader|$tasks|$async|spark.rapids.sql.reader.chunked=false|$codec $reader $tasks $async"}
IFS='|' read -ra settings <<< "$sweep"
[ "${sweep: -1}" = '|' ] && settings+=("")  # read drops a trailing empty field
last=$(( ${#settings[@]} - 1 )); rc=0
for i in "${!settings[@]}"; do
  keep=1; [ "$i" = "$last" ] && keep=${E2E_KEEP_DATA:-0}
  echo "== floor sweep $((i + 1))/${#settings[@]}: '${settings[$i]}'"
  E2E_CASES=a E2E_IMPLS="gpu_rapids io_floor" E2E_A_SLICE=${E2E_A_SLICE:-1000} \
    E2E_KEEP_DATA=$keep E2E_FLOOR_CONFS="${settings[$i]}" \
    bash "$here/e2e.sh" "$1" "$2" "$3" bench || rc=1
done
exit $rc
