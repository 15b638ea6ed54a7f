"""Writing adapters in the formats the jar reads, from numpy arrays (no torch, no safetensors).

* dense adapters for ``segment_gemm``: one ``<id>.npy`` file of ``(d_in, d_out)`` float32
  (:func:`save_dense`);
* PEFT LoRA adapters for ``lora_apply``: one folder ``<id>/`` with ``adapter_config.json`` and
  ``adapter_model.safetensors`` holding ``<module>.lora_A.weight`` ``(r, d_in)`` and
  ``<module>.lora_B.weight`` ``(d_out, r)``, as PEFT's ``save_pretrained`` writes them
  (:func:`save_peft`).

>>> import numpy as np, os, tempfile
>>> d = tempfile.mkdtemp()
>>> save_dense(d, "tenant_0", np.eye(4, 3))
'...tenant_0.npy'
>>> sorted(os.listdir(save_peft(d, "lora_0", np.ones((2, 4)), np.ones((3, 2)), alpha=4)))
['adapter_config.json', 'adapter_model.safetensors']
"""

from __future__ import annotations

import json
import os
import struct
from typing import TYPE_CHECKING, Dict

if TYPE_CHECKING:
    import numpy as np

__all__ = ["save_dense", "save_peft", "write_safetensors"]

_DTYPES = {"float32": "F32", "float16": "F16", "float64": "F64"}


def save_dense(directory: str, adapter_id: str, weight: "np.ndarray") -> str:
    """Writes ``weight`` (``(d_in, d_out)``, stored as float32) as ``<directory>/<adapter_id>.npy``
    and returns the file's path."""
    import numpy as np

    w = np.ascontiguousarray(weight, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"save_dense: {adapter_id}'s weight must be 2-D (d_in, d_out), not {w.shape}")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, adapter_id + ".npy")
    np.save(path, w)
    return path


def write_safetensors(path: str, tensors: Dict[str, "np.ndarray"]) -> None:
    """The safetensors format by hand: an 8-byte little-endian header length, the JSON header
    (dtype, shape, data_offsets per tensor), then each tensor's little-endian bytes in order."""
    import numpy as np

    header: Dict[str, object] = {}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        a = np.ascontiguousarray(t)
        if a.dtype.name not in _DTYPES:
            raise ValueError(f"write_safetensors: {name} has dtype {a.dtype}; use float32, float16 or float64")
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DTYPES[a.dtype.name], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes with spaces
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for data in blobs:
            f.write(data)


def save_peft(directory: str, adapter_id: str, lora_a: "np.ndarray", lora_b: "np.ndarray",
              alpha: float, module: str = "base_model.model.proj") -> str:
    """Writes a PEFT LoRA adapter folder ``<directory>/<adapter_id>/`` with ``lora_A`` ``(r, d_in)``
    and ``lora_B`` ``(d_out, r)`` of ``module`` (float32), ``r`` and ``lora_alpha`` in
    ``adapter_config.json``; returns the folder. ``lora_apply`` then computes
    ``x . A^T . B^T . alpha / r``."""
    import numpy as np

    a = np.asarray(lora_a, dtype=np.float32)
    b = np.asarray(lora_b, dtype=np.float32)
    if a.ndim != 2 or b.ndim != 2 or b.shape[1] != a.shape[0]:
        raise ValueError(f"save_peft: {adapter_id}: lora_A must be (r, d_in) and lora_B (d_out, r), "
                         f"not {a.shape} and {b.shape}")
    folder = os.path.join(directory, adapter_id)
    os.makedirs(folder, exist_ok=True)
    write_safetensors(os.path.join(folder, "adapter_model.safetensors"),
                      {module + ".lora_A.weight": a, module + ".lora_B.weight": b})
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "r": int(a.shape[0]), "lora_alpha": alpha,
                   "target_modules": [module.rsplit(".", 1)[-1]]}, f)
    return folder
