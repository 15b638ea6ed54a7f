"""The numpy float64 reference and the tolerances the Java tests use (Reference.java): the error
of each output element, as a fraction of sum_k |x_k w_k| computed from the same rounded inputs,
must be at most float32 1e-5, float16 2e-3, bfloat16 1e-2."""
from __future__ import annotations

import numpy as np

TOLERANCE = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1e-2}


def bf16(a) -> np.ndarray:
    """Round float32 values to the nearest bfloat16 (ties to even), as the UDF does, kept as float32."""
    b = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = ((b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    return b.view(np.float32)


def rounded(a, dtype: str) -> np.ndarray:
    """The inputs as the UDF computes with them, in float64."""
    a = np.asarray(a, dtype=np.float32)
    if dtype == "bfloat16":
        a = bf16(a)
    elif dtype == "float16":
        a = a.astype(np.float16).astype(np.float32)
    return a.astype(np.float64)


def worst_error(x, w, y, dtype: str) -> float:
    """max |y - x.w| / (tol * sum_k |x_k w_k|) over the row's outputs: <= 1 passes."""
    x64, w64 = rounded(x, dtype), rounded(w, dtype)
    ref = x64 @ w64
    bound = np.abs(x64) @ np.abs(w64)
    err = np.abs(np.asarray(y, dtype=np.float64) - ref)
    # An output whose terms are all 0 must be exactly 0.
    return float(np.max(np.where(bound > 0, err / (TOLERANCE[dtype] * np.maximum(bound, 1e-300)),
                                 np.where(err > 0, np.inf, 0.0))))
