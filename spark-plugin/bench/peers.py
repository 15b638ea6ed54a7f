#!/usr/bin/env python3
"""The e2e benchmark's PySpark peers (spark-plugin/bench/e2e.sh bench): the same Parquet in, the
same output schema out (id, adapter_id, output ARRAY<FLOAT>, as SegmentGemmJob writes it), with
what a PySpark user writes instead of our UDF: mapInArrow over Arrow record batches, rows grouped
by adapter inside each batch, one matmul per adapter (peers_lib.py).

  --impl pyspark_torch     torch on the GPU, bf16, fp32 result. PLAIN PySpark, no RAPIDS
                           Accelerator: what a PySpark GPU user runs (the Accelerator would not
                           run a mapInArrow's Python on the GPU anyway; it would only add
                           columnar<->row transitions around it).
  --impl pandas_numpy_cpu  numpy fp32 on the CPU, all cores as Spark tasks, one BLAS thread per
                           Python worker (OMP/OPENBLAS/MKL_NUM_THREADS=1), CPU only.

Prints `IMPL: ROWS rows in SECONDS s` (the write: read, compute, write, as the job times it).
Needs pyspark + py4j on PYTHONPATH and SPARK_HOME (e2e.sh sets both), numpy, pyarrow; torch for
pyspark_torch (without it, and only with --device cpu, a numpy bf16 stand-in: a dry run).
"""
import argparse
import functools
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peers_lib  # noqa: E402

# BLAS threads per Python worker: one, since every core already runs a Spark task.
ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--impl", required=True, choices=["pyspark_torch", "pandas_numpy_cpu"])
    p.add_argument("--function", default="segment_gemm", choices=["segment_gemm", "lora_apply"])
    p.add_argument("--input", required=True)
    p.add_argument("--adapters", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--master", default="local[*]")
    p.add_argument("--device", default="cuda", help="pyspark_torch: cuda (default) or cpu")
    p.add_argument("--torch-mode", default="auto", choices=["auto", "loop", "grouped"],
                   help="pyspark_torch: one matmul per adapter, or torch._grouped_mm")
    p.add_argument("--batch-rows", type=int, default=32768,
                   help="spark.sql.execution.arrow.maxRecordsPerBatch")
    p.add_argument("--driver-memory", default="16g")
    p.add_argument("--local-dir", default=None, help="spark.local.dir")
    p.add_argument("--conf", action="append", default=[], help="KEY=VALUE, repeatable")
    a = p.parse_args(argv)
    if a.batch_rows <= 0:
        p.error(f"--batch-rows must be positive, not {a.batch_rows}")
    for c in a.conf:
        if "=" not in c or c.startswith("="):
            p.error(f"--conf needs KEY=VALUE, not {c}")
    return a


def session(a):
    from pyspark.sql import SparkSession
    b = (SparkSession.builder.appName(f"e2e-peer-{a.impl}").master(a.master)
         .config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false")  # progress bars would fill the log
         .config("spark.driver.memory", a.driver_memory)
         .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(a.batch_rows))
         # One Python worker per task slot, kept for the next task: adapters load once per worker.
         .config("spark.python.worker.reuse", "true")
         # The peers' libraries see the shipped module from the workers' sys.path.
         .config("spark.submit.pyFiles", os.path.join(HERE, "peers_lib.py")))
    if a.local_dir:
        b = b.config("spark.local.dir", a.local_dir)
    if a.impl == "pandas_numpy_cpu":
        for v in ONE_THREAD:
            b = b.config(f"spark.executorEnv.{v}", "1")
    for c in a.conf:
        k, v = c.split("=", 1)
        b = b.config(k, v)
    return b.getOrCreate()


def main(argv=None):
    a = parse(argv)
    if a.impl == "pandas_numpy_cpu":
        # Also in this process, which forks Spark's JVM and so its Python workers (local mode).
        for v in ONE_THREAD:
            os.environ[v] = "1"
    # Fail before Spark starts on a bad adapters folder or a missing torch/GPU, in one line.
    try:
        adapters = peers_lib.load_adapters(a.adapters, a.function)
        if a.impl == "pyspark_torch":
            probe = peers_lib.make_backend("torch", adapters, a.device, a.torch_mode)
            print(f"{a.impl}: {probe.describe}", flush=True)
            del probe
    except (ValueError, RuntimeError, OSError) as e:
        print(f"{a.impl}: {e}", file=sys.stderr)
        return 2
    spark = session(a)
    try:
        df = spark.read.parquet(a.input)
        for c in ("id", "adapter_id", "features"):
            if c not in df.columns:
                print(f"{a.impl}: input {a.input} has no column {c} (its columns: "
                      f"{', '.join(df.columns)})", file=sys.stderr)
                return 3
        kind = "torch" if a.impl == "pyspark_torch" else "numpy"
        fn = functools.partial(peers_lib.map_batches, path=os.path.abspath(a.adapters),
                               function=a.function, kind=kind, device=a.device,
                               mode=a.torch_mode, keep=["id", "adapter_id"])
        out = df.select("id", "adapter_id", "features").mapInArrow(
            fn, "id long, adapter_id string, output array<float>")
        start = time.time()
        out.write.mode("overwrite").parquet(a.output)
        seconds = time.time() - start
        rows = spark.read.parquet(a.output).count()  # Parquet footers, no data scan
        print(f"{a.impl}: {rows} rows in {seconds:.3f} s, {rows / max(seconds, 1e-9):,.0f} rows/s "
              f"({a.function}, {len(adapters.names)} adapters, {a.master}, "
              f"{a.batch_rows} rows per Arrow batch) -> {a.output}", flush=True)
        return 0
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
