"""GPU tests of the fp8 entry points: sgemm_bmm_fp8 (FlashInfer's bmm_fp8) and the segment GEMM
with fp8 e4m3 weights (sgemm_run_args.weight_scales).

    python -m pytest -q native/tests/gpu/test_fp8.py

Reference: the same fp8 values dequantised in fp32 (q.float() * scale) and multiplied by cuBLAS
in fp32 with TF32 off, so what is measured is the kernel's own error: fp32 accumulation without
periodic promotion (fast accumulation) and one rounding to the output type. Per element,
|y - ref| <= FP8_TOL * (|A| @ |B|) + tiny with FP8_TOL = 1.5e-2 (bf16's rounding 2^-8 plus the
accumulator's), and y is poisoned with NaN first so an element left unwritten fails.
The error fp8 introduces against the 16-bit path (quantising x and the weights) is measured
separately (test_fp8_error_against_the_16_bit_path) and documented in docs/benchmarks.md (section fp8).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: the GPU tests need it")

import sgemm  # noqa: E402
from sgemm import Backend, SgemmError, Status  # noqa: E402

if not torch.cuda.is_available():
    pytest.skip("no CUDA device visible to torch (torch.cuda.is_available() is False)",
                allow_module_level=True)
_status, _count, _why = sgemm.device_count()
if _status == Status.NO_DEVICE:
    pytest.skip(f"libsegmentgemm reports no device: {_why}", allow_module_level=True)

IS_SM90 = torch.cuda.get_device_capability() == (9, 0)
DEV = torch.device("cuda")
E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2
FP8_TOL = 1.5e-2


def need_sm90():
    if not IS_SM90:
        pytest.fail("fp8 kernels need an sm_90 GPU; this one is %s (the GPU check runs on an H200)"
                    % (torch.cuda.get_device_name(),))


def reference(a32, b32, with_bound=True):
    """fp32 product a32 (.., m, k) @ b32 (.., k, n), TF32 off; and |a| @ |b|."""
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        ref = a32 @ b32
        bound = a32.abs() @ b32.abs() if with_bound else None
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    return ref, bound


def check_close(y, ref, bound, what):
    yf = y.float().reshape(-1, y.shape[-1])
    r = sgemm.compare(yf, ref.reshape(-1, ref.shape[-1]), bound.reshape(-1, bound.shape[-1]),
                      torch_dtype=y.dtype, tol=FP8_TOL)
    assert r["ok"], f"{what}: {r}"
    return r


def random_fp8(shape, dtype, gen, spread=1.0):
    """Random fp8 values that use the type's range: normal * spread, saturated."""
    v = torch.randn(*shape, generator=gen, device=DEV) * spread
    top = torch.finfo(dtype).max
    return v.clamp(-top, top).to(dtype)


def bmm_operands(batch, m, n, k, a_dtype, b_dtype, seed=0, spread=(8.0, 8.0)):
    gen = torch.Generator(device=DEV).manual_seed(seed)
    a = random_fp8((batch, m, k), a_dtype, gen, spread[0])
    b_nk = random_fp8((batch, n, k), b_dtype, gen, spread[1])  # storage (batch, n, k)
    return a, b_nk.transpose(1, 2)  # b: (batch, k, n) column-major, as FlashInfer wants


PAIRS = [(E4M3, E4M3), (E5M2, E4M3), (E4M3, E5M2)]
SHAPES = [(3, 77, 48, 64), (2, 128, 16, 4096), (1, 1, 8, 16), (4, 300, 264, 528)]


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{str(p[0])[-6:]}x{str(p[1])[-6:]}")
@pytest.mark.parametrize("out", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "b%d_m%d_n%d_k%d" % s)
def test_bmm_fp8_matches_the_dequantised_reference(pair, out, shape):
    need_sm90()
    batch, m, n, k = shape
    a, b = bmm_operands(batch, m, n, k, *pair, seed=batch * 1000 + m)
    # scales far from 1, and the output range fp16 can hold
    a_scale = torch.tensor([3.0e-3], device=DEV)
    b_scale = torch.tensor([41.0 / max(1, k) ** 0.5], device=DEV)
    d = torch.full((batch, m, n), float("nan"), dtype=out, device=DEV)
    with sgemm.Handle(Backend.AUTO) as h:
        h.bmm_fp8(a, b, a_scale, b_scale, d)
        torch.cuda.synchronize()
    ref, bound = reference(a.float() * a_scale, b.float() * b_scale)
    check_close(d, ref, bound, f"bmm_fp8 {pair} -> {out} {shape}")


def test_bmm_fp8_runs_the_fp8_tensor_core_kernel():
    need_sm90()
    a, b = bmm_operands(2, 256, 512, 256, E4M3, E5M2)
    one = torch.ones(1, device=DEV)
    d = torch.empty(2, 256, 512, dtype=torch.bfloat16, device=DEV)
    with sgemm.Handle(Backend.AUTO) as h:
        h.bmm_fp8(a, b, one, one, d)  # warm-up (initialisation outside the profile)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            h.bmm_fp8(a, b, one, one, d)
            torch.cuda.synchronize()
    names = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    gemm = [nm for nm in names if "GemmUniversal" in nm]
    assert gemm, names
    assert any("FP8FastAccum" in nm and "E4M3E5M2" in nm for nm in gemm), gemm


def test_bmm_fp8_empty_and_zero_depth():
    need_sm90()
    one = torch.ones(1, device=DEV)
    with sgemm.Handle(Backend.AUTO) as h:
        for batch, m, n in ((0, 16, 16), (2, 0, 16), (2, 16, 0)):
            a, b = bmm_operands(batch, m, n, 32, E4M3, E4M3)
            d = torch.full((batch, m, n), 7.0, dtype=torch.bfloat16, device=DEV)
            h.bmm_fp8(a, b, one, one, d)
            torch.cuda.synchronize()
            assert bool((d == 7.0).all())
        a, b = bmm_operands(3, 5, 24, 0, E4M3, E4M3)
        d = torch.full((3, 5, 24), 7.0, dtype=torch.float16, device=DEV)
        h.bmm_fp8(a, b, one, one, d)
        torch.cuda.synchronize()
        assert bool((d == 0).all())


def bad_bmm(h, **over):
    a, b = bmm_operands(2, 32, 32, 64, E4M3, E4M3)
    one = torch.ones(1, device=DEV)
    d = torch.empty(2, 32, 32, dtype=torch.bfloat16, device=DEV)
    args = sgemm.bmm_fp8_args(a, b, one, one, d)
    for k, v in over.items():
        setattr(args, k, v)
    with pytest.raises(SgemmError) as e:
        h.bmm_fp8(None, None, None, None, None, args=args)
    return e.value


def test_bmm_fp8_bad_input_is_a_clear_error():
    need_sm90()
    with sgemm.Handle(Backend.AUTO) as h:
        e = bad_bmm(h, k=40)
        assert e.status == Status.INVALID_ARGUMENT and "k must be a multiple of 16" in e.message
        e = bad_bmm(h, a_dtype=int(sgemm.DType.FLOAT8_E5M2), b_dtype=int(sgemm.DType.FLOAT8_E5M2))
        assert e.status == Status.INVALID_ARGUMENT and "both be float8_e5m2" in e.message
        e = bad_bmm(h, out_dtype=int(sgemm.DType.FLOAT32))
        assert e.status == Status.INVALID_ARGUMENT and "out_dtype" in e.message
        e = bad_bmm(h, a_dtype=int(sgemm.DType.BFLOAT16))
        assert e.status == Status.INVALID_ARGUMENT and "a_dtype" in e.message
        e = bad_bmm(h, a=None)
        assert e.status == Status.INVALID_ARGUMENT and "must not be null" in e.message
        e = bad_bmm(h, b_scale=None)
        assert e.status == Status.INVALID_ARGUMENT and "must not be null" in e.message
        e = bad_bmm(h, m=-1)
        assert e.status == Status.INVALID_ARGUMENT and "negative" in e.message
        buf = torch.empty(4096, dtype=torch.uint8, device=DEV)
        e = bad_bmm(h, a=buf.data_ptr() + 8)
        assert e.status == Status.INVALID_ARGUMENT and "16-byte aligned" in e.message
    with sgemm.Handle(Backend.PORTABLE) as h:
        e = bad_bmm(h)
        assert e.status == Status.UNSUPPORTED and "AUTO or SM90" in e.message


# --- segment GEMM with fp8 weights ---------------------------------------------------------------

def fp8_weights(W):
    """Per-weight e4m3 quantisation of W (num_weights, d_out, d_in): (q, scales tensor)."""
    qs, scales = [], []
    for w in range(W.shape[0]):
        q, s = sgemm.quantize_fp8(W[w])
        qs.append(q)
        scales.append(s)
    q = torch.stack(qs) if qs else torch.empty(W.shape, dtype=E4M3, device=DEV)
    return q.contiguous(), torch.tensor(scales, dtype=torch.float32, device=DEV)


def seg_reference(xq, sx, Wq, sw, indptr, widx):
    """fp32 reference over the dequantised operands: rows of segment i times Wq[w]^T * sw[w]."""
    Wd = Wq.float() * sw.view(-1, 1, 1)
    return sgemm.reference(xq.float() * sx, Wd, indptr, widx, weight_column_major=True)


def run_fp8_segments(x, W, lens, widx=None, backend=Backend.AUTO, weight_scale=1.0):
    Wq, sw = fp8_weights(W * weight_scale)
    indptr = sgemm.host_segments(lens=lens)
    d_out = W.shape[1]
    y = torch.full((x.shape[0], d_out), float("nan"), dtype=x.dtype, device=DEV)
    ptr = torch.tensor(indptr, dtype=torch.int64, device=DEV)
    idx = None if widx is None else torch.tensor(widx, dtype=torch.int64, device=DEV)
    with sgemm.Handle(backend) as h:
        args = sgemm.make_args(x, Wq, y, seg_indptr=ptr, weight_indices=idx,
                               weight_column_major=True, weight_scales=sw)
        plan = h.plan(None, None, None, args=args)
        h.run(None, None, None, args=args)
        h.check()
    xq, sx = sgemm.quantize_fp8(x)
    ref, bound = seg_reference(xq, sx, Wq, sw, indptr, widx)
    return y, ref, bound, plan


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("case", [
    dict(lens=[128, 0, 77, 300], d_in=256, d_out=512, nw=4, shared=False, tile="128x256x128"),
    dict(lens=[5, 64, 0, 31], d_in=4096, d_out=16, nw=4, shared=False, tile="64x32x128"),
    dict(lens=[3] * 400, d_in=512, d_out=256, nw=5, shared=True, tile="128x256x128"),
], ids=["large", "narrow", "coalesced"])
def test_fp8_weights_match_the_dequantised_reference(dtype, case):
    need_sm90()
    gen = torch.Generator(device=DEV).manual_seed(len(case["lens"]))
    rows = sum(case["lens"])
    x = (torch.randn(rows, case["d_in"], generator=gen, device=DEV) * 30).to(dtype)
    W = torch.randn(case["nw"], case["d_out"], case["d_in"], generator=gen, device=DEV)
    widx = (np.random.default_rng(1).integers(0, case["nw"], len(case["lens"]))
            if case["shared"] else None)
    # weights of magnitude 1e-3: their scales are far from 1
    y, ref, bound, plan = run_fp8_segments(x, W, case["lens"], widx, weight_scale=1e-3)
    assert plan.startswith("sm90 fp8e4m3") and case["tile"] in plan, plan
    assert ("coalesced" in plan) == case["shared"], plan
    check_close(y, ref, bound, f"fp8 weights {case}")


def test_fp8_weights_zero_rows_zero_x_and_forced_sm90():
    need_sm90()
    W = torch.randn(2, 64, 32, device=DEV)
    x = torch.zeros(0, 32, dtype=torch.bfloat16, device=DEV)
    y, _, _, plan = run_fp8_segments(x, W, [0, 0])
    assert y.shape == (0, 64)
    x = torch.zeros(9, 32, dtype=torch.bfloat16, device=DEV)  # amax 0: scale 1, y exactly 0
    y, _, _, _ = run_fp8_segments(x, W, [4, 5], backend=Backend.SM90)
    assert bool((y == 0).all()), y


def test_fp8_weights_bad_input_is_a_clear_error():
    need_sm90()
    x = torch.randn(8, 32, device=DEV).to(torch.bfloat16)
    Wq, sw = fp8_weights(torch.randn(2, 64, 32, device=DEV))
    y = torch.empty(8, 64, dtype=torch.bfloat16, device=DEV)
    lens = torch.tensor([3, 5], dtype=torch.int64, device=DEV)

    def fails(backend=Backend.AUTO, **over):
        kw = dict(seg_lens=lens, weight_column_major=True, weight_scales=sw)
        kw.update(over)
        with sgemm.Handle(backend) as h, pytest.raises(SgemmError) as e:
            args = sgemm.make_args(kw.pop("x", x), Wq, kw.pop("y", y), **kw)
            h.run(None, None, None, args=args)
            h.check()
        return e.value

    e = fails(weight_column_major=False)
    assert e.status == Status.UNSUPPORTED and "column-major" in e.message
    e = fails(backend=Backend.PORTABLE)
    assert e.status == Status.UNSUPPORTED and "fp8 weights run on the sm90" in e.message
    e = fails(x=x.float(), y=y.float())
    assert e.status == Status.INVALID_ARGUMENT and "not float32" in e.message
    x24 = torch.randn(8, 24, device=DEV).to(torch.bfloat16)
    e = fails(x=x24, d_in=24)
    assert e.status == Status.UNSUPPORTED and "multiple of 16" in e.message
    e = fails(weight_indices=torch.tensor([0, 2], dtype=torch.int64, device=DEV))
    assert e.status == Status.INVALID_ARGUMENT and "weight_indices[1] = 2" in e.message


def test_fp8_error_against_the_16_bit_path():
    """The error fp8 adds: y of the fp8 path against the exact product of the bf16 operands,
    next to the bf16 path's own error, on LoRA-like data (x ~ N(0,1), W ~ N(0, 1/d_in))."""
    need_sm90()
    gen = torch.Generator(device=DEV).manual_seed(7)
    lens, d_in, d_out, nw = [256] * 8, 4096, 1024, 8
    rows = sum(lens)
    x = torch.randn(rows, d_in, generator=gen, device=DEV).to(torch.bfloat16)
    W = (torch.randn(nw, d_out, d_in, generator=gen, device=DEV) / d_in ** 0.5).to(torch.bfloat16)
    indptr = sgemm.host_segments(lens=lens)
    exact, _ = sgemm.reference(x, W, indptr, None, weight_column_major=True, with_bound=False)
    y8, _, _, _ = run_fp8_segments(x, W.float(), lens)
    ptr = torch.tensor(indptr, dtype=torch.int64, device=DEV)
    y16 = torch.empty(rows, d_out, dtype=torch.bfloat16, device=DEV)
    with sgemm.Handle(Backend.AUTO) as h:
        h.run(x, W, y16, seg_indptr=ptr, weight_column_major=True)
        h.check()
    rel = lambda y: float(torch.linalg.vector_norm(y.float() - exact) / torch.linalg.vector_norm(exact))
    rel8, rel16 = rel(y8), rel(y16)
    print(f"\nfp8-error: relative L2 error against the exact product: fp8 e4m3 {rel8:.4f}, "
          f"bf16 {rel16:.4f}")
    assert rel16 < 5e-3, rel16
    # e4m3 keeps 3 mantissa bits: ~2.5% per element, x and W each; 6% leaves room, 1% would not
    assert 0.01 < rel8 < 0.06, rel8
