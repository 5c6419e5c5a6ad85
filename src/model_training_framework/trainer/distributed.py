"""torch.distributed helpers: detect a torchrun/srun launch, set up the process group, reduce.

Everything distributed goes through one ``DistributedContext``; in a single process its
collectives are identities, so the trainer never branches on "am I distributed".
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "detect_launch"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Launch:
    """Rank layout read from the environment."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def _slurm_master_addr() -> str:
    nodelist = os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_JOB_NODELIST", "")
    first = nodelist.split(",")[0]
    if "[" in first:  # node[01-04] -> node01
        prefix, rest = first.split("[", 1)
        first = prefix + rest.split("-")[0].split(",")[0].rstrip("]")
    return first or socket.gethostname()


def detect_launch(env: Mapping[str, str] | None = None) -> Launch:
    """Rank, world size and local rank from torchrun or srun variables (else a single process).

    Under ``srun`` (``SLURM_STEP_NUM_TASKS`` > 1) the rendezvous variables torchrun would set
    (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) are filled in.
    """
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env and "RANK" in env:
        return Launch(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0")))
    num_tasks = int(env.get("SLURM_STEP_NUM_TASKS", "1") or 1)
    if num_tasks > 1 and "SLURM_PROCID" in env:
        launch = Launch(int(env["SLURM_PROCID"]), num_tasks, int(env.get("SLURM_LOCALID", "0")))
        if env is os.environ:
            os.environ.setdefault("MASTER_ADDR", _slurm_master_addr())
            job_id = int(os.environ.get("SLURM_JOB_ID", "0") or 0)
            os.environ.setdefault("MASTER_PORT", str(20000 + job_id % 20000))
            os.environ.update(
                RANK=str(launch.rank),
                WORLD_SIZE=str(launch.world_size),
                LOCAL_RANK=str(launch.local_rank),
            )
        return launch
    return Launch()


@dataclass
class DistributedContext:
    """The process's place in a distributed run and the collectives the trainer needs."""

    launch: Launch = field(default_factory=Launch)
    owns_process_group: bool = False

    @classmethod
    def from_environment(cls) -> DistributedContext:
        """Detect an existing process group or a torchrun/srun launch."""
        if dist.is_available() and dist.is_initialized():
            return cls(Launch(dist.get_rank(), dist.get_world_size(), _local_rank()))
        return cls(detect_launch())

    @property
    def rank(self) -> int:
        return self.launch.rank

    @property
    def world_size(self) -> int:
        return self.launch.world_size

    @property
    def is_distributed(self) -> bool:
        return self.launch.world_size > 1

    @property
    def is_rank_zero(self) -> bool:
        return self.launch.rank == 0

    def device_for(self, requested: str) -> torch.device:
        """Resolve ``"auto"``/``"cuda"`` to this rank's device."""
        if requested == "auto":
            requested = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(requested)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", self.launch.local_rank)
        return device

    def setup(self, device: torch.device) -> None:
        """Initialise the process group (NCCL on CUDA, Gloo otherwise) unless the user did."""
        if not self.is_distributed or dist.is_initialized():
            return
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
        self.owns_process_group = True
        logger.info("process group up: rank %d of %d (%s)", self.rank, self.world_size, backend)

    def teardown(self) -> None:
        """Destroy the process group if we created it."""
        if self.owns_process_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_process_group = False

    # ------------------------------------------------------------------ collectives
    def reduce_max(self, value: int) -> int:
        """Largest ``value`` over all ranks."""
        if not self.is_distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.int64, device=self._collective_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())

    def reduce_sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over all ranks."""
        if not self.is_distributed or not values:
            return list(values)
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def gather_objects(self, obj: Any) -> list[Any]:
        """``obj`` from every rank, in rank order (a list of one in a single process)."""
        if not self.is_distributed:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.is_distributed:
            return obj
        holder = [obj]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.is_distributed:
            dist.barrier()

    def _collective_device(self) -> torch.device:
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0")))
