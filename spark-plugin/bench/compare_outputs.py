#!/usr/bin/env python3
"""Compares two outputs of the job (Parquet: id, ..., output ARRAY<FLOAT>), e.g. a GPU run with
a CPU run: same ids, same nulls, and per row max |a - b| / max |b|. Exits 1 above --tol, or with
--exact (runs that must agree to the bit: the same batches on the same kernels, e.g. under
different task concurrency) on any value whose float32 bits differ (NaN payloads and -0 included).
--a-subset: a ran on a slice of b's input (the slow CPU baselines): every id of a must be in b,
and b is compared on those rows only (b's row groups outside a's id range are not read).
--schema-only: the same column names and types and the same number of rows, values not compared
(the benchmark's io_floor, whose output is the features).

Sized for the benchmark's largest outputs (case b: 1M rows x 4096, 16 GB a side): each side is
read row group by row group, in parallel, into one (rows, width) float32 array (its size, plus the
row groups in flight), and the rows are paired by id and compared in chunks on all cores, with no
sorted copy of either side. Besides the verdict it prints the distribution of the per-row error
(median, 99.9th percentile, max) and the rows above 1e-2 (the bfloat16 tolerance), whatever --tol
is."""
import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

THREADS = min(32, os.cpu_count() or 1)


def _files(path):
    if os.path.isfile(path):
        return [path]
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs
                  if f.endswith(".parquet") and not f.startswith((".", "_")))


def _row_groups(path, keep_range=None):
    """(file, row group index) of every row group, less those whose id statistics lie outside
    keep_range = (lo, hi) when given."""
    out = []
    for f in _files(path):
        md = pq.ParquetFile(f).metadata
        col = md.schema.names.index("id") if "id" in md.schema.names else None
        for g in range(md.num_row_groups):
            if keep_range is not None and col is not None:
                st = md.row_group(g).column(col).statistics
                if st is not None and st.has_min_max and (st.max < keep_range[0] or st.min > keep_range[1]):
                    continue
            out.append((f, g))
    return out


def _read(f, g, columns):
    return pq.ParquetFile(f).read_row_group(g, columns=columns, use_threads=False)


def _values(out, width, path):
    """(rows, width) float32 of a ListArray chunk, nulls as zeros, and its null mask."""
    n = len(out)
    nulls = out.is_null().to_numpy(zero_copy_only=False)
    offsets = out.offsets.to_numpy()
    lengths = np.diff(offsets)
    if np.any(lengths[~nulls] != width):
        raise SystemExit(f"{path}: rows of different lengths")
    values = out.values.to_numpy(zero_copy_only=False)
    if np.all(lengths == width):
        # Every row has width values back to back (the job's case): a view, no copy.
        return values[offsets[0]:offsets[0] + n * width].reshape(n, width), nulls
    rows = np.zeros((n, width), np.float32)
    for r in np.nonzero(~nulls)[0]:
        rows[r] = values[offsets[r]:offsets[r] + width]
    return rows, nulls


def load(path, keep_ids=None):
    """ids, per row its values as a 2-D float32 array (rows in file order; null rows zero) and
    its null mask; only the rows whose id is in keep_ids when given."""
    keep = None
    if keep_ids is not None:
        keep = np.unique(np.asarray(keep_ids, np.int64))
    groups = _row_groups(path, None if keep is None or not keep.size
                         else (int(keep[0]), int(keep[-1])))
    with ThreadPoolExecutor(THREADS) as pool:
        ids = list(pool.map(lambda fg: _read(*fg, ["id"]).column("id").to_numpy(), groups))
    masks = [None if keep is None else np.isin(i, keep) for i in ids]
    counts = [len(i) if m is None else int(m.sum()) for i, m in zip(ids, masks)]
    n = sum(counts)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    all_ids = np.empty(n, np.int64)
    nulls = np.zeros(n, bool)
    width = None
    for (f, g), c in zip(groups, counts):  # the width: the first non-null row's length
        if c:
            o = _read(f, g, ["output"]).column("output").combine_chunks()
            lengths = np.diff(o.offsets.to_numpy())[~o.is_null().to_numpy(zero_copy_only=False)]
            if lengths.size:
                width = int(lengths[0])
                break
    width = width or 0
    rows = np.empty((n, width), np.float32)

    def fill(k):
        if not counts[k]:
            return
        s, e = starts[k], starts[k + 1]
        m = masks[k]
        all_ids[s:e] = ids[k] if m is None else ids[k][m]
        out = _read(*groups[k], ["output"]).column("output").combine_chunks()
        v, nl = _values(out, width, path)
        rows[s:e] = v if m is None else v[m]
        nulls[s:e] = nl if m is None else nl[m]

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(fill, range(len(groups))))
    return all_ids, rows, nulls


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
    oa, ob = np.argsort(ia, kind="stable"), np.argsort(ib, kind="stable")
    if len(ia) != len(ib) or not np.array_equal(ia[oa], ib[ob]):
        missing = np.setdiff1d(ia, ib).size
        print(f"different rows: {len(ia)} vs {len(ib)}"
              + (f" ({missing} ids of a not in b)" if args.a_subset else ""))
        return 1
    if not np.array_equal(na[oa], nb[ob]):
        print("a null in one output only")
        return 1
    if ya.shape[1] != yb.shape[1] and (~na).any():
        print(f"different row lengths: {ya.shape[1]} vs {yb.shape[1]}")
        return 1
    step = max(1, (1 << 20) // max(ya.shape[1], 1))  # ~4 MB a side per chunk

    def chunk(s):
        """(per-row errors, bit-equal values, values) of rows s .. s + step in id order."""
        ra, rb = oa[s:s + step], ob[s:s + step]
        keep = ~na[ra]
        u, v = ya[ra[keep]], yb[rb[keep]]
        if u.size == 0:
            return np.zeros(0), 0, 0
        # Bit-equal: the float32 bit patterns, so that NaN == NaN and -0 != 0.
        same = u.view(np.uint32) == v.view(np.uint32)
        with np.errstate(invalid="ignore"):  # a NaN or Inf on one side only is a difference
            diff = np.where(same, 0, np.abs(u - v))
            finite = np.nan_to_num(v, nan=0, posinf=0, neginf=0)  # the row's scale, NaN/Inf aside
            scale = np.maximum(np.abs(finite).max(axis=1), 1e-30)
            per_row = np.nan_to_num(diff.max(axis=1) / scale, nan=np.inf)
        return per_row, int(np.count_nonzero(same)), u.size

    with ThreadPoolExecutor(THREADS) as pool:
        parts = list(pool.map(chunk, range(0, len(ia), step)))
    per_row = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
    equal, values = sum(p[1] for p in parts), sum(p[2] for p in parts)
    worst = float(per_row.max()) if per_row.size else 0.0
    over = int(np.count_nonzero(per_row > args.tol))
    identical = equal == values
    dist = (f"median {np.median(per_row):.2e}, p99.9 {np.quantile(per_row, 0.999):.2e}, "
            f"{int(np.count_nonzero(per_row > 1e-2))} rows above 1e-2; " if per_row.size else "")
    print(f"compared {len(ia)} rows ({int(na.sum())} null): max |a-b| / max|b| per row = "
          f"{worst:.3e} ({dist}{equal / max(values, 1):.4%} of values bit-equal); "
          f"bit-identical: {'yes' if identical else 'no'} ({values - equal} values differ); "
          f"{over} rows above {args.tol:g}")
    if args.exact:
        return 0 if identical else 1
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
