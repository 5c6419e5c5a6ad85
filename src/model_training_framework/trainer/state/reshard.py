"""Resume a sharded checkpoint at another world size: same global step, batches split anew.

A checkpoint written by N processes and resumed by M != N processes (FSDP2 only: the sharded
format reshards the model and optimizer tensors) keeps the loop counters (global step, epoch),
the early-stopping and hook state and the loader weights. What cannot carry over is the data
position of each rank: with a ``DistributedSampler`` every loader now has another number of
batches per rank. The schedule therefore restarts from the same epoch at the same *fraction* of
the epoch: the new schedule is replayed from epoch 0 (integer arithmetic only, no batch is
loaded) and then advanced by ``position * new_epoch_length // old_epoch_length`` slots. With a
``DistributedSampler`` over a dataset that splits evenly, the samples seen so far are then the
same set; in general they are close, and a warning says so. Each rank's RNG is seeded from
``(seed, global step, rank)``; the data fingerprint and unlogged metrics start afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from model_training_framework.errors import CheckpointError
from model_training_framework.trainer.data.schedule import EPOCH, LENGTHS, POSITION
from model_training_framework.trainer.data.seeds import derive_seed
from model_training_framework.trainer.run import build_schedule
from model_training_framework.trainer.state.rng import seed_everything

__all__ = [
    "check_streams_reshardable",
    "check_world_size",
    "resume_data_position",
    "seed_rank",
]

logger = logging.getLogger(__name__)

_ITERABLE_STATE = "iterable_state"


def check_world_size(saved_world_size: int, world_size: int, *, format_reshards: bool) -> None:
    """Refuse a world-size change the checkpoint format cannot follow; warn about one it can.

    Raises:
        CheckpointError: single-file (DDP) checkpoints.
    """
    if saved_world_size == world_size:
        return
    if not format_reshards:
        raise CheckpointError(
            f"checkpoint was written by {saved_world_size} processes, this run has "
            f"{world_size}; resume with the same world size (or train with "
            "distributed.strategy='fsdp', whose sharded checkpoints load at any world size)"
        )
    logger.warning(
        "resuming a checkpoint written by %d processes with %d: model and optimizer state are "
        "resharded and training continues at the same global step, but batches now split "
        "differently across ranks (the data position is the same fraction of the epoch, so "
        "the samples seen are not bit-identical to a run at either world size)",
        saved_world_size,
        world_size,
    )


def check_streams_reshardable(saved_streams: Sequence[Sequence[Any]], world_size: int) -> None:
    """Refuse a world-size change when a train loader keeps its own per-rank state.

    Args:
        saved_streams: the checkpoint's loader states, per saved rank.
        world_size: this run's.

    Raises:
        CheckpointError: loaders with per-rank state (iterable datasets).
    """
    stateful = [idx for idx, state in enumerate(saved_streams[0]) if _ITERABLE_STATE in state]
    if stateful:
        raise CheckpointError(
            f"checkpoint was written by {len(saved_streams)} processes, this run has "
            f"{world_size}, and train loaders {stateful} keep their own per-rank state "
            "(iterable datasets), which cannot be split anew; resume with the same world size"
        )


def resume_data_position(
    schedule: Any, saved_state: Mapping[str, Any], loader_config: Any, num_loaders: int
) -> None:
    """Position ``schedule`` (built for the new world size) where ``saved_state`` was.

    Args:
        schedule: the run's fresh ``LoaderSchedule``.
        saved_state: the checkpoint's schedule state (written at the old world size).
        loader_config: ``train_loader_config``, to rebuild the old schedule's epoch length.
        num_loaders: number of train loaders.
    """
    old = build_schedule(loader_config, list(saved_state[LENGTHS])[:num_loaders])
    epoch, position = int(saved_state[EPOCH]), int(saved_state[POSITION])
    for done in range(epoch):
        schedule.start_epoch(done)
        while schedule.next_slot() is not None:
            pass
    schedule.start_epoch(epoch)
    old_length = old.epoch_length() or 1
    for _ in range(position * schedule.epoch_length() // old_length):
        if schedule.next_slot() is None:
            break


def seed_rank(base_seed: int, global_step: int, rank: int) -> None:
    """Seed Python, NumPy and torch for ``rank`` after a world-size change."""
    seed_everything(derive_seed(base_seed, "reshard", global_step, rank))
