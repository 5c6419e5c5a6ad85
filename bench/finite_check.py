"""What does the finite check cost a checkpoint save? (NOTE [finite checkpoints])

Every save checks the floating-point tensors it writes with one fused max-abs reduction per
device. This prints, side by side in one run, the median time of that check and of a
synchronous save of the same payload (write + fsync + pointer + rotation, check included), and
their ratio.

Run: python bench/finite_check.py [--size-mb 200] [--repeats 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from model_training_framework.trainer.config import CheckpointConfig
from model_training_framework.trainer.state.checks import check_finite
from model_training_framework.trainer.state.manager import CheckpointManager

_TENSOR_MB = 4


def make_payload(size_mb: int) -> dict:
    numel = _TENSOR_MB * 2**20 // 4
    return {
        "model": {f"w{idx}": torch.randn(numel) for idx in range(max(size_mb // _TENSOR_MB, 1))}
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temp dir)"
    )
    args = parser.parse_args()
    payload = make_payload(args.size_mb)
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        manager = CheckpointManager(
            CheckpointConfig(max_checkpoints=1), Path(folder) / "run", code_version={}
        )
        checks, saves = [], []
        for step in range(args.repeats):
            started = time.perf_counter()
            check_finite(payload, Path("bench.ckpt"))
            checks.append(time.perf_counter() - started)
            started = time.perf_counter()
            manager.save(payload, epoch=0, step=step)
            saves.append(time.perf_counter() - started)
    check_s, save_s = statistics.median(checks), statistics.median(saves)
    print(f"payload {args.size_mb} MB, {args.repeats} repeats (medians)")
    print(f"finite check        {check_s * 1000:8.1f} ms")
    print(f"synchronous save    {save_s * 1000:8.1f} ms (check included)")
    print(f"check / save        {check_s / save_s:8.3f}")


if __name__ == "__main__":
    main()
