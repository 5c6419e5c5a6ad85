"""The DDP worker's data: map-style loaders sharded by ``DistributedSampler`` (or one process
with batch 2B), and the iterable loaders whose shards differ across ranks (``--iterable``,
``--iterable-val``)."""

from __future__ import annotations

import argparse
import os

import torch
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, TensorDataset
from worker_faults import FaultyDataset


def dataset(n: int, seed: int) -> FaultyDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = x.sum(1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=g)
    return FaultyDataset(x, y, torch.arange(n))


class RankShard(IterableDataset):
    """An iterable loader without a length whose shards differ across ranks (resumable)."""

    def __init__(self, data: TensorDataset, rank: int, num_items: int) -> None:
        self.data, self.items, self.pos = data, list(range(rank, num_items, 2)), 0

    def __iter__(self):
        if self.pos >= len(self.items):
            self.pos = 0
        while self.pos < len(self.items):
            self.pos += 1
            yield self.data[self.items[self.pos - 1]]

    def state_dict(self) -> dict:
        return {"pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.pos = state["pos"]


class ValShard(IterableDataset):
    """``--iterable-val``: a validation set without a length, rank 0's shard the longer."""

    def __init__(self, data: TensorDataset, rank: int) -> None:
        self.data, self.items = data, range(0, 20) if rank == 0 else range(20, 32)

    def __iter__(self):
        return (self.data[idx] for idx in self.items)


def loaders(args: argparse.Namespace, rank: int) -> tuple[list[DataLoader], list[DataLoader]]:
    sizes = {
        "a": 40,
        "b": 24 if args.unequal and rank == 1 else 32,
        "val": 24 if args.unequal_val and rank == 1 else 32,
    }
    data = {name: dataset(n, seed) for seed, (name, n) in enumerate(sizes.items())}

    def make(name: str, shuffle: bool) -> DataLoader:
        if args.iterable_val and name == "val":
            return DataLoader(ValShard(data[name], rank), batch_size=args.batch)
        if args.iterable and name == "b":
            return DataLoader(RankShard(data[name], rank, 28 - 4 * rank), batch_size=args.batch)
        workers = {"num_workers": args.workers, "persistent_workers": args.persistent}
        if args.single:
            return DataLoader(data[name], batch_size=2 * args.batch, shuffle=shuffle, **workers)
        if args.no_sampler:
            return DataLoader(data[name], batch_size=args.batch, shuffle=shuffle, **workers)
        # explicit replicas and rank: no process group exists yet (the trainer makes it)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        sampler = DistributedSampler(
            data[name], num_replicas=world, rank=rank, shuffle=shuffle, seed=11
        )
        return DataLoader(data[name], batch_size=args.batch, sampler=sampler, **workers)

    return [make("a", args.shuffle), make("b", args.shuffle)], [make("val", False)]
