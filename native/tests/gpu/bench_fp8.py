#!/usr/bin/env python3
"""fp8 benchmark (issue 16), in one process, appending to the kernel benchmark's CSV format.

    python native/tests/gpu/bench_fp8.py --csv $OUT/bench.csv --md $OUT/bench-fp8.md

bmm cases (FlashInfer's bmm_fp8: A (b, m, k), B (b, k, n) column-major, per-tensor scales,
bf16 out), dtype fp8e4m3 (A e4m3, B e4m3) and fp8e5m2 (A e5m2, B e4m3):
  bmm_8x4096   b = 8, m = n = k = 4096
  bmm_lora     b = 64, m = 128, k = 4096, n = 16 (a LoRA shrink per adapter)
  impls: ours (sgemm_bmm_fp8), torch_scaled_mm (torch._scaled_mm per batch entry, cuBLASLt,
         use_fast_accum=True: its fastest setting), flashinfer (flashinfer.bmm_fp8, cublas
         backend), dense_fp8 (one torch._scaled_mm of all b*m rows: a dense fp8 GEMM of the same
         total size, the roofline anchor).
Segment cases with fp8 e4m3 weights (one scale per weight, x bf16 quantised per call), dtype
fp8e4m3, beside ours in bf16 (impl ours_bf16, the kernel benchmark's bf16 row-major setting):
  S1  64 x 128 rows, 4096 x 4096, 64 weights;  S3  1024 x 8 rows, 4096 x 4096, 32 shared weights
Timing: bench_kernels.time_fn (CUDA events, median of --reps, host queued ahead). Each output is
checked first against the dequantised fp32 reference (per element, test_fp8.FP8_TOL).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import os
import sys
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sgemm  # noqa: E402
from bench_kernels import CASES, Unavailable, time_fn  # noqa: E402

FP8_TOL = 1.5e-2
BMM = {"bmm_8x4096": (8, 4096, 4096, 4096), "bmm_lora": (64, 128, 16, 4096)}
SEGMENT = ["S1", "S3"]


def fp8_types(dname):
    import torch
    return (torch.float8_e5m2 if dname == "fp8e5m2" else torch.float8_e4m3fn), torch.float8_e4m3fn


def rand_fp8(shape, dtype, gen):
    import torch
    top = torch.finfo(dtype).max
    return (torch.randn(*shape, generator=gen, device="cuda") * 4).clamp(-top, top).to(dtype)


def copies_for(nbytes, l2):
    return 1 if nbytes > l2 else min(64, math.ceil(2 * l2 / nbytes))


def bmm_impls(name, dname, l2, state):
    """{impl: (fn(k), note)}, plus (ref, bound, copies, flops)."""
    import torch
    b, m, n, k = BMM[name]
    ta, tb = fp8_types(dname)
    gen = torch.Generator(device="cuda").manual_seed(0)
    copies = copies_for(b * (m * k + n * k + 2 * m * n), l2)
    A = [rand_fp8((b, m, k), ta, gen) for _ in range(copies)]
    Bnk = [rand_fp8((b, n, k), tb, gen) for _ in range(copies)]
    B = [t.transpose(1, 2) for t in Bnk]  # (b, k, n) column-major
    sa = torch.tensor([0.02], device="cuda")
    sb = torch.tensor([0.5 / math.sqrt(k)], device="cuda")
    D = [torch.empty(b, m, n, dtype=torch.bfloat16, device="cuda") for _ in range(copies)]
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    a32, b32 = A[0].float() * sa, B[0].float() * sb
    ref, bound = a32 @ b32, a32.abs() @ b32.abs()
    torch.backends.cuda.matmul.allow_tf32 = prev
    del a32, b32
    impls = {}
    h = sgemm.Handle(sgemm.Backend.AUTO)
    state.setdefault("handles", []).append(h)
    h.bmm_fp8(A[0], B[0], sa, sb, D[0])  # sizes the workspace
    args = [sgemm.bmm_fp8_args(A[i], B[i], sa, sb, D[i]) for i in range(copies)]
    import ctypes
    run, hp = sgemm.lib().sgemm_bmm_fp8, h.ptr

    def ours(i):
        sp = sgemm.stream_handle()
        st = run(hp, ctypes.byref(args[i]), sp)
        if st:
            raise sgemm.SgemmError(st, sgemm.last_error(), "sgemm_bmm_fp8")
        return D[i]
    impls["ours"] = (ours, "sgemm_bmm_fp8")
    state["keep"] = [A, B, D, sa, sb]

    def scaled(i):
        for j in range(b):
            torch._scaled_mm(A[i][j], B[i][j], scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16,
                             use_fast_accum=True, out=D[i][j])
        return D[i]
    impls["torch_scaled_mm"] = (scaled, f"{b} calls, use_fast_accum=True")

    # dense: all b*m rows times one (k, n) column-major operand
    A2 = [t.reshape(b * m, k) for t in A]
    B2 = [t[0] for t in B]
    D2 = [t.reshape(b * m, n) for t in D]
    impls["dense_fp8"] = (lambda i: torch._scaled_mm(A2[i], B2[i], scale_a=sa, scale_b=sb,
                                                     out_dtype=torch.bfloat16, use_fast_accum=True,
                                                     out=D2[i]),
                          "one _scaled_mm of all rows (same FLOPs), fast accum")
    try:
        import flashinfer
        fi = (lambda i: flashinfer.bmm_fp8(A[i], B[i], sa, sb, torch.bfloat16, out=D[i],
                                           backend="cublas"))
        impls["flashinfer"] = (fi, f"flashinfer {getattr(flashinfer, '__version__', '?')} "
                                   "bmm_fp8 backend=cublas")
    except Exception as e:  # noqa: BLE001
        impls["flashinfer"] = Unavailable(f"import flashinfer failed: {type(e).__name__}: {e}")
    return impls, ref, bound, copies, 2.0 * b * m * n * k


def segment_impls(name, l2, state):
    """S1/S3 with fp8 weights (ours) and bf16 (ours_bf16), one input set."""
    import torch
    spec = CASES[name]
    lens = np.asarray(spec["lens"], dtype=np.int64)
    indptr = sgemm.host_segments(lens=lens)
    rows, d_in, d_out, nw = int(lens.sum()), spec["d_in"], spec["d_out"], spec["nw"]
    widx = (np.random.default_rng(0).integers(0, nw, size=len(lens)).astype(np.int64)
            if spec["shared"] else None)
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(rows, d_in, generator=gen, device="cuda").to(torch.bfloat16)
    W = (torch.randn(nw, d_in, d_out, generator=gen, device="cuda") / math.sqrt(d_in)).to(torch.bfloat16)
    Wt = W.transpose(1, 2).contiguous()  # fp8 needs (nw, d_out, d_in)
    qs = [sgemm.quantize_fp8(Wt[w]) for w in range(nw)]
    Wq = torch.stack([q for q, _ in qs]).contiguous()
    sw = torch.tensor([s for _, s in qs], dtype=torch.float32, device="cuda")
    del Wt, qs
    ptr = torch.tensor(indptr, dtype=torch.int64, device="cuda")
    idx = None if widx is None else torch.tensor(widx, dtype=torch.int64, device="cuda")
    y8 = torch.empty(rows, d_out, dtype=torch.bfloat16, device="cuda")
    y16 = torch.empty_like(y8)
    xq, sx = sgemm.quantize_fp8(x)
    ref, bound = sgemm.reference(xq.float() * sx, Wq.float() * sw.view(-1, 1, 1), indptr, widx,
                                 weight_column_major=True)
    del xq
    impls = {}
    # the calls hold raw pointers: keep every tensor they read alive as long as the impls
    state["keep"] = [x, W, Wq, sw, ptr, idx, y8, y16]
    import ctypes
    for impl, weights, y, scales, col in (("ours", Wq, y8, sw, True), ("ours_bf16", W, y16, None, False)):
        h = sgemm.Handle(sgemm.Backend.AUTO)
        state.setdefault("handles", []).append(h)
        args = sgemm.make_args(x, weights, y, seg_indptr=ptr, weight_indices=idx,
                               weight_column_major=col, weight_scales=scales)
        h.ensure_workspace(args)
        plan = h.plan(None, None, None, args=args)
        run, hp, ref_args = sgemm.lib().sgemm_run, h.ptr, ctypes.byref(args)

        def fn(i, run=run, hp=hp, ref_args=ref_args, y=y):
            st = run(hp, ref_args, sgemm.stream_handle())
            if st:
                raise sgemm.SgemmError(st, sgemm.last_error(), "sgemm_run")
            return y
        impls[impl] = (fn, plan)
    return impls, ref, bound, 1, 2.0 * rows * d_in * d_out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(list(BMM) + SEGMENT))
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--csv")
    ap.add_argument("--md")
    a = ap.parse_args(argv)
    import torch
    props = torch.cuda.get_device_properties(0)
    device = torch.cuda.get_device_name(0)
    l2 = getattr(props, "L2_cache_size", 0) or 50 * 2**20
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"device: {device}, torch {torch.__version__}, libsegmentgemm {sgemm.version()}")
    csv_f = None
    if a.csv:
        new = not os.path.exists(a.csv) or os.path.getsize(a.csv) == 0
        csv_f = open(a.csv, "a", newline="")
        if new:
            csv.writer(csv_f).writerow(["date", "device", "case", "dtype", "impl", "time_us", "tflops"])
    rows_md, wrong = [], False
    for cname in [c.strip() for c in a.cases.split(",") if c.strip()]:
        dnames = ["fp8e4m3", "fp8e5m2"] if cname in BMM else ["fp8e4m3"]
        for dname in dnames:
            state = {}
            try:
                built = (bmm_impls(cname, dname, l2, state) if cname in BMM
                         else segment_impls(cname, l2, state))
            except Exception as e:  # noqa: BLE001
                print(f"{cname} {dname}: setup failed: {type(e).__name__}: {e}")
                traceback.print_exc(limit=3)
                continue
            impls, ref, bound, copies, flops = built
            print(f"\n== {cname} {dname} ({flops / 1e9:.1f} GFLOP, {copies} input copies)")
            times = {}
            for impl, entry in impls.items():
                if isinstance(entry, Exception):
                    print(f"  {impl:16s} unavailable: {entry}")
                    rows_md.append((cname, dname, impl, None, None, str(entry)))
                    continue
                fn, note = entry
                try:
                    out = fn(0)
                    torch.cuda.synchronize()
                    if impl == "dense_fp8":
                        ok, rel = True, float("nan")
                    elif impl == "ours_bf16":
                        ok, rel = True, float("nan")  # checked by the kernel benchmark and tests
                    else:
                        r = sgemm.compare(out.float().reshape(-1, out.shape[-1]),
                                          ref.reshape(-1, ref.shape[-1]),
                                          bound.reshape(-1, bound.shape[-1]), torch.bfloat16,
                                          tol=FP8_TOL)
                        ok, rel = r["ok"], r["rel"]
                    med, _ = time_fn(fn, copies, a.reps, a.warmup, torch.cuda.current_stream())
                except Exception as e:  # noqa: BLE001
                    reason = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                    print(f"  {impl:16s} FAILED: {reason}")
                    rows_md.append((cname, dname, impl, None, None, reason))
                    torch.cuda.synchronize()
                    continue
                times[impl] = med
                tflops = flops / (med * 1e-6) / 1e12
                flag = "" if ok else "  WRONG RESULT"
                wrong |= (not ok) and impl == "ours"
                print(f"  {impl:16s} {med:10.1f} us {tflops:8.1f} TFLOP/s  rel {rel:.2e}{flag}  {note}")
                rows_md.append((cname, dname, impl, med, tflops, note + flag))
                if csv_f:
                    csv.writer(csv_f).writerow([date, device, cname, dname, impl, f"{med:.2f}",
                                                f"{tflops:.3f}"])
                    csv_f.flush()
            if "ours" in times:
                peers = {k: v for k, v in times.items() if k in ("torch_scaled_mm", "flashinfer")}
                if peers:
                    best = min(peers, key=peers.get)
                    print(f"  ratio: ours is {peers[best] / times['ours']:.2f}x the best peer ({best})")
                if "dense_fp8" in times:
                    print(f"  ratio: ours is {times['dense_fp8'] / times['ours']:.2f}x dense fp8")
                if "ours_bf16" in times:
                    print(f"  ratio: fp8 weights are {times['ours_bf16'] / times['ours']:.2f}x our bf16")
            for h in state.get("handles", []):
                h.close()
            del state, impls, ref, bound
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
    if csv_f:
        csv_f.close()
    md = ["| case | dtype | impl | time (us) | TFLOP/s | notes |", "|---|---|---|---:|---:|---|"]
    for c, d, i, t, tf, note in rows_md:
        md.append(f"| {c} | {d} | {i} | {'' if t is None else f'{t:.1f}'} | "
                  f"{'' if tf is None else f'{tf:.1f}'} | {note} |")
    text = f"# fp8 benchmark, {date}, {device}\n\n" + "\n".join(md) + "\n"
    print("\n" + text)
    if a.md:
        with open(a.md, "w") as f:
            f.write(text)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
