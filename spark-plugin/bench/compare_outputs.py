#!/usr/bin/env python3
"""Compares two outputs of the job (Parquet: id, ..., output ARRAY<FLOAT>), e.g. a GPU run with
a CPU run: same ids, same nulls, and per row max |a - b| / max |b|. Exits 1 above --tol."""
import argparse
import sys

import numpy as np
import pyarrow.parquet as pq


def load(path):
    t = pq.read_table(path, columns=["id", "output"]).sort_by("id")
    return t.column("id").to_numpy(), t.column("output").to_pylist()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--tol", type=float, default=1e-2)
    args = p.parse_args()
    ia, ya = load(args.a)
    ib, yb = load(args.b)
    if not np.array_equal(ia, ib):
        print(f"different rows: {len(ia)} vs {len(ib)}")
        return 1
    worst, equal, values, nulls = 0.0, 0, 0, 0
    for u, v in zip(ya, yb):
        if u is None or v is None:
            if (u is None) != (v is None):
                print("a null in one output only")
                return 1
            nulls += 1
            continue
        u, v = np.asarray(u, np.float32), np.asarray(v, np.float32)
        scale = max(float(np.max(np.abs(v))), 1e-30)
        worst = max(worst, float(np.max(np.abs(u - v))) / scale)
        equal += int(np.sum(u == v))
        values += u.size
    print(f"compared {len(ia)} rows ({nulls} null): max |a-b| / max|b| per row = {worst:.3e}, "
          f"{equal / max(values, 1):.4%} of values bit-equal")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
