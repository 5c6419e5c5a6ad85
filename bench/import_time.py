"""Import cost of the package beyond ``import torch`` (target: < 1.5 s).

Run: ``.venv/bin/python bench/import_time.py [--repeats R] [--check]``

Each repeat starts a fresh interpreter that times ``import torch`` and then
``import model_training_framework; model_training_framework.GenericTrainer`` (the first use of
the trainer loads the trainer package). Medians over the repeats are printed with the target;
``--check`` makes the exit status 1 when the median is over it. The unit tests only print one
measurement (no timing assertions in tests).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

TARGET_S = 1.5
SRC_DIR = Path(__file__).resolve().parents[1] / "src"

_PROBE = """
import json, time
start = time.perf_counter()
import torch
torch_done = time.perf_counter()
import model_training_framework
model_training_framework.GenericTrainer
done = time.perf_counter()
print(json.dumps({"torch_s": torch_done - start, "package_s": done - torch_done}))
"""


def measure_once() -> dict[str, float]:
    """Time both imports in a fresh interpreter; return seconds for each."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC_DIR), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh interpreters (default 5)")
    parser.add_argument("--check", action="store_true", help="exit 1 when over the target")
    args = parser.parse_args()
    runs = [measure_once() for _ in range(args.repeats)]
    torch_s = statistics.median(run["torch_s"] for run in runs)
    package_s = statistics.median(run["package_s"] for run in runs)
    print(f"import torch:                                   median {torch_s:6.3f} s")
    print(f"then model_training_framework + GenericTrainer: median {package_s:6.3f} s")
    print(
        f"package beyond torch: {package_s:.3f} s (target < {TARGET_S} s): "
        f"{'OK' if package_s < TARGET_S else 'OVER TARGET'}; ratio to torch {package_s / torch_s:.2f}"
    )
    return 1 if args.check and package_s >= TARGET_S else 0


if __name__ == "__main__":
    sys.exit(main())
