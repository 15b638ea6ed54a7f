"""The functions over Spark Connect: a local Connect server (spark-submit of Spark's
SparkConnectServer with the jar, the extensions and the plugin, local[2]) and a Connect client
session, which has no JVM gateway. Run in a pytest process of its own (dev/run-python-tests):
once a Connect session exists, pyspark.sql.functions builds Connect columns process-wide.

A server that does not come up fails these tests with its log's tail; nothing is skipped."""
from __future__ import annotations

import os
import socket
import subprocess
import time

import numpy as np
import pytest

from reference import TOLERANCE, worst_error
from spark_segment_gemm import (ADAPTERS_PATH, EXTENSIONS, PLUGIN, find_jar, lora_apply,
                                segment_gemm, use_adapters)

import conftest as c

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
START_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def connect_server(adapter_dirs, tmp_path_factory):
    home = os.environ.get("SPARK_HOME")
    if not home or not os.path.isfile(os.path.join(home, "bin", "spark-submit")):
        pytest.fail(f"SPARK_HOME={home!r} has no bin/spark-submit: the Connect server needs a Spark "
                    "distribution (dev/install-spark.sh)")
    connect_jars = [j for j in os.listdir(os.path.join(home, "jars")) if j.startswith("spark-connect_")]
    if not connect_jars:
        pytest.fail(f"{home}/jars has no spark-connect_*.jar: this distribution cannot serve Connect")
    jar = find_jar()
    port = _free_port()
    log = tmp_path_factory.mktemp("connect") / "server.log"
    cmd = [os.path.join(home, "bin", "spark-submit"), "--class", SERVER_CLASS,
           "--master", "local[2]", "--name", "spark-segment-gemm-connect-test",
           "--conf", f"spark.connect.grpc.binding.port={port}",
           "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
           "--conf", f"spark.sql.extensions={EXTENSIONS}",
           "--conf", f"spark.plugins={PLUGIN}",
           "--conf", f"{ADAPTERS_PATH}={adapter_dirs['dense']}",
           "--conf", "spark.ui.enabled=false",
           # On the driver's system classpath too: the primary resource alone comes too late for
           # spark.plugins (ClassNotFoundException: SegmentGemmPlugin as the server starts).
           "--driver-class-path", jar,
           # The primary resource: our jar, which also ships it to executors.
           jar]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                pytest.fail(f"the Connect server did not listen on port {port} within "
                            f"{START_TIMEOUT_S} s (exit code {proc.poll()}); its log ends:\n{tail}")
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def remote(connect_server):
    from pyspark.sql import SparkSession

    s = SparkSession.builder.remote(connect_server).getOrCreate()
    yield s
    s.stop()


def test_is_a_connect_session_without_gateway(remote):
    assert type(remote).__module__.startswith("pyspark.sql.connect")
    assert not hasattr(remote, "_jsparkSession")


def test_segment_gemm_over_connect(remote, adapter_dirs):
    # use_adapters on Connect: configuration only, nothing read in the client.
    assert use_adapters(remote, adapter_dirs["random"]) is None
    assert remote.conf.get(ADAPTERS_PATH) == adapter_dirs["random"]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, c.D_IN)).astype(np.float32)
    ids = [f"t{i % c.N_ADAPTERS}" for i in range(40)]
    df = remote.createDataFrame([(i, a, v.tolist()) for i, (a, v) in enumerate(zip(ids, x))],
                                "id long, adapter_id string, features array<float>")
    col = segment_gemm(df.adapter_id, "features")
    assert type(col).__module__.startswith("pyspark.sql.connect")
    out = {r.id: r.y for r in df.select("id", col.alias("y")).collect()}
    assert len(out) == 40
    worst = max(worst_error(x[i], adapter_dirs["weights"][a], out[i], "bfloat16") for i, a in enumerate(ids))
    assert worst <= 1.0, f"bfloat16 over Connect: worst error {worst:.3f} of {TOLERANCE['bfloat16']}"
    # And from SQL on the same session.
    df.createOrReplaceTempView("connect_emb")
    sql = {r.id: r.y for r in remote.sql("SELECT id, segment_gemm(adapter_id, features) AS y FROM connect_emb").collect()}
    assert sql == out


def test_lora_apply_over_connect(remote, adapter_dirs):
    use_adapters(remote, adapter_dirs["peft_dir"])
    remote.conf.set("spark.segmentgemm.lora.module", "proj")
    remote.conf.set("spark.segmentgemm.computeDtype", "float32")
    try:
        x = np.linspace(-1, 1, c.D_IN, dtype=np.float32)
        df = remote.createDataFrame([("p1", x.tolist())], "a string, x array<float>")
        y = np.asarray(df.select(lora_apply("a", "x").alias("y")).first().y)
        A, B, alpha = adapter_dirs["peft"]["p1"]
        ref = x.astype(np.float64) @ A.T.astype(np.float64) @ B.T.astype(np.float64) * (alpha / 4)
        bound = (np.abs(x) @ np.abs(A.T)) @ np.abs(B.T) * (alpha / 4)
        assert np.max(np.abs(y - ref) / (2e-5 * bound)) <= 1.0
    finally:
        remote.conf.unset("spark.segmentgemm.lora.module")
        remote.conf.unset("spark.segmentgemm.computeDtype")
        use_adapters(remote, adapter_dirs["dense"])


def test_bad_adapter_fails_the_query_over_connect(remote, adapter_dirs):
    df = remote.createDataFrame([("nope", [1.0, 2.0, 3.0, 4.0])], "a string, x array<float>")
    with pytest.raises(Exception, match="nope"):
        df.select(segment_gemm("a", "x")).collect()
