#!/usr/bin/env python3
"""Benchmark of libsegmentgemm against the other ways to run a segment GEMM, in one process.

    python native/tests/gpu/bench_kernels.py --csv $OUT/bench.csv --md $OUT/bench.md
    python native/tests/gpu/bench_kernels.py --cases S3,S5 --dtypes bf16 --skip flashinfer
    python native/tests/gpu/bench_kernels.py --selftest      # no GPU needed: checks the cuBLAS
                                                             # row-major mapping on the CPU

Cases (segments x rows, d_in x d_out, distinct weights):
  S1  64 x 128,  4096 x 4096, 64 weights (segment i uses weight i)
  S2  64 x 128,  4096 x 16,   64 weights (LoRA shrink)
  S3  1024 x 8,  4096 x 4096, 32 weights shared through weight_indices (random assignment)
  S4  8 x 8192,  4096 x 4096, 8 weights
  S5  the FlashInfer documentation example: lengths 1,2,3,4, 128 x 256, 4 column-major weights
Impls:
  ours               libsegmentgemm, AUTO backend (its describe_plan string is printed)
  ours_sm90          libsegmentgemm, SM90 backend forced (where AUTO picks another kernel, e.g.
                     the small-call kernel for S5, this shows what the tensor cores would take)
  ours_sm80          libsegmentgemm, SM80 backend forced
  torch_grouped_mm   torch._grouped_mm(x, W gathered per segment, offs=int32 cumsum); the gather
                     (W[weight_indices]) is done once before timing and NOT included
  torch_loop         one torch.matmul per segment (host loop included: that is its cost)
  cublas_grouped     cublasGemmGroupedBatchedEx (the libcublas torch loaded), one group per
                     segment length, device pointer arrays built before timing
  flashinfer         flashinfer.SegmentGEMMWrapper (128 MB workspace), measured after all the
                     others (its first run JIT-compiles for ~80 s; a failure is recorded)
  dense              one torch.matmul of all rows with one weight: the roofline anchor
Every impl gets seg_indptr (not seg_lens) where it takes segment data.

Timing: CUDA events around each call on a dedicated stream, after warm-up; a GPU sleep queued
ahead of the timed calls lets the host run ahead, so the events measure device time (host-bound
impls such as torch_loop still show their launch gaps). Median over --reps. When a case's
inputs fit in L2 (x2), several copies of them are rotated so each call reads cold inputs.
Before timing, each impl's output is checked against an fp32 reference (rel = ||y-ref||/||ref||,
plus the per-element rule of the tests).
CSV columns: date,device,case,dtype,impl,time_us,tflops (FLOPs = 2*rows*d_in*d_out); rows are
appended, the header written only to a new file.
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import datetime
import math
import os
import signal
import statistics
import sys
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sgemm  # noqa: E402

CASES = {
    "S1": dict(lens=[128] * 64, d_in=4096, d_out=4096, nw=64, shared=False, col_major=False,
               desc="64x128, 4096x4096, 64 weights"),
    "S2": dict(lens=[128] * 64, d_in=4096, d_out=16, nw=64, shared=False, col_major=False,
               desc="64x128, 4096x16, 64 weights (LoRA shrink)"),
    "S3": dict(lens=[8] * 1024, d_in=4096, d_out=4096, nw=32, shared=True, col_major=False,
               desc="1024x8, 4096x4096, 32 shared weights"),
    "S4": dict(lens=[8192] * 8, d_in=4096, d_out=4096, nw=8, shared=False, col_major=False,
               desc="8x8192, 4096x4096, 8 weights"),
    "S5": dict(lens=[1, 2, 3, 4], d_in=128, d_out=256, nw=4, shared=False, col_major=True,
               desc="doc example: 1,2,3,4 rows, 128x256, 4 col-major weights"),
}
IMPLS = ["ours", "ours_sm90", "ours_sm80", "torch_grouped_mm", "torch_loop", "cublas_grouped", "dense",
         "flashinfer"]
DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16"}


class Unavailable(Exception):
    """An impl that cannot run here; the message says why."""


# --- cuBLAS grouped GEMM -------------------------------------------------------------------------
# cublas_api.h (cuBLAS 12.5+, CUDA 13.0 wheel nvidia/cu13/include/cublas_api.h):
#   cublasStatus_t cublasGemmGroupedBatchedEx(cublasHandle_t handle,
#       const cublasOperation_t transa_array[], const cublasOperation_t transb_array[],
#       const int m_array[], const int n_array[], const int k_array[],
#       const void* alpha_array, const void* const Aarray[], cudaDataType_t Atype,
#       const int lda_array[], const void* const Barray[], cudaDataType_t Btype,
#       const int ldb_array[], const void* beta_array, void* const Carray[],
#       cudaDataType_t Ctype, const int ldc_array[], int group_count, const int group_size[],
#       cublasComputeType_t computeType);
# Per-group arrays (trans, m, n, k, ld, alpha, beta, group_size) are host arrays; Aarray/Barray/
# Carray are device arrays of device pointers, group after group (cuBLAS docs,
# "cublasGemmGroupedBatchedEx"; NVIDIA CUDALibrarySamples cuBLAS/Extensions/GemmGroupedBatchedEx).
# Alpha/beta are float for CUBLAS_COMPUTE_32F (pointer mode host, the default).
CUBLAS_OP_N, CUBLAS_OP_T = 0, 1                        # cublas_api.h
CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF = 0, 2, 14         # library_types.h
CUBLAS_COMPUTE_32F = 68                                # cublas_api.h


def cublas_problems(indptr, widx, d_in, d_out, col_major):
    """The column-major view of the row-major segment GEMM, for cuBLAS.

    Row-major y_s (n x d_out) = x_s (n x d_in) @ W (d_in x d_out) is, read column-major,
    y_s^T (d_out x n) = W^T (d_out x d_in) . x_s^T (d_in x n):
      A = W^T: a row-major (d_in, d_out) W is a column-major d_out x d_in matrix, ld d_out, op N;
               a row-major (d_out, d_in) W (weight_column_major) is column-major d_in x d_out,
               so op T with ld d_in;
      B = x_s^T: column-major d_in x n, ld d_in, op N;  C = y_s^T: d_out x n, ld d_out.
    Returns groups [(transa, m, n, k, lda, ldb, ldc, [(a_off, b_off, c_off), ...])] with one group
    per segment length (zero-length segments dropped); offsets are in elements.
    """
    by_len = {}
    for i in range(len(indptr) - 1):
        s, e = int(indptr[i]), int(indptr[i + 1])
        if e > s:
            w = int(widx[i]) if widx is not None else i
            by_len.setdefault(e - s, []).append((w * d_in * d_out, s * d_in, s * d_out))
    transa, lda = (CUBLAS_OP_T, d_in) if col_major else (CUBLAS_OP_N, d_out)
    return [(transa, d_out, n, d_in, lda, d_in, d_out, probs) for n, probs in sorted(by_len.items())]


def emulate_colmajor_gemm(transa, m, n, k, A, a_off, lda, B, b_off, ldb, C, c_off, ldc):
    """C = op(A) . B on flat buffers, column-major, as cuBLAS defines it (for --selftest)."""
    for j in range(n):
        for i in range(m):
            acc = 0.0
            for p in range(k):
                a = A[a_off + i + p * lda] if transa == CUBLAS_OP_N else A[a_off + p + i * lda]
                acc += a * B[b_off + p + j * ldb]
            C[c_off + i + j * ldc] = acc


def find_libcublas():
    """The libcublas torch loaded: from /proc/self/maps after a matmul, else the wheel paths."""
    import torch
    a = torch.ones(8, 8, device="cuda", dtype=torch.float16)
    (a @ a).sum().item()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if "/libcublas.so" in path:
                    return path
    except OSError:
        pass
    cands = []
    try:
        import nvidia
        for root in nvidia.__path__:
            cands += [os.path.join(root, "cu13", "lib", "libcublas.so.13"),
                      os.path.join(root, "cublas", "lib", "libcublas.so.13"),
                      os.path.join(root, "cublas", "lib", "libcublas.so.12")]
    except ImportError:
        pass
    cands.append(os.path.join(os.path.dirname(torch.__file__), "lib", "libcublas.so"))
    for c in cands:
        if os.path.exists(c):
            return c
    return "libcublas.so"


class Cublas:
    def __init__(self, stream):
        self.path = find_libcublas()
        self.lib = ctypes.CDLL(self.path)
        if not hasattr(self.lib, "cublasGemmGroupedBatchedEx"):
            raise Unavailable(f"{self.path} has no cublasGemmGroupedBatchedEx (needs cuBLAS >= 12.5)")
        L, P, I = self.lib, ctypes.c_void_p, ctypes.c_int
        L.cublasCreate_v2.argtypes = [ctypes.POINTER(P)]
        L.cublasSetStream_v2.argtypes = [P, P]
        L.cublasGetVersion_v2.argtypes = [P, ctypes.POINTER(I)]
        L.cublasDestroy_v2.argtypes = [P]
        L.cublasGemmGroupedBatchedEx.argtypes = [
            P, P, P, P, P, P,   # handle, transa[], transb[], m[], n[], k[]
            P, P, I, P,         # alpha[], Aarray (device), Atype, lda[]
            P, I, P,            # Barray (device), Btype, ldb[]
            P, P, I, P,         # beta[], Carray (device), Ctype, ldc[]
            I, P, I]            # group_count, group_size[], computeType
        for f in ("cublasCreate_v2", "cublasSetStream_v2", "cublasGetVersion_v2",
                  "cublasDestroy_v2", "cublasGemmGroupedBatchedEx"):
            getattr(L, f).restype = I
        self.handle = P()
        self._ok(L.cublasCreate_v2(ctypes.byref(self.handle)), "cublasCreate_v2")
        self._ok(L.cublasSetStream_v2(self.handle, stream.cuda_stream or None), "cublasSetStream_v2")
        v = I()
        L.cublasGetVersion_v2(self.handle, ctypes.byref(v))
        self.version = v.value

    @staticmethod
    def _ok(status, what):
        if status != 0:
            raise RuntimeError(f"{what} returned cublasStatus {status}")

    def close(self):
        if self.handle:
            self.lib.cublasDestroy_v2(self.handle)
            self.handle = ctypes.c_void_p()

    def prepare(self, groups, x, W, y, dtype_code):
        """Host arrays and device pointer arrays for one (x, W, y); returns a call()."""
        import torch
        G = len(groups)
        ints = lambda vals: (ctypes.c_int * max(1, G))(*vals)
        host = dict(
            transa=ints([g[0] for g in groups]), transb=ints([CUBLAS_OP_N] * G),
            m=ints([g[1] for g in groups]), n=ints([g[2] for g in groups]),
            k=ints([g[3] for g in groups]), lda=ints([g[4] for g in groups]),
            ldb=ints([g[5] for g in groups]), ldc=ints([g[6] for g in groups]),
            size=ints([len(g[7]) for g in groups]),
            alpha=(ctypes.c_float * max(1, G))(*([1.0] * G)),
            beta=(ctypes.c_float * max(1, G))(*([0.0] * G)))
        es = x.element_size()
        probs = [p for g in groups for p in g[7]]
        dev = lambda base, i: torch.tensor([base + p[i] * es for p in probs], dtype=torch.int64,
                                           device=x.device)
        A, B, C = dev(W.data_ptr(), 0), dev(x.data_ptr(), 1), dev(y.data_ptr(), 2)
        L, h = self.lib, self.handle

        def call():
            st = L.cublasGemmGroupedBatchedEx(
                h, host["transa"], host["transb"], host["m"], host["n"], host["k"],
                host["alpha"], A.data_ptr(), dtype_code, host["lda"],
                B.data_ptr(), dtype_code, host["ldb"],
                host["beta"], C.data_ptr(), dtype_code, host["ldc"],
                G, host["size"], CUBLAS_COMPUTE_32F)
            if st != 0:
                raise RuntimeError(f"cublasGemmGroupedBatchedEx returned cublasStatus {st}")
        call.keep = (host, A, B, C)
        return call


# --- cases ---------------------------------------------------------------------------------------

class Case:
    """Inputs of one case and dtype, with `copies` rotated sets when they fit in L2."""

    def __init__(self, name, dtype_name, seed, l2_bytes):
        import torch
        spec = CASES[name]
        self.name, self.dtype_name, self.spec = name, dtype_name, spec
        self.dtype = getattr(torch, DTYPE_NAMES[dtype_name])
        self.lens = np.asarray(spec["lens"], dtype=np.int64)
        self.indptr = sgemm.host_segments(lens=self.lens)
        self.rows, self.b = int(self.lens.sum()), len(self.lens)
        self.d_in, self.d_out, self.nw = spec["d_in"], spec["d_out"], spec["nw"]
        self.col_major = spec["col_major"]
        rng = np.random.default_rng(seed)
        self.widx = rng.integers(0, self.nw, size=self.b).astype(np.int64) if spec["shared"] else None
        self.flops = 2.0 * self.rows * self.d_in * self.d_out
        es = torch.tensor([], dtype=self.dtype).element_size()
        ws = es * (self.rows * self.d_in + self.nw * self.d_in * self.d_out + self.rows * self.d_out)
        self.copies = 1 if ws > l2_bytes else min(512, math.ceil(2 * l2_bytes / ws))
        g = torch.Generator(device="cuda").manual_seed(seed)
        wshape = ((self.nw, self.d_out, self.d_in) if self.col_major
                  else (self.nw, self.d_in, self.d_out))
        mk = lambda shape: torch.randn(*shape, generator=g, device="cuda").to(self.dtype)
        self.x = [mk((self.rows, self.d_in)) for _ in range(self.copies)]
        self.W = [mk(wshape) for _ in range(self.copies)]
        self.y = [torch.empty(self.rows, self.d_out, dtype=self.dtype, device="cuda")
                  for _ in range(self.copies)]
        self.indptr_dev = torch.tensor(self.indptr, dtype=torch.int64, device="cuda")
        self.widx_dev = (torch.tensor(self.widx, dtype=torch.int64, device="cuda")
                         if self.widx is not None else None)
        self.ref = sgemm.reference(self.x[0], self.W[0], self.indptr, self.widx, self.col_major)

    def weight_of(self, i):
        return int(self.widx[i]) if self.widx is not None else i

    def wmat(self, k, w):
        return self.W[k][w].t() if self.col_major else self.W[k][w]


def build(impl, case, stream, state):
    """Returns (fn(k) -> output tensor, note)."""
    import torch
    c = case
    if impl in ("ours", "ours_sm90", "ours_sm80"):
        backend = {"ours": sgemm.Backend.AUTO, "ours_sm90": sgemm.Backend.SM90,
                   "ours_sm80": sgemm.Backend.SM80}[impl]
        try:
            h = sgemm.Handle(backend)
        except sgemm.SgemmError as e:
            raise Unavailable(str(e))
        state.setdefault("handles", []).append(h)
        args = [sgemm.make_args(c.x[k], c.W[k], c.y[k], seg_indptr=c.indptr_dev,
                                weight_indices=c.widx_dev, weight_column_major=c.col_major)
                for k in range(c.copies)]
        h.ensure_workspace(args[0])
        try:
            plan = h.plan(None, None, None, args=args[0])
        except sgemm.SgemmError as e:
            raise Unavailable(str(e))
        run, hp, sp = sgemm.lib().sgemm_run, h.ptr, sgemm.stream_handle(stream)
        refs = [ctypes.byref(a) for a in args]

        def fn(k):
            st = run(hp, refs[k], sp)
            if st:
                raise sgemm.SgemmError(st, sgemm.last_error(), "sgemm_run")
            return c.y[k]
        return fn, plan

    if impl == "torch_grouped_mm":
        gm = getattr(torch, "_grouped_mm", None) or getattr(torch.nn.functional, "grouped_mm", None)
        if gm is None:
            raise Unavailable(f"torch {torch.__version__} has no _grouped_mm")
        if c.b > 1024:
            raise Unavailable(f"{c.b} groups > 1024")
        es = c.x[0].element_size()
        need = c.copies * c.b * c.d_in * c.d_out * es if c.widx is not None else 0
        free = torch.cuda.mem_get_info()[0]
        if need > 0.7 * free:
            raise Unavailable(f"gathered weights need {need / 2**30:.1f} GiB, "
                              f"{free / 2**30:.1f} GiB free")
        offs = torch.tensor(np.cumsum(c.lens), dtype=torch.int32, device=c.x[0].device)
        Wg = []
        for k in range(c.copies):
            g = c.W[k] if c.widx is None else c.W[k].index_select(0, c.widx_dev)  # not timed
            g = g[:c.b]
            Wg.append(g.transpose(1, 2) if c.col_major else g)  # (G, d_in, d_out) views
        note = "weights gathered per segment before timing" if c.widx is not None else ""
        return (lambda k: gm(c.x[k], Wg[k], offs=offs)), note

    if impl == "torch_loop":
        views = [[(c.x[k][s:e], c.wmat(k, c.weight_of(i)), c.y[k][s:e])
                  for i, (s, e) in enumerate(zip(c.indptr[:-1].tolist(), c.indptr[1:].tolist()))
                  if e > s] for k in range(c.copies)]

        def fn(k):
            for xs, Wm, ys in views[k]:
                torch.matmul(xs, Wm, out=ys)
            return c.y[k]
        return fn, f"{len(views[0])} matmuls"

    if impl == "cublas_grouped":
        if "cublas" not in state:
            try:
                state["cublas"] = Cublas(stream)
            except Unavailable:
                raise
            except Exception as e:  # noqa: BLE001
                raise Unavailable(f"cuBLAS setup failed: {type(e).__name__}: {e}")
        cb = state["cublas"]
        code = {torch.float16: CUDA_R_16F, torch.bfloat16: CUDA_R_16BF}[c.dtype]
        groups = cublas_problems(c.indptr, c.widx, c.d_in, c.d_out, c.col_major)
        calls = [cb.prepare(groups, c.x[k], c.W[k], c.y[k], code) for k in range(c.copies)]

        def fn(k):
            calls[k]()
            return c.y[k]
        return fn, f"{len(groups)} group(s), cuBLAS {cb.version}, {os.path.basename(cb.path)}"

    if impl == "dense":
        W0 = [c.wmat(k, 0) for k in range(c.copies)]
        return (lambda k: torch.matmul(c.x[k], W0[k], out=c.y[k])), "all rows x weight 0"

    if impl == "flashinfer":
        if "flashinfer" not in state:
            try:
                import flashinfer
            except Exception as e:  # noqa: BLE001
                state["flashinfer"] = Unavailable(f"import flashinfer failed: {type(e).__name__}: {e}")
            else:
                cls = getattr(flashinfer, "SegmentGEMMWrapper", None)
                if cls is None:
                    from flashinfer.gemm import SegmentGEMMWrapper as cls  # noqa: N813
                ws = torch.empty(128 * 1024 * 1024, dtype=torch.int8, device="cuda")
                state["flashinfer"] = (cls(ws), ws, getattr(flashinfer, "__version__", "?"))
        if isinstance(state["flashinfer"], Exception):
            raise state["flashinfer"]
        wrapper, _, ver = state["flashinfer"]

        def fn(k):
            return wrapper.run(c.x[k], c.W[k], c.b, c.col_major, out=c.y[k],
                               seg_indptr=c.indptr_dev, weight_indices=c.widx_dev)
        return fn, f"flashinfer {ver}, backend={getattr(wrapper, 'backend', '?')}"

    raise ValueError(impl)


def time_fn(fn, copies, reps, warmup, stream):
    import torch
    for i in range(warmup):
        fn(i % copies)
    stream.synchronize()
    t0 = time.perf_counter()
    n_probe = min(5, reps)
    for i in range(n_probe):
        fn(i % copies)
    host_ms = (time.perf_counter() - t0) * 1e3 / n_probe
    stream.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    # let the host queue the calls ahead of the device (~1.4 cycles/ns is a low H100 clock)
    sleep = getattr(torch.cuda, "_sleep", None)
    if sleep is not None:
        sleep(int(min(200.0, host_ms * reps * 1.2) * 1.4e6))
    for i in range(reps):
        starts[i].record(stream)
        fn(i % copies)
        ends[i].record(stream)
    stream.synchronize()
    times = [s.elapsed_time(e) * 1e3 for s, e in zip(starts, ends)]
    return statistics.median(times), min(times)


# --- main ----------------------------------------------------------------------------------------

def selftest():
    """No GPU: the cuBLAS column-major mapping computes the row-major segment GEMM."""
    rng = np.random.default_rng(0)
    for trial in range(30):
        b = int(rng.integers(1, 6))
        lens = rng.integers(0, 4, size=b)
        d_in, d_out = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        col = bool(trial % 2)
        shared = trial % 3 == 0
        nw = 3 if shared else b
        widx = rng.integers(0, nw, size=b) if shared else None
        indptr = sgemm.host_segments(lens=lens)
        rows = int(indptr[-1])
        x = rng.standard_normal((rows, d_in))
        W = rng.standard_normal((nw, d_out, d_in) if col else (nw, d_in, d_out))
        y = np.full(rows * d_out, np.nan)
        for transa, m, n, k, lda, ldb, ldc, probs in cublas_problems(indptr, widx, d_in, d_out, col):
            for a_off, b_off, c_off in probs:
                emulate_colmajor_gemm(transa, m, n, k, W.ravel(), a_off, lda, x.ravel(), b_off,
                                      ldb, y, c_off, ldc)
        want = np.zeros((rows, d_out))
        for i in range(b):
            w = widx[i] if shared else i
            Wm = W[w].T if col else W[w]
            want[indptr[i]:indptr[i + 1]] = x[indptr[i]:indptr[i + 1]] @ Wm
        got = y.reshape(rows, d_out)
        assert np.allclose(got, want), (trial, got, want)
    print("selftest: cuBLAS row-major mapping OK (30 random layouts)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help="comma list of %s" % ",".join(CASES))
    ap.add_argument("--dtypes", default="bf16,fp16", help="comma list of bf16,fp16")
    ap.add_argument("--reps", type=int, default=100, help="timed calls per impl (median)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--skip", default="", help="comma list of impls to leave out: " + ",".join(IMPLS))
    ap.add_argument("--impls", default=",".join(IMPLS), help="comma list of impls to run")
    ap.add_argument("--csv", help="append CSV rows here")
    ap.add_argument("--md", help="write a markdown table here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--selftest", action="store_true", help="CPU-only check of the cuBLAS mapping")
    a = ap.parse_args(argv)

    def split(s, allowed, what):
        items = [t.strip() for t in s.split(",") if t.strip()]
        bad = [t for t in items if t not in allowed]
        if bad:
            ap.error(f"unknown {what}: {bad} (choose from {list(allowed)})")
        return items
    cases = split(a.cases, CASES, "case")
    dtypes = split(a.dtypes, DTYPE_NAMES, "dtype")
    skip = set(split(a.skip, IMPLS, "impl"))
    impls = [i for i in split(a.impls, IMPLS, "impl") if i not in skip]
    if a.reps < 1 or a.warmup < 0:
        ap.error("--reps must be >= 1 and --warmup >= 0")
    if a.selftest:
        selftest()
        return 0

    import torch
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to benchmark (try --selftest)", file=sys.stderr)
        return 2
    props = torch.cuda.get_device_properties(0)
    device = torch.cuda.get_device_name(0)
    l2 = getattr(props, "L2_cache_size", 0) or 50 * 2**20
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"device: {device} (cc {props.major}.{props.minor}, L2 {l2 / 2**20:.0f} MiB), "
          f"torch {torch.__version__}, libsegmentgemm {sgemm.version()} ({sgemm.lib_path()})")
    torch.backends.cuda.matmul.allow_tf32 = False
    stream = torch.cuda.Stream()
    results = []   # dicts: case, dtype, impl, time_us, min_us, tflops, rel, ok, note
    failures = []  # (case, dtype, impl, reason)
    plans = {}

    csv_f = None
    if a.csv:
        os.makedirs(os.path.dirname(os.path.abspath(a.csv)), exist_ok=True)
        new = not os.path.exists(a.csv) or os.path.getsize(a.csv) == 0
        csv_f = open(a.csv, "a", newline="")
        w = csv.writer(csv_f)
        if new:
            w.writerow(["date", "device", "case", "dtype", "impl", "time_us", "tflops"])
            csv_f.flush()

    state = {}

    def on_term(signum, frame):  # run.sh's deadline: keep what was measured, write the summary
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    # flashinfer last: its JIT build is slow and a fault in it must not cost the others' numbers
    passes = [[i for i in impls if i != "flashinfer"], [i for i in impls if i == "flashinfer"]]
    try:
        run_passes(passes, cases, dtypes, a, l2, stream, state, results, failures, plans,
                   csv_f, date, device)
    except KeyboardInterrupt as e:
        print(f"\ninterrupted ({e}): writing what was measured", file=sys.stderr)
        failures.append(("-", "-", "-", f"interrupted ({e}) before the end"))
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for h in state.get("handles", []):
        h.close()
    if "cublas" in state:
        state["cublas"].close()
    if csv_f:
        csv_f.close()
    write_summary(results, failures, date, device, a)
    wrong = [r for r in results if not r["ok"] and r["impl"].startswith("ours")]
    return 1 if wrong else 0


def run_passes(passes, cases, dtypes, a, l2, stream, state, results, failures, plans, csv_f,
               date, device):
    import torch
    for pass_impls in passes:
        if not pass_impls:
            continue
        for cname in cases:
            for dname in dtypes:
                with torch.cuda.stream(stream):
                    try:
                        case = Case(cname, dname, a.seed, l2)
                    except Exception as e:  # noqa: BLE001
                        for impl in pass_impls:
                            failures.append((cname, dname, impl, f"setup: {type(e).__name__}: {e}"))
                        continue
                    print(f"\n== {cname} {dname}: {CASES[cname]['desc']} "
                          f"(rows {case.rows}, {case.flops / 1e9:.1f} GFLOP, {case.copies} input copies)")
                    for impl in pass_impls:
                        try:
                            t_build = time.perf_counter()
                            fn, note = build(impl, case, stream, state)
                            for y in case.y:
                                y.fill_(float("nan"))
                            out = fn(0)
                            stream.synchronize()
                            first_s = time.perf_counter() - t_build
                            if impl == "dense":
                                rel, ok = float("nan"), True
                            else:
                                st = sgemm.compare(out, case.ref[0], case.ref[1], case.dtype)
                                rel, ok = st["rel"], st["ok"]
                            if impl.startswith("ours"):
                                plans[(cname, dname, impl)] = note
                            med, mn = time_fn(fn, case.copies, a.reps, a.warmup, stream)
                        except Unavailable as e:
                            failures.append((cname, dname, impl, str(e)))
                            print(f"  {impl:18s} unavailable: {e}")
                            continue
                        except Exception as e:  # noqa: BLE001
                            reason = f"{type(e).__name__}: {e}".splitlines()[0][:400]
                            failures.append((cname, dname, impl, reason))
                            print(f"  {impl:18s} FAILED: {reason}")
                            traceback.print_exc(limit=3)
                            torch.cuda.synchronize()
                            continue
                        tflops = case.flops / (med * 1e-6) / 1e12
                        r = dict(case=cname, dtype=dname, impl=impl, time_us=med, min_us=mn,
                                 tflops=tflops, rel=rel, ok=ok, note=note)
                        results.append(r)
                        flag = "" if ok else "  WRONG RESULT"
                        extra = f" (first call {first_s:.1f} s)" if first_s > 2 else ""
                        print(f"  {impl:18s} {med:10.1f} us {tflops:8.1f} TFLOP/s  rel {rel:.2e}"
                              f"{flag}  {note}{extra}")
                        if csv_f:
                            csv.writer(csv_f).writerow([date, device, cname, dname, impl,
                                                        f"{med:.2f}", f"{tflops:.3f}"])
                            csv_f.flush()
                fn = out = None  # noqa: F841  (their closures hold the case's tensors)
                del case
                torch.cuda.synchronize()
                for h in state.pop("handles", []):
                    h.close()
                torch.cuda.empty_cache()


def write_summary(results, failures, date, device, a):
    import torch
    dense = {(r["case"], r["dtype"]): r["time_us"] for r in results if r["impl"] == "dense"}
    lines = ["# Segment GEMM benchmark\n",
             f"{date}, {device}, torch {torch.__version__}, libsegmentgemm {sgemm.version()}; "
             f"median of {a.reps} calls (CUDA events, device time), seg_indptr given; "
             f"torch_grouped_mm excludes its weight gather; dense = one matmul of all rows "
             f"with one weight (roofline anchor).\n",
             "| case | dtype | impl | time (us) | TFLOP/s | vs dense | rel err | notes |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    order = {i: n for n, i in enumerate(IMPLS)}
    for r in sorted(results, key=lambda r: (r["case"], r["dtype"], order[r["impl"]])):
        d = dense.get((r["case"], r["dtype"]))
        vs = f"{d / r['time_us']:.2f}x" if d else ""
        rel = "" if math.isnan(r["rel"]) else f"{r['rel']:.1e}" + ("" if r["ok"] else " WRONG")
        lines.append(f"| {r['case']} | {r['dtype']} | {r['impl']} | {r['time_us']:.1f} | "
                     f"{r['tflops']:.1f} | {vs} | {rel} | {r['note']} |")
    if failures:
        lines += ["", "## Not measured", "", "| case | dtype | impl | reason |", "|---|---|---|---|"]
        lines += [f"| {c} | {d} | {i} | {why.replace('|', '/')} |" for c, d, i, why in failures]
    md = "\n".join(lines) + "\n"
    print("\n" + md)
    if a.md:
        os.makedirs(os.path.dirname(os.path.abspath(a.md)), exist_ok=True)
        with open(a.md, "w") as f:
            f.write(md)


if __name__ == "__main__":
    sys.exit(main())
