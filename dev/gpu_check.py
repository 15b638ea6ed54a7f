#!/usr/bin/env python3
"""dev/gpu-check's verdicts on its steps' outputs; each prints one line `PASS|FAIL key=value ...`
and exits 1 on FAIL.

  gpu_check.py junit CONSOLE_LOG REPORTS_DIR   JUnit console summaries (one per module JVM) and
      the XML reports: tests found > 0 in every module, none failed, no container failed or
      aborted, and every skipped or aborted test on ALLOWED_JUNIT_SKIPS.
  gpu_check.py pytest JUNIT_XML                pytest's report: tests ran, none failed or errored,
      every skip on ALLOWED_PYTEST_SKIPS.
  gpu_check.py sanitizer LOG                   compute-sanitizer's "ERROR SUMMARY: N errors" (and
      racecheck's "RACECHECK SUMMARY: ... (E errors, W warnings)") lines: present and all 0.
  gpu_check.py notebook EXECUTED_IPYNB --where gpu|cpu
      notebooks/01_quickstart.ipynb as dev/gpu-notebook executed it, from its outputs: every
      code cell ran, none raised; the session cell says GPU True (gpu) or False (cpu); SQL ==
      DataFrame API; both numpy checks within their tolerance (worst <= 1); our metrics' executor
      lines count rows > 0, all of them on the GPU (gpu: GPU rows = rows, CPU rows 0, device
      "GPU ...") or all on the CPU (cpu); no "LEAKED" in any output.
"""
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

# Tests that skip by their own assumption on a GPU machine, with why; any other skip fails.
ALLOWED_JUNIT_SKIPS = {
    "com.sparksegmentgemm.nativelib.NativeLibTest.noGpuIsAClearErrorNotACrash":
        "covers machines without a GPU (assumeFalse(Gpu.isAvailable()))",
    "com.sparksegmentgemm.nativelib.NativeErrorsTest.cudaErrorCodeTravelsThroughJni":
        "needs a machine without a GPU, where a call fails before any device work",
}
ALLOWED_PYTEST_SKIPS = {
    "test_segment_gemm.py::test_sm90_refused_on_this_device":
        "covers devices that cannot run SM90 (skipif IS_SM90)",
}

JUNIT_LINE = re.compile(r"^\[\s*(\d+) (containers|tests) (found|skipped|started|aborted|successful|failed)\s*\]")


def junit_summaries(text):
    """One dict per console summary: {'tests found': n, 'containers failed': n, ...}."""
    out, cur = [], None
    for line in text.splitlines():
        m = JUNIT_LINE.match(line.strip())
        if not m:
            continue
        key = f"{m.group(2)} {m.group(3)}"
        if cur is None or key in cur:  # a new summary starts
            cur = {}
            out.append(cur)
        cur[key] = int(m.group(1))
    return out


def junit_skipped(reports_dir):
    """(class.method, message) of every test the XML reports mark skipped (JUnit's legacy XML
    lists aborted tests, i.e. failed assumptions, as skipped too)."""
    skipped = []
    for root, _, names in os.walk(reports_dir):
        for n in names:
            if not (n.startswith("TEST-") and n.endswith(".xml")):
                continue
            for case in ET.parse(os.path.join(root, n)).iter("testcase"):
                s = case.find("skipped")
                if s is not None:
                    method = case.get("name", "").split("(")[0]
                    skipped.append((f"{case.get('classname')}.{method}", s.get("message") or (s.text or "").strip()))
    return skipped


def check_junit(console_text, reports_dir):
    sums = junit_summaries(console_text)
    problems = []
    if not sums:
        problems.append("no JUnit summary found (did a JVM start?)")
    total = {k: sum(s.get(k, 0) for s in sums) for k in
             ("tests found", "tests successful", "tests failed", "tests skipped", "tests aborted",
              "containers failed", "containers aborted")}
    for i, s in enumerate(sums):
        if s.get("tests found", 0) == 0:
            problems.append(f"JVM {i + 1}: 0 tests found")
    if total["tests failed"]:
        problems.append(f"{total['tests failed']} tests failed")
    if total["containers failed"] or total["containers aborted"]:
        problems.append(f"{total['containers failed']} containers failed, "
                        f"{total['containers aborted']} aborted")
    skipped = junit_skipped(reports_dir) if os.path.isdir(reports_dir) else []
    not_run = total["tests skipped"] + total["tests aborted"]
    unexpected = [f"{t} ({why})" for t, why in skipped if t not in ALLOWED_JUNIT_SKIPS]
    if len(skipped) < not_run:
        problems.append(f"{not_run} tests skipped or aborted but the XML reports list "
                        f"{len(skipped)}: cannot check them against the allow-list")
    if unexpected:
        problems.append("skipped, not on the allow-list: " + "; ".join(unexpected))
    report = (f"found={total['tests found']} succeeded={total['tests successful']} "
              f"failed={total['tests failed']} skipped={not_run} "
              f"(allowed: {sum(1 for t, _ in skipped if t in ALLOWED_JUNIT_SKIPS)}) jvms={len(sums)}")
    return not problems, report + ("" if not problems else " -- " + " | ".join(problems))


def check_pytest(xml_path):
    if not os.path.isfile(xml_path):
        return False, f"FAIL: no pytest report at {xml_path}"
    root = ET.parse(xml_path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    skipped, unexpected = 0, []
    for case in root.iter("testcase"):
        s = case.find("skipped")
        if s is None:
            continue
        skipped += 1
        module = case.get("classname", "").split(".")[-1]
        name = f"{module}.py::{case.get('name', '').split('[')[0]}"
        if name not in ALLOWED_PYTEST_SKIPS:
            unexpected.append(f"{name}[{case.get('name', '').partition('[')[2]} ({s.get('message', '')[:120]})")
    passed = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
    problems = []
    if n["tests"] == 0:
        problems.append("0 tests")
    if n["failures"] or n["errors"]:
        problems.append(f"{n['failures']} failed, {n['errors']} errors")
    if unexpected:
        problems.append("skipped, not on the allow-list: " + "; ".join(unexpected[:10]))
    report = (f"passed={passed} failed={n['failures']} errors={n['errors']} skipped={n['skipped']} "
              f"(allowed: {skipped - len(unexpected)})")
    return not problems, report + ("" if not problems else " -- " + " | ".join(problems))


ERROR_SUMMARY = re.compile(r"ERROR SUMMARY: (\d+) errors?")
RACECHECK_SUMMARY = re.compile(r"RACECHECK SUMMARY: (\d+) hazards? displayed \((\d+) errors?, (\d+) warnings?\)")


def check_sanitizer(text):
    errors = [int(m.group(1)) for m in ERROR_SUMMARY.finditer(text)]
    races = [(int(m.group(2)), int(m.group(3))) for m in RACECHECK_SUMMARY.finditer(text)]
    total = sum(errors) + sum(e for e, _ in races)
    warnings = sum(w for _, w in races)
    problems = []
    if not errors and not races:
        problems.append("no ERROR SUMMARY line: the sanitizer did not finish")
    if total:
        problems.append(f"{total} errors")
    report = f"errors={total} hazardWarnings={warnings} summaries={len(errors) + len(races)}"
    return not problems, report + ("" if not problems else " -- " + " | ".join(problems))


NB_SESSION = re.compile(r"^jar: .* \| GPU: (True|False)$", re.M)
NB_SQL_DF = re.compile(r"^(\d+) rows; SQL == DataFrame API: (True|False)$", re.M)
NB_BF16 = re.compile(r"^worst error: ([\d.]+|nan|inf) of the bfloat16 tolerance$", re.M)
NB_LORA = re.compile(r"^lora_apply, float32: worst error ([\d.]+|nan|inf) of the tolerance$", re.M)
NB_EXECUTOR = re.compile(r"^executor (\S+): (.*); rows (\d+), GPU rows (\d+), CPU rows (\d+)$", re.M)


def notebook_outputs(nb):
    """(code cells, code cells that ran, all output text, error outputs' 'ename: evalue')."""
    cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    ran = sum(1 for c in cells if c.get("execution_count") is not None)
    texts, errors = [], []
    for c in cells:
        for o in c.get("outputs", []):
            if o.get("output_type") == "stream":
                t = o.get("text", "")
                texts.append(t if isinstance(t, str) else "".join(t))
            elif o.get("output_type") in ("execute_result", "display_data"):
                t = o.get("data", {}).get("text/plain", "")
                texts.append(t if isinstance(t, str) else "".join(t))
            elif o.get("output_type") == "error":
                errors.append(f"{o.get('ename')}: {o.get('evalue')}"[:300])
    return len(cells), ran, "\n".join(texts), errors


def check_notebook(nb, where):
    cells, ran, text, errors = notebook_outputs(nb)
    problems = []
    if cells == 0 or ran < cells:
        problems.append(f"{ran} of {cells} code cells ran")
    if errors:
        problems.append("a cell raised: " + "; ".join(errors))
    s = NB_SESSION.search(text)
    want = "True" if where == "gpu" else "False"
    if not s:
        problems.append("no 'jar: ... | GPU: ...' line from the session cell")
    elif s.group(1) != want:
        problems.append(f"the session cell says GPU: {s.group(1)}, expected {want}")
    q = NB_SQL_DF.search(text)
    if not q or q.group(2) != "True":
        problems.append("no 'SQL == DataFrame API: True' line")
    worst = {}
    for name, rx in (("worstBf16", NB_BF16), ("worstLoraFp32", NB_LORA)):
        m = rx.search(text)
        if not m:
            problems.append(f"no {name} line (the numpy comparison did not print)")
            continue
        worst[name] = float(m.group(1))
        if not worst[name] <= 1:
            problems.append(f"{name} {m.group(1)} > 1 (outside the tolerance)")
    execs = NB_EXECUTOR.findall(text)
    rows = sum(int(e[2]) for e in execs)
    gpu_rows = sum(int(e[3]) for e in execs)
    cpu_rows = sum(int(e[4]) for e in execs)
    devices = sorted({e[1] for e in execs})
    if not execs:
        problems.append("no executor line from our metrics")
    elif rows == 0:
        problems.append("our metrics count 0 rows")
    elif where == "gpu":
        if gpu_rows != rows or cpu_rows != 0:
            problems.append(f"{cpu_rows} of {rows} rows ran on the CPU ({gpu_rows} on the GPU)")
        if not all(d.startswith("GPU") for d in devices):
            problems.append(f"executor device {devices}, not a GPU")
    elif cpu_rows != rows or gpu_rows != 0:
        problems.append(f"{gpu_rows} of {rows} rows on the GPU, expected all on the CPU")
    if "LEAKED" in text:
        problems.append("LEAKED in the notebook's outputs")
    report = (f"where={where} executors={len(execs)} rows={rows} gpuRows={gpu_rows} "
              f"cpuRows={cpu_rows} device={'/'.join(devices) or '-'} "
              f"sqlEqualsDf={'yes' if q and q.group(2) == 'True' else 'no'} "
              + " ".join(f"{k}={v:.3f}" for k, v in worst.items())
              + f" cells={ran}/{cells}")
    return not problems, report + ("" if not problems else " -- " + " | ".join(problems))


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "junit":
        with open(args[0], errors="replace") as f:
            ok, report = check_junit(f.read(), args[1])
    elif cmd == "pytest":
        ok, report = check_pytest(args[0])
    elif cmd == "notebook":
        if len(args) != 3 or args[1] != "--where" or args[2] not in ("gpu", "cpu"):
            print(__doc__, file=sys.stderr)
            return 2
        if not os.path.isfile(args[0]):
            ok, report = False, f"no executed notebook at {args[0]}"
        else:
            with open(args[0], encoding="utf-8") as f:
                ok, report = check_notebook(json.load(f), args[2])
    elif cmd == "sanitizer":
        with open(args[0], errors="replace") as f:
            ok, report = check_sanitizer(f.read())
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(f"{'PASS' if ok else 'FAIL'} {report}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
