"""The compute side of the e2e benchmark's PySpark peers (spark-plugin/bench/peers.py): what a
PySpark user would write inside mapInArrow to apply per-adapter matmuls, with no code of ours.

Kept apart from peers.py, and free of pyspark imports, for two reasons: Spark pickles functions of
an importable module by reference, so every Python worker imports this module once and its
module-level adapter cache lives as long as the (reused) worker; and the CPU tests (dev/tests)
check the grouping and the maths without pyspark or torch.

Semantics are the UDF's (docs/udf.md):
  segment_gemm  y = x . W[adapter], W (d_in, d_out) from <id>.safetensors (one tensor) or <id>.npy
  lora_apply    y = (x . A^T) . B^T * scaling, A (r, d_in), B (d_out, r) from a PEFT folder
                <id>/adapter_model.safetensors + adapter_config.json, scaling = lora_alpha / r
                (lora_alpha / sqrt(r) with use_rslora), as PEFT computes lora_B(lora_A(x)) * scaling.
"""
import json
import math
import os
import struct
import sys
import time

import numpy as np

# safetensors dtypes we read (what gen_e2e.py and PEFT write); BF16 is widened by hand.
_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": np.uint16}


def read_safetensors(path):
    """{name: float32 array} of a .safetensors file: an 8-byte little-endian header length, a JSON
    header (dtype, shape, data_offsets per tensor), then the data. Read by hand so that the tests
    and the workers need no safetensors package."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: not a safetensors file (only {len(blob)} bytes)")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError(f"{path}: header of {n} bytes runs past the file ({len(blob)} bytes)")
    header = json.loads(blob[8:8 + n])
    data = memoryview(blob)[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] not in _ST_DTYPES:
            raise ValueError(f"{path}: tensor {name} has dtype {t['dtype']}; "
                             f"expected one of {', '.join(_ST_DTYPES)}")
        begin, end = t["data_offsets"]
        a = np.frombuffer(data[begin:end], dtype=np.dtype(_ST_DTYPES[t["dtype"]]).newbyteorder("<"))
        if t["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[name] = a.astype(np.float32).reshape(t["shape"])
    return out


class Adapters:
    """Every adapter under a folder, in name order: names, the index of each name, and per
    adapter one float32 matrix per stage (segment_gemm: W (d_in, d_out); lora_apply: A^T
    (d_in, r) and B^T (r, d_out)) stacked over adapters, plus the LoRA scaling per adapter."""

    def __init__(self, names, stages, scaling):
        self.names = list(names)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.stages = stages          # list of (G, k, n) float32 arrays
        self.scaling = scaling        # (G,) float32, ones for segment_gemm

    @property
    def d_in(self):
        return self.stages[0].shape[1]

    @property
    def d_out(self):
        return self.stages[-1].shape[2]


def _visible(name):
    # Hadoop's readers, and so our AdapterStore, skip names starting with '.' or '_'.
    return not name.startswith((".", "_"))


def load_adapters(path, function):
    """The adapters under path for function 'segment_gemm' or 'lora_apply' (see the module's
    docstring); a clear one-line error for anything else."""
    if not os.path.isdir(path):
        raise ValueError(f"adapters folder {path} does not exist")
    names, mats, scaling = [], [], []
    for entry in sorted(e for e in os.listdir(path) if _visible(e)):
        full = os.path.join(path, entry)
        if function == "segment_gemm":
            if entry.endswith(".safetensors"):
                tensors = read_safetensors(full)
                if len(tensors) != 1:
                    raise ValueError(f"{full}: {len(tensors)} tensors; a dense adapter has one")
                w = next(iter(tensors.values()))
            elif entry.endswith(".npy"):
                w = np.load(full).astype(np.float32)
            else:
                continue
            names.append(entry.rsplit(".", 1)[0])
            mats.append((w,))
            scaling.append(1.0)
        elif function == "lora_apply":
            model = os.path.join(full, "adapter_model.safetensors")
            if not os.path.isfile(model):
                continue
            config_path = os.path.join(full, "adapter_config.json")
            if not os.path.isfile(config_path):
                raise ValueError(f"{full}: no adapter_config.json (PEFT needs it)")
            with open(config_path) as f:
                config = json.load(f)
            tensors = read_safetensors(model)
            a = [v for k, v in tensors.items() if "lora_A" in k]
            b = [v for k, v in tensors.items() if "lora_B" in k]
            if len(a) != 1 or len(b) != 1:
                raise ValueError(f"{model}: {len(a)} lora_A and {len(b)} lora_B tensors; the "
                                 "benchmark's adapters have one module")
            a, b = a[0], b[0]
            # PEFT's defaults: r and lora_alpha are 8 when absent.
            r = config.get("r", 8)
            alpha = config.get("lora_alpha", 8)
            if r != a.shape[0]:
                raise ValueError(f"{full}: adapter_config.json says r = {r} but lora_A has "
                                 f"rank {a.shape[0]}")
            s = alpha / math.sqrt(r) if config.get("use_rslora", False) else alpha / r
            names.append(entry)
            mats.append((a.T, b.T))
            scaling.append(s)
        else:
            raise ValueError(f"function must be segment_gemm or lora_apply, not {function}")
    if not names:
        raise ValueError(f"no {function} adapters under {path}")
    shapes = {tuple(m.shape for m in ms) for ms in mats}
    if len(shapes) != 1:
        raise ValueError(f"adapters under {path} have different shapes: {sorted(shapes)[:3]}")
    stages = [np.ascontiguousarray(np.stack([ms[i] for ms in mats]))
              for i in range(len(mats[0]))]
    return Adapters(names, stages, np.asarray(scaling, np.float32))


def group_rows(index, num_adapters):
    """Rows grouped by adapter: (order, counts) with order a stable permutation of the rows that
    puts each adapter's rows together, in adapter order, and counts[g] the rows of adapter g
    (num_adapters entries, zeros included: torch._grouped_mm's offsets need every group)."""
    index = np.asarray(index)
    if index.size and (index.min() < 0 or index.max() >= num_adapters):
        raise ValueError(f"adapter index out of range [0, {num_adapters})")
    order = np.argsort(index, kind="stable")
    counts = np.bincount(index, minlength=num_adapters)
    return order, counts


def segments(counts):
    """(adapter, start, end) of every non-empty group, in the order group_rows sorts rows."""
    ends = np.cumsum(counts)
    starts = ends - counts
    return [(int(g), int(starts[g]), int(ends[g])) for g in np.nonzero(counts)[0]]


def round_bf16(a):
    """float32 values rounded to the nearest bfloat16 (ties to even), as float32: the numpy
    stand-in for torch's bf16 tensors in a dry run without torch."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32)
    rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    # NaN stays NaN (the rounding could carry a NaN's payload into the exponent's neighbour).
    return np.where(np.isnan(a), a, rounded.view(np.float32)).astype(np.float32)


class NumpyBackend:
    """One numpy matmul per adapter present in the batch. fp32 (the pandas_numpy_cpu peer), or
    with every operand and result rounded to bfloat16 like torch's bf16 matmuls (bf16=True: the
    pyspark_torch peer's stand-in in a dry run on a machine without torch)."""

    def __init__(self, adapters, bf16=False):
        self.a = adapters
        self.bf16 = bf16
        r = round_bf16 if bf16 else (lambda v: v)
        self.round = r
        self.stages = [r(s) for s in adapters.stages]
        self.scaling = r(adapters.scaling)
        threads = os.environ.get("OPENBLAS_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "unset"))
        self.describe = (f"numpy {np.__version__} {'bf16 stand-in for torch' if bf16 else 'fp32'}, "
                         f"BLAS threads {threads}")

    def apply(self, x, index):
        order, counts = group_rows(index, len(self.a.names))
        xs = self.round(x[order])
        ys = np.empty((x.shape[0], self.a.d_out), np.float32)
        for g, s, e in segments(counts):
            h = xs[s:e]
            for st in self.stages:
                h = self.round(h @ st[g])
            if len(self.stages) > 1:
                h = self.round(h * self.scaling[g])
            ys[s:e] = h
        y = np.empty_like(ys)
        y[order] = ys
        return y


class TorchBackend:
    """The GPU peer: weights in bf16 on the device once per worker, each batch copied up, its
    rows gathered into adapter order on the device, one matmul per adapter present
    (mode 'loop') or one torch._grouped_mm over all adapters (mode 'grouped'), bf16 in and out,
    the result back as fp32. mode 'auto': grouped where torch has it and the device is CUDA,
    falling back to the loop (once, said on stderr) if the grouped call fails."""

    def __init__(self, adapters, device, mode="auto"):
        import warnings

        import torch  # only here: the CI tests and the CPU peer run without torch
        # Arrow's buffers are read-only; torch.from_numpy only reads them (copied to the device).
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        self.torch = torch
        self.a = adapters
        self.device = torch.device(device)
        dt = torch.bfloat16
        self.dtype = dt
        # Weights as (G, n, k) contiguous, used transposed: the column-major (G, k, n) layout
        # torch._grouped_mm's own tests pass; the loop uses the same views.
        self.w_t = [torch.from_numpy(np.ascontiguousarray(s.transpose(0, 2, 1))).to(self.device, dt)
                    for s in adapters.stages]
        self.scaling = torch.from_numpy(adapters.scaling).to(self.device, dt)
        grouped = hasattr(torch, "_grouped_mm") and self.device.type == "cuda"
        self.mode = ("grouped" if grouped else "loop") if mode == "auto" else mode
        if self.mode == "grouped" and not hasattr(torch, "_grouped_mm"):
            raise RuntimeError(f"torch {torch.__version__} has no torch._grouped_mm (mode grouped)")
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        self.describe = f"torch {torch.__version__} on {self.device} ({name}), bf16, {self.mode}"

    def apply(self, x, index):
        torch = self.torch
        order, counts = group_rows(index, len(self.a.names))
        perm = torch.from_numpy(order).to(self.device, non_blocking=True)
        xd = torch.from_numpy(x).to(self.device, non_blocking=True)
        xs = xd.index_select(0, perm).to(self.dtype)
        ys = None
        if self.mode == "grouped":
            try:
                ys = self._grouped(xs, counts)
            except Exception as e:  # noqa: BLE001 - any refusal of the private API: use the loop
                print(f"peer worker {os.getpid()}: torch._grouped_mm failed ({e!r:.200}); "
                      "using one matmul per adapter", file=sys.stderr, flush=True)
                self.mode = "loop"
        if ys is None:
            ys = self._loop(xs, counts)
        y = torch.empty_like(ys)
        y.index_copy_(0, perm, ys)
        return y.float().cpu().numpy()

    def _loop(self, xs, counts):
        ys = self.torch.empty((xs.shape[0], self.a.d_out), dtype=self.dtype, device=self.device)
        for g, s, e in segments(counts):
            h = xs[s:e]
            for w in self.w_t:
                h = h @ w[g].T
            if len(self.w_t) > 1:
                h = h * self.scaling[g]
            ys[s:e] = h
        return ys

    def _grouped(self, xs, counts):
        torch = self.torch
        offs = torch.from_numpy(np.cumsum(counts).astype(np.int32)).to(self.device)
        h = xs
        for w in self.w_t:
            h = torch._grouped_mm(h, w.transpose(-2, -1), offs=offs)
        if len(self.w_t) > 1:
            rows = torch.from_numpy(np.repeat(np.arange(len(counts)), counts)).to(self.device)
            h = h * self.scaling.index_select(0, rows)[:, None]
        return h


def make_backend(kind, adapters, device="cpu", mode="auto"):
    """'torch' (on device; without torch installed and device cpu: the numpy bf16 stand-in,
    for a dry run) or 'numpy' (fp32)."""
    if kind == "numpy":
        return NumpyBackend(adapters)
    if kind != "torch":
        raise ValueError(f"backend must be torch or numpy, not {kind}")
    try:
        import torch
    except ImportError:
        if device != "cpu":
            raise RuntimeError("the pyspark_torch peer needs torch for device "
                               f"{device}; this Python has none") from None
        return NumpyBackend(adapters, bf16=True)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"torch {torch.__version__} sees no CUDA device (asked for {device})")
    return TorchBackend(adapters, device, mode)


# One backend per (adapters path, function, backend, device, mode) per Python worker: loaded by
# the worker's first task, reused by its later ones (spark.python.worker.reuse).
_CACHE = {}


def backend(path, function, kind, device, mode):
    key = (path, function, kind, device, mode)
    if key not in _CACHE:
        start = time.time()
        b = make_backend(kind, load_adapters(path, function), device, mode)
        print(f"peer worker {os.getpid()}: {len(b.a.names)} {function} adapters from {path} in "
              f"{time.time() - start:.2f} s; {b.describe}", file=sys.stderr, flush=True)
        _CACHE[key] = b
    return _CACHE[key]


def batch_features(batch, column, d_in):
    """The features of an Arrow record batch as a (rows, d_in) float32 array, a view of the
    Arrow buffer when it can be (no nulls, float32 values)."""
    import pyarrow as pa
    arr = batch.column(batch.schema.get_field_index(column))
    if arr.null_count:
        raise ValueError(f"column {column} has {arr.null_count} null rows; the peers take none")
    n = len(arr)
    values = arr.flatten()  # respects the array's offset, unlike .values
    if len(values) != n * d_in:
        lengths = np.diff(np.asarray(arr.offsets))
        bad = int(np.nonzero(lengths != d_in)[0][0])
        raise ValueError(f"row {bad} of the batch has {lengths[bad]} features; the adapters take {d_in}")
    if values.type != pa.float32():
        values = values.cast(pa.float32())
    return values.to_numpy(zero_copy_only=False).reshape(n, d_in)


def batch_index(batch, column, adapters):
    """Each row's adapter index (into adapters.names) from an id column, vectorised through
    Arrow; an id with no adapter is an error naming it."""
    import pyarrow as pa
    import pyarrow.compute as pc
    ids = batch.column(batch.schema.get_field_index(column))
    if not pa.types.is_string(ids.type) and not pa.types.is_large_string(ids.type):
        ids = pc.cast(ids, pa.string())
    idx = pc.index_in(ids, value_set=pa.array(adapters.names, pa.string()))
    if idx.null_count:
        missing = pc.filter(ids, pc.is_null(idx))[0]
        raise ValueError(f"adapter id {missing} has no adapter under the adapters folder")
    return idx.to_numpy(zero_copy_only=False).astype(np.int64)


def output_array(y):
    """(rows, d_out) float32 as an Arrow list<float> (Spark's ARRAY<FLOAT>), values not copied."""
    import pyarrow as pa
    n, d = y.shape
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(y).reshape(-1)))


def map_batches(batches, path, function, kind, device, mode, keep, id_column="adapter_id",
                features_column="features", output_column="output"):
    """mapInArrow's function: for each record batch, the kept columns and the output column."""
    import pyarrow as pa
    b = backend(path, function, kind, device, mode)
    for batch in batches:
        if batch.num_rows == 0:
            continue
        x = batch_features(batch, features_column, b.a.d_in)
        y = b.apply(x, batch_index(batch, id_column, b.a))
        cols = [batch.column(batch.schema.get_field_index(c)) for c in keep]
        yield pa.RecordBatch.from_arrays(cols + [output_array(y)], names=list(keep) + [output_column])
