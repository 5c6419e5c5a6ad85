"""torch.distributed helpers: set up the process group after a torchrun/srun launch (detected by
:mod:`.launch_env`, whose names are re-exported here), and reduce across ranks (the
loader checks across ranks are in :mod:`.loader_checks`).

Everything distributed goes through one ``DistributedContext``; in a single process its
collectives are identities, so the trainer never branches on "am I distributed".

NOTE [collectives on every rank]: every method that runs a collective must be called by every
rank, in the same order, with the same layout of values. A step only rank 0 should do (choosing
the checkpoint to resume from) goes through :meth:`DistributedContext.rank_zero_call`, which
hands rank 0's answer, or its error, to every rank, so no rank is left waiting in a broadcast
that rank 0 never reached. A step every rank runs but that may fail on one of them (loading a
checkpoint, writing one on rank 0) goes through :meth:`DistributedContext.all_ranks_call`, which
ends with one collective that carries every rank's outcome, so all ranks raise together.
"""

from __future__ import annotations

import atexit
import datetime
import logging
import os
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from model_training_framework.trainer.metrics.means import (
    MetricSlot,
    expand_to,
    loaders_per_rank,
    union_of_keys,
)
from model_training_framework.trainer.runtime.device_check import checked_device
from model_training_framework.trainer.runtime.launch_env import Launch, detect_launch

__all__ = [
    "AgreedError",
    "DistributedContext",
    "Launch",
    "RankFailedError",
    "RankZeroError",
    "RanksDisagreeError",
    "detect_launch",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_PROCESS_GROUP_TIMEOUT = datetime.timedelta(minutes=30)
# NOTE [process group at exit]: a group the trainer created is destroyed when fit ends (DDP) or,
# if still up (FSDP keeps it after fit; a trainer may never fit), by an atexit handler while the
# interpreter is whole. Either way the destroy is followed by a short pause without the GIL: a
# Gloo worker thread drops its reference to a finished collective just after the waiting thread
# wakes, and when that reference is the last one to a tensor Python also saw, freeing it takes
# the GIL. If the interpreter is finalizing by then, the thread is ended inside C++ and the
# process aborts ("terminate called without an active exception", SIGABRT): about 1 in 30
# two-process FSDP runs here whose last act was a collective. The pause lets them finish first.
_PAUSE_AFTER_DESTROY_S = 0.05


class AgreedError(Exception):
    """An error that every rank raises together, decided through one collective (so there is
    nothing to announce to the other ranks)."""


class RankFailedError(AgreedError, RuntimeError):
    """Raised on the other ranks when a step failed on one rank; the message names that rank."""


class RanksDisagreeError(AgreedError, ValueError):
    """Raised on every rank when the ranks were given different inputs (loader lengths, fit
    arguments, the loaders whose metrics they accumulated)."""


class RankZeroError(RankFailedError):
    """Raised on the other ranks when a step that only rank 0 runs failed there."""


@dataclass
class DistributedContext:
    """The process's place in a distributed run and the collectives the trainer needs."""

    launch: Launch = field(default_factory=Launch)
    owns_process_group: bool = False
    _host_group: Any = field(default=None, repr=False)  # see NOTE [host collectives]
    # Set by the trainer during fit: announces an error to the other ranks (failures.py).
    failure_reporter: Callable[[BaseException], object] | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls) -> DistributedContext:
        """Detect an existing process group or a torchrun/srun launch."""
        if dist.is_available() and dist.is_initialized():
            return cls(Launch(dist.get_rank(), dist.get_world_size(), _local_rank()))
        return cls(detect_launch())

    @property
    def rank(self) -> int:
        """This process's global rank (0 in a single process)."""
        return self.launch.rank

    @property
    def world_size(self) -> int:
        """Number of processes (1 in a single process)."""
        return self.launch.world_size

    @property
    def is_distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.launch.world_size > 1

    @property
    def is_rank_zero(self) -> bool:
        """Whether this process writes checkpoints and logs."""
        return self.launch.rank == 0

    def device_for(self, requested: str) -> torch.device:
        """Resolve ``"auto"``/``"cuda"`` to this rank's device (``cuda:<local_rank>``).

        Raises:
            ConfigError: this machine has no such device (see :func:`checked_device`).
        """
        if requested == "auto":
            requested = "cuda" if torch.cuda.is_available() else "cpu"
        rank_device = f"cuda:{self.launch.local_rank}" if requested == "cuda" else None
        return checked_device(requested, rank_device)

    def setup(self, device: torch.device, *, single_process: bool = False) -> None:
        """Initialise the process group (NCCL on CUDA, Gloo otherwise) unless the user did.

        Args:
            device: this process's device.
            single_process: also create a group of one process when there is no launch (FSDP2
                shards over a device mesh even with one rank); it needs no rendezvous.

        Raises:
            RuntimeError: the rendezvous failed (``MASTER_ADDR``/``MASTER_PORT`` unreachable).
        """
        if dist.is_initialized():
            return
        if not self.is_distributed:
            if single_process:
                backend = "nccl" if device.type == "cuda" else "gloo"
                dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
                self._take_ownership()
            return
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=_PROCESS_GROUP_TIMEOUT)
        self._take_ownership()
        logger.info("process group up: rank %d of %d (%s)", self.rank, self.world_size, backend)

    def teardown(self) -> None:
        """Destroy the process group if :meth:`setup` created it (a user's group is kept)."""
        if self.owns_process_group:  # see NOTE [process group at exit]
            atexit.unregister(self.teardown)
            if dist.is_initialized():
                dist.destroy_process_group()  # also destroys the host group
                time.sleep(_PAUSE_AFTER_DESTROY_S)
        self.owns_process_group = False
        self._host_group = None

    def _take_ownership(self) -> None:
        self.owns_process_group = True
        atexit.register(self.teardown)

    # ------------------------------------------------------------------ collectives
    def reduce_max(self, value: int) -> int:
        """Largest ``value`` over all ranks."""
        if not self.is_distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.int64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=self._host())
        return int(tensor.item())

    def reduce_sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over all ranks (metric sums are summed by slot, with
        :meth:`reduce_sum_by_slot`).

        Raises:
            RanksDisagreeError: on every rank, when the ranks passed lists of different lengths;
                nothing is summed then.
        """
        if not self.is_distributed:
            return list(values)
        self._check_same_length(len(values))
        if not values:
            return []
        tensor = torch.tensor(list(values), dtype=torch.float64)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self._host())
        return tensor.tolist()

    def reduce_sum_by_slot(self, values: Mapping[MetricSlot, float]) -> dict[MetricSlot, float]:
        """Sum of each slot's value over all ranks, on every rank (see NOTE [metric slots]).

        Ranks that hold the same slots are summed in one all-reduce (after the one that checks
        it). Ranks that hold the same loaders but different metrics (a metric returned only for
        some batches) are summed over the union of their slots, a rank adding 0.0 for a slot it
        lacks: every rank gets every metric, averaged over the batches that returned it.

        Raises:
            RanksDisagreeError: on every rank, when the ranks' slots name different loaders
                (their schedules differ); nothing is summed then.
        """
        if not self.is_distributed:
            return dict(values)
        slots = sorted(values, key=repr)
        shortest, longest, keys_agree = self._layouts_agree(len(slots), slots)
        if not keys_agree or shortest != longest:  # every rank sees it: gather the slots
            every_rank = self.gather_objects(slots)
            loaders = loaders_per_rank(every_rank)
            if any(names != loaders[0] for names in loaders):
                listed = "; ".join(f"rank {rank}: {names}" for rank, names in enumerate(loaders))
                raise RanksDisagreeError(
                    f"the ranks accumulated metrics of different loaders ({listed}); every rank "
                    "must run the same loaders (call update_loader_weights on every rank with "
                    "the same weights)"
                )
            slots = union_of_keys(every_rank)
        if not slots:
            return {}
        tensor = torch.tensor(expand_to(values, slots), dtype=torch.float64)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self._host())
        summed = dict(zip(slots, tensor.tolist(), strict=True))
        return {**{slot: summed[slot] for slot in values}, **summed}  # this rank's order first

    def all_reduce_mean_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Average ``tensors`` in place over all ranks (one flat all-reduce per dtype).

        Every rank must pass tensors of the same shapes and dtypes in the same order.
        """
        if not self.is_distributed or not tensors:
            return
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for tensor in tensors:
            by_dtype.setdefault(tensor.dtype, []).append(tensor)
        for group in by_dtype.values():
            flat = torch.cat([t.reshape(-1) for t in group])
            dist.all_reduce(flat)
            flat.div_(self.world_size)
            offset = 0
            for tensor in group:
                tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
                offset += tensor.numel()

    def gather_objects(self, obj: Any) -> list[Any]:
        """``obj`` from every rank, in rank order (a list of one in a single process)."""
        if not self.is_distributed:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj, group=self._host())
        return gathered

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.is_distributed:
            return obj
        holder = [obj]
        dist.broadcast_object_list(holder, src=0, group=self._host())
        return holder[0]

    def rank_zero_call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only and return its result on every rank.

        If ``fn`` raises, rank 0 re-raises the error and the other ranks raise
        :class:`RankZeroError` with its message, so no rank waits for an answer that never
        comes. The result must be picklable (keep it small: it is broadcast).

        Raises:
            Exception: whatever ``fn`` raised (rank 0) or :class:`RankZeroError` (others).
        """
        if not self.is_distributed:
            return fn()
        outcome: tuple[str, Any] = ("ok", None)
        error: Exception | None = None
        if self.is_rank_zero:
            try:
                outcome = ("ok", fn())
            except Exception as err:  # re-raised below, after the other ranks are told
                error = err
                outcome = ("error", f"{type(err).__name__}: {err}")
        kind, value = self.broadcast_object(outcome)
        if error is not None:
            raise error
        if kind == "error":
            raise RankZeroError(f"rank 0 failed, so rank {self.rank} stops too: {value}")
        return value

    def all_ranks_call(self, fn: Callable[[], T]) -> list[T]:
        """Run ``fn`` on every rank and return every rank's result, in rank order.

        ``fn`` should not run a collective: if it failed on one rank before that collective,
        the others would wait in it. When it must (a sharded checkpoint write), the error is
        first announced through :attr:`failure_reporter`, which ends peers stuck there.

        One ``all_gather_object`` carries each rank's result or error, so when ``fn`` raises on
        any rank, every rank raises: the failing rank its own error, the others
        :class:`RankFailedError` naming the first failing rank and its message. Results must be
        picklable and small.

        Raises:
            Exception: what ``fn`` raised here, or :class:`RankFailedError`.
        """
        if not self.is_distributed:
            return [fn()]
        error: Exception | None = None
        outcome: tuple[str, Any]
        try:
            outcome = ("ok", fn())
        except Exception as err:  # re-raised below, after every rank learnt the outcome
            error = err
            outcome = ("error", f"{type(err).__name__}: {err}")
            if self.failure_reporter is not None:
                self.failure_reporter(err)
        outcomes = self.gather_objects(outcome)
        if error is not None:
            raise error
        for rank, (kind, value) in enumerate(outcomes):
            if kind == "error":
                raise RankFailedError(f"rank {rank} failed, so rank {self.rank} stops too: {value}")
        return [value for _, value in outcomes]

    def store(self) -> dist.Store:
        """The default process group's key-value store (for out-of-band messages)."""
        return dist.distributed_c10d._get_default_store()

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.is_distributed:
            dist.barrier(group=self._host())

    def _layouts_agree(self, length: int, keys: Sequence[object]) -> tuple[int, int, bool]:
        # one all-reduce (MAX) of [n, -n, h, -h]: the shortest and longest length, and whether
        # the keys' checksums agree (each maximum equals the minimum; zlib.crc32, unlike hash(),
        # is the same on every rank); every rank gets the same answer
        digest = zlib.crc32(repr(tuple(keys)).encode()) if keys else 0
        tensor = torch.tensor([length, -length, digest, -digest], dtype=torch.int64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=self._host())
        return -int(tensor[1]), int(tensor[0]), int(tensor[2]) == -int(tensor[3])

    def _check_same_length(self, length: int) -> None:
        shortest, longest, _ = self._layouts_agree(length, ())
        if longest != shortest:
            raise RanksDisagreeError(
                f"metric reduction across ranks got lists of {shortest} to {longest} values "
                f"(rank {self.rank} has {length}); every rank must run the same loaders (call "
                "update_loader_weights on every rank with the same weights) and its step "
                "functions must return the same metric keys on every rank"
            )

    # NOTE [host collectives]: decisions and metrics (stop flags, metric sums, objects) are
    # host values. Under NCCL a collective on them would need a GPU tensor, a copy and a host
    # sync, so they go over a Gloo group of the same ranks, on CPU tensors: no GPU sync. The
    # group is made at the first such collective, which every rank reaches in the same order.
    def _host(self) -> Any:
        """The process group for host-valued collectives (the default group when it is Gloo)."""
        if self._host_group is None:
            is_gloo = dist.get_backend() == dist.Backend.GLOO
            self._host_group = dist.group.WORLD if is_gloo else dist.new_group(backend="gloo")
        return self._host_group


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0")))
