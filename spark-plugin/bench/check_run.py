#!/usr/bin/env python3
"""Assertions over the logs of e2e.sh's Spark runs (SegmentGemmJob / SegmentGemmDemo), so that a
GPU proof cannot pass on a run that fell back to the CPU, leaked device memory or never retried.
Each check prints one `key=value ...` line (dev/gpu-check's summary reads them) and exits 1 when
it fails.

  check_run.py job LOG --rows N --where gpu|cpu [--plan FUNC] [--executors K] [--assigned-gpu A]
      the job's summary line counts N rows; our executors' lines (SegmentGemmJob.executorLine:
      "  executor ID on HOST: R rows (G on the GPU, C on the CPU), ...") add up to N, all of
      them on the GPU (--where gpu: C = 0) or the CPU; --plan: the physical plan runs FUNC in
      a GpuProject (gpu_FUNC); --executors: at least K executors reported rows; --assigned-gpu:
      Spark assigned GPU A to every executor that did (executors sharing one GPU).
  check_run.py demo LOG --rows N --where gpu|cpu
      the demo's job summary ("[GPU: ..." for every row on the GPU) and its reference check (OK).
  check_run.py leaks PATH...
      no line with cuDF's "LEAKED" (-Dai.rapids.refcount.debug=true logs each leaked buffer) in
      any file under PATH.
  check_run.py retries LOG EVENTLOG_DIR [--metric NAME]
      (LOG names the run) the run met a GPU out-of-memory and recovered through the RAPIDS
      Accelerator's retry framework (our UDF has no retry loop of its own): the task metric NAME
      (gpuRetryCount or gpuSplitAndRetryCount; default: either) > 0 in the Spark event log.
"""
import argparse
import json
import os
import re
import sys

SUMMARY = re.compile(r"^(segment_gemm|lora_apply): ([\d,]+) rows in .*?\[(GPU|CPU|GPU and CPU|no rows seen by the UDF)[:\]]")
EXECUTOR = re.compile(r"^  executor (\S+) on (\S+): ([\d,]+) rows \(([\d,]+) on the GPU, ([\d,]+) on the CPU\)")
RAPIDS_RETRY_METRICS = ("gpuRetryCount", "gpuSplitAndRetryCount")


def num(s):
    return int(s.replace(",", ""))


def read(path):
    with open(path, errors="replace") as f:
        return f.read().splitlines()


def physical_plan(lines):
    """The lines after 'physical plan:' up to the first blank line."""
    out, inside = [], False
    for line in lines:
        if line.startswith("physical plan:"):
            inside = True
            continue
        if inside:
            if not line.strip():
                break
            out.append(line)
    return out


def check_job(lines, rows, where, plan=None, executors=0, assigned_gpu=None):
    """Returns (ok, report line)."""
    problems = []
    summary = [m for m in map(SUMMARY.match, lines) if m]
    if len(summary) != 1:
        problems.append(f"{len(summary)} job summary lines, expected 1")
    total = num(summary[0].group(2)) if summary else -1
    execs = [m for m in map(EXECUTOR.match, lines) if m]
    gpu_rows = sum(num(m.group(4)) for m in execs)
    cpu_rows = sum(num(m.group(5)) for m in execs)
    udf_rows = sum(num(m.group(3)) for m in execs)
    busy = sum(1 for m in execs if num(m.group(3)) > 0)
    if total != rows:
        problems.append(f"the job wrote {total} rows, expected {rows}")
    if udf_rows != rows:
        problems.append(f"our executors report {udf_rows} rows, expected {rows}")
    on, off = (gpu_rows, cpu_rows) if where == "gpu" else (cpu_rows, gpu_rows)
    if on != rows or off != 0:
        problems.append(f"{gpu_rows} rows on the GPU and {cpu_rows} on the CPU, expected all "
                        f"{rows} on the {where.upper()}")
    if busy < executors:
        problems.append(f"{busy} executor(s) reported rows, expected at least {executors}")
    if assigned_gpu is not None:
        lines_of = [l for l in lines if EXECUTOR.match(l) and num(EXECUTOR.match(l).group(3)) > 0]
        other = [l.strip() for l in lines_of
                 if not l.rstrip().endswith(f"(Spark assigned GPU {assigned_gpu})")]
        if other:
            problems.append(f"executors not on GPU {assigned_gpu}: {other}")
    plan_ok = "n/a"
    if plan:
        text = "\n".join(physical_plan(lines))
        plan_ok = "yes" if re.search(rf"GpuProject \[.*gpu_{plan}\(", text) else "no"
        if plan_ok == "no":
            problems.append(f"the physical plan has no GpuProject running gpu_{plan}")
    report = (f"rows={total} udfRows={udf_rows} gpuRows={gpu_rows} cpuRows={cpu_rows} "
              f"executors={busy} gpuProject={plan_ok}")
    return not problems, report + ("" if not problems else " FAIL: " + "; ".join(problems))


def check_demo(lines, rows, where):
    problems = []
    summary = [m for m in map(SUMMARY.match, lines) if m]
    total = num(summary[0].group(2)) if summary else -1
    ran = summary[0].group(3) if summary else "?"
    if total != rows:
        problems.append(f"the demo's job wrote {total} rows, expected {rows}")
    if ran != where.upper():
        problems.append(f"its rows ran on: {ran}, expected all on the {where.upper()}")
    checked = [l for l in lines if l.startswith("checked ") and "double-precision reference" in l]
    ok = "yes" if checked and checked[-1].rstrip().endswith(": OK") else "no"
    if ok == "no":
        problems.append("no 'checked ... OK' line from the reference check")
    report = f"rows={total} ranOn={ran} referenceOK={ok}"
    return not problems, report + ("" if not problems else " FAIL: " + "; ".join(problems))


def files_under(paths):
    for p in paths:
        if os.path.isdir(p):
            for root, _, names in os.walk(p):
                for n in sorted(names):
                    yield os.path.join(root, n)
        elif os.path.isfile(p):
            yield p


def check_leaks(paths):
    leaked, files = 0, 0
    first = []
    for path in files_under(paths):
        files += 1
        with open(path, "rb") as f:
            for line in f:
                if b"LEAKED" in line:
                    leaked += 1
                    if len(first) < 5:
                        first.append(f"{path}: {line.decode(errors='replace').strip()[:200]}")
    report = f"leaked={leaked} filesScanned={files}"
    return leaked == 0, report + ("" if not leaked else " FAIL: " + " | ".join(first))


def event_metrics(event_dir, names):
    """Sums of the named task accumulators over every SparkListenerTaskEnd in the event logs."""
    sums = {n: 0 for n in names}
    for path in files_under([event_dir]):
        with open(path, errors="replace") as f:
            for line in f:
                if '"SparkListenerTaskEnd"' not in line:
                    continue
                ev = json.loads(line)
                for acc in ev.get("Task Info", {}).get("Accumulables", []):
                    if acc.get("Name") in sums and isinstance(acc.get("Update"), (int, str)):
                        sums[acc["Name"]] += int(acc["Update"])
    return sums


def check_retries(event_dir, metric=None):
    rapids = event_metrics(event_dir, RAPIDS_RETRY_METRICS) if event_dir else {}
    report = " ".join(f"{k}={v}" for k, v in rapids.items())
    ok = rapids.get(metric, 0) > 0 if metric else any(v > 0 for v in rapids.values())
    wanted = metric or "a retry or split"
    return ok, report + ("" if ok else f" FAIL: no {wanted} after a GPU out-of-memory")


def main(argv=None):
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    j = sub.add_parser("job")
    j.add_argument("log")
    j.add_argument("--rows", type=int, required=True)
    j.add_argument("--where", choices=["gpu", "cpu"], required=True)
    j.add_argument("--plan")
    j.add_argument("--executors", type=int, default=0)
    j.add_argument("--assigned-gpu")
    d = sub.add_parser("demo")
    d.add_argument("log")
    d.add_argument("--rows", type=int, required=True)
    d.add_argument("--where", choices=["gpu", "cpu"], required=True)
    l = sub.add_parser("leaks")
    l.add_argument("paths", nargs="+")
    r = sub.add_parser("retries")
    r.add_argument("log")
    r.add_argument("event_dir")
    r.add_argument("--metric", choices=RAPIDS_RETRY_METRICS)
    a = p.parse_args(argv)
    if a.cmd == "job":
        ok, report = check_job(read(a.log), a.rows, a.where, a.plan, a.executors, a.assigned_gpu)
    elif a.cmd == "demo":
        ok, report = check_demo(read(a.log), a.rows, a.where)
    elif a.cmd == "leaks":
        ok, report = check_leaks(a.paths)
    else:
        ok, report = check_retries(a.event_dir, a.metric)
    name = os.path.basename(getattr(a, "log", "") or "logs")
    print(f"check {a.cmd} {name}: {'PASS' if ok else 'FAIL'} {report}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
