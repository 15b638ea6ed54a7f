"""CPU tests of dev/gpu-check's verdicts (dev/gpu_check.py, spark-plugin/bench/check_run.py,
compare_outputs.py --exact): python -m pytest dev/tests (numpy and pyarrow for the last)."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "../../spark-plugin/bench")]
import check_run  # noqa: E402
import gpu_check  # noqa: E402

JOB = """physical plan:
GpuColumnarToRow false
+- GpuProject [id#0L, adapter_id#1, gpu_segment_gemm(adapter_id#1, features#2) AS output#4], true
   +- GpuFileGpuScan parquet [id#0L,adapter_id#1,features#2] Batched: true

segment_gemm: 200,000 rows in 3.10 s, 64,516 rows/s, 0.066 GB/s of features (d_in 256) [GPU: UDF busy 1.00 s] -> /o
  executor driver on host1: 200,000 rows (200,000 on the GPU, 0 on the CPU), 8 batches, 8 native calls; GPU 0
"""


def test_job_all_on_the_gpu_with_the_plan():
    ok, report = check_run.check_job(JOB.splitlines(), 200000, "gpu", "segment_gemm")
    assert ok, report
    assert "gpuRows=200000 cpuRows=0" in report and "gpuProject=yes" in report


def test_job_with_cpu_rows_or_wrong_plan_or_count_fails():
    cpu = JOB.replace("(200,000 on the GPU, 0 on the CPU)", "(199,000 on the GPU, 1,000 on the CPU)")
    assert not check_run.check_job(cpu.splitlines(), 200000, "gpu")[0]
    assert not check_run.check_job(JOB.splitlines(), 200000, "gpu", "lora_apply")[0]
    assert not check_run.check_job(JOB.splitlines(), 100000, "gpu")[0]
    assert not check_run.check_job(JOB.splitlines(), 200000, "cpu")[0]
    no_exec = "\n".join(l for l in JOB.splitlines() if "executor" not in l)
    assert not check_run.check_job(no_exec.splitlines(), 200000, "gpu")[0]


def test_shared_gpu_needs_two_executors_on_the_same_gpu():
    two = JOB.replace("  executor driver on host1: 200,000 rows (200,000 on the GPU, 0 on the CPU), 8 batches, 8 native calls; GPU 0",
                      "  executor 0 on h: 120,000 rows (120,000 on the GPU, 0 on the CPU), 5 batches, 5 native calls; GPU 0 (Spark assigned GPU 0)\n"
                      "  executor 1 on h: 80,000 rows (80,000 on the GPU, 0 on the CPU), 3 batches, 3 native calls; GPU 0 (Spark assigned GPU 0)")
    assert check_run.check_job(two.splitlines(), 200000, "gpu", executors=2, assigned_gpu="0")[0]
    assert not check_run.check_job(two.splitlines(), 200000, "gpu", executors=3)[0]
    other = two.replace("GPU 0 (Spark assigned GPU 0)\n", "GPU 1 (Spark assigned GPU 1)\n", 1)
    assert not check_run.check_job(other.splitlines(), 200000, "gpu", assigned_gpu="0")[0]


def test_demo_and_leaks_and_retries(tmp_path):
    demo = ("segment_gemm: 200,000 rows in 3.1 s, 1 rows/s, 0.1 GB/s of features (d_in 256) [GPU: x] -> o\n"
            "checked 16 rows against a double-precision reference: worst error 1.00e-01 of the tolerance bound (bfloat16: 1e-02 x sum|x_k w_k|): OK")
    assert check_run.check_demo(demo.splitlines(), 200000, "gpu")[0]
    assert not check_run.check_demo(demo.replace("[GPU:", "[CPU:").splitlines(), 200000, "gpu")[0]
    assert not check_run.check_demo(demo.replace(": OK", ": FAILED").splitlines(), 200000, "gpu")[0]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.log").write_text("fine\n")
    assert check_run.check_leaks([str(tmp_path)])[0]
    (tmp_path / "a" / "y.log").write_text("ERROR A DEVICE BUFFER WAS LEAKED (ID: 7)\n")
    ok, report = check_run.check_leaks([str(tmp_path)])
    assert not ok and "leaked=1" in report
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "app").write_text('{"Event":"SparkListenerTaskEnd","Task Info":{"Accumulables":'
                            '[{"Name":"gpuSplitAndRetryCount","Update":"2"}]}}\n')
    assert check_run.check_retries(str(ev))[0]
    assert check_run.check_retries(str(ev), "gpuSplitAndRetryCount")[0]
    ok, report = check_run.check_retries(str(ev), "gpuRetryCount")
    assert not ok and "no gpuRetryCount" in report
    assert not check_run.check_retries(str(tmp_path / "a"))[0]


CONSOLE = """== native
[         4 containers found      ]
[         0 containers skipped    ]
[         4 containers started    ]
[         0 containers aborted    ]
[         4 containers successful ]
[         0 containers failed     ]
[         6 tests found           ]
[         0 tests skipped         ]
[         6 tests started         ]
[         1 tests aborted         ]
[         5 tests successful      ]
[         0 tests failed          ]
"""


def reports(tmp_path, skipped):
    d = tmp_path / "reports" / "native"
    d.mkdir(parents=True)
    cases = "".join(f'<testcase name="{m}()" classname="{c}"><skipped message="why"/></testcase>'
                    for c, m in skipped)
    (d / "TEST-junit-jupiter.xml").write_text(f"<testsuite>{cases}<testcase name=\"t()\" classname=\"X\"/></testsuite>")
    return str(tmp_path / "reports")


def test_junit_allowed_skip_passes_other_skips_fail(tmp_path):
    ok, report = gpu_check.check_junit(CONSOLE, reports(tmp_path / "a", [
        ("com.sparksegmentgemm.nativelib.NativeLibTest", "noGpuIsAClearErrorNotACrash")]))
    assert ok, report
    ok, report = gpu_check.check_junit(CONSOLE, reports(tmp_path / "b", [
        ("com.sparksegmentgemm.nativelib.NativeLibTest", "gpuIsQueried")]))
    assert not ok and "gpuIsQueried" in report
    # An aborted test the XML does not list cannot be checked: a failure.
    assert not gpu_check.check_junit(CONSOLE, str(tmp_path / "none"))[0]


def test_junit_zero_tests_or_failures_fail(tmp_path):
    d = reports(tmp_path, [("com.sparksegmentgemm.nativelib.NativeLibTest", "noGpuIsAClearErrorNotACrash")])
    assert not gpu_check.check_junit(CONSOLE + CONSOLE.replace("6 tests found", "0 tests found"), d)[0]
    assert not gpu_check.check_junit(CONSOLE.replace("0 tests failed", "2 tests failed"), d)[0]
    assert not gpu_check.check_junit("", d)[0]


def test_pytest_report(tmp_path):
    xml = tmp_path / "p.xml"
    xml.write_text('<testsuites><testsuite tests="3" failures="0" errors="0" skipped="1">'
                   '<testcase classname="native.tests.gpu.test_segment_gemm" name="test_a"/>'
                   '<testcase classname="native.tests.gpu.test_segment_gemm" name="test_b[x]"/>'
                   '<testcase classname="native.tests.gpu.test_segment_gemm" name="test_sm90_refused_on_this_device">'
                   '<skipped message="this device can run SM90"/></testcase></testsuite></testsuites>')
    ok, report = gpu_check.check_pytest(str(xml))
    assert ok and "passed=2" in report, report
    xml.write_text(xml.read_text().replace("test_sm90_refused_on_this_device", "test_other"))
    assert not gpu_check.check_pytest(str(xml))[0]


def test_sanitizer_summaries():
    assert gpu_check.check_sanitizer("========= ERROR SUMMARY: 0 errors\n")[0]
    assert not gpu_check.check_sanitizer("========= ERROR SUMMARY: 3 errors\n")[0]
    assert not gpu_check.check_sanitizer("killed\n")[0]
    race = "========= RACECHECK SUMMARY: 2 hazards displayed (1 error, 1 warning)\n"
    assert not gpu_check.check_sanitizer(race)[0]


def test_compare_outputs_exact(tmp_path):
    np = pytest.importorskip("numpy")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")

    def write(name, rows):
        d = tmp_path / name
        d.mkdir()
        pq.write_table(pa.table({"id": pa.array([3, 1, 2], pa.int64()),
                                 "output": pa.array(rows, pa.list_(pa.float32()))}), d / "p.parquet")
        return str(d)

    a = write("a", [[1.0, 2.0], None, [float("nan"), 0.0]])
    b = write("b", [[1.0, 2.0], None, [float("nan"), 0.0]])
    c = write("c", [[1.0, np.nextafter(np.float32(2), np.float32(3))], None, [float("nan"), -0.0]])
    cmp = os.path.join(HERE, "../../spark-plugin/bench/compare_outputs.py")
    run = lambda *args: subprocess.run([sys.executable, cmp, *args], capture_output=True, text=True)
    r = run(a, b, "--exact")
    assert r.returncode == 0 and "bit-identical: yes" in r.stdout, r.stdout + r.stderr
    r = run(a, c, "--exact")
    assert r.returncode == 1 and "bit-identical: no (2 values differ)" in r.stdout, r.stdout
    assert run(a, c, "--tol", "1e-2").returncode == 0


def _notebook(gpu=True, cpu_rows=0, error=None, extra=""):
    """An executed quickstart as dev/gpu-notebook keeps it: the lines gpu_check.py reads."""
    rows = 20504
    outs = [
        f"jar: /s/app/segment-gemm-spark-plugin-0.1.0-all.jar | GPU: {gpu}\n",
        "10000 rows; SQL == DataFrame API: True\n",
        "worst error: 0.145 of the bfloat16 tolerance\n",
        "lora_apply, float32: worst error 0.003 of the tolerance\n",
        f"executor driver: {'GPU 0' if gpu else 'CPU'}; rows {rows}, GPU rows {rows - cpu_rows}, "
        f"CPU rows {cpu_rows}\n" + extra,
    ]
    cells = [{"cell_type": "code", "execution_count": i + 1,
              "outputs": [{"output_type": "stream", "name": "stdout", "text": t}]}
             for i, t in enumerate(outs)]
    cells.insert(0, {"cell_type": "markdown", "source": "# quickstart"})
    if error:
        cells[-1]["outputs"].append({"output_type": "error", "ename": "AssertionError", "evalue": error})
    return {"cells": cells}


def test_notebook_every_row_on_the_gpu_passes(tmp_path):
    ok, report = gpu_check.check_notebook(_notebook(), "gpu")
    assert ok, report
    assert "rows=20504 gpuRows=20504 cpuRows=0 device=GPU 0" in report and "cells=5/5" in report
    p = tmp_path / "nb.ipynb"
    p.write_text(__import__("json").dumps(_notebook()))
    run = subprocess.run([sys.executable, os.path.join(HERE, "..", "gpu_check.py"), "notebook", str(p),
                          "--where", "gpu"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith("PASS"), run.stdout
    # The CPU dry run: every row on the CPU, the session without the GPU.
    assert gpu_check.check_notebook(_notebook(gpu=False, cpu_rows=20504), "cpu")[0]


def test_notebook_on_the_cpu_or_failing_or_leaking_fails():
    # A notebook that silently ran on the CPU fails the GPU check, whatever else it printed.
    cpu = _notebook(gpu=False, cpu_rows=20504)
    ok, report = gpu_check.check_notebook(cpu, "gpu")
    assert not ok and "20504 of 20504 rows ran on the CPU" in report
    assert not gpu_check.check_notebook(_notebook(cpu_rows=1), "gpu")[0]
    assert not gpu_check.check_notebook(_notebook(), "cpu")[0]
    assert not gpu_check.check_notebook(_notebook(error="20504 of 20504 rows ran on the CPU"), "gpu")[0]
    assert not gpu_check.check_notebook(_notebook(extra="A DEVICE BUFFER WAS LEAKED\n"), "gpu")[0]
    unran = _notebook()
    unran["cells"][-1]["execution_count"] = None
    assert "4 of 5 code cells ran" in gpu_check.check_notebook(unran, "gpu")[1]
    bad = _notebook()
    bad["cells"][3]["outputs"][0]["text"] = "worst error: 1.500 of the bfloat16 tolerance\n"
    assert "worstBf16 1.500 > 1" in gpu_check.check_notebook(bad, "gpu")[1]
    no_metrics = _notebook()
    no_metrics["cells"].pop()
    assert "no executor line" in gpu_check.check_notebook(no_metrics, "gpu")[1]
