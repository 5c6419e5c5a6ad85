"""How this process was launched: rank, world size and local rank from torchrun's or srun's
environment variables (a single process when neither says otherwise).

Under srun the rendezvous variables that torchrun would set are filled in, so the process group
is set up the same way after either launcher.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Launch", "detect_launch"]


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

    torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` win. Under ``srun`` (a job step with
    ``SLURM_STEP_NUM_TASKS`` > 1, or ``SLURM_NTASKS`` > 1 inside a step) ``SLURM_PROCID``,
    ``SLURM_LOCALID`` give the layout and, when ``env`` is ``os.environ``, the rendezvous
    variables torchrun would set (``MASTER_ADDR`` = first node, ``MASTER_PORT`` = 20000 +
    job id mod 20000, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) are filled in. The batch script
    itself (no ``SLURM_STEP_ID``, or step ``batch``) is a single process.

    Args:
        env: the environment to read (default ``os.environ``).

    Returns:
        The rank layout; ``Launch()`` (rank 0 of 1) when nothing says otherwise.
    """
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env and "RANK" in env:
        return Launch(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0")))
    num_tasks = _slurm_step_tasks(env)
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


def _slurm_step_tasks(env: Mapping[str, str]) -> int:
    if env.get("SLURM_STEP_NUM_TASKS"):
        return int(env["SLURM_STEP_NUM_TASKS"])
    step = env.get("SLURM_STEP_ID", "")
    if step and step != "batch" and env.get("SLURM_NTASKS"):
        return int(env["SLURM_NTASKS"])
    return 1
