"""Failures that must come back as statuses, never kill the process: C++ exceptions inside the
library, and sticky CUDA errors (reported as SGEMM_CUDA_FATAL). Each case runs in a subprocess,
so that a crash or a dead CUDA context fails one test instead of the run.

    python -m pytest -q native/tests/gpu/test_errors.py

- test_cpp_exceptions_become_statuses needs no GPU and no torch, only a C++ compiler: it
  preloads a replacement operator new that throws on demand (std::bad_alloc, std::runtime_error,
  or an int), so the library's own allocations fail inside real C API calls.
- test_sticky_cuda_error_is_fatal needs a GPU and torch: a call whose x is the bogus device
  address 0x10 makes the kernel fault (cudaErrorIllegalAddress), which poisons the context.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

import sgemm

HERE = pathlib.Path(__file__).resolve().parent

# Throws from operator new while a mode is set: 1 std::bad_alloc (every allocation, so the
# library's handler must report without allocating), 2 std::runtime_error and 3 an int (once
# each: the handler may allocate again).
INJECTOR = r"""
#include <cstdlib>
#include <new>
#include <stdexcept>
static int g_mode = 0;
extern "C" void sgemm_test_inject(int mode) { g_mode = mode; }
void* operator new(std::size_t n) {
  const int mode = g_mode;
  if (mode == 1) throw std::bad_alloc();
  if (mode == 2) { g_mode = 0; throw std::runtime_error("injected runtime_error"); }
  if (mode == 3) { g_mode = 0; throw 42; }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
"""

# In the subprocess: each injection mode around sgemm_workspace_size with a negative size (its
# error message is built in a std::string), then the same call uninjected.
EXCEPTION_CHILD = r"""
import ctypes, json, sys
sys.path.insert(0, sys.argv[1])
import sgemm
inject = ctypes.CDLL(None).sgemm_test_inject
inject.argtypes = [ctypes.c_int]
L = sgemm.lib()
bad = sgemm.RunArgs(int(sgemm.DType.BFLOAT16), None, 0, 8, 8, None, 1, 0, None, -1, None, None, None)
sizes = sgemm.WorkspaceSizes()
out = {}
for mode in (1, 2, 3, 0):
    inject(mode)
    status = L.sgemm_workspace_size(ctypes.byref(bad), ctypes.byref(sizes))
    inject(0)
    out[str(mode)] = [int(status), sgemm.last_error()]
print(json.dumps(out))
"""


def _cxx():
    for cxx in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if cxx and shutil.which(cxx):
            return cxx
    return None


def _run_child(code, *args, env=None, timeout=180):
    proc = subprocess.run([sys.executable, "-c", code, str(HERE), *args], capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, (
        f"the subprocess died (exit {proc.returncode}): a failure escaped as a crash\n"
        f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cpp_exceptions_become_statuses(tmp_path):
    if not sgemm.lib_path().is_file():
        pytest.fail(f"libsegmentgemm.so not found at {sgemm.lib_path()}")
    cxx = _cxx()
    if cxx is None:
        pytest.skip("no C++ compiler to build the operator new injector")
    src = tmp_path / "inject.cpp"
    src.write_text(INJECTOR)
    so = tmp_path / "libinject.so"
    subprocess.run([cxx, "-shared", "-fPIC", "-O1", "-o", str(so), str(src)], check=True)
    env = dict(os.environ, LD_PRELOAD=str(so), SGEMM_LIB=str(sgemm.lib_path()))
    out = _run_child(EXCEPTION_CHILD, env=env)

    internal = int(sgemm.Status.INTERNAL_ERROR)
    assert out["1"][0] == internal, out
    assert re.fullmatch(r"sgemm_workspace_size: out of host memory: .*bad_alloc.*", out["1"][1]), out
    assert out["2"] == [internal, "sgemm_workspace_size: C++ exception: injected runtime_error"], out
    assert out["3"] == [internal, "sgemm_workspace_size: unknown C++ exception"], out
    # The library is still usable: the same call, uninjected, fails for its real reason.
    assert out["0"][0] == int(sgemm.Status.INVALID_ARGUMENT), out
    assert out["0"][1].startswith("negative size: "), out


STICKY_CHILD = r"""
import ctypes, json, os, sys
sys.path.insert(0, sys.argv[1])
import torch
import sgemm
x_rows, d_in, d_out = 4096, 64, 64
w = torch.randn(1, d_in, d_out, device="cuda")
y = torch.empty(x_rows, d_out, device="cuda")
lens = torch.tensor([x_rows], device="cuda", dtype=torch.int64)
h = sgemm.Handle(sgemm.Backend.PORTABLE)
# x at device address 0x10: shapes and segments are valid, so only the kernel's loads can fail.
args = sgemm.make_args(0x10, w, y, seg_lens=lens, x_rows=x_rows, d_in=d_in)
out = []
for step in ("run", "check", "check again"):
    try:
        if step == "run":
            h.run(None, None, None, args=args)
        else:
            h.check()
        out.append([step, 0, "", 0])
    except sgemm.SgemmError as e:
        out.append([step, int(e.status), e.message, sgemm.lib().sgemm_last_cuda_error()])
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)  # the context is dead: skip torch's teardown
"""


def test_sticky_cuda_error_is_fatal():
    torch = pytest.importorskip("torch", reason="torch is not installed: this test needs a GPU")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible to torch (torch.cuda.is_available() is False)")
    out = _run_child(STICKY_CHILD, env=dict(os.environ, SGEMM_LIB=str(sgemm.lib_path())))
    failed = [s for s in out if s[1] != 0]
    assert failed, f"a kernel reading x at address 0x10 reported no error: {out}"
    step, status, message, cuda_error = failed[0]
    assert status == int(sgemm.Status.CUDA_FATAL), out
    # cudaErrorIllegalAddress (700) on current GPUs; cudaErrorLaunchFailure (719) on some.
    names = {700: "cudaErrorIllegalAddress", 719: "cudaErrorLaunchFailure"}
    assert cuda_error in names, out
    assert names[cuda_error] in message and "must be restarted" in message, out
    # Sticky: every later call on the dead context is fatal too, never a plain CUDA_ERROR.
    assert out[-1][1] == int(sgemm.Status.CUDA_FATAL), out
