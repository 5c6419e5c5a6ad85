"""How long does save() block training with async_save, relative to a synchronous save?

Target: the caller is blocked for < 10 % of the synchronous save time.

Run: python bench/async_checkpoint.py [--size-mb 200] [--repeats 3] [--dir DIR]
Prints the median synchronous save time (write + fsync + pointer + rotation), the median time
save() blocks with async_save=True (payload check + snapshot copy to CPU), the median time
until the background write finished, and the ratio blocked / synchronous. The first save of
each mode is a warm-up, reported apart: the async one allocates the snapshot buffers that later
saves reuse (see NOTE [snapshot buffers] in trainer/state/snapshot.py). Timings on a shared,
loaded machine are noisy (use --threads 1 there).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from model_training_framework.trainer.config import CheckpointConfig
from model_training_framework.trainer.state.manager import CheckpointManager

_TENSOR_MB = 4


def make_payload(size_mb: int) -> dict:
    """Model- and optimizer-like payload of about ``size_mb`` MB in 4 MB float32 tensors."""
    numel = _TENSOR_MB * 2**20 // 4
    num_tensors = max(1, size_mb // _TENSOR_MB)
    half = num_tensors // 2
    model = {f"layer{i}.weight": torch.randn(numel) for i in range(num_tensors - half)}
    optimizer = {
        "state": {
            i: {"exp_avg": torch.randn(numel), "step": torch.tensor(1.0)} for i in range(half)
        },
        "param_groups": [{"lr": 1e-3, "params": list(range(half))}],
    }
    return {"model": model, "optimizers": [optimizer], "trainer": {"epoch": 0}}


def time_saves(run_dir: Path, payload: dict, *, async_save: bool, repeats: int) -> tuple:
    config = CheckpointConfig(max_checkpoints=2, async_save=async_save)
    manager = CheckpointManager(config, run_dir, code_version={"commit": None, "dirty": None})
    blocked_s, total_s = [], []
    for step in range(repeats + 1):
        start = time.perf_counter()
        manager.save(payload, epoch=0, step=step)
        returned = time.perf_counter()
        manager.wait()
        done = time.perf_counter()
        blocked_s.append(returned - start)
        total_s.append(done - start)
    warmup = (blocked_s.pop(0), total_s.pop(0))
    return blocked_s, total_s, warmup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temp dir)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads for the run (on an oversubscribed machine, multi-threaded "
        "copies wait for descheduled threads; 1 gives steadier numbers)",
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    payload = make_payload(args.size_mb)
    num_bytes = sum(
        t.numel() * t.element_size()
        for t in [*payload["model"].values()]
        + [s["exp_avg"] for s in payload["optimizers"][0]["state"].values()]
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        _, sync_s, sync_warmup = time_saves(
            root / "sync", payload, async_save=False, repeats=args.repeats
        )
        blocked_s, async_total_s, async_warmup = time_saves(
            root / "async", payload, async_save=True, repeats=args.repeats
        )
    median_sync = statistics.median(sync_s)
    print(
        f"payload: {num_bytes / 2**20:.0f} MiB in {root}, {args.repeats} saves after a warm-up, "
        f"{torch.get_num_threads()} torch thread(s)"
    )
    print(
        f"synchronous save:          median {median_sync * 1e3:7.1f} ms, min {min(sync_s) * 1e3:7.1f} ms"
    )
    print(
        f"async save() blocked for:  median {statistics.median(blocked_s) * 1e3:7.1f} ms, "
        f"min {min(blocked_s) * 1e3:7.1f} ms"
    )
    print(f"async save until written:  median {statistics.median(async_total_s) * 1e3:7.1f} ms")
    print(
        f"warm-up saves:             sync {sync_warmup[1] * 1e3:.1f} ms, "
        f"async blocked {async_warmup[0] * 1e3:.1f} ms (allocates the snapshot buffers)"
    )
    print(
        f"blocked / synchronous:     {statistics.median(blocked_s) / median_sync:.1%} "
        "(ratio of medians; target < 10 %)"
    )


if __name__ == "__main__":
    main()
