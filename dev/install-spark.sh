#!/usr/bin/env bash
# Installs a Spark distribution once into <repo>/.toolchain/spark-<version> (git-ignored) and
# prints that SPARK_HOME as the last line of stdout; everything else goes to stderr.
#   dev/install-spark.sh [version] [--with-python]   (default 4.1.3)
#   SPARK_HOME=$(dev/install-spark.sh)
# Apache's own tarballs are not served by a registry we can reach, but the PyPI sdist of pyspark
# carries the whole distribution under pyspark-<version>/deps/ (bin, sbin, jars), so pip fetches
# it. Set PYSPARK_SDIST=/path/to/pyspark-<version>.tar.gz to use a copy already on disk.
# The sdist lacks sbin/start-master.sh and start-worker.sh: dev/spark-cluster replaces them.
# PySpark's Python code (pyspark/ and the py4j zip) lands in SPARK_HOME/python as in Apache's
# tarball: a fresh install extracts it with the rest; --with-python adds it to an install made
# before it did (fetching the sdist again), for the PySpark peers of the e2e benchmark.
set -euo pipefail
version=4.1.3; python=0
for a in "$@"; do
  case "$a" in
    --with-python) python=1 ;;
    -*) echo "install-spark.sh: unknown option $a" >&2; exit 2 ;;
    *) version=$a ;;
  esac
done
toolchain=$(cd "$(dirname "$0")/.." && pwd)/.toolchain
home=$toolchain/spark-$version
marker=$home/.installed-from-pyspark-sdist
pymarker=$home/python/.extracted-from-pyspark-sdist
[ -f "$marker" ] && { [ "$python" = 0 ] || [ -f "$pymarker" ]; } && { echo "$home"; exit 0; }

mkdir -p "$toolchain"
# Parallel callers (e.g. several test JVMs) must not extract into the same folder at once.
exec 9>"$toolchain/.install-spark.lock"
flock 9
if [ ! -f "$marker" ] || { [ "$python" = 1 ] && [ ! -f "$pymarker" ]; }; then
  # Inside .toolchain, so the final mv is a rename on the same file system.
  tmp=$(mktemp -d "$toolchain/.spark-$version.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  sdist=${PYSPARK_SDIST:-}
  if [ -z "$sdist" ]; then
    echo "downloading pyspark==$version (about 455 MB) from PyPI" >&2
    # --no-cache-dir: the sdist is used once; do not leave another copy in ~/.cache/pip.
    python3 -m pip download -q --no-deps --no-cache-dir "pyspark==$version" -d "$tmp" >&2
    sdist=$tmp/pyspark-$version.tar.gz
  fi
  # deps/ holds the distribution, pyspark/ and lib/ PySpark's Python code and py4j.
  tar -xzf "$sdist" -C "$tmp" --no-same-owner --wildcards "pyspark-$version/deps/*" \
    "pyspark-$version/pyspark/*" "pyspark-$version/lib/*"
  src=$tmp/pyspark-$version
  # Python parts: pyspark/ without its tests (a few MB), py4j's source zip, where Spark's
  # launcher scripts and PythonUtils look for them.
  mkdir -p "$tmp/python/lib"
  mv "$src/pyspark" "$tmp/python/"
  find "$tmp/python/pyspark" -depth -type d -name tests -exec rm -rf {} +
  mv "$src"/lib/py4j-*-src.zip "$tmp/python/lib/"
  touch "$tmp/python/.extracted-from-pyspark-sdist"
  if [ ! -f "$marker" ]; then
    echo "extracting the Spark distribution into $home" >&2
    deps=$src/deps
    mkdir "$tmp/home"
    for d in bin sbin jars conf; do
      [ -d "$deps/$d" ] && mv "$deps/$d" "$tmp/home/"
    done
    mv "$tmp/python" "$tmp/home/"
    # The sdist keeps modes only for some scripts (load-spark-env.sh is sourced yet not +x there).
    find "$tmp/home/bin" "$tmp/home/sbin" -type f ! -name '*.cmd' -exec chmod +x {} +
    rm -rf "$home"  # a half-finished earlier attempt (no marker)
    mv "$tmp/home" "$home"
    # Fail here, not in a test, when the JVM cannot run this Spark (Spark 4 needs Java 17+).
    if [ -z "${JAVA_HOME:-}" ]; then
      JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
      export JAVA_HOME
    fi
    SPARK_HOME=$home "$home/bin/spark-submit" --version >&2
    echo "pyspark-$version sdist" > "$marker"
  else
    echo "adding PySpark's Python code to $home/python" >&2
    rm -rf "$home/python"
    mv "$tmp/python" "$home/python"
  fi
fi
echo "$home"
