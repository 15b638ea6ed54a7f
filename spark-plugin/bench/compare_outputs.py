#!/usr/bin/env python3
"""Compares two outputs of the job (Parquet: id, ..., output ARRAY<FLOAT>), e.g. a GPU run with
a CPU run: same ids, same nulls, and per row max |a - b| / max |b|. Exits 1 above --tol, or with
--exact (runs that must agree to the bit: the same batches on the same kernels, e.g. under
different task concurrency) on any value whose float32 bits differ (NaN payloads and -0 included).
Works on numpy views of the list values (2M x 1024 outputs fit in a few times their size).
--a-subset: a ran on a slice of b's input (the slow CPU baselines): every id of a must be in b,
and b is compared on those rows only. --schema-only: the same column names and types and the same
number of rows, values not compared (the benchmark's io_floor, whose output is the features)."""
import argparse
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def load(path, keep_ids=None):
    """ids sorted, and per row (in that order) its values as a 2-D array, and its null mask;
    only the rows whose id is in keep_ids when given."""
    t = pq.read_table(path, columns=["id", "output"])
    if keep_ids is not None:
        import pyarrow.compute as pc
        t = t.filter(pc.is_in(t.column("id"), value_set=pa.array(keep_ids, pa.int64())))
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


def columns(path):
    """[(name, type)] of a Parquet output, element nullability aside (the job's UDF declares
    its array elements non-null, Spark's reads of others' arrays do not)."""
    return [(f.name, str(f.type).replace(" not null", ""))
            for f in pq.read_schema(_first_file(path)) if not f.name.startswith("__")]


def same_schema(a, b, rows=True):
    """Column names and types of two Parquet outputs, and their row counts when rows; prints
    the verdict, returns 0 when the same."""
    fa, fb = columns(a), columns(b)
    said = f"schema: {'same' if fa == fb else 'DIFFERENT'} ({fa}" + ("" if fa == fb else f" vs {fb}") + ")"
    ok = fa == fb
    if rows:
        ra = pq.ParquetDataset(a).read(columns=["id"]).num_rows
        rb = pq.ParquetDataset(b).read(columns=["id"]).num_rows
        said += f"; rows {ra} vs {rb}: {'same' if ra == rb else 'DIFFERENT'}"
        ok = ok and ra == rb
    print(said)
    return 0 if ok else 1


def _first_file(path):
    if os.path.isfile(path):
        return path
    for d, _, fs in sorted(os.walk(path)):
        for f in sorted(fs):
            if f.endswith(".parquet") and not f.startswith((".", "_")):
                return os.path.join(d, f)
    raise SystemExit(f"{path}: no Parquet files")


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--tol", type=float, default=1e-2)
    p.add_argument("--exact", action="store_true", help="require bit-identical values")
    p.add_argument("--a-subset", action="store_true",
                   help="a holds some of b's rows: compare b on a's ids only")
    p.add_argument("--schema-only", action="store_true",
                   help="compare column names, types and row counts, not values")
    args = p.parse_args(argv)
    if args.schema_only:
        return same_schema(args.a, args.b)
    if same_schema(args.a, args.b, rows=False):
        return 1
    ia, ya, na = load(args.a)
    ib, yb, nb = load(args.b, keep_ids=ia if args.a_subset else None)
    if not np.array_equal(ia, ib):
        missing = np.setdiff1d(ia, ib).size
        print(f"different rows: {len(ia)} vs {len(ib)}"
              + (f" ({missing} ids of a not in b)" if args.a_subset else ""))
        return 1
    if not np.array_equal(na, nb):
        print("a null in one output only")
        return 1
    if ya.shape[1] != yb.shape[1] and (~na).any():
        print(f"different row lengths: {ya.shape[1]} vs {yb.shape[1]}")
        return 1
    worst, equal, values, over = 0.0, 0, 0, 0
    for s in range(0, len(ia), 65536):  # in chunks: the temporaries stay small
        u, v = ya[s:s + 65536][~na[s:s + 65536]], yb[s:s + 65536][~nb[s:s + 65536]]
        if u.size == 0:
            continue
        # Bit-equal: the float32 bit patterns, so that NaN == NaN and -0 != 0.
        same = u.view(np.uint32) == v.view(np.uint32)
        with np.errstate(invalid="ignore"):  # a NaN or Inf on one side only is a difference
            diff = np.where(same, 0, np.abs(u - v))
            finite = np.nan_to_num(v, nan=0, posinf=0, neginf=0)  # the row's scale, NaN/Inf aside
            scale = np.maximum(np.abs(finite).max(axis=1), 1e-30)
            per_row = np.nan_to_num(diff.max(axis=1) / scale, nan=np.inf)
            worst = max(worst, float(per_row.max()))
            over += int(np.count_nonzero(per_row > args.tol))
        equal += int(np.count_nonzero(same))
        values += u.size
    identical = equal == values
    print(f"compared {len(ia)} rows ({int(na.sum())} null): max |a-b| / max|b| per row = "
          f"{worst:.3e}, {equal / max(values, 1):.4%} of values bit-equal; "
          f"bit-identical: {'yes' if identical else 'no'} ({values - equal} values differ); "
          f"{over} rows above {args.tol:g}")
    if args.exact:
        return 0 if identical else 1
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
