"""Fixtures: small adapters on disk (dense .npy and one PEFT folder), a classic local[2] session
with the jar (also the doctests' `spark`), and, for tests/connect, a local Spark Connect server."""
from __future__ import annotations

import os

import numpy as np
import pytest

from spark_segment_gemm.adapters import save_dense, save_peft

D_IN, D_OUT, N_ADAPTERS = 16, 8, 6
SEED = 20261203


@pytest.fixture(scope="session")
def adapter_dirs(tmp_path_factory):
    """dense: a, b (the doctests' 4 x 5 weights); random/: t0..t5 (16 x 8); lora/: t0 (the
    doctests' rank-1 adapter); peft/: p0..p2 (random rank 4, 16 -> 8)."""
    root = tmp_path_factory.mktemp("adapters")
    dense = str(root / "dense")
    # a = [I | 1]: the input, then its sum; b = 2 a.
    a = np.hstack([np.eye(4), np.ones((4, 1))])
    save_dense(dense, "a", a)
    save_dense(dense, "b", 2 * a)
    rng = np.random.default_rng(SEED)
    rand = str(root / "random")
    weights = {}
    for i in range(N_ADAPTERS):
        w = (rng.standard_normal((D_IN, D_OUT)) / np.sqrt(D_IN)).astype(np.float32)
        weights[f"t{i}"] = w
        save_dense(rand, f"t{i}", w)
    lora = str(root / "lora")
    save_peft(lora, "t0", np.array([[1.0, 1.0, 0.0, 0.0]]), np.array([[1.0], [2.0]]), alpha=2)
    # Every LoRA adapter of one directory must share d_in and d_out: the random ones apart.
    peft_dir = str(root / "peft")
    peft = {}
    for i in range(3):
        A = (rng.standard_normal((4, D_IN)) / np.sqrt(D_IN)).astype(np.float32)
        B = (rng.standard_normal((D_OUT, 4)) / 2).astype(np.float32)
        peft[f"p{i}"] = (A, B, 8.0)
        save_peft(peft_dir, f"p{i}", A, B, alpha=8.0)
    return {"dense": dense, "random": rand, "weights": weights, "lora": lora, "peft": peft, "peft_dir": peft_dir}


@pytest.fixture(scope="session")
def spark(adapter_dirs):
    from pyspark.sql import SparkSession

    from spark_segment_gemm import session

    s = session(SparkSession.builder.master("local[2]").appName("spark-segment-gemm-pytest"),
                adapters=adapter_dirs["dense"],
                **{"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2"})
    # The tests that expect a failed task would fill the log with its stack traces.
    s.sparkContext.setLogLevel("FATAL")
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def _doctest_namespace(request, doctest_namespace):
    # Only doctests get a session this way, so the Connect test process never starts a classic one.
    if type(request.node).__name__ == "DoctestItem":
        dirs = request.getfixturevalue("adapter_dirs")
        doctest_namespace["spark"] = request.getfixturevalue("spark")
        doctest_namespace["dense_dir"] = dirs["dense"]
        doctest_namespace["lora_dir"] = dirs["lora"]
