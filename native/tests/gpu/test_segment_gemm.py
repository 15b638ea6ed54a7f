"""GPU tests of libsegmentgemm through its C API (ctypes, see sgemm.py).

    python -m pytest -q native/tests/gpu          # from the repo root; SGEMM_LIB overrides the lib

Semantics under test (FlashInfer SegmentGEMMWrapper.run): for segment i,
y[indptr[i]:indptr[i+1]] = x[indptr[i]:indptr[i+1]] @ W[w(i)], w(i) = weight_indices[i] or i.
Every result is compared, per element, with an fp32 cuBLAS reference (TF32 off):
|y - ref| <= tol * (|x| @ |W|) + tiny, tol = 1e-5 (fp32), 2e-3 (fp16), 1e-2 (bf16), and y is
poisoned with NaN before each run so that an element left unwritten fails.

Environment:
  SGEMM_TEST_PARTIAL_BUILD=1  the library was built with a subset of kernels
                              (SEGMENTGEMM_KERNELS): a forced SM80/SM90 call answering
                              UNSUPPORTED is skipped, and AUTO may fall back to portable.
  OUT=<dir>                   a TSV of every random configuration's results goes there.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: the GPU tests need it")

import sgemm  # noqa: E402
from sgemm import Backend, SgemmError, Status  # noqa: E402

if not torch.cuda.is_available():
    pytest.skip("no CUDA device visible to torch (torch.cuda.is_available() is False)",
                allow_module_level=True)
_status, _count, _why = sgemm.device_count()  # loading failures are errors, not skips
if _status == Status.NO_DEVICE:
    pytest.skip(f"libsegmentgemm reports no device: {_why}", allow_module_level=True)
assert _status == Status.OK, f"sgemm_device_count: {Status(_status).name}: {_why}"

CC = torch.cuda.get_device_capability()
IS_SM90 = CC == (9, 0)
HAS_SM80 = CC[0] == 8 or IS_SM90
PARTIAL_BUILD = os.environ.get("SGEMM_TEST_PARTIAL_BUILD") == "1"
DEV = torch.device("cuda")

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def tc_ok(dtype, d_in, d_out):
    """Whether the tensor-core backends can run this call (16-bit, aligned sizes)."""
    return dtype != torch.float32 and d_in % 8 == 0 and d_out % 8 == 0


# The fused small-call kernel's rule (small_gemm.hpp: small_call_fits), which AUTO applies first.
SMALL_MAX_SEGMENTS, SMALL_MAX_D_IN, SMALL_MAX_D_OUT, SMALL_MAX_MACS = 1024, 512, 16384, 1 << 22


def small_fits(rows, batch, d_in, d_out):
    return (0 < batch <= SMALL_MAX_SEGMENTS and rows > 0 and d_out > 0 and d_in <= SMALL_MAX_D_IN
            and d_out <= SMALL_MAX_D_OUT and rows * d_in * d_out <= SMALL_MAX_MACS)


def expected_auto_family(dtype, d_in, d_out, rows=None, batch=None):
    """The plan prefix AUTO gives; rows and batch (if known) decide the small-call kernel."""
    if rows is not None and small_fits(rows, batch, d_in, d_out):
        return "small"
    if tc_ok(dtype, d_in, d_out):
        if IS_SM90:
            return "sm90"
        if CC[0] == 8:
            return "sm80"
    return "portable"


def forced_backends(dtype, d_in, d_out):
    out = []
    if tc_ok(dtype, d_in, d_out):
        if IS_SM90:
            out.append(Backend.SM90)
        if HAS_SM80:
            out.append(Backend.SM80)
    return out


FAMILY = {Backend.PORTABLE: "portable", Backend.SM80: "sm80", Backend.SM90: "sm90"}


# --- handles: one growing handle per backend for the whole module ----------------------------

@pytest.fixture(scope="module")
def handles():
    made = {}

    def get(backend):
        if backend not in made:
            made[backend] = sgemm.Handle(backend)
        return made[backend]

    yield get
    for h in made.values():
        h.close()


# --- helpers ---------------------------------------------------------------------------------

def dev_i64(values):
    return torch.tensor(np.asarray(values, dtype=np.int64), dtype=torch.int64, device=DEV)


def rand(shape, dtype, gen):
    return torch.randn(*shape, generator=gen, device=DEV, dtype=torch.float32).to(dtype)


def poison(rows, d_out, dtype):
    return torch.full((rows, d_out), float("nan"), dtype=dtype, device=DEV)


def run_and_compare(h, x, W, lens_host, *, col_major, widx_host=None, use_indptr=False,
                    expect_family=None, ref=None, label=""):
    """Poisons y, runs on handle h, checks, compares with the reference. Returns (plan, stats)."""
    indptr_host = sgemm.host_segments(lens=lens_host)
    d_out = W.shape[1] if col_major else W.shape[2]
    if ref is None:
        ref = sgemm.reference(x, W, indptr_host, widx_host, col_major)
    seg = dict(seg_indptr=dev_i64(indptr_host)) if use_indptr else dict(seg_lens=dev_i64(lens_host))
    widx = dev_i64(widx_host) if widx_host is not None else None
    y = poison(x.shape[0], d_out, x.dtype)
    plan = h.plan(x, W, y, weight_indices=widx, weight_column_major=col_major,
                  batch_size=len(lens_host), **seg)
    if expect_family is not None and x.shape[0] > 0:
        ok = plan.startswith(expect_family) or (PARTIAL_BUILD and plan.startswith("portable"))
        assert ok, f"{label}: plan {plan!r} is not of the {expect_family} family"
    assert plan.split()[0] in ("sm90", "sm80", "portable", "small"), plan
    h.run(x, W, y, weight_indices=widx, weight_column_major=col_major,
          batch_size=len(lens_host), **seg)
    h.check()
    stats = sgemm.compare(y, ref[0], ref[1], x.dtype)
    assert stats["n_nan"] == 0, f"{label} [{plan}]: {stats['n_nan']} elements of y not written"
    assert stats["ok"], (f"{label} [{plan}]: {stats['n_bad']} elements out of tolerance "
                         f"(rel {stats['rel']:.3e}, worst {stats['worst']:.2f}x): {stats['first_bad']}")
    return plan, stats


def skip_if_partial(e: SgemmError, what):
    if PARTIAL_BUILD and e.status == Status.UNSUPPORTED:
        pytest.skip(f"{what}: UNSUPPORTED in a partial build: {e.message}")


# --- the FlashInfer documentation example ----------------------------------------------------

@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
@pytest.mark.parametrize("indices", [False, True], ids=["no_indices", "weight_indices"])
@pytest.mark.parametrize("col_major", [True, False], ids=["col_major", "row_major"])
def test_flashinfer_doc_example(handles, dtype, indices, col_major):
    dt = DTYPES[dtype]
    gen = torch.Generator(device=DEV).manual_seed(1234)
    lens = [1, 2, 3, 4]
    x = rand((10, 128), dt, gen)
    W = rand((4, 256, 128) if col_major else (4, 128, 256), dt, gen)
    widx = [0, 1, 0, 1] if indices else None
    ref = sgemm.reference(x, W, sgemm.host_segments(lens=lens), widx, col_major)
    # the doc's own check, segment by segment
    for i, (s, e) in enumerate([(0, 1), (1, 3), (3, 6), (6, 10)]):
        w = widx[i] if indices else i
        Wm = W[w].float().t() if col_major else W[w].float()
        torch.testing.assert_close(ref[0][s:e], x[s:e].float() @ Wm, rtol=1e-5, atol=1e-5)
    backends = [Backend.AUTO, Backend.PORTABLE] + forced_backends(dt, 128, 256)
    for b in backends:
        exp = expected_auto_family(dt, 128, 256, 10, 4) if b == Backend.AUTO else FAMILY[b]
        for use_indptr in (False, True):
            try:
                run_and_compare(handles(b), x, W, lens, col_major=col_major, widx_host=widx,
                                use_indptr=use_indptr, expect_family=exp, ref=ref,
                                label=f"doc {dtype} {b.name}")
            except SgemmError as e:
                skip_if_partial(e, f"doc example on {b.name}")
                raise


# --- random configurations -------------------------------------------------------------------

N_RANDOM = 240
ALIGNED = [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
UNALIGNED = [1, 7, 33, 60, 100, 250, 1000]
MAC_BUDGET_TC = 1 << 33       # rows * d_in * d_out for 16-bit aligned calls (tensor cores)
MAC_BUDGET_PORTABLE = 1 << 28  # for fp32 / unaligned calls (the SIMT kernel)
MAC_BUDGET_FORCED_PORTABLE = 1 << 27
ELEM_BUDGET = 1 << 26         # rows * max(d_in, d_out)
WEIGHT_BUDGET = 1 << 27       # num_weights * d_in * d_out


@dataclass
class Config:
    seed: int
    kind: str
    dtype: str
    d_in: int
    d_out: int
    num_weights: int
    lens: np.ndarray
    weight_indices: np.ndarray | None
    col_major: bool
    use_indptr: bool
    notes: list = field(default_factory=list)

    @property
    def rows(self):
        return int(self.lens.sum())

    @property
    def batch(self):
        return len(self.lens)

    @property
    def macs(self):
        return self.rows * self.d_in * self.d_out

    def id(self):
        return (f"seed{self.seed}-{self.kind}-{self.dtype}-b{self.batch}-r{self.rows}"
                f"-{self.d_in}x{self.d_out}-w{self.num_weights}"
                f"-{'idx' if self.weight_indices is not None else 'noidx'}"
                f"-{'col' if self.col_major else 'row'}-{'indptr' if self.use_indptr else 'lens'}")


def _pick_dims(rng, dtype, unaligned_p=0.3, sizes=ALIGNED):
    if rng.random() < unaligned_p:
        a = int(rng.choice(UNALIGNED))
        b = int(rng.choice(sizes + UNALIGNED))
        return (a, b) if rng.random() < 0.5 else (b, a)
    return int(rng.choice(sizes)), int(rng.choice(sizes))


def _cap_rows(lens, max_rows):
    total = int(lens.sum())
    if total <= max_rows:
        return lens
    return np.floor(lens * (max_rows / total)).astype(np.int64)


def make_config(seed: int) -> Config:
    """A reproducible configuration: everything follows from the seed."""
    rng = np.random.default_rng(seed)
    dtype = str(rng.choice(["fp16", "bf16", "fp32"], p=[0.42, 0.42, 0.16]))
    col_major = bool(rng.random() < 0.5)
    use_indptr = bool(rng.random() < 0.5)
    kinds = ["general"] * 5 + ["decode"] * 2 + ["long", "empty", "general"]
    kind = "huge" if seed % 80 == 9 else kinds[seed % len(kinds)]

    if kind == "huge":  # 100,000 segments: three recipes, one per occurrence
        recipe = (seed // 80) % 3
        b = 100_000
        lens = rng.choice([0, 1, 2, 3], size=b, p=[0.2, 0.5, 0.2, 0.1]).astype(np.int64)
        if recipe == 0:    # decode-style: few shared weights, tensor cores (coalescing)
            dtype, d_in, d_out, nw = "bf16", 64, 128, 7
            widx = rng.integers(0, nw, size=b)
        elif recipe == 1:  # one weight per segment, no indices
            dtype, d_in, d_out, nw = "fp16", 16, 16, b
            widx = None
        else:              # fp32, unaligned: portable kernel, many distinct weights
            dtype, d_in, d_out, nw = "fp32", 8, 20, 1000
            widx = rng.integers(0, nw, size=b)
        return Config(seed, kind, dtype, d_in, d_out, nw, lens, widx, col_major, use_indptr)

    if kind == "decode":  # many short segments sharing few weights
        if dtype == "fp32" and rng.random() < 0.8:
            dtype = str(rng.choice(["fp16", "bf16"]))
        d_in, d_out = _pick_dims(rng, dtype, unaligned_p=0.1, sizes=[256, 512, 1024, 2048, 4096])
        b = int(rng.integers(64, 4097))
        lens = rng.integers(1, 5, size=b).astype(np.int64)
        lens[rng.random(b) < 0.05] = 0
        nw = int(rng.integers(1, 9))
        widx = rng.integers(0, nw, size=b)
    elif kind == "long":  # one very long segment among a few short ones
        d_in, d_out = _pick_dims(rng, dtype, unaligned_p=0.2, sizes=[8, 16, 32, 64, 128, 256])
        b = int(rng.integers(1, 9))
        lens = rng.integers(0, 50, size=b).astype(np.int64)
        lens[int(rng.integers(0, b))] = int(rng.integers(60_000, 300_001))
        nw = b + int(rng.integers(0, 3))
        widx = None if rng.random() < 0.5 else rng.integers(0, nw, size=b)
    elif kind == "empty":  # x_rows = 0: no segment, or only empty ones
        d_in, d_out = _pick_dims(rng, dtype)
        b = 0 if rng.random() < 0.4 else int(rng.integers(1, 50))
        lens = np.zeros(b, dtype=np.int64)
        nw = max(1, b) + int(rng.integers(0, 3))
        widx = None if rng.random() < 0.5 else rng.integers(0, nw, size=b)
        if b == 0:
            use_indptr = True  # seg_lens of 0 elements would be a NULL pointer
    else:  # general ragged batch
        d_in, d_out = _pick_dims(rng, dtype)
        b = int(np.exp(rng.uniform(0, math.log(2000))))
        scale = int(rng.choice([1, 4, 16, 64, 256, 1024]))
        lens = rng.integers(1, 2 * scale + 1, size=b).astype(np.int64)
        lens[rng.random(b) < 0.15] = 0
        if rng.random() < 0.5:
            nw = int(rng.integers(1, min(b, 64) + 1))
            widx = rng.integers(0, nw, size=b)
        else:
            nw = b + int(rng.integers(0, 3))
            widx = None

    # keep memory and time bounded
    max_w = max(1, WEIGHT_BUDGET // (d_in * d_out))
    if nw > max_w:
        nw = max_w
        widx = rng.integers(0, nw, size=len(lens))
    is_tc = tc_ok(DTYPES[dtype], d_in, d_out)
    budget = MAC_BUDGET_TC if is_tc else MAC_BUDGET_PORTABLE
    max_rows = max(1, min(budget // (d_in * d_out), ELEM_BUDGET // max(d_in, d_out)))
    lens = _cap_rows(lens, max_rows)
    return Config(seed, kind, dtype, d_in, d_out, nw, lens, widx, col_major, use_indptr)


CONFIGS = [make_config(s) for s in range(N_RANDOM)]
RESULTS = []  # (config id, backend, plan, rel, worst)


@pytest.fixture(scope="module", autouse=True)
def _write_results():
    yield
    out = os.environ.get("OUT")
    if out and RESULTS:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "segment_gemm_random_configs.tsv"), "w") as f:
            f.write("config\tbackend\tplan\trel_err\tworst_ratio\n")
            for r in RESULTS:
                f.write("\t".join(str(v) for v in r) + "\n")


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.id() for c in CONFIGS])
def test_random_config(handles, cfg: Config):
    dt = DTYPES[cfg.dtype]
    print(cfg.id())
    gen = torch.Generator(device=DEV).manual_seed(cfg.seed)
    x = rand((cfg.rows, cfg.d_in), dt, gen)
    wshape = ((cfg.num_weights, cfg.d_out, cfg.d_in) if cfg.col_major
              else (cfg.num_weights, cfg.d_in, cfg.d_out))
    W = rand(wshape, dt, gen)
    ref = sgemm.reference(x, W, sgemm.host_segments(lens=cfg.lens), cfg.weight_indices,
                          cfg.col_major)
    backends = [Backend.AUTO] + forced_backends(dt, cfg.d_in, cfg.d_out)
    if cfg.seed % 4 == 0 and cfg.macs <= MAC_BUDGET_FORCED_PORTABLE:
        backends.append(Backend.PORTABLE)
    for b in backends:
        exp = (expected_auto_family(dt, cfg.d_in, cfg.d_out, cfg.rows, cfg.batch)
               if b == Backend.AUTO else FAMILY[b])
        try:
            plan, stats = run_and_compare(
                handles(b), x, W, cfg.lens, col_major=cfg.col_major, widx_host=cfg.weight_indices,
                use_indptr=cfg.use_indptr, expect_family=exp, ref=ref, label=f"{cfg.id()} {b.name}")
        except SgemmError as e:
            if PARTIAL_BUILD and e.status == Status.UNSUPPORTED and b != Backend.AUTO:
                RESULTS.append((cfg.id(), b.name, f"UNSUPPORTED (partial build): {e.message}", "", ""))
                continue
            raise
        RESULTS.append((cfg.id(), b.name, plan, f"{stats['rel']:.3e}", f"{stats['worst']:.3f}"))
        print(f"  {b.name:8s} {plan:60s} rel={stats['rel']:.3e} worst={stats['worst']:.3f}")
    # a forced tensor-core backend refuses what it cannot run, on the same arguments
    if not tc_ok(dt, cfg.d_in, cfg.d_out) and cfg.seed % 3 == 0 and cfg.rows > 0:
        for b in ([Backend.SM90] if IS_SM90 else []) + ([Backend.SM80] if HAS_SM80 else []):
            y = poison(cfg.rows, cfg.d_out, dt)
            seg = (dict(seg_indptr=dev_i64(sgemm.host_segments(lens=cfg.lens))) if cfg.use_indptr
                   else dict(seg_lens=dev_i64(cfg.lens)))
            with pytest.raises(SgemmError) as e:
                handles(b).run(x, W, y, weight_column_major=cfg.col_major, batch_size=cfg.batch,
                               weight_indices=(dev_i64(cfg.weight_indices)
                                               if cfg.weight_indices is not None else None), **seg)
            assert e.value.status == Status.UNSUPPORTED, e.value
            handles(b).check()
            assert bool(torch.isnan(y).all())


def test_random_configs_cover_the_brief():
    kinds = {c.kind for c in CONFIGS}
    assert {"general", "decode", "long", "empty", "huge"} <= kinds
    assert len(CONFIGS) >= 200
    assert max(c.batch for c in CONFIGS) == 100_000
    assert any(c.rows == 0 for c in CONFIGS)
    assert any(max(c.lens, default=0) >= 60_000 for c in CONFIGS)
    assert {c.dtype for c in CONFIGS} == {"fp16", "bf16", "fp32"}
    assert any(c.d_in % 8 or c.d_out % 8 for c in CONFIGS)
    assert any(c.d_in == 4096 or c.d_out == 4096 for c in CONFIGS)
    assert any(c.weight_indices is None for c in CONFIGS) and any(
        c.weight_indices is not None for c in CONFIGS)
    assert any(c.col_major for c in CONFIGS) and any(not c.col_major for c in CONFIGS)
    assert any(c.use_indptr for c in CONFIGS) and any(not c.use_indptr for c in CONFIGS)
    assert any((c.lens == 0).any() and c.rows > 0 for c in CONFIGS)


# --- focused behaviour -----------------------------------------------------------------------

def small_problem(dtype=torch.bfloat16, d_in=16, d_out=16, nw=4, lens=(1, 2, 3, 4), seed=7,
                  col_major=False):
    gen = torch.Generator(device=DEV).manual_seed(seed)
    rows = int(sum(lens))
    x = rand((rows, d_in), dtype, gen)
    W = rand((nw, d_out, d_in) if col_major else (nw, d_in, d_out), dtype, gen)
    return x, W


def tc_backend():
    return Backend.SM90 if IS_SM90 else (Backend.SM80 if HAS_SM80 else None)


@pytest.mark.skipif(not HAS_SM80, reason="no tensor-core backend (needs compute capability 8.x or 9.0)")
def test_decode_batch_takes_the_coalesced_path_and_only_with_its_workspace():
    gen = np.random.default_rng(99)
    b, nw, d = 4096, 4, 1024
    lens = np.ones(b, dtype=np.int64)
    widx = gen.integers(0, nw, size=b)
    x, W = small_problem(torch.bfloat16, d, d, nw, lens, seed=99)
    ref = sgemm.reference(x, W, sgemm.host_segments(lens=lens), widx, False)
    exp = expected_auto_family(torch.bfloat16, d, d)
    with sgemm.Handle(Backend.AUTO) as h:
        plan, _ = run_and_compare(h, x, W, lens, col_major=False, widx_host=widx,
                                  expect_family=exp, ref=ref, label="decode coalesced")
        assert "coalesced" in plan, f"4096 one-row segments on {nw} weights did not coalesce: {plan}"
    args = sgemm.make_args(x, W, x, seg_lens=dev_i64(lens), weight_indices=dev_i64(widx))
    sizes = sgemm.workspace_size(args)
    assert sizes.float_bytes_coalesced >= sizes.float_bytes
    if sizes.float_bytes_coalesced > sizes.float_bytes:
        with sgemm.Handle(Backend.AUTO, float_bytes=sizes.float_bytes, int_bytes=sizes.int_bytes,
                          grow=False) as h:
            plan, _ = run_and_compare(h, x, W, lens, col_major=False, widx_host=widx,
                                      expect_family=exp, ref=ref, label="decode, no coalescing room")
            assert "coalesced" not in plan, plan


def test_seg_indptr_wins_over_seg_lens(handles):
    x, W = small_problem()
    lens = [1, 2, 3, 4]
    ref = sgemm.reference(x, W, sgemm.host_segments(lens=lens))
    y = poison(10, 16, x.dtype)
    h = handles(Backend.AUTO)
    h.run(x, W, y, seg_lens=dev_i64([-5, 100, 7, 0]), seg_indptr=dev_i64([0, 1, 3, 6, 10]))
    h.check()
    assert sgemm.compare(y, *ref)["ok"]


def test_runs_on_a_side_stream(handles):
    x, W = small_problem(torch.float16, 64, 64, 3, (5, 0, 7))
    ref = sgemm.reference(x, W, sgemm.host_segments(lens=[5, 0, 7]))
    h = handles(Backend.AUTO)
    s = torch.cuda.Stream()
    y = poison(12, 64, x.dtype)
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        lens = dev_i64([5, 0, 7])
        h.run(x, W, y, seg_lens=lens)
        h.check(s)
    torch.cuda.current_stream().wait_stream(s)
    assert sgemm.compare(y, *ref)["ok"]


def test_empty_batch(handles):
    x, W = small_problem(lens=())
    y = poison(0, 16, x.dtype)
    for b in [Backend.AUTO, Backend.PORTABLE] + forced_backends(x.dtype, 16, 16):
        h = handles(b)
        h.run(x, W, y, seg_indptr=dev_i64([0]))
        h.run(x, W, y, seg_lens=dev_i64([0, 0, 0]))
        h.check()


def test_misaligned_pointers(handles):
    """x, weights, y not 16-byte aligned: AUTO runs them on the CUDA cores (here the small-call
    kernel), a forced tensor-core backend refuses."""
    lens = [3, 5]
    gen = torch.Generator(device=DEV).manual_seed(3)
    xbuf = rand((8 * 64 + 1,), torch.bfloat16, gen)
    x = xbuf[1:].view(8, 64)  # 2 bytes past an aligned address
    W = rand((2, 64, 64), torch.bfloat16, gen)
    ref = sgemm.reference(x, W, sgemm.host_segments(lens=lens))
    ybuf = torch.full((8 * 64 + 1,), float("nan"), dtype=torch.bfloat16, device=DEV)
    y = ybuf[1:].view(8, 64)
    h = handles(Backend.AUTO)
    plan = h.plan(x, W, y, seg_lens=dev_i64(lens))
    assert plan.startswith("small"), plan
    h.run(x, W, y, seg_lens=dev_i64(lens))
    h.check()
    assert sgemm.compare(y, *ref)["ok"]
    for b in forced_backends(torch.bfloat16, 64, 64):
        with pytest.raises(SgemmError) as e:
            handles(b).run(x, W, y, seg_lens=dev_i64(lens))
        assert e.value.status == Status.UNSUPPORTED, e.value


def _ragged(b, rows, seed):
    """b segment lengths summing to rows, some of them empty."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, rows + 1, size=b - 1))
    lens = np.diff(np.concatenate([[0], cuts, [rows]])).astype(np.int64)
    lens[rng.random(b) < 0.1] = 0
    lens[-1] += rows - int(lens.sum())
    return lens


@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
def test_small_call_kernel_over_many_blocks_and_its_bounds(handles, dtype):
    """The fused small-call kernel at the edge of its rule: ragged segments over many row and
    column tiles (every block checks the batch itself), both layouts, with and without indices;
    one step past each bound goes to another kernel."""
    dt = DTYPES[dtype]
    rows, d_in, d_out, b = 1000, 64, 64, 300          # 4,096,000 MACs <= 2^22
    assert small_fits(rows, b, d_in, d_out)
    lens = _ragged(b, rows, 5)
    gen = np.random.default_rng(6)
    for col_major, widx in ((False, None), (True, gen.integers(0, 7, size=b))):
        nw = b if widx is None else 7
        x, W = small_problem(dt, d_in, d_out, nw, lens, seed=8, col_major=col_major)
        plan, _ = run_and_compare(handles(Backend.AUTO), x, W, lens, col_major=col_major,
                                  widx_host=widx, use_indptr=widx is not None,
                                  expect_family="small", label=f"small {dtype}")
        assert plan.startswith("small"), plan
    # one past each bound: more MACs, more segments, a wider d_in
    for r, bb, di, do in ((1025, 300, 64, 64), (1100, 1025, 8, 8), (8, 4, 520, 16)):
        assert not small_fits(r, bb, di, do)
        lens = _ragged(bb, r, 9)
        x, W = small_problem(dt, di, do, bb, lens, seed=10)
        plan = handles(Backend.AUTO).plan(x, W, poison(r, do, dt), seg_lens=dev_i64(lens))
        assert not plan.startswith("small"), (r, bb, di, do, plan)


def test_small_call_error_leaves_every_block_unwritten(handles):
    """A bad weight index in the last of 300 segments: no block of the small-call kernel writes."""
    rows, b = 1000, 300
    lens = _ragged(b, rows, 11)
    widx = np.zeros(b, dtype=np.int64)
    widx[-1] = 7
    x, W = small_problem(torch.float16, 64, 64, 7, lens, seed=12)
    h = handles(Backend.AUTO)
    y = poison(rows, 64, x.dtype)
    assert h.plan(x, W, y, seg_lens=dev_i64(lens), weight_indices=dev_i64(widx)).startswith("small")
    h.run(x, W, y, seg_lens=dev_i64(lens), weight_indices=dev_i64(widx))
    with pytest.raises(SgemmError) as e:
        h.check()
    assert f"weight_indices[{b - 1}] = 7 is out of range" in e.value.message, e.value
    assert bool(torch.isnan(y).all()), "a block of the failed small call wrote to y"


# --- errors --------------------------------------------------------------------------------

def error_backends():
    return [Backend.AUTO, Backend.PORTABLE] + forced_backends(torch.bfloat16, 16, 16)


# (id, seg_lens, seg_indptr, weight_indices, x_rows, expected message pattern)
DEVICE_ERRORS = [
    ("negative_seg_len", [1, -2, 3, 8], None, None, 10, r"seg_lens\[1\] = -2 is negative"),
    ("seg_len_exceeds_x_rows", [1, 11, 0, 0], None, None, 10, r"seg_lens\[1\] = 11\b"),
    ("indptr_does_not_start_at_0", None, [1, 2, 4, 7, 10], None, 9,
     r"seg_indptr\[0\] = 1 but must be 0"),
    ("indptr_not_monotone", None, [0, 3, 2, 6, 10], None, 10, r"seg_indptr is not monotone"),
    ("lens_sum_below_x_rows", [1, 2, 3, 3], None, None, 10,
     r"the segments cover 9 rows but x has 10 rows"),
    ("lens_sum_above_x_rows", [1, 2, 3, 5], None, None, 10,
     r"the segments cover 11 rows but x has 10 rows"),
    ("indptr_end_above_x_rows", None, [0, 1, 3, 6, 11], None, 10,
     r"the segments cover 11 rows but x has 10 rows"),
    ("no_segments_over_rows", None, [0], None, 10,
     r"the segments cover 0 rows but x has 10 rows"),
    ("weight_index_negative", [1, 2, 3, 4], None, [0, 1, -1, 1], 10,
     r"weight_indices\[2\] = -1 is out of range \[0, num_weights\)"),
    ("weight_index_too_large", [1, 2, 3, 4], None, [0, 4, 1, 1], 10,
     r"weight_indices\[1\] = 4 is out of range \[0, num_weights\)"),
]


@pytest.mark.parametrize("backend", error_backends(), ids=lambda b: b.name)
@pytest.mark.parametrize("case", DEVICE_ERRORS, ids=[c[0] for c in DEVICE_ERRORS])
def test_device_detected_error(handles, backend, case):
    name, lens, indptr, widx, x_rows, pattern = case
    x, W = small_problem(lens=(x_rows,))
    h = handles(backend)
    h.check()  # nothing pending
    y = poison(x_rows, 16, x.dtype)
    kw = dict(seg_lens=dev_i64(lens) if lens is not None else None,
              seg_indptr=dev_i64(indptr) if indptr is not None else None,
              weight_indices=dev_i64(widx) if widx is not None else None)
    try:
        h.run(x, W, y, **kw)  # enqueues; the device finds the error
    except SgemmError as e:
        skip_if_partial(e, name)
        raise
    with pytest.raises(SgemmError) as e:
        h.check()
    assert e.value.status == Status.INVALID_ARGUMENT, e.value
    assert re.search(pattern, e.value.message), f"message {e.value.message!r} !~ {pattern!r}"
    assert bool(torch.isnan(y).all()), f"{name}: the failed call wrote to y"
    # the error does not stick: the next valid call on the same handle succeeds
    h.check()
    x2, W2 = small_problem()
    run_and_compare(h, x2, W2, [1, 2, 3, 4], col_major=False, label=f"after {name}")


def test_errors_are_reported_at_the_next_check_and_later_runs_still_run(handles):
    x, W = small_problem()
    h = handles(Backend.AUTO)
    y_bad = poison(10, 16, x.dtype)
    h.run(x, W, y_bad, seg_lens=dev_i64([1, -2, 3, 8]))
    y_good = poison(10, 16, x.dtype)
    h.run(x, W, y_good, seg_lens=dev_i64([1, 2, 3, 4]))
    with pytest.raises(SgemmError) as e:
        h.check()
    assert "seg_lens[1] = -2 is negative" in e.value.message
    h.check()  # cleared
    assert bool(torch.isnan(y_bad).all())
    assert sgemm.compare(y_good, *sgemm.reference(x, W, [0, 1, 3, 6, 10]))["ok"]


def _expect_host_error(h, status, pattern, *args, **kw):
    with pytest.raises(SgemmError) as e:
        h.run(*args, **kw)
    assert e.value.status == status, e.value
    assert re.search(pattern, e.value.message), f"{e.value.message!r} !~ {pattern!r}"
    return e.value


@pytest.mark.parametrize("backend", error_backends(), ids=lambda b: b.name)
def test_host_detected_errors(handles, backend):
    x, W = small_problem()
    h = handles(backend)
    lens = dev_i64([1, 2, 3, 4])
    y = poison(10, 16, x.dtype)
    INV = Status.INVALID_ARGUMENT
    # batch_size > num_weights without weight_indices
    _expect_host_error(h, INV, r"num_weights", x, W[:3], y, seg_lens=lens)
    # null pointers
    _expect_host_error(h, INV, r"\bx\b.*null|null.*\bx\b", None, W, y, seg_lens=lens, x_rows=10)
    _expect_host_error(h, INV, r"\by\b.*null|null.*\by\b", x, W, None, seg_lens=lens, d_out=16)
    _expect_host_error(h, INV, r"weights.*null|null.*weights", x, None, y, seg_lens=lens,
                       num_weights=4)
    _expect_host_error(h, INV, r"seg_lens|seg_indptr", x, W, y, batch_size=4)
    # unknown dtype, negative sizes
    _expect_host_error(h, INV, r"dtype", x, W, y, seg_lens=lens, dtype=7)
    _expect_host_error(h, INV, r"negative|d_in", x, W, y, seg_lens=lens, d_in=-1)
    assert bool(torch.isnan(y).all())
    h.check()
    run_and_compare(h, x, W, [1, 2, 3, 4], col_major=False, label="after host errors")


def test_unknown_backend():
    with pytest.raises(SgemmError) as e:
        sgemm.Handle(9)
    assert e.value.status == Status.INVALID_ARGUMENT, e.value
    assert "backend" in e.value.message


@pytest.mark.skipif(IS_SM90, reason="this device can run SM90")
def test_sm90_refused_on_this_device():
    with pytest.raises(SgemmError) as e:
        sgemm.Handle(Backend.SM90)
    assert e.value.status == Status.UNSUPPORTED, e.value


@pytest.mark.skipif(not HAS_SM80, reason="no tensor-core backend on this device")
@pytest.mark.parametrize("what", ["fp32", "unaligned_d_in", "unaligned_d_out"])
def test_forced_tensor_core_backend_refuses(handles, what):
    if what == "fp32":
        x, W = small_problem(torch.float32)
        pattern = r"float32|fp32|f32|dtype"
    elif what == "unaligned_d_in":
        x, W = small_problem(torch.bfloat16, d_in=100, d_out=64)
        pattern = r"d_in|multiple|align"
    else:
        x, W = small_problem(torch.bfloat16, d_in=64, d_out=60)
        pattern = r"d_out|multiple|align"
    y = poison(10, W.shape[2], x.dtype)
    lens = dev_i64([1, 2, 3, 4])
    for b in ([Backend.SM90] if IS_SM90 else []) + [Backend.SM80]:
        h = handles(b)
        with pytest.raises(SgemmError) as e:
            h.plan(x, W, y, seg_lens=lens)
        assert e.value.status == Status.UNSUPPORTED and re.search(pattern, e.value.message), e.value
        err = _expect_host_error(h, Status.UNSUPPORTED, pattern, x, W, y, seg_lens=lens)
        print(f"{b.name} {what}: {err.message}")
        assert bool(torch.isnan(y).all())
        # AUTO runs it on the CUDA cores (a call this small on the small-call kernel)
        run_and_compare(handles(Backend.AUTO), x, W, [1, 2, 3, 4], col_major=False,
                        expect_family="small", label=f"AUTO {what}")


def test_int_workspace_too_small():
    b = 1000
    lens = np.ones(b, dtype=np.int64)
    x, W = small_problem(lens=lens, nw=1)
    widx = np.zeros(b, dtype=np.int64)
    args = sgemm.make_args(x, W, x, seg_lens=dev_i64(lens), weight_indices=dev_i64(widx))
    sizes = sgemm.workspace_size(args)
    with sgemm.Handle(Backend.AUTO, float_bytes=sizes.float_bytes_coalesced,
                      int_bytes=sizes.int_bytes // 2, grow=False) as h:
        y = poison(b, 16, x.dtype)
        with pytest.raises(SgemmError) as e:
            h.run(x, W, y, seg_lens=dev_i64(lens), weight_indices=dev_i64(widx))
        assert e.value.status == Status.WORKSPACE_TOO_SMALL, e.value
        h.check()
        assert bool(torch.isnan(y).all())
        h.reset_workspace(sizes.float_bytes_coalesced, sizes.int_bytes)
        run_and_compare(h, x, W, lens, col_major=False, widx_host=widx, label="int ws exact")


@pytest.mark.skipif(not HAS_SM80, reason="no tensor-core backend on this device")
def test_float_workspace_too_small():
    backend = tc_backend()
    lens = [100, 200, 300, 400]
    x, W = small_problem(torch.bfloat16, 256, 256, 4, lens)
    args = sgemm.make_args(x, W, x, seg_lens=dev_i64(lens))
    sizes = sgemm.workspace_size(args)
    if sizes.float_bytes == 0:
        pytest.skip(f"{backend.name} needs no float workspace for this call ({sizes})")
    with sgemm.Handle(backend, float_bytes=sizes.float_bytes // 2, int_bytes=sizes.int_bytes,
                      grow=False) as h:
        y = poison(1000, 256, x.dtype)
        try:
            h.run(x, W, y, seg_lens=dev_i64(lens))
            pytest.fail(f"{backend.name} ran with half the float workspace it asked for ({sizes})")
        except SgemmError as err:
            skip_if_partial(err, "float workspace test")
            assert err.status == Status.WORKSPACE_TOO_SMALL, err
        h.check()
        assert bool(torch.isnan(y).all())
        h.reset_workspace(sizes.float_bytes, sizes.int_bytes)
        plan, _ = run_and_compare(h, x, W, lens, col_major=False, expect_family=FAMILY[backend],
                                  label="float ws exact")
        if sizes.float_bytes_coalesced > sizes.float_bytes:
            assert "coalesced" not in plan, plan
