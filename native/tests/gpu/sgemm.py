"""A small ctypes binding of libsegmentgemm (native/include/segment_gemm.h) for the GPU tests and
benchmarks, plus the fp32 reference both use.

    import sgemm
    with sgemm.Handle(sgemm.Backend.AUTO) as h:
        h.run(x, weights, y, seg_lens=lens, weight_indices=idx)   # enqueues on torch's stream
        h.check()                                                 # syncs, raises SgemmError

The library is found at $SGEMM_LIB, else at the path the Maven build puts it
(native/target/classes/com/sparksegmentgemm/nativelib/linux/amd64/libsegmentgemm.so).
torch is imported lazily: loading the library, the version, workspace sizes and the struct
layouts work without it (and without a GPU), which is what the no-GPU tests use.
"""

from __future__ import annotations

import ctypes
import enum
import os
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
HEADER = REPO_ROOT / "native" / "include" / "segment_gemm.h"
DEFAULT_LIB = (REPO_ROOT / "native" / "target" / "classes" / "com" / "sparksegmentgemm"
               / "nativelib" / "linux" / "amd64" / "libsegmentgemm.so")

# cudaStreamLegacy: torch's default stream is the legacy default stream (cuda_stream == 0), while
# the library, built with --default-stream per-thread, reads stream 0 as the per-thread default
# stream. Passing the legacy handle keeps the library on the very stream torch uses.
CUDA_STREAM_LEGACY = 0x1


class Status(enum.IntEnum):
    OK = 0
    INVALID_ARGUMENT = 1
    WORKSPACE_TOO_SMALL = 2
    UNSUPPORTED = 3
    NO_DEVICE = 4
    CUDA_ERROR = 5
    INTERNAL_ERROR = 6
    CUDA_FATAL = 7


class DType(enum.IntEnum):
    FLOAT32 = 0
    FLOAT16 = 1
    BFLOAT16 = 2
    FLOAT8_E4M3 = 3
    FLOAT8_E5M2 = 4


class Backend(enum.IntEnum):
    AUTO = 0
    PORTABLE = 1
    SM80 = 2
    SM90 = 3


# --- C structs: field order and types exactly as in segment_gemm.h -------------------------------
# C enums (sgemm_dtype) are ints; `int weight_column_major` is an int; pointers are void*.

class RunArgs(ctypes.Structure):
    _fields_ = [
        ("dtype", ctypes.c_int),               # sgemm_dtype
        ("x", ctypes.c_void_p),                # const void*
        ("x_rows", ctypes.c_int64),
        ("d_in", ctypes.c_int64),
        ("d_out", ctypes.c_int64),
        ("weights", ctypes.c_void_p),          # const void*
        ("num_weights", ctypes.c_int64),
        ("weight_column_major", ctypes.c_int),
        ("y", ctypes.c_void_p),                # void*
        ("batch_size", ctypes.c_int64),
        ("seg_lens", ctypes.c_void_p),         # const int64_t*
        ("seg_indptr", ctypes.c_void_p),       # const int64_t*
        ("weight_indices", ctypes.c_void_p),   # const int64_t*
        ("weight_scales", ctypes.c_void_p),    # const float*: fp8 e4m3 weights when set
    ]

    def __repr__(self):
        return "RunArgs(" + ", ".join(f"{n}={getattr(self, n)}" for n, _ in self._fields_) + ")"


class BmmFp8Args(ctypes.Structure):
    _fields_ = [
        ("a_dtype", ctypes.c_int),
        ("b_dtype", ctypes.c_int),
        ("out_dtype", ctypes.c_int),
        ("a", ctypes.c_void_p),
        ("b", ctypes.c_void_p),
        ("a_scale", ctypes.c_void_p),
        ("b_scale", ctypes.c_void_p),
        ("d", ctypes.c_void_p),
        ("batch", ctypes.c_int64),
        ("m", ctypes.c_int64),
        ("n", ctypes.c_int64),
        ("k", ctypes.c_int64),
    ]


class DeviceInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char * 256),
        ("major", ctypes.c_int),
        ("minor", ctypes.c_int),
        ("multiprocessor_count", ctypes.c_int),
        ("total_memory_bytes", ctypes.c_size_t),
        ("driver_version", ctypes.c_int),
        ("runtime_version", ctypes.c_int),
    ]


class WorkspaceSizes(ctypes.Structure):
    _fields_ = [
        ("float_bytes", ctypes.c_size_t),
        ("float_bytes_coalesced", ctypes.c_size_t),
        ("int_bytes", ctypes.c_size_t),
    ]

    def __repr__(self):
        return (f"WorkspaceSizes(float_bytes={self.float_bytes}, "
                f"float_bytes_coalesced={self.float_bytes_coalesced}, int_bytes={self.int_bytes})")


class SgemmError(RuntimeError):
    """A failed library call: .status (Status), .message (sgemm_last_error()), .func."""

    def __init__(self, status, message, func=""):
        try:
            status = Status(status)
        except ValueError:
            pass
        self.status = status
        self.message = message
        self.func = func
        name = status.name if isinstance(status, Status) else str(status)
        super().__init__(f"{func}: {name}: {message}")


# --- loading -------------------------------------------------------------------------------------

_lib = None


def lib_path() -> pathlib.Path:
    return pathlib.Path(os.environ.get("SGEMM_LIB") or DEFAULT_LIB)


def lib() -> ctypes.CDLL:
    """The loaded library (once per process), with every entry point's signature declared."""
    global _lib
    if _lib is not None:
        return _lib
    path = lib_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"libsegmentgemm.so not found at {path} (build it, or set SGEMM_LIB)")
    L = ctypes.CDLL(str(path))
    st, P, c_int, c_size = ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    sig = {
        "sgemm_last_error": (ctypes.c_char_p, []),
        "sgemm_last_cuda_error": (ctypes.c_int, []),
        "sgemm_version": (ctypes.c_char_p, []),
        "sgemm_device_count": (st, [ctypes.POINTER(c_int)]),
        "sgemm_device_query": (st, [c_int, ctypes.POINTER(DeviceInfo)]),
        "sgemm_workspace_size": (st, [ctypes.POINTER(RunArgs), ctypes.POINTER(WorkspaceSizes)]),
        "sgemm_create": (st, [ctypes.POINTER(P), c_int, P, c_size, P, c_size]),
        "sgemm_reset_workspace": (st, [P, P, c_size, P, c_size]),
        "sgemm_destroy": (st, [P]),
        "sgemm_run": (st, [P, ctypes.POINTER(RunArgs), P]),
        "sgemm_describe_plan": (st, [P, ctypes.POINTER(RunArgs), ctypes.c_char_p, c_size]),
        "sgemm_check": (st, [P, P]),
        "sgemm_bmm_fp8_workspace_size": (st, [ctypes.POINTER(BmmFp8Args), ctypes.POINTER(c_size)]),
        "sgemm_bmm_fp8": (st, [P, ctypes.POINTER(BmmFp8Args), P]),
        "sgemm_group_rows_workspace_size": (st, [ctypes.c_int64, ctypes.c_int32,
                                                 ctypes.POINTER(c_size)]),
        "sgemm_group_rows": (st, [P, P, P, P, P, ctypes.c_int64, ctypes.c_int64, ctypes.c_int32,
                                  ctypes.c_int64, P, P, P, P, P, P, c_size, P]),
        "sgemm_timer_create": (st, [ctypes.POINTER(P), c_int]),
        "sgemm_timer_mark": (st, [P, c_int, P]),
        "sgemm_timer_read": (st, [P, ctypes.POINTER(ctypes.c_float)]),
        "sgemm_timer_destroy": (st, [P]),
    }
    for name, (restype, argtypes) in sig.items():
        fn = getattr(L, name)
        fn.restype = restype
        fn.argtypes = argtypes
    _lib = L
    return L


def last_error() -> str:
    return (lib().sgemm_last_error() or b"").decode("utf-8", "replace")


def _call(name, *args) -> None:
    status = getattr(lib(), name)(*args)
    if status != Status.OK:
        raise SgemmError(status, last_error(), name)


def version() -> str:
    """The library's version string, e.g. "0.1.0"."""
    return lib().sgemm_version().decode()


def device_count() -> tuple[int, int, str]:
    """(status, count, message): NO_DEVICE is an answer here, not an exception."""
    n = ctypes.c_int(0)
    status = lib().sgemm_device_count(ctypes.byref(n))
    return int(status), n.value, ("" if status == Status.OK else last_error())


def device_query(device: int = 0) -> DeviceInfo:
    info = DeviceInfo()
    _call("sgemm_device_query", device, ctypes.byref(info))
    return info


def workspace_size(args: RunArgs) -> WorkspaceSizes:
    sizes = WorkspaceSizes()
    _call("sgemm_workspace_size", ctypes.byref(args), ctypes.byref(sizes))
    return sizes


# --- torch helpers -------------------------------------------------------------------------------

def _torch():
    import torch
    return torch


def dtype_code(torch_dtype) -> int:
    torch = _torch()
    codes = {torch.float32: DType.FLOAT32, torch.float16: DType.FLOAT16,
             torch.bfloat16: DType.BFLOAT16, torch.float8_e4m3fn: DType.FLOAT8_E4M3,
             torch.float8_e5m2: DType.FLOAT8_E5M2}
    if torch_dtype not in codes:
        raise ValueError(f"no sgemm dtype for {torch_dtype}")
    return int(codes[torch_dtype])


def stream_handle(stream=None) -> int:
    """The cudaStream_t to pass for a torch stream (default: the current one)."""
    torch = _torch()
    s = torch.cuda.current_stream() if stream is None else stream
    return s.cuda_stream or CUDA_STREAM_LEGACY


def _ptr(t) -> int | None:
    if t is None:
        return None
    if isinstance(t, int):  # a raw device address (0 = NULL)
        return t or None
    if not t.is_contiguous():
        raise ValueError(f"tensor of shape {tuple(t.shape)} is not contiguous")
    return t.data_ptr() or None


def _check_index_tensor(name, t):
    if t is None or isinstance(t, int):
        return
    torch = _torch()
    if t.dtype != torch.int64:
        raise ValueError(f"{name} must be int64, got {t.dtype}")
    if not t.is_cuda:
        raise ValueError(f"{name} must be on the GPU")


def make_args(x, weights, y, seg_lens=None, seg_indptr=None, weight_indices=None,
              weight_column_major=False, *, batch_size=None, dtype=None, x_rows=None,
              d_in=None, d_out=None, num_weights=None, weight_scales=None) -> RunArgs:
    """sgemm_run_args for torch tensors. x, weights, y and the index tensors may also be None or
    an int address (to test NULL pointers); then give the sizes they would have supplied. The
    keyword overrides (batch_size, dtype, ...) win over what the tensors say. weight_scales (a
    float32 tensor, one per weight) makes the weights fp8 e4m3; dtype then comes from x or y."""
    for name, t in (("seg_lens", seg_lens), ("seg_indptr", seg_indptr),
                    ("weight_indices", weight_indices)):
        _check_index_tensor(name, t)
    t_x = x if x is not None and not isinstance(x, int) else None
    t_w = weights if weights is not None and not isinstance(weights, int) else None
    t_y = y if y is not None and not isinstance(y, int) else None
    if t_w is not None and t_w.dim() != 3:
        raise ValueError(f"weights must be 3-D, got shape {tuple(t_w.shape)}")
    if x_rows is None:
        x_rows = t_x.shape[0] if t_x is not None else (t_y.shape[0] if t_y is not None else None)
    if d_in is None:
        if t_x is not None:
            d_in = t_x.shape[1]
        elif t_w is not None:
            d_in = t_w.shape[2] if weight_column_major else t_w.shape[1]
    if d_out is None:
        if t_y is not None:
            d_out = t_y.shape[1]
        elif t_w is not None:
            d_out = t_w.shape[1] if weight_column_major else t_w.shape[2]
    if num_weights is None and t_w is not None:
        num_weights = t_w.shape[0]
    if batch_size is None:
        if seg_indptr is not None and not isinstance(seg_indptr, int):
            batch_size = seg_indptr.numel() - 1
        elif seg_lens is not None and not isinstance(seg_lens, int):
            batch_size = seg_lens.numel()
    if dtype is None:
        for t in ((t_x, t_y) if weight_scales is not None else (t_x, t_w, t_y)):
            if t is not None:
                dtype = dtype_code(t.dtype)
                break
    missing = [n for n, v in (("x_rows", x_rows), ("d_in", d_in), ("d_out", d_out),
                              ("num_weights", num_weights), ("batch_size", batch_size),
                              ("dtype", dtype)) if v is None]
    if missing:
        raise ValueError(f"cannot infer {missing}: pass them explicitly")
    return RunArgs(int(dtype), _ptr(x), int(x_rows), int(d_in), int(d_out), _ptr(weights),
                   int(num_weights), 1 if weight_column_major else 0, _ptr(y), int(batch_size),
                   _ptr(seg_lens), _ptr(seg_indptr), _ptr(weight_indices), _ptr(weight_scales))


def bmm_fp8_args(a, b, a_scale, b_scale, d, **overrides) -> BmmFp8Args:
    """sgemm_bmm_fp8_args for torch tensors: a (batch, m, k), b (batch, k, n) column-major (a
    transposed view of a contiguous (batch, n, k) tensor), scales as 1-element float32 tensors,
    d (batch, m, n). Tensors may be None or an int address; overrides win."""
    def addr(t):
        if t is None or isinstance(t, int):
            return t or None
        return t.data_ptr() or None
    f = {}
    if a is not None and not isinstance(a, int):
        f.update(a_dtype=dtype_code(a.dtype), batch=a.shape[0], m=a.shape[1], k=a.shape[2])
    if b is not None and not isinstance(b, int):
        f.update(b_dtype=dtype_code(b.dtype), n=b.shape[2])
    if d is not None and not isinstance(d, int):
        f.update(out_dtype=dtype_code(d.dtype))
    f.update(overrides)
    return BmmFp8Args(int(f["a_dtype"]), int(f["b_dtype"]), int(f["out_dtype"]), addr(a), addr(b),
                      addr(a_scale), addr(b_scale), addr(d), int(f["batch"]), int(f["m"]),
                      int(f["n"]), int(f["k"]))


# --- handle --------------------------------------------------------------------------------------

class Handle:
    """An sgemm_handle with torch-allocated workspaces.

    grow=True (default): before each run/plan the workspaces grow to what sgemm_workspace_size
    asks for (float_bytes_coalesced when coalesce=True, else float_bytes). grow=False keeps the
    sizes given (for "workspace too small" tests). Growing swaps the workspaces with
    sgemm_reset_workspace after a sync, which also clears an unchecked device error: tests that
    expect one call check() before the next run, as they should anyway.
    """

    def __init__(self, backend=Backend.AUTO, float_bytes=1 << 20, int_bytes=1 << 16, *,
                 grow=True, coalesce=True, device=None):
        torch = _torch()
        self.backend = backend
        self.grow = grow
        self.coalesce = coalesce
        self.device = torch.device("cuda", torch.cuda.current_device() if device is None else device)
        self._handle = ctypes.c_void_p()
        self._float_ws, self.float_bytes = self._alloc(float_bytes)
        self._int_ws, self.int_bytes = self._alloc(int_bytes)
        with torch.cuda.device(self.device):
            _call("sgemm_create", ctypes.byref(self._handle), int(backend),
                  self._float_ws.data_ptr(), self.float_bytes,
                  self._int_ws.data_ptr(), self.int_bytes)

    def _alloc(self, nbytes):
        torch = _torch()
        # Never a NULL pointer, even for 0 bytes: the size passed is what counts.
        buf = torch.empty(max(int(nbytes), 256), dtype=torch.uint8, device=self.device)
        return buf, int(nbytes)

    # context manager
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._handle:
            torch = _torch()
            torch.cuda.synchronize(self.device)  # the workspaces may still be in use
            status = lib().sgemm_destroy(self._handle)
            self._handle = ctypes.c_void_p()
            if status != Status.OK:
                raise SgemmError(status, last_error(), "sgemm_destroy")

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def ptr(self):
        if not self._handle:
            raise ValueError("handle is closed")
        return self._handle

    def reset_workspace(self, float_bytes, int_bytes):
        """Swaps in fresh workspaces of these sizes (sgemm_reset_workspace)."""
        torch = _torch()
        torch.cuda.synchronize(self.device)  # the old workspaces may still be read by the device
        fws, fbytes = self._alloc(float_bytes)
        iws, ibytes = self._alloc(int_bytes)
        _call("sgemm_reset_workspace", self.ptr, fws.data_ptr(), fbytes, iws.data_ptr(), ibytes)
        self._float_ws, self.float_bytes, self._int_ws, self.int_bytes = fws, fbytes, iws, ibytes

    def ensure_workspace(self, args: RunArgs) -> WorkspaceSizes:
        sizes = workspace_size(args)
        need_f = sizes.float_bytes_coalesced if self.coalesce else sizes.float_bytes
        need_i = sizes.int_bytes
        if self.grow and (need_f > self.float_bytes or need_i > self.int_bytes):
            grow_to = lambda have, need: max(have, need + need // 4) if need > have else have
            self.reset_workspace(grow_to(self.float_bytes, need_f), grow_to(self.int_bytes, need_i))
        return sizes

    def run(self, x, weights, y, seg_lens=None, seg_indptr=None, weight_indices=None,
            weight_column_major=False, *, stream=None, args: RunArgs | None = None, **overrides):
        """Enqueues sgemm_run on stream (default: torch's current stream); raises SgemmError.
        `args` skips make_args (for hand-built, deliberately bad arguments)."""
        if args is None:
            args = make_args(x, weights, y, seg_lens, seg_indptr, weight_indices,
                             weight_column_major, **overrides)
        if self.grow:
            self.ensure_workspace(args)
        _call("sgemm_run", self.ptr, ctypes.byref(args), stream_handle(stream))
        return y

    def plan(self, x, weights, y, seg_lens=None, seg_indptr=None, weight_indices=None,
             weight_column_major=False, *, args: RunArgs | None = None, **overrides) -> str:
        """sgemm_describe_plan for these arguments (after growing the workspace as run would)."""
        if args is None:
            args = make_args(x, weights, y, seg_lens, seg_indptr, weight_indices,
                             weight_column_major, **overrides)
        if self.grow:
            self.ensure_workspace(args)
        buf = ctypes.create_string_buffer(1024)
        _call("sgemm_describe_plan", self.ptr, ctypes.byref(args), buf, len(buf))
        return buf.value.decode("utf-8", "replace")

    def bmm_fp8(self, a, b, a_scale, b_scale, d, *, stream=None, args: BmmFp8Args | None = None,
                **overrides):
        """Enqueues sgemm_bmm_fp8 (FlashInfer's bmm_fp8) into d; raises SgemmError."""
        if args is None:
            args = bmm_fp8_args(a, b, a_scale, b_scale, d, **overrides)
        if self.grow:
            need = ctypes.c_size_t(0)
            _call("sgemm_bmm_fp8_workspace_size", ctypes.byref(args), ctypes.byref(need))
            if need.value > self.float_bytes:
                self.reset_workspace(need.value, self.int_bytes)
        _call("sgemm_bmm_fp8", self.ptr, ctypes.byref(args), stream_handle(stream))
        return d

    def check(self, stream=None) -> None:
        """sgemm_check: waits for the stream; raises SgemmError for a device-found error."""
        _call("sgemm_check", self.ptr, stream_handle(stream))


# --- reference -----------------------------------------------------------------------------------

TOLERANCE = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1e-2}
# Absolute slack for results near zero: a few of the smallest subnormals of the output type.
TINY = {"float32": 1e-30, "float16": 2.0 ** -23, "bfloat16": 1e-30}


def dtype_name(torch_dtype) -> str:
    return str(torch_dtype).replace("torch.", "")


def host_segments(lens=None, indptr=None):
    """(indptr as a numpy int64 array) from host lengths or a host indptr."""
    import numpy as np
    if indptr is not None:
        return np.asarray(indptr, dtype=np.int64)
    lens = np.asarray(lens, dtype=np.int64)
    out = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=out[1:])
    return out


def reference(x, weights, indptr, weight_indices=None, weight_column_major=False,
              with_bound=True, max_loop_weights=512):
    """fp32 reference of the segment GEMM, on x's device, with torch (cuBLAS on a GPU).

    indptr and weight_indices are host sequences (numpy / lists). Rows are grouped by the
    weight they use and each group is one fp32 matmul (one per distinct weight), so 100,000
    segments cost as much as their distinct weights; with more than max_loop_weights distinct
    weights a chunked per-row batched product is used instead. TF32 is switched off.
    Returns (ref, bound) with bound = |x| @ |W| per element (None if not with_bound).
    Rows outside every segment stay 0 (there are none in a valid call).
    """
    import numpy as np
    torch = _torch()
    indptr = np.asarray(indptr, dtype=np.int64)
    b = len(indptr) - 1
    rows = x.shape[0]
    d_out = weights.shape[1] if weight_column_major else weights.shape[2]
    dev = x.device
    ref = torch.zeros(rows, d_out, dtype=torch.float32, device=dev)
    bound = torch.zeros_like(ref) if with_bound else None
    if b == 0 or rows == 0 or d_out == 0:
        return ref, bound
    lens = np.diff(indptr)
    widx = (np.arange(b, dtype=np.int64) if weight_indices is None
            else np.asarray(weight_indices, dtype=np.int64))
    seg_of_row = np.repeat(np.arange(b, dtype=np.int64), lens)
    row_ids = np.arange(indptr[0], indptr[0] + len(seg_of_row), dtype=np.int64)
    w_of_row = widx[seg_of_row]
    prev_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        x32 = x.float()
        wmat = lambda w: (weights[w].float().t() if weight_column_major else weights[w].float())
        distinct, first = np.unique(w_of_row, return_index=True)
        if len(distinct) <= max_loop_weights:
            order = np.argsort(w_of_row, kind="stable")
            starts = np.searchsorted(w_of_row[order], distinct, side="left")
            ends = np.searchsorted(w_of_row[order], distinct, side="right")
            order_t = torch.from_numpy(row_ids[order]).to(dev)
            for w, s, e in zip(distinct.tolist(), starts.tolist(), ends.tolist()):
                idx = order_t[s:e]
                xs = x32.index_select(0, idx)
                W = wmat(w)
                ref.index_copy_(0, idx, xs @ W)
                if with_bound:
                    bound.index_copy_(0, idx, xs.abs() @ W.abs())
        else:
            # many distinct weights (small matrices): out[r] = x[r] @ W[w(r)], chunked by rows
            d_in = x.shape[1]
            W32 = weights.float()
            if weight_column_major:
                W32 = W32.transpose(1, 2)
            chunk = max(1, (256 << 20) // max(1, 4 * d_in * d_out))
            rid = torch.from_numpy(row_ids).to(dev)
            wid = torch.from_numpy(w_of_row).to(dev)
            for s in range(0, len(row_ids), chunk):
                r = rid[s:s + chunk]
                Wg = W32.index_select(0, wid[s:s + chunk])          # (n, d_in, d_out)
                xs = x32.index_select(0, r).unsqueeze(1)            # (n, 1, d_in)
                ref.index_copy_(0, r, torch.bmm(xs, Wg).squeeze(1))
                if with_bound:
                    bound.index_copy_(0, r, torch.bmm(xs.abs(), Wg.abs()).squeeze(1))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev_tf32
    return ref, bound


E4M3_MAX = 448.0


def quantize_fp8(t, fp8_dtype=None, scale=None):
    """(q, scale): t / scale rounded to fp8 (saturating), scale = amax / max finite (1 for all
    zeros) unless given. The dequantised value is q.float() * scale."""
    torch = _torch()
    fp8_dtype = fp8_dtype or torch.float8_e4m3fn
    top = torch.finfo(fp8_dtype).max
    if scale is None:
        amax = float(t.float().abs().max()) if t.numel() else 0.0
        scale = amax / top if amax > 0 else 1.0
    q = (t.float() / scale).clamp(-top, top).to(fp8_dtype)
    return q, float(scale)


def compare(y, ref, bound, torch_dtype=None, tol=None):
    """Checks y against the reference with |y - ref| <= tol * bound + tiny per element.

    Returns a dict: ok, n_nan (elements still NaN: not written), n_bad, rel (||y-ref||/||ref||),
    worst (max |y-ref| / (tol*bound+tiny)) and `first_bad`, a few offending entries."""
    torch = _torch()
    name = dtype_name(torch_dtype if torch_dtype is not None else y.dtype)
    tol = TOLERANCE[name] if tol is None else tol
    tiny = TINY[name]
    yf = y.float()
    n_nan = int(torch.isnan(yf).sum().item()) if y.numel() else 0
    if y.numel() == 0:
        return {"ok": True, "n_nan": 0, "n_bad": 0, "rel": 0.0, "worst": 0.0, "first_bad": []}
    err = (yf - ref).abs()
    allowed = tol * bound + tiny
    bad = ~(err <= allowed)  # NaN counts as bad
    n_bad = int(bad.sum().item())
    ref_norm = float(torch.linalg.vector_norm(ref).item())
    diff_norm = float(torch.linalg.vector_norm(torch.nan_to_num(yf - ref, nan=float("inf"))).item())
    rel = diff_norm / ref_norm if ref_norm > 0 else diff_norm
    worst = float(torch.nan_to_num(err / allowed, nan=float("inf")).max().item())
    first_bad = []
    if n_bad:
        for r, c in bad.nonzero()[:5].tolist():
            first_bad.append(dict(row=r, col=c, y=float(yf[r, c]), ref=float(ref[r, c]),
                                  allowed=float(allowed[r, c])))
    return {"ok": n_nan == 0 and n_bad == 0, "n_nan": n_nan, "n_bad": n_bad, "rel": rel,
            "worst": worst, "first_bad": first_bad, "tol": tol}


# --- the columnar caller's group pass (segment_gemm_rows.h) ------------------------------------

def group_rows(adapter, offsets, num_adapters, d_in, d_out, known=None, present=None,
               has_null=None, stream=None):
    """sgemm_group_rows over torch tensors (int32 adapter and offsets, uint8 masks or None).
    Returns (order, dest, out_offsets, valid, summary) as torch tensors, after a sync."""
    torch = _torch()
    rows = adapter.numel()
    dev = adapter.device
    i32 = dict(dtype=torch.int32, device=dev)
    nbytes = ctypes.c_size_t(0)
    _call("sgemm_group_rows_workspace_size", rows, num_adapters, ctypes.byref(nbytes))
    ws = torch.empty(max(1, nbytes.value), dtype=torch.uint8, device=dev)
    order = torch.full((max(1, rows),), -7, **i32)
    dest = torch.full((max(1, rows),), -7, **i32)
    out_offsets = torch.full((rows + 1,), -7, **i32)
    valid = torch.full((max(1, (rows + 511) // 512 * 16),), -1, **i32)
    summary = torch.full((num_adapters + 2,), -7, **i32)
    _call("sgemm_group_rows", _ptr(adapter), _ptr(known), _ptr(present), _ptr(offsets),
          _ptr(has_null), rows, d_in, num_adapters, d_out, _ptr(order), _ptr(dest),
          _ptr(out_offsets), _ptr(valid), _ptr(summary), _ptr(ws), nbytes.value,
          stream_handle(stream))
    torch.cuda.synchronize()
    return order, dest, out_offsets, valid, summary


class Timer:
    """sgemm_timer: CUDA events marked on a stream, read as milliseconds between marks."""

    def __init__(self, marks: int):
        self.marks = marks
        self._t = ctypes.c_void_p()
        _call("sgemm_timer_create", ctypes.byref(self._t), marks)

    def mark(self, i: int, stream=None) -> None:
        _call("sgemm_timer_mark", self._t, i, stream_handle(stream))

    def read(self) -> list[float]:
        ms = (ctypes.c_float * (self.marks - 1))()
        _call("sgemm_timer_read", self._t, ms)
        return list(ms)

    def close(self) -> None:
        if self._t:
            _call("sgemm_timer_destroy", self._t)
            self._t = ctypes.c_void_p()
