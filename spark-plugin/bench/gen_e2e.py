#!/usr/bin/env python3
"""Writes the end-to-end benchmark's data (spark-plugin/bench/e2e.sh), in parallel:

  OUT/input/part-NNNNN.parquet   id BIGINT, adapter_id STRING, features ARRAY<FLOAT> (d_in)
  OUT/slice/ , OUT/tiny/         the first --slice-rows / --tiny-rows rows, for the slow baselines
  OUT/adapters/tenant_NNN.safetensors   one (d_in, d_out) float32 weight per adapter
  OUT/weights_rows/              the same weights as rows (adapter_id, k, w_row ARRAY<FLOAT>),
                                 the plain-SQL baseline's input

Adapter ids are skewed towards the first ones (floor(adapters * u^2)), as in the demo; features
are uniform in [-1, 1); weights gaussian / sqrt(d_in). Needs numpy, pyarrow and safetensors.
"""
import argparse
import os
from multiprocessing import Pool

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from safetensors.numpy import save_file


def table(first, rows, d_in, adapters, seed):
    rng = np.random.default_rng([seed, first])
    ids = np.arange(first, first + rows, dtype=np.int64)
    a = np.floor(adapters * rng.random(rows) ** 2).astype(np.int64)
    names = pa.array([f"tenant_{i:03d}" for i in a], pa.string())
    x = rng.uniform(-1.0, 1.0, size=rows * d_in).astype(np.float32)
    feats = pa.FixedSizeListArray.from_arrays(pa.array(x), d_in).cast(pa.list_(pa.float32()))
    return pa.table({"id": ids, "adapter_id": names, "features": feats})


def write_part(job):
    path, first, rows, d_in, adapters, seed = job
    pq.write_table(table(first, rows, d_in, adapters, seed), path, row_group_size=32768)
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--d-in", type=int, default=1024)
    p.add_argument("--d-out", type=int, default=1024)
    p.add_argument("--adapters", type=int, default=100)
    p.add_argument("--files", type=int, default=16)
    p.add_argument("--slice-rows", type=int, default=100_000)
    p.add_argument("--tiny-rows", type=int, default=200)
    p.add_argument("--seed", type=int, default=2026)
    a = p.parse_args()
    for sub in ("input", "slice", "tiny", "adapters", "weights_rows"):
        os.makedirs(os.path.join(a.out, sub), exist_ok=True)

    per = -(-a.rows // a.files)
    jobs = [(os.path.join(a.out, "input", f"part-{f:05d}.parquet"), f * per,
             min(per, a.rows - f * per), a.d_in, a.adapters, a.seed)
            for f in range(a.files) if f * per < a.rows]
    with Pool(min(len(jobs), os.cpu_count() or 1)) as pool:
        pool.map(write_part, jobs)
    # The slices are the input's first rows (the same values: the generator is seeded per file).
    first = pq.read_table(jobs[0][0])
    for sub, n in (("slice", a.slice_rows), ("tiny", a.tiny_rows)):
        # Small row groups: Spark splits Parquet at row groups, and the CPU run needs a split
        # per core.
        pq.write_table(first.slice(0, min(n, first.num_rows)),
                       os.path.join(a.out, sub, "part-00000.parquet"), row_group_size=1024)

    rng = np.random.default_rng(a.seed + 1)
    rows = []
    for t in range(a.adapters):
        w = (rng.standard_normal((a.d_in, a.d_out)) / np.sqrt(a.d_in)).astype(np.float32)
        save_file({"weight": w}, os.path.join(a.out, "adapters", f"tenant_{t:03d}.safetensors"))
        rows.append(pa.table({
            "adapter_id": pa.array([f"tenant_{t:03d}"] * a.d_in, pa.string()),
            "k": pa.array(np.arange(a.d_in, dtype=np.int32)),
            "w_row": pa.FixedSizeListArray.from_arrays(pa.array(w.reshape(-1)), a.d_out)
                       .cast(pa.list_(pa.float32()))}))
    pq.write_table(pa.concat_tables(rows), os.path.join(a.out, "weights_rows", "part-00000.parquet"),
                   row_group_size=8192)
    gb = a.rows * a.d_in * 4 / 1e9
    print(f"generated {a.rows} rows x {a.d_in} features ({gb:.2f} GB) in {len(jobs)} files, "
          f"{a.adapters} adapters {a.d_in} x {a.d_out}, under {a.out}")


if __name__ == "__main__":
    main()
