"""PySpark functions for Spark Segment GEMM.

``segment_gemm(adapter_id, features)`` multiplies each row's features by its adapter's weight
``W`` (``features . W``); ``lora_apply(adapter_id, features)`` applies a PEFT LoRA adapter
(``features . A^T . B^T . lora_alpha / r``). Both are SQL functions of the project's jar
(``SegmentGemmExtensions``); the functions here only build calls to them, with
:func:`pyspark.sql.functions.call_function`, so they work on classic sessions and on Spark Connect
(where the Connect server has the jar) without the JVM gateway.

>>> from spark_segment_gemm import segment_gemm
>>> df = spark.createDataFrame([("a", [1.0, 2.0, 3.0, 4.0])], "adapter_id string, features array<float>")
>>> df.select(segment_gemm("adapter_id", "features").alias("y")).first().y
[1.0, 2.0, 3.0, 4.0, 10.0]
"""

from __future__ import annotations

import glob
import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Union

from pyspark.sql import Column, SparkSession

if TYPE_CHECKING:
    from pyspark.sql.connect.session import SparkSession as ConnectSparkSession

    AnySession = Union[SparkSession, ConnectSparkSession]
else:
    AnySession = Any

__all__ = [
    "segment_gemm",
    "lora_apply",
    "use_adapters",
    "session",
    "find_jar",
    "EXTENSIONS",
    "PLUGIN",
    "RAPIDS_PLUGIN",
    "ADAPTERS_PATH",
]

__version__ = "0.1.0"

#: ``spark.sql.extensions`` value that registers both SQL functions in every session.
EXTENSIONS = "com.sparksegmentgemm.spark.SegmentGemmExtensions"
#: ``spark.plugins`` entry of the project's plugin (config check, executor set-up, metrics).
PLUGIN = "com.sparksegmentgemm.spark.SegmentGemmPlugin"
#: The RAPIDS Accelerator's plugin; ours must come before it (it frees its GPU memory first).
RAPIDS_PLUGIN = "com.nvidia.spark.SQLPlugin"
#: The configuration key naming the adapters' directory (any Hadoop path).
ADAPTERS_PATH = "spark.segmentgemm.adapters.path"

ColumnOrName = Union[Column, str]

_JAR_GLOB = "segment-gemm-spark-plugin-*-all.jar"


def _call(name: str, *cols: ColumnOrName) -> Column:
    """``call_function(name, *cols)`` from the module that matches the columns given.

    pyspark.sql.functions picks Connect or classic by a process-wide switch
    (SPARK_CONNECT_MODE_ENABLED, set once any Connect session starts), so a classic Column
    passed in a process that also opened a Connect session would reach the Connect builder and
    fail. The kind of Column passed decides here; plain names follow pyspark's own switch.
    """
    from pyspark.sql import functions as F

    connect = {_is_connect(c) for c in cols if isinstance(c, Column)}  # True: a Connect Column
    if connect == {True, False}:
        raise TypeError(f"{name}: the columns mix a Spark Connect Column and a classic Column")
    if True in connect:
        from pyspark.sql.connect import functions as CF

        return CF.call_function(name, *cols)
    if False in connect:
        # The undecorated classic implementation, whatever the process-wide switch says.
        return F.call_function.__wrapped__(name, *cols)  # type: ignore[attr-defined]
    return F.call_function(name, *cols)


def _is_connect(obj: Any) -> bool:
    """Whether a Column or session is Spark Connect's: its class lives in pyspark.sql.connect."""
    return type(obj).__module__.startswith("pyspark.sql.connect")


def _check(name: str, **cols: Any) -> None:
    for arg, c in cols.items():
        if not isinstance(c, (Column, str)):
            raise TypeError(f"{name}: {arg} must be a Column or a column name, not {type(c).__name__}")


def segment_gemm(adapter_col: ColumnOrName, features_col: ColumnOrName) -> Column:
    """``features . W[adapter_id]`` for every row: the SQL function ``segment_gemm``.

    Parameters
    ----------
    adapter_col : Column or str
        The adapter id: STRING, INT or LONG (an .npy or .safetensors file stem under
        ``spark.segmentgemm.adapters.path``).
    features_col : Column or str
        ARRAY<FLOAT> (or any numeric array, cast to it) of ``d_in`` values.

    Returns
    -------
    Column
        ARRAY<FLOAT> of ``d_out`` values, computed in ``spark.segmentgemm.computeDtype``
        (bfloat16 by default: relative error up to 1e-2 of ``sum_k |x_k w_k|``).

    Examples
    --------
    Adapter ``a`` is ``[I_4 | 1]`` (4 x 5): the output is the input and then its sum.

    >>> df = spark.createDataFrame([("a", [1.0, 2.0, 3.0, 4.0]), ("b", [1.0, 1.0, 1.0, 1.0])],
    ...                            "adapter_id string, features array<float>")
    >>> for r in df.select("adapter_id", segment_gemm("adapter_id", df.features).alias("y")).collect():
    ...     print(r.adapter_id, r.y)
    a [1.0, 2.0, 3.0, 4.0, 10.0]
    b [2.0, 2.0, 2.0, 2.0, 8.0]

    The same from SQL:

    >>> df.createOrReplaceTempView("emb")
    >>> spark.sql("SELECT segment_gemm(adapter_id, features) AS y FROM emb").first().y
    [1.0, 2.0, 3.0, 4.0, 10.0]
    """
    _check("segment_gemm", adapter_col=adapter_col, features_col=features_col)
    return _call("segment_gemm", adapter_col, features_col)


def lora_apply(adapter_col: ColumnOrName, features_col: ColumnOrName) -> Column:
    """``features . A^T . B^T . (lora_alpha / r)`` for every row: the SQL function ``lora_apply``.

    The adapters are PEFT folders (``adapter_config.json`` + ``adapter_model.safetensors``)
    under ``spark.segmentgemm.adapters.path``; ``spark.segmentgemm.lora.module`` picks the module
    when an adapter has several.

    Parameters
    ----------
    adapter_col : Column or str
        The adapter id (the folder's name): STRING, INT or LONG.
    features_col : Column or str
        ARRAY<FLOAT> (or any numeric array) of ``d_in`` values.

    Returns
    -------
    Column
        ARRAY<FLOAT> of ``d_out`` values.

    Examples
    --------
    Folder ``t0`` holds ``A = [[1, 1, 0, 0]]``, ``B = [[1], [2]]``, ``r = 1``, ``lora_alpha = 2``.

    >>> old = use_adapters(spark, lora_dir)
    >>> df = spark.createDataFrame([("t0", [1.0, 2.0, 3.0, 4.0])], "id string, x array<float>")
    >>> df.select(lora_apply("id", "x").alias("y")).first().y
    [6.0, 12.0]
    >>> _ = use_adapters(spark, dense_dir)
    """
    _check("lora_apply", adapter_col=adapter_col, features_col=features_col)
    return _call("lora_apply", adapter_col, features_col)


def use_adapters(spark: AnySession, path: str, validate: bool = True) -> Optional[List[str]]:
    """Points the session's ``segment_gemm`` and ``lora_apply`` at the adapters under ``path``.

    Sets ``spark.segmentgemm.adapters.path`` for the queries that follow (each query reads the
    setting when it is analysed). On a classic session with ``validate`` (the default) it first
    reads the adapters once in the driver's JVM (``SegmentGemmFunctions.useAdapters``), so that a
    bad directory fails here, naming the file, and returns the ids of the dense adapters (those
    ``segment_gemm`` can use; empty for a folder of LoRA adapters only). On Spark Connect, or
    with ``validate=False``, it only sets the configuration and returns None: a bad directory
    then fails the first query.

    Examples
    --------
    >>> use_adapters(spark, dense_dir)
    ['a', 'b']
    >>> spark.conf.get("spark.segmentgemm.adapters.path") == dense_dir
    True
    """
    if not isinstance(path, str) or not path:
        raise ValueError(f"use_adapters: path must be a non-empty string, not {path!r}")
    if validate and not _is_connect(spark):
        jvm = spark.sparkContext._jvm  # type: ignore[union-attr]
        functions = jvm.com.sparksegmentgemm.spark.SegmentGemmFunctions
        return sorted(str(i) for i in functions.useAdapters(spark._jsparkSession, path))  # type: ignore[union-attr]
    spark.conf.set(ADAPTERS_PATH, path)
    return None


def find_jar() -> str:
    """The project's shaded jar: ``$SEGMENT_GEMM_JAR``, else the newest
    ``spark-plugin/target/segment-gemm-spark-plugin-*-all.jar`` of the repository this package
    sits in (a source checkout) or of the current directory or one of its parents.

    >>> find_jar().endswith("-all.jar")
    True
    """
    env = os.environ.get("SEGMENT_GEMM_JAR")
    if env:
        if not os.path.isfile(env):
            raise FileNotFoundError(f"SEGMENT_GEMM_JAR={env} is not a file")
        return os.path.abspath(env)
    starts = [os.path.dirname(os.path.abspath(__file__)), os.getcwd()]
    seen = set()
    for start in starts:
        d = start
        while d not in seen:
            seen.add(d)
            found = glob.glob(os.path.join(d, "spark-plugin", "target", _JAR_GLOB))
            if found:
                return max(found, key=os.path.getmtime)
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
    raise FileNotFoundError(
        "no segment-gemm-spark-plugin-*-all.jar found: build it (dev/run-tests, or mvn install "
        "-DskipTests) or set SEGMENT_GEMM_JAR to its path")


def _merged(existing: Optional[str], first: Sequence[str], last: Sequence[str] = ()) -> str:
    """A comma-separated list: ``first``, then the existing entries, then ``last``, once each."""
    items: List[str] = []
    for v in list(first) + [s.strip() for s in (existing or "").split(",")] + list(last):
        if v and v not in items:
            items.append(v)
    return ",".join(items)


def session(builder: Optional[SparkSession.Builder] = None, jar: Optional[str] = None,
            gpu: bool = False, adapters: Optional[str] = None, rapids_jar: Optional[str] = None,
            **conf: Any) -> AnySession:
    """A session with the functions: ``builder.getOrCreate()`` after adding the jar and settings.

    Adds ``jar`` (default :func:`find_jar`) to ``spark.jars``, :data:`EXTENSIONS` to
    ``spark.sql.extensions`` and :data:`PLUGIN` to ``spark.plugins``, keeping what the builder
    already has. With ``gpu=True`` it also lists the RAPIDS Accelerator's plugin, after ours (our
    plugin frees its GPU memory before the Accelerator stops), sets
    ``spark.rapids.sql.enabled=true`` and adds ``rapids_jar`` (default ``$RAPIDS_JAR``) to
    ``spark.jars`` when given (else the cluster must have it). ``adapters`` sets
    ``spark.segmentgemm.adapters.path``; every other keyword is a configuration entry, its full
    key passed with ``**{"spark.segmentgemm.computeDtype": "float32"}``.

    ``builder`` defaults to ``SparkSession.builder.master("local[*]")``. A Spark Connect builder
    (``SparkSession.builder.remote(url)``) gets only the adapters and ``conf`` entries: the jar,
    extensions and plugin belong to the Connect server's own configuration.

    Examples
    --------
    ``getOrCreate`` returns the running session here, made by this function:

    >>> from pyspark.sql import SparkSession
    >>> s = session(SparkSession.builder.master("local[2]"))
    >>> s.conf.get("spark.sql.extensions")
    'com.sparksegmentgemm.spark.SegmentGemmExtensions'
    >>> s.conf.get("spark.plugins")
    'com.sparksegmentgemm.spark.SegmentGemmPlugin'
    """
    if builder is None:
        builder = SparkSession.builder.master("local[*]")
    options: Dict[str, str] = getattr(builder, "_options", {})
    remote = "spark.remote" in options or (
        "SPARK_REMOTE" in os.environ and "spark.master" not in options)
    if not remote:
        jars = [jar or find_jar()]
        if gpu:
            rapids = rapids_jar or os.environ.get("RAPIDS_JAR")
            if rapids:
                if not os.path.isfile(rapids):
                    raise FileNotFoundError(f"the RAPIDS Accelerator jar {rapids} is not a file")
                jars.append(rapids)
        builder = builder.config("spark.jars", _merged(options.get("spark.jars"), jars))
        builder = builder.config("spark.sql.extensions",
                                 _merged(options.get("spark.sql.extensions"), [EXTENSIONS]))
        # Ours before the RAPIDS Accelerator's, wherever the builder listed it.
        plugins = _merged(options.get("spark.plugins"), [PLUGIN], [RAPIDS_PLUGIN] if gpu else [])
        if RAPIDS_PLUGIN in plugins.split(","):
            rest = [p for p in plugins.split(",") if p not in (PLUGIN, RAPIDS_PLUGIN)]
            plugins = ",".join([PLUGIN, RAPIDS_PLUGIN] + rest)
        builder = builder.config("spark.plugins", plugins)
        if gpu:
            builder = builder.config("spark.rapids.sql.enabled", "true")
    if adapters is not None:
        builder = builder.config(ADAPTERS_PATH, adapters)
    for key, value in conf.items():
        builder = builder.config(key, value if isinstance(value, str) else str(value).lower()
                                 if isinstance(value, bool) else str(value))
    return builder.getOrCreate()
