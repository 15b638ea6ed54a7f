"""Executes notebooks headless with nbclient, each from its own folder, outputs discarded (the
committed notebooks carry none). A cell that raises fails the run, naming the notebook and cell.
Prints one line per notebook and a closing 'N passed, N failed' line."""
from __future__ import annotations

import os
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

CELL_TIMEOUT_S = 300


def main(paths: list[str]) -> int:
    if not paths:
        print("run_notebooks: no notebooks given", file=sys.stderr)
        return 2
    passed = failed = 0
    # A non-interactive backend: the notebooks plot, nothing is shown.
    os.environ.setdefault("MPLBACKEND", "Agg")
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.monotonic()
        client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}})
        try:
            client.execute()
        except CellExecutionError as e:
            failed += 1
            print(f"FAILED {path} ({time.monotonic() - start:.0f} s):\n{e}")
            continue
        passed += 1
        print(f"ok {path} ({time.monotonic() - start:.0f} s)")
    print(f"notebooks: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
