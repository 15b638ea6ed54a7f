"""The functions on a classic local[2] session, against the numpy float64 reference."""
from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import functions as F

from reference import TOLERANCE, worst_error
from spark_segment_gemm import (ADAPTERS_PATH, EXTENSIONS, PLUGIN, RAPIDS_PLUGIN, find_jar,
                                lora_apply, segment_gemm, session, use_adapters)
from spark_segment_gemm import _merged

import conftest as c


def _rows(spark, n=64, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c.D_IN)).astype(np.float32)
    ids = [f"t{i}" for i in rng.integers(0, c.N_ADAPTERS, n)]
    df = spark.createDataFrame([(i, a, v.tolist()) for i, (a, v) in enumerate(zip(ids, x))],
                               "id long, adapter_id string, features array<float>")
    return df, x, ids


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_segment_gemm_matches_numpy(spark, adapter_dirs, dtype):
    spark.conf.set("spark.segmentgemm.computeDtype", dtype)
    try:
        assert use_adapters(spark, adapter_dirs["random"]) == [f"t{i}" for i in range(c.N_ADAPTERS)]
        df, x, ids = _rows(spark)
        out = {r.id: r.y for r in df.select("id", segment_gemm(F.col("adapter_id"), "features").alias("y")).collect()}
        assert len(out) == len(ids)
        worst = max(worst_error(x[i], adapter_dirs["weights"][a], out[i], dtype) for i, a in enumerate(ids))
        assert worst <= 1.0, f"{dtype}: worst error {worst:.3f} of the tolerance {TOLERANCE[dtype]}"
    finally:
        spark.conf.unset("spark.segmentgemm.computeDtype")
        use_adapters(spark, adapter_dirs["dense"])


def test_sql_and_dataframe_agree(spark, adapter_dirs):
    use_adapters(spark, adapter_dirs["random"], validate=False)
    try:
        df, _, _ = _rows(spark, 32, seed=2)
        df.createOrReplaceTempView("pytest_emb")
        sql = {r.id: r.y for r in spark.sql(
            "SELECT id, segment_gemm(adapter_id, features) AS y FROM pytest_emb").collect()}
        api = {r.id: r.y for r in df.select("id", segment_gemm(df.adapter_id, df["features"]).alias("y")).collect()}
        assert sql == api and len(sql) == 32
    finally:
        use_adapters(spark, adapter_dirs["dense"])


def test_lora_apply_matches_numpy(spark, adapter_dirs):
    # float32: the two stages (x.A^T, then .B^T) without intermediate rounding, so a tight check.
    spark.conf.set("spark.segmentgemm.computeDtype", "float32")
    spark.conf.set("spark.segmentgemm.lora.module", "proj")
    try:
        use_adapters(spark, adapter_dirs["peft_dir"])
        rng = np.random.default_rng(3)
        x = rng.standard_normal((30, c.D_IN)).astype(np.float32)
        ids = [f"p{i % 3}" for i in range(30)]
        df = spark.createDataFrame([(i, a, v.tolist()) for i, (a, v) in enumerate(zip(ids, x))],
                                   "id int, adapter_id string, features array<double>")
        out = {r.id: r.y for r in df.select("id", lora_apply("adapter_id", "features").alias("y")).collect()}
        worst = 0.0
        for i, a in enumerate(ids):
            A, B, alpha = adapter_dirs["peft"][a]
            w = A.T.astype(np.float64) @ B.T.astype(np.float64) * (alpha / A.shape[0])
            # Two fp32 GEMMs: bound by the float32 tolerance of each stage's terms.
            x64 = x[i].astype(np.float64)
            ref = x64 @ w
            bound = (np.abs(x64) @ np.abs(A.T)) @ np.abs(B.T) * (alpha / A.shape[0])
            worst = max(worst, float(np.max(np.abs(np.asarray(out[i]) - ref) / (2e-5 * bound))))
        assert worst <= 1.0, f"lora_apply float32: worst error {worst:.3f} of 2e-5"
    finally:
        spark.conf.unset("spark.segmentgemm.computeDtype")
        spark.conf.unset("spark.segmentgemm.lora.module")
        use_adapters(spark, adapter_dirs["dense"])


def test_integer_ids_and_nulls(spark, adapter_dirs, tmp_path):
    # Integer adapter ids: the .npy file stems "0", "1".
    w0 = np.arange(12, dtype=np.float32).reshape(4, 3)
    from spark_segment_gemm.adapters import save_dense
    save_dense(str(tmp_path), "0", w0)
    save_dense(str(tmp_path), "1", -w0)
    assert use_adapters(spark, str(tmp_path)) == ["0", "1"]
    try:
        df = spark.createDataFrame([(0, [1.0, 0.0, 0.0, 1.0]), (1, [1.0, 0.0, 0.0, 1.0]), (1, None)],
                                   "a int, x array<float>")
        ys = [r.y for r in df.select(segment_gemm("a", "x").alias("y")).collect()]
        assert ys == [[9.0, 11.0, 13.0], [-9.0, -11.0, -13.0], None]
    finally:
        use_adapters(spark, adapter_dirs["dense"])


def test_unknown_adapter_is_a_clear_error(spark):
    df = spark.createDataFrame([("zz", [1.0, 2.0, 3.0, 4.0])], "adapter_id string, features array<float>")
    with pytest.raises(Exception, match="zz"):
        df.select(segment_gemm("adapter_id", "features")).collect()


def test_bad_adapters_path_fails_in_use_adapters(spark, tmp_path, adapter_dirs):
    (tmp_path / "broken.npy").write_bytes(b"not a numpy file")
    with pytest.raises(Exception, match="broken.npy"):
        use_adapters(spark, str(tmp_path))
    # The failed validation left the session's path as it was.
    assert spark.conf.get(ADAPTERS_PATH) == adapter_dirs["dense"]


def test_argument_types_are_checked():
    with pytest.raises(TypeError, match="features_col must be a Column or a column name, not int"):
        segment_gemm("a", 3)
    with pytest.raises(ValueError, match="non-empty string"):
        use_adapters(None, "")


def test_session_conf(spark):
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.sql.extensions") == EXTENSIONS
    assert conf.get("spark.plugins") == PLUGIN
    assert find_jar() in conf.get("spark.jars").split(",")
    # The plugin ran on the driver and registered the extensions: SQL knows the function.
    assert spark.sql("DESCRIBE FUNCTION segment_gemm").count() > 0


def test_plugin_order_helper():
    # Ours always first, RAPIDS second, the builder's own plugins kept after them.
    merged = _merged(f"{RAPIDS_PLUGIN},x.Other", [PLUGIN], [RAPIDS_PLUGIN])
    assert merged.split(",") == [PLUGIN, RAPIDS_PLUGIN, "x.Other"]


def test_gpu_session_conf(monkeypatch, tmp_path):
    """session(gpu=True) on a builder that lists RAPIDS first: the options handed to Spark put
    ours first (no session is started: this machine has no RAPIDS jar)."""
    seen = {}

    class Builder:
        _options = {"spark.plugins": RAPIDS_PLUGIN, "spark.master": "local[1]"}

        def config(self, k, v):
            seen[k] = v
            return self

        def getOrCreate(self):
            return seen

    rapids = tmp_path / "rapids.jar"
    rapids.write_bytes(b"")
    out = session(Builder(), jar="/x/ours.jar", gpu=True, rapids_jar=str(rapids),
                  **{"spark.segmentgemm.computeDtype": "float16", "spark.rapids.sql.explain": False})
    assert out["spark.plugins"] == f"{PLUGIN},{RAPIDS_PLUGIN}"
    assert out["spark.jars"] == f"/x/ours.jar,{rapids}"
    assert out["spark.rapids.sql.enabled"] == "true"
    assert out["spark.segmentgemm.computeDtype"] == "float16"
    assert out["spark.rapids.sql.explain"] == "false"
    with pytest.raises(FileNotFoundError, match="RAPIDS Accelerator jar /nope.jar"):
        session(Builder(), jar="/x/ours.jar", gpu=True, rapids_jar="/nope.jar")


def test_remote_builder_gets_only_runtime_conf():
    """A Spark Connect builder: the jar, extensions and plugin are the server's business; only
    the adapters path and the given entries go to the session."""
    seen = {}

    class Builder:
        _options = {"spark.remote": "sc://127.0.0.1:15002"}

        def config(self, k, v):
            seen[k] = v
            return self

        def getOrCreate(self):
            return seen

    out = session(Builder(), adapters="/data/adapters", **{"spark.segmentgemm.onBadRow": "null"})
    assert out == {ADAPTERS_PATH: "/data/adapters", "spark.segmentgemm.onBadRow": "null"}


def test_find_jar_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGMENT_GEMM_JAR", str(tmp_path / "missing.jar"))
    with pytest.raises(FileNotFoundError, match="SEGMENT_GEMM_JAR=.*missing.jar is not a file"):
        find_jar()
