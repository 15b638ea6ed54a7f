"""CPU tests of the e2e benchmark's pure-Python pieces: the peers' grouping, adapter loading and
maths (spark-plugin/bench/peers_lib.py) against an independent float64 computation, the CSV
records (bench_csv.py) and compare_outputs.py's --a-subset / --schema-only. numpy and pyarrow
only: no torch, no pyspark, no safetensors (files are written by hand here)."""
import csv
import json
import os
import struct
import sys

import pytest

np = pytest.importorskip("numpy")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../spark-plugin/bench"))
import bench_csv  # noqa: E402
import compare_outputs  # noqa: E402
import gen_e2e  # noqa: E402
import peers_lib  # noqa: E402


def write_safetensors(path, tensors, dtype="F32"):
    """A .safetensors file written from the format's description (not by the reader under test)."""
    header, blobs, at = {}, [], 0
    for name, a in tensors.items():
        if dtype == "BF16":
            raw = (np.asarray(a, np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        else:
            raw = np.asarray(a, "<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def test_group_rows_is_a_stable_grouping_with_every_count():
    index = np.array([2, 0, 2, 1, 0, 2])
    order, counts = peers_lib.group_rows(index, 4)
    assert order.tolist() == [1, 4, 3, 0, 2, 5]  # adapter order, input order within an adapter
    assert counts.tolist() == [2, 1, 3, 0]       # the empty adapter 3 counted too
    assert peers_lib.segments(counts) == [(0, 0, 2), (1, 2, 3), (2, 3, 6)]
    with pytest.raises(ValueError, match="out of range"):
        peers_lib.group_rows(np.array([0, 4]), 4)


def test_round_bf16_rounds_to_nearest_even():
    x = np.array([1.0, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, -2.5, np.inf, np.nan], np.float32)
    r = peers_lib.round_bf16(x)
    # 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
    assert r[:5].tolist() == [1.0, 1.0, 1.0 + 4 * 2 ** -8, -2.5, np.inf]
    assert np.isnan(r[5])


def dense_folder(tmp_path, adapters, d_in, d_out, rng):
    folder = tmp_path / "dense"
    folder.mkdir()
    ws = {}
    for i in range(adapters):
        ws[f"t{i}"] = rng.standard_normal((d_in, d_out)).astype(np.float32)
        write_safetensors(folder / f"t{i}.safetensors", {"weight": ws[f"t{i}"]})
    (folder / "_SUCCESS").write_text("")        # hidden names are skipped, as our reader does
    (folder / "notes.json").write_text("{}")    # other files too
    return str(folder), ws


def lora_folder(tmp_path, adapters, d_in, r, d_out, rng, alpha, rslora=False):
    folder = tmp_path / "lora"
    folder.mkdir()
    ws = {}
    for i in range(adapters):
        a = rng.standard_normal((r, d_in)).astype(np.float32)
        b = rng.standard_normal((d_out, r)).astype(np.float32)
        sub = folder / f"t{i}"
        sub.mkdir()
        write_safetensors(sub / "adapter_model.safetensors",
                          {"base_model.model.proj.lora_A.weight": a,
                           "base_model.model.proj.lora_B.weight": b})
        (sub / "adapter_config.json").write_text(json.dumps(
            {"r": r, "lora_alpha": alpha, "use_rslora": rslora}))
        ws[f"t{i}"] = (a, b)
    return str(folder), ws


def batch_of(ids, x):
    n, d = x.shape
    feats = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), d).cast(pa.list_(pa.float32()))
    return pa.RecordBatch.from_arrays([pa.array(np.arange(n, dtype=np.int64)), pa.array(ids, pa.string()), feats],
                                      names=["id", "adapter_id", "features"])


def test_segment_gemm_numpy_peer_matches_float64(tmp_path):
    rng = np.random.default_rng(5)
    path, ws = dense_folder(tmp_path, 3, 8, 5, rng)
    ids = [f"t{i}" for i in rng.integers(0, 3, 50)]
    x = rng.uniform(-1, 1, (50, 8)).astype(np.float32)
    out = list(peers_lib.map_batches(iter([batch_of(ids, x)]), path, "segment_gemm", "numpy",
                                     "cpu", "auto", keep=["id", "adapter_id"]))
    assert len(out) == 1 and out[0].schema.names == ["id", "adapter_id", "output"]
    y = np.stack(out[0].column(2).to_numpy(zero_copy_only=False))
    ref = np.stack([x[i].astype(np.float64) @ ws[ids[i]].astype(np.float64) for i in range(50)])
    assert np.abs(y - ref).max() <= 1e-5 * np.abs(ref).max()
    assert out[0].column(1).to_pylist() == ids


@pytest.mark.parametrize("rslora", [False, True])
def test_lora_numpy_peer_is_peft_maths(tmp_path, rslora):
    rng = np.random.default_rng(9)
    r, alpha = 4, 8
    path, ws = lora_folder(tmp_path, 2, 16, r, 8, rng, alpha, rslora)
    adapters = peers_lib.load_adapters(path, "lora_apply")
    scaling = alpha / np.sqrt(r) if rslora else alpha / r
    assert adapters.names == ["t0", "t1"] and np.allclose(adapters.scaling, scaling)
    index = rng.integers(0, 2, 30)
    x = rng.uniform(-1, 1, (30, 16)).astype(np.float32)
    y = peers_lib.NumpyBackend(adapters).apply(x, index)
    for i in range(30):
        a, b = ws[f"t{index[i]}"]
        ref = (x[i].astype(np.float64) @ a.T.astype(np.float64)) @ b.T.astype(np.float64) * scaling
        assert np.abs(y[i] - ref).max() <= 1e-5 * np.abs(ref).max()


def test_bf16_stand_in_stays_within_the_bf16_tolerance(tmp_path):
    rng = np.random.default_rng(3)
    path, ws = dense_folder(tmp_path, 2, 64, 16, rng)
    adapters = peers_lib.load_adapters(path, "segment_gemm")
    index = rng.integers(0, 2, 40)
    x = rng.uniform(-1, 1, (40, 64)).astype(np.float32)
    y = peers_lib.NumpyBackend(adapters, bf16=True).apply(x, index)
    for i in range(40):
        w = ws[f"t{index[i]}"].astype(np.float64)
        ref = x[i].astype(np.float64) @ w
        bound = 1e-2 * (np.abs(x[i].astype(np.float64))[:, None] * np.abs(w)).sum(axis=0)
        assert (np.abs(y[i] - ref) <= bound).all()
    assert (peers_lib.round_bf16(y) == y).all()  # results are bf16 values, as torch's


def test_bf16_safetensors_and_bad_folders(tmp_path):
    w = np.array([[1.5, -2.0], [0.25, 3.0]], np.float32)  # exact in bf16
    d = tmp_path / "bf"
    d.mkdir()
    write_safetensors(d / "x.safetensors", {"weight": w}, dtype="BF16")
    assert (peers_lib.load_adapters(str(d), "segment_gemm").stages[0][0] == w).all()
    with pytest.raises(ValueError, match="does not exist"):
        peers_lib.load_adapters(str(tmp_path / "nope"), "segment_gemm")
    with pytest.raises(ValueError, match="no lora_apply adapters"):
        peers_lib.load_adapters(str(d), "lora_apply")
    write_safetensors(d / "y.safetensors", {"weight": np.zeros((3, 2), np.float32)})
    with pytest.raises(ValueError, match="different shapes"):
        peers_lib.load_adapters(str(d), "segment_gemm")


def test_unknown_adapter_and_ragged_rows_are_errors(tmp_path):
    rng = np.random.default_rng(1)
    path, _ = dense_folder(tmp_path, 2, 4, 3, rng)
    b = batch_of(["t0", "zz"], np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="adapter id zz has no adapter"):
        list(peers_lib.map_batches(iter([b]), path, "segment_gemm", "numpy", "cpu", "auto", ["id"]))
    ragged = pa.RecordBatch.from_arrays([pa.array([0, 1]), pa.array(["t0", "t1"]),
                                         pa.array([[1.0] * 4, [1.0] * 3], pa.list_(pa.float32()))],
                                        names=["id", "adapter_id", "features"])
    with pytest.raises(ValueError, match="row 1 of the batch has 3 features"):
        list(peers_lib.map_batches(iter([ragged]), path, "segment_gemm", "numpy", "cpu", "auto", ["id"]))


def test_sliced_batches_read_their_own_rows():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    b = batch_of(["a"] * 4, x).slice(1, 2)
    assert (peers_lib.batch_features(b, "features", 3) == x[1:3]).all()


def test_csv_rows_header_once_and_in_job_seconds(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    pq.write_table(pa.table({"id": pa.array(range(1000), pa.int64())}), out / "part-0.parquet")
    pq.write_table(pa.table({"id": pa.array(range(500), pa.int64())}), out / "part-1.parquet")
    (out / "_SUCCESS").write_text("")
    log = tmp_path / "job.log"
    log.write_text("noise\nsegment_gemm: 1,500 rows in 0.50 s, 3,000 rows/s\n")
    f, g = str(tmp_path / "e2e.csv"), str(tmp_path / "injob.csv")
    for impl in ("gpu_rapids", "io_floor"):
        assert bench_csv.main(["--csv", f, "--injob-csv", g, "--case", "c1", "--impl", impl,
                               "--device", "Dev X", "--d-in", "256", "--seconds", "3.0",
                               "--output", str(out), "--log", str(log), "--date", "2026-01-02"]) == 0
    rows = list(csv.reader(open(f)))
    assert rows[0] == bench_csv.HEADER and len(rows) == 3
    assert rows[1] == ["2026-01-02", "Dev X", "c1", "gpu_rapids", "1500", "3.00", "500",
                       f"{1500 * 256 * 4 / 3.0 / 1e9:.4g}"]
    injob = list(csv.reader(open(g)))
    assert injob[1][5] == "0.50" and injob[1][6] == "3000"
    assert bench_csv.in_job("pyspark_torch: 20 rows in 1.250 s, 16 rows/s\n") == (20, 1.25)
    assert bench_csv.in_job("nothing here") is None
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n")
    with pytest.raises(ValueError, match="not the header"):
        bench_csv.append(str(bad), ["x"])


def test_gen_writes_by_row_group_the_values_of_one_draw(tmp_path, monkeypatch):
    # A file of 2.5 row groups written one row group at a time holds the values of drawing the
    # whole file at once (the data of the earlier benchmark runs); its first rows, by id, go
    # to the slice and tiny parts.
    monkeypatch.setattr(gen_e2e, "ROW_GROUP", 4)
    rows, d, first = 10, 3, 20
    smalls = {"slice": (26, str(tmp_path / "s.parquet")), "tiny": (21, str(tmp_path / "t.parquet"))}
    job = (str(tmp_path / "p.parquet"), first, rows, d, 5, "zipf", 1.1, 7, smalls)
    assert gen_e2e.write_part(job) == rows
    rng = np.random.default_rng([7, first])
    ids = gen_e2e.adapter_indices(rng, rows, 5, "zipf", 1.1)
    x = rng.uniform(-1.0, 1.0, size=rows * d).astype(np.float32).reshape(rows, d)
    f = pq.ParquetFile(job[0])
    assert [f.metadata.row_group(i).num_rows for i in range(f.metadata.num_row_groups)] == [4, 4, 2]
    t = f.read()
    assert t.column("id").to_pylist() == list(range(first, first + rows))
    assert t.column("adapter_id").to_pylist() == [f"tenant_{i:03d}" for i in ids]
    assert np.array_equal(np.array(t.column("features").to_pylist(), np.float32), x)
    assert pq.read_table(smalls["slice"][1]).column("id").to_pylist() == list(range(20, 26))
    assert pq.read_table(smalls["tiny"][1]).column("id").to_pylist() == [20]


def test_csv_merge_keeps_one_header(tmp_path):
    head = ",".join(bench_csv.HEADER) + "\n"
    row = "2026-01-02,Dev X,c1,gpu_rapids,10,1.00,10,4e-05\n"
    dst, a, b = tmp_path / "dst.csv", tmp_path / "a.csv", tmp_path / "b.csv"
    dst.write_text(head + row)
    a.write_text(head + row.replace("c1", "c2"))
    b.write_text(head + row.replace("c1", "c3"))
    assert bench_csv.main(["--merge", str(a), str(b), "--into", str(dst)]) == 0
    rows = list(csv.reader(open(dst)))
    assert rows[0] == bench_csv.HEADER and [r[2] for r in rows[1:]] == ["c1", "c2", "c3"]
    # A source with a header in its middle (two OUT/e2e.csv concatenated) is refused, whole.
    bad = tmp_path / "bad.csv"
    bad.write_text(head + row + head + row)
    before = dst.read_text()
    assert bench_csv.main(["--merge", str(a), str(bad), "--into", str(dst)]) == 1
    assert dst.read_text() == before


def test_compare_subset_and_schema_only(tmp_path, capsys):
    def write(name, ids, rows, extra=None):
        d = tmp_path / name
        d.mkdir()
        cols = {"id": pa.array(ids, pa.int64()), "adapter_id": pa.array(["t"] * len(ids)),
                "output": pa.array(rows, pa.list_(pa.float32()))}
        pq.write_table(pa.table(cols), d / "p.parquet")
        return str(d)

    full = write("full", [1, 2, 3], [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    part = write("part", [3, 1], [[5.0, 6.01], [1.0, 2.0]])
    assert compare_outputs.main([part, full, "--a-subset", "--tol", "1e-2"]) == 0
    assert compare_outputs.main([part, full, "--tol", "1e-2"]) == 1  # not a subset run: rows differ
    stray = write("stray", [9], [[1.0, 2.0]])
    assert compare_outputs.main([stray, full, "--a-subset"]) == 1
    wide = write("wide", [1, 2, 3], [[1.0] * 5] * 3)
    assert compare_outputs.main([wide, full, "--schema-only"]) == 0
    assert compare_outputs.main([part, full, "--schema-only"]) == 1
    assert "rows 2 vs 3: DIFFERENT" in capsys.readouterr().out


def test_benchmark_csvs_have_one_header_line():
    # The GPU runs' CSVs are appended to these files: a second header in the middle would be
    # read as a data row.
    folder = os.path.join(HERE, "../../docs/benchmarks")
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".csv"):
            continue
        with open(os.path.join(folder, name), newline="") as f:
            rows = list(csv.reader(f))
        assert rows and rows[0][0] == "date", name
        assert [r for r in rows[1:] if r == rows[0]] == [], f"{name} repeats its header"
        assert all(len(r) == len(rows[0]) for r in rows), f"{name} has a row of another width"
