#!/usr/bin/env python3
"""Compares two outputs of the job (Parquet: id, ..., output ARRAY<FLOAT>), e.g. a GPU run with
a CPU run: same ids, same nulls, and per row max |a - b| / max |b|. Exits 1 above --tol.
Works on numpy views of the list values (2M x 1024 outputs fit in a few times their size)."""
import argparse
import sys

import numpy as np
import pyarrow.parquet as pq


def load(path):
    """ids sorted, and per row (in that order) its values as a 2-D array, and its null mask."""
    t = pq.read_table(path, columns=["id", "output"])
    ids = t.column("id").to_numpy()
    out = t.column("output").combine_chunks()
    nulls = out.is_null().to_numpy(zero_copy_only=False)
    offsets = out.offsets.to_numpy()
    row_lengths = np.diff(offsets)
    lengths = row_lengths[~nulls]
    width = int(lengths[0]) if lengths.size else 0
    if lengths.size and not np.all(lengths == width):
        raise SystemExit(f"{path}: rows of different lengths")
    values = out.values.to_numpy(zero_copy_only=False)
    n = len(ids)
    if np.all(row_lengths == width):
        # Every row has width values back to back (the job's case): a view, no copy.
        rows = values[offsets[0]:offsets[0] + n * width].reshape(n, width)
    else:
        rows = np.zeros((n, width), np.float32)
        for r in np.nonzero(~nulls)[0]:
            rows[r] = values[offsets[r]:offsets[r] + width]
    order = np.argsort(ids, kind="stable")
    return ids[order], rows[order], nulls[order]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--tol", type=float, default=1e-2)
    args = p.parse_args()
    ia, ya, na = load(args.a)
    ib, yb, nb = load(args.b)
    if not np.array_equal(ia, ib):
        print(f"different rows: {len(ia)} vs {len(ib)}")
        return 1
    if not np.array_equal(na, nb):
        print("a null in one output only")
        return 1
    worst, equal, values = 0.0, 0, 0
    for s in range(0, len(ia), 65536):  # in chunks: the temporaries stay small
        u, v = ya[s:s + 65536][~na[s:s + 65536]], yb[s:s + 65536][~nb[s:s + 65536]]
        if u.size == 0:
            continue
        scale = np.maximum(np.abs(v).max(axis=1), 1e-30)
        worst = max(worst, float((np.abs(u - v).max(axis=1) / scale).max()))
        equal += int(np.count_nonzero(u == v))
        values += u.size
    print(f"compared {len(ia)} rows ({int(na.sum())} null): max |a-b| / max|b| per row = "
          f"{worst:.3e}, {equal / max(values, 1):.4%} of values bit-equal")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
