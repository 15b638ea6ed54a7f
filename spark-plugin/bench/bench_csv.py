#!/usr/bin/env python3
"""Records one implementation's run of the e2e benchmark (spark-plugin/bench/e2e.sh bench): the
rows of its output (Parquet footers), its wall seconds (the whole spark-submit or python process,
start-up included, as e2e.sh times every run) and the seconds the job itself reports in its log,
as rows of

  CSV            date,device,case,impl,rows,seconds,rows_per_s,gb_per_s   (wall seconds)
  --injob-csv    the same columns with the job's own seconds, where its log reports them

gb_per_s is GB (1e9 bytes) of fp32 features per second, rows * d_in * 4 / seconds, as the job
reports it. Prints one line saying what it recorded.

  bench_csv.py --csv F [--injob-csv F2] --case C --impl I --device D --d-in N --seconds S
               --output DIR [--log LOG]
  bench_csv.py --merge SRC... --into DST
      appends the rows of each SRC (a GPU call's OUT/e2e.csv) to DST (docs/benchmarks/e2e.csv)
      without their header: DST keeps one header line; a SRC or DST with another header, a header
      in its middle, or rows of another width is refused and nothing is written.
"""
import argparse
import csv
import datetime
import os
import re
import sys

HEADER = ["date", "device", "case", "impl", "rows", "seconds", "rows_per_s", "gb_per_s"]

# The line each implementation prints: SegmentGemmJob ("segment_gemm: 2,000,000 rows in 5.08 s,
# ..."), IoFloor, SqlExplodeBaseline and peers.py ("pyspark_torch: 2000000 rows in 9.1 s, ...").
_SUMMARY = re.compile(r"^(segment_gemm|lora_apply|io_floor|sql_explode|pyspark_torch|"
                      r"pandas_numpy_cpu): ([0-9][0-9,]*) rows in ([0-9.]+) s")


def in_job(text):
    """(rows, seconds) from the last summary line of a log, or None."""
    found = None
    for line in text.splitlines():
        m = _SUMMARY.match(line)
        if m:
            found = (int(m.group(2).replace(",", "")), float(m.group(3)))
    return found


def count_rows(path):
    """Rows of a Parquet output folder (or file), from the footers: no data is read."""
    import pyarrow.parquet as pq
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs
        if f.endswith(".parquet") and not f.startswith((".", "_")))
    if not files:
        raise ValueError(f"no Parquet files under {path}")
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def row(date, device, case, impl, rows, seconds, d_in):
    """One CSV row (a list of strings in HEADER's order)."""
    if seconds <= 0:
        raise ValueError(f"{impl}: {seconds} s is not a duration")
    rate = rows / seconds
    return [date, device, case, impl, str(rows), f"{seconds:.2f}", f"{rate:.0f}",
            f"{rows * d_in * 4 / seconds / 1e9:.4g}"]


def append(path, values):
    """Appends a row, writing the header first when the file is new or empty; refuses a file
    whose first line is another header."""
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    if not new:
        with open(path, newline="") as f:
            first = next(csv.reader(f), None)
        if first != HEADER:
            raise ValueError(f"{path} starts with {first}, not the header {','.join(HEADER)}")
    with open(path, "a", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        if new:
            w.writerow(HEADER)
        w.writerow(values)


def read_rows(path):
    """The data rows of a benchmark CSV; ValueError for another header, a second header or a
    row of another width."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != HEADER:
        raise ValueError(f"{path} starts with {rows[0] if rows else 'nothing'}, not the header "
                         f"{','.join(HEADER)}")
    for n, r in enumerate(rows[1:], start=2):
        if r == HEADER:
            raise ValueError(f"{path}: line {n} repeats the header")
        if len(r) != len(HEADER):
            raise ValueError(f"{path}: line {n} has {len(r)} fields, not {len(HEADER)}")
    return rows[1:]


def merge(sources, into):
    """Appends the sources' rows to into (all checked first); returns the number of rows."""
    read_rows(into)
    rows = [r for s in sources for r in read_rows(s)]
    with open(into, "a", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return len(rows)


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--merge":
        m = argparse.ArgumentParser(prog="bench_csv.py --merge")
        m.add_argument("sources", nargs="+")
        m.add_argument("--into", required=True)
        a = m.parse_args(argv[1:])
        try:
            n = merge(a.sources, a.into)
        except (ValueError, OSError) as e:
            print(f"not merged: {e}")
            return 1
        print(f"appended {n} rows to {a.into}")
        return 0
    p = argparse.ArgumentParser()
    p.add_argument("--csv", required=True)
    p.add_argument("--injob-csv")
    p.add_argument("--case", required=True)
    p.add_argument("--impl", required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--d-in", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True, help="wall seconds of the run")
    p.add_argument("--output", required=True, help="the run's Parquet output")
    p.add_argument("--log", help="the run's log, for the job's own seconds")
    p.add_argument("--date", default=datetime.date.today().isoformat())
    a = p.parse_args(argv)
    try:
        rows = count_rows(a.output)
        wall = row(a.date, a.device, a.case, a.impl, rows, a.seconds, a.d_in)
        append(a.csv, wall)
        said = f"bench {a.case} {a.impl}: {rows} rows, wall {a.seconds:.2f} s, {wall[6]} rows/s, {wall[7]} GB/s"
        job = None
        if a.log and os.path.exists(a.log):
            with open(a.log, errors="replace") as f:
                job = in_job(f.read())
        if job:
            jrows, jseconds = job
            said += f"; in-job {jseconds:.2f} s, {jrows / max(jseconds, 1e-9):.0f} rows/s"
            if jrows != rows:
                said += f" (the log says {jrows} rows)"
            if a.injob_csv and jseconds > 0:
                append(a.injob_csv, row(a.date, a.device, a.case, a.impl, rows, jseconds, a.d_in))
        else:
            said += "; no in-job time in its log"
    except (ValueError, OSError) as e:
        print(f"bench {a.case} {a.impl}: not recorded: {e}")
        return 1
    print(said)
    return 0


if __name__ == "__main__":
    sys.exit(main())
