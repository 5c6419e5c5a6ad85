"""Run short 2-process FSDP jobs (tests/ddp/ddp_worker.py under torchrun) and count the ones
that abort as they exit: the measurement behind NOTE [process group at exit].

    .venv/bin/python scripts/fsdp_exit_stress.py --runs 60    # about 6 s per run here

Before the atexit pause, about 1 run in 30 ended with "terminate called without an active
exception" (SIGABRT on rank 0) after both ranks had finished.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.ddp.launch import launch  # noqa: E402

ARGS = ["--fsdp", "--fsdp-wrap", "--epochs", "1", "--save-every", "2"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    runs = parser.parse_args().runs
    aborts = failures = 0
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fsdp-exit-") as out:
        for idx in range(runs):
            run = launch(Path(out), f"run{idx}", *ARGS)
            code = run.wait(timeout=300)
            aborted = "terminate called" in run.output()
            failures += code != 0
            aborts += aborted
            if code != 0:
                print(f"run {idx}: exit code {code}{' (abort at exit)' if aborted else ''}")
            print(f"\r{idx + 1}/{runs} runs", end="", file=sys.stderr, flush=True)
    print(
        f"\n{runs} runs: {failures} failed, {aborts} aborted at exit, "
        f"{time.monotonic() - start:.0f} s"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
