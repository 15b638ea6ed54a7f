#!/usr/bin/env python3
"""Writes the end-to-end benchmark's data (spark-plugin/bench/e2e.sh), in parallel:

  OUT/input/part-NNNNN.parquet   id BIGINT, adapter_id STRING, features ARRAY<FLOAT> (d_in)
  OUT/slice/ , OUT/tiny/         the first --slice-rows / --tiny-rows rows, for the slow baselines
  OUT/adapters/                  --function segment_gemm: tenant_NNN.safetensors, one (d_in, d_out)
                                 float32 tensor "weight" per adapter;
                                 --function lora_apply: PEFT folders tenant_NNN/ with
                                 adapter_model.safetensors (lora_A (r, d_in), lora_B (d_out, r),
                                 float32) and adapter_config.json (r, lora_alpha = 2 r: scaling 2)
  OUT/weights_rows/              with --weights-rows: the dense weights as rows (adapter_id, k,
                                 w_row ARRAY<FLOAT>), the plain-SQL baseline's input

Adapter ids: --skew square picks floor(adapters * u^2) (skewed towards the first ones, as in the
demo); --skew zipf picks adapter k (0-based) with probability proportional to 1 / (k + 1)^s
(--zipf-s), the traffic of many tenants with a few hot ones. Names are tenant_ plus the index,
zero-padded to at least 3 digits. Features are uniform in [-1, 1); weights gaussian / sqrt(fan-in).
Needs numpy, pyarrow and safetensors.
"""
import argparse
import json
import os
import time
from multiprocessing import Pool

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def adapter_name(i, adapters):
    return f"tenant_{i:0{max(3, len(str(adapters - 1)))}d}"


def adapter_indices(rng, rows, adapters, skew, zipf_s):
    if skew == "square":
        return np.floor(adapters * rng.random(rows) ** 2).astype(np.int64)
    if skew == "zipf":
        p = 1.0 / np.arange(1, adapters + 1, dtype=np.float64) ** zipf_s
        return rng.choice(adapters, size=rows, p=p / p.sum())
    return rng.integers(0, adapters, size=rows)


SCHEMA = pa.schema([("id", pa.int64()), ("adapter_id", pa.string()),
                    ("features", pa.list_(pa.float32()))])
ROW_GROUP = 32768      # the input's row groups (Spark's batches are at most one row group)
SMALL_ROW_GROUP = 1024  # the slice's and tiny's: Spark splits Parquet at row groups, and the CPU
                        # runs need a split per core


def write_part(job):
    """One input file, generated and written one row group at a time (a worker holds a row group,
    not a file: 16 workers of case b would otherwise hold ~5 GB each), and its rows that belong to
    the slice and tiny sets (the input's first rows, by id) as that part of slice/ and tiny/.
    The values are those of drawing the whole file at once: the adapter ids first, then the
    features, from one generator seeded by (seed, first row); numpy's uniform(-1, 1) is
    -1 + 2 * random(), one double per value, so the row groups drawn one by one give the values
    of one draw for the whole file (the data of the runs before the writer wrote by row group)."""
    path, first, rows, d_in, adapters, skew, zipf_s, seed, smalls = job
    rng = np.random.default_rng([seed, first])
    a = adapter_indices(rng, rows, adapters, skew, zipf_s)
    names = np.array([adapter_name(i, adapters) for i in range(adapters)], dtype=object)
    chunk = min(ROW_GROUP, rows)
    b64 = np.empty(chunk * d_in)
    b32 = np.empty(chunk * d_in, np.float32)
    offsets = pa.array(np.arange(0, (chunk + 1) * d_in, d_in, dtype=np.int32))
    small_writers = {}
    try:
        with pq.ParquetWriter(path, SCHEMA) as w:
            for s in range(0, rows, chunk):
                n = min(chunk, rows - s)
                u = b64[:n * d_in]
                rng.random(out=u)
                np.multiply(u, 2.0, out=u)
                np.add(u, -1.0, out=u)
                x = b32[:n * d_in]
                np.copyto(x, u, casting="same_kind")
                feats = pa.ListArray.from_arrays(offsets[:n + 1], pa.array(x))
                t = pa.table([pa.array(np.arange(first + s, first + s + n, dtype=np.int64)),
                              pa.array(names[a[s:s + n]], pa.string()), feats], schema=SCHEMA)
                w.write_table(t, row_group_size=ROW_GROUP)
                for sub, (limit, spath) in smalls.items():
                    keep = min(n, limit - (first + s))
                    if keep <= 0:
                        continue
                    if sub not in small_writers:
                        small_writers[sub] = pq.ParquetWriter(spath, SCHEMA)
                    small_writers[sub].write_table(t.slice(0, keep), row_group_size=SMALL_ROW_GROUP)
    finally:
        for sw in small_writers.values():
            sw.close()
    return rows


def write_adapters(a):
    """The adapters (and with --weights-rows the dense weights as rows)."""
    from safetensors.numpy import save_file  # here: the input's writer needs no safetensors
    rng = np.random.default_rng(a.seed + 1)
    rows = []
    for t in range(a.adapters):
        name = adapter_name(t, a.adapters)
        if a.function == "lora_apply":
            folder = os.path.join(a.out, "adapters", name)
            os.makedirs(folder, exist_ok=True)
            m = "base_model.model.proj."
            la = (rng.standard_normal((a.rank, a.d_in)) / np.sqrt(a.d_in)).astype(np.float32)
            lb = (rng.standard_normal((a.d_out, a.rank)) / np.sqrt(a.rank)).astype(np.float32)
            save_file({m + "lora_A.weight": la, m + "lora_B.weight": lb},
                      os.path.join(folder, "adapter_model.safetensors"))
            with open(os.path.join(folder, "adapter_config.json"), "w") as f:
                json.dump({"peft_type": "LORA", "r": a.rank, "lora_alpha": 2 * a.rank,
                           "target_modules": ["proj"], "use_rslora": False}, f)
            continue
        w = (rng.standard_normal((a.d_in, a.d_out)) / np.sqrt(a.d_in)).astype(np.float32)
        save_file({"weight": w}, os.path.join(a.out, "adapters", f"{name}.safetensors"))
        if a.weights_rows:
            rows.append(pa.table({
                "adapter_id": pa.array([name] * a.d_in, pa.string()),
                "k": pa.array(np.arange(a.d_in, dtype=np.int32)),
                "w_row": pa.FixedSizeListArray.from_arrays(pa.array(w.reshape(-1)), a.d_out)
                           .cast(pa.list_(pa.float32()))}))
    if rows:
        os.makedirs(os.path.join(a.out, "weights_rows"), exist_ok=True)
        pq.write_table(pa.concat_tables(rows),
                       os.path.join(a.out, "weights_rows", "part-00000.parquet"), row_group_size=8192)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--d-in", type=int, default=1024)
    p.add_argument("--d-out", type=int, default=1024)
    p.add_argument("--adapters", type=int, default=100)
    p.add_argument("--function", choices=["segment_gemm", "lora_apply"], default="segment_gemm")
    p.add_argument("--rank", type=int, default=16, help="lora_apply: LoRA rank r")
    p.add_argument("--skew", choices=["square", "zipf", "uniform"], default="square")
    p.add_argument("--zipf-s", type=float, default=1.1)
    p.add_argument("--files", type=int, default=16)
    p.add_argument("--workers", type=int, default=0,
                   help="parallel writers (default: one per core, at most one per file)")
    p.add_argument("--slice-rows", type=int, default=100_000)
    p.add_argument("--tiny-rows", type=int, default=200)
    p.add_argument("--weights-rows", action="store_true",
                   help="also write the dense weights as rows (the sql_explode baseline)")
    p.add_argument("--seed", type=int, default=2026)
    a = p.parse_args()
    for name, v in (("--rows", a.rows), ("--d-in", a.d_in), ("--d-out", a.d_out),
                    ("--adapters", a.adapters), ("--files", a.files), ("--rank", a.rank)):
        if v <= 0:
            p.error(f"{name} must be positive, not {v}")
    for sub in ("input", "slice", "tiny", "adapters"):
        os.makedirs(os.path.join(a.out, sub), exist_ok=True)

    start = time.time()
    per = -(-a.rows // a.files)
    jobs = []
    for f in range(a.files):
        first = f * per
        if first >= a.rows:
            break
        # The slice and tiny sets: the input's first rows (ids 0 .. n-1), written by the
        # workers whose files hold them, one part file each.
        smalls = {sub: (n, os.path.join(a.out, sub, f"part-{f:05d}.parquet"))
                  for sub, n in (("slice", a.slice_rows), ("tiny", a.tiny_rows)) if first < n}
        jobs.append((os.path.join(a.out, "input", f"part-{f:05d}.parquet"), first,
                     min(per, a.rows - first), a.d_in, a.adapters, a.skew, a.zipf_s, a.seed, smalls))
    with Pool(min(len(jobs), a.workers or os.cpu_count() or 1)) as pool:
        # The adapters are written by this process meanwhile.
        pending = pool.map_async(write_part, jobs, chunksize=1)
        write_adapters(a)
        pending.get()
    gb = a.rows * a.d_in * 4 / 1e9
    shape = (f"LoRA {a.d_in} -> r {a.rank} -> {a.d_out}" if a.function == "lora_apply"
             else f"{a.d_in} x {a.d_out}")
    print(f"generated {a.rows} rows x {a.d_in} features ({gb:.2f} GB) in {len(jobs)} files, "
          f"{a.adapters} adapters {shape}, ids {a.skew}"
          f"{f' (s = {a.zipf_s})' if a.skew == 'zipf' else ''}, under {a.out}, "
          f"in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
