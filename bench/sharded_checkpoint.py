"""Sharded checkpoints (FSDP2 + DCP) vs a rank-0 torch.save of the same model, 2 processes.

Run: python bench/sharded_checkpoint.py [--size-mb 200] [--repeats 3] [--nproc 2]

Starts ``--nproc`` Gloo processes on the CPU (torch.multiprocessing), builds a stack of Linear
layers of about ``--size-mb`` MB with an Adam state (twice that again), and times, in the same
run, alternating:

* ``sharded save``: the framework's DcpDirectoryFormat: every rank writes its shard in
  parallel, rank 0 adds ``trainer_state.pt`` and renames the directory (what
  ``distributed.strategy: fsdp`` does at every checkpoint);
* ``rank-0 save``: the full model and optimizer state gathered to rank 0 and written with
  ``torch.save`` (what a replicated-style checkpoint of the sharded model costs);
* the matching loads: DCP resharding load into the sharded model vs ``torch.load`` on every
  rank plus setting the full state into the sharded model.

Prints the median times and the ratios sharded / rank-0 (below 1 means sharded is faster).
Timings on a shared, loaded machine are noisy; the ratio is what to compare.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

_WIDTH = 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _model(size_mb: int) -> torch.nn.Module:
    num_layers = max(1, size_mb * 2**20 // (4 * _WIDTH * _WIDTH))
    torch.manual_seed(0)
    return torch.nn.Sequential(*[torch.nn.Linear(_WIDTH, _WIDTH) for _ in range(num_layers)])


def _timed(fn, path: Path) -> float:
    dist.barrier()
    start = time.perf_counter()
    fn(path)
    dist.barrier()
    return time.perf_counter() - start


class _Bench:
    """The four operations timed, on one rank."""

    def __init__(self, rank, model, optimizer, strategy, fmt) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        self.rank, self.model, self.optimizer = rank, model, optimizer
        self.strategy, self.fmt = strategy, fmt
        self.full = StateDictOptions(full_state_dict=True, cpu_offload=True)

    def sharded_save(self, path: Path) -> None:
        content = {**self._tensor_states(), "trainer": {}}
        self.fmt.prepare_write(content, path, is_rank_zero=self.rank == 0, asynchronous=False)()

    def rank0_save(self, path: Path) -> None:
        from torch.distributed.checkpoint.state_dict import (
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        state = {
            "model": get_model_state_dict(self.model, options=self.full),
            "optimizer": get_optimizer_state_dict(self.model, self.optimizer, options=self.full),
        }
        if self.rank == 0:
            torch.save(state, path)
            with path.open("rb") as handle:
                os.fsync(handle.fileno())

    def sharded_load(self, path: Path) -> None:
        states = self.fmt.load_tensors(path, {}, self._tensor_states)
        self.strategy.load_model_state_dict(self.model, states["model"])
        self.strategy.load_optimizer_state_dicts(self.model, [self.optimizer], states["optimizers"])

    def _tensor_states(self) -> dict:
        return {
            "model": self.strategy.model_state_dict(self.model),
            "optimizers": self.strategy.optimizer_state_dicts(self.model, [self.optimizer]),
        }

    def rank0_load(self, path: Path) -> None:
        from torch.distributed.checkpoint.state_dict import (
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        state = torch.load(path, weights_only=True)
        set_model_state_dict(self.model, state["model"], options=self.full)
        set_optimizer_state_dict(self.model, self.optimizer, state["optimizer"], options=self.full)


def _worker(rank: int, world_size: int, port: int, args: argparse.Namespace, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    from model_training_framework.trainer.runtime.distributed import DistributedContext
    from model_training_framework.trainer.runtime.sharding import FullyShardedStrategy
    from model_training_framework.trainer.state.dcp import DcpDirectoryFormat

    model = _model(args.size_mb)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    strategy = FullyShardedStrategy(
        [], True, DistributedContext.from_environment(), torch.device("cpu")
    )
    strategy.prepare(model, [optimizer])
    model(torch.randn(4, _WIDTH)).sum().backward()
    optimizer.step()
    bench = _Bench(rank, model, optimizer, strategy, DcpDirectoryFormat())
    folder = Path(out)
    names = ("sharded_save", "rank0_save", "sharded_load", "rank0_load")
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeats + 1):
        sharded, plain = folder / f"sharded_{repeat}.ckpt", folder / f"plain_{repeat}.pt"
        measured = {
            "sharded_save": _timed(bench.sharded_save, sharded),
            "rank0_save": _timed(bench.rank0_save, plain),
            "sharded_load": _timed(bench.sharded_load, sharded),
            "rank0_load": _timed(bench.rank0_load, plain),
        }
        if repeat:  # the first round is a warm-up (page cache, allocations)
            for key, value in measured.items():
                times[key].append(value)
    if rank == 0:
        size = sum(p.stat().st_size for p in (folder / "sharded_1.ckpt").iterdir())
        print(f"{world_size} processes, checkpoint {size / 2**20:.0f} MiB, {args.repeats} repeats")
        medians = {key: statistics.median(values) for key, values in times.items()}
        for key, value in medians.items():
            print(f"  {key:<13} {value:8.3f} s")
        print(f"save ratio sharded / rank-0: {medians['sharded_save'] / medians['rank0_save']:.2f}")
        print(f"load ratio sharded / rank-0: {medians['sharded_load'] / medians['rank0_load']:.2f}")
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200, help="model size (optimizer: 2x)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nproc", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_worker, args=(args.nproc, _free_port(), args, out), nprocs=args.nproc)


if __name__ == "__main__":
    main()
