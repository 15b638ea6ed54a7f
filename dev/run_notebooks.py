"""Executes notebooks headless with nbclient, each from its own folder. A cell that raises fails
the run, naming the notebook and cell. Prints one line per notebook and a closing
'N passed, N failed' line.

  run_notebooks.py [--executed DIR] [--no-capture-fd] NOTEBOOK...

By default the outputs are discarded (the committed notebooks carry none). --executed DIR writes
each executed notebook, outputs included, to DIR (also one that failed, up to its failing cell).
--no-capture-fd leaves the kernel's file-descriptor output (the Spark JVM's log, which ipykernel
would otherwise put into the cells) on this process's stderr (dev/gpu-notebook's log)."""
from __future__ import annotations

import argparse
import os
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

CELL_TIMEOUT_S = 300


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--executed", metavar="DIR", help="write each executed notebook here")
    p.add_argument("--no-capture-fd", action="store_true",
                   help="the kernel's fd-level output to this process's stderr, not the cells")
    p.add_argument("paths", nargs="*")
    args = p.parse_args(argv)
    if not args.paths:
        print("run_notebooks: no notebooks given", file=sys.stderr)
        return 2
    passed = failed = 0
    # A non-interactive backend: the notebooks plot, nothing is shown.
    os.environ.setdefault("MPLBACKEND", "Agg")
    extra = ["--IPKernelApp.capture_fd_output=False"] if args.no_capture_fd else []
    for path in args.paths:
        nb = nbformat.read(path, as_version=4)
        start = time.monotonic()
        client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                extra_arguments=extra,
                                resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}})
        ok = True
        try:
            client.execute()
        except CellExecutionError as e:
            ok = False
            failed += 1
            print(f"FAILED {path} ({time.monotonic() - start:.0f} s):\n{e}")
        finally:
            if args.executed:
                os.makedirs(args.executed, exist_ok=True)
                nbformat.write(nb, os.path.join(args.executed, os.path.basename(path)))
        if ok:
            passed += 1
            print(f"ok {path} ({time.monotonic() - start:.0f} s)")
    print(f"notebooks: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
