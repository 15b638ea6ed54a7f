#!/usr/bin/env bash
# Installs a Spark distribution once into <repo>/.toolchain/spark-<version> (git-ignored) and
# prints that SPARK_HOME as the last line of stdout; everything else goes to stderr.
#   dev/install-spark.sh [version]        (default 4.1.3)
#   SPARK_HOME=$(dev/install-spark.sh)
# Apache's own tarballs are not served by a registry we can reach, but the PyPI sdist of pyspark
# carries the whole distribution under pyspark-<version>/deps/ (bin, sbin, jars), so pip fetches
# it. Set PYSPARK_SDIST=/path/to/pyspark-<version>.tar.gz to use a copy already on disk.
# The sdist lacks sbin/start-master.sh and start-worker.sh: dev/spark-cluster replaces them.
set -euo pipefail
version=${1:-4.1.3}
toolchain=$(cd "$(dirname "$0")/.." && pwd)/.toolchain
home=$toolchain/spark-$version
marker=$home/.installed-from-pyspark-sdist
[ -f "$marker" ] && { echo "$home"; exit 0; }

mkdir -p "$toolchain"
# Parallel callers (e.g. several test JVMs) must not extract into the same folder at once.
exec 9>"$toolchain/.install-spark.lock"
flock 9
if [ ! -f "$marker" ]; then
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
  echo "extracting the Spark distribution into $home" >&2
  # Only deps/ holds the distribution; the rest of the sdist is PySpark's Python sources.
  tar -xzf "$sdist" -C "$tmp" --no-same-owner --wildcards "pyspark-$version/deps/*"
  deps=$tmp/pyspark-$version/deps
  mkdir "$tmp/home"
  for d in bin sbin jars conf; do
    [ -d "$deps/$d" ] && mv "$deps/$d" "$tmp/home/"
  done
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
fi
echo "$home"
