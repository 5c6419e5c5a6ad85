"""The checkpoint payload: every component's ``state_dict()`` in one dict, and back.

NOTE [exact resume]: what a resumed run needs to continue bit-identically is exactly what is
written here: model, optimizers, schedulers, scaler, the loader schedule's cursor, each rank's
loader positions, pending metrics, data fingerprint and RNG states, early-stopping state, hook
state and the loop counters. Checkpoints are taken only at optimizer-step boundaries, so no
partial gradients are in flight. Per-rank parts are gathered to rank 0, which writes them; the
model and optimizer states come from the sharding strategy (full tensors under DDP, each rank's
shards under FSDP2) and are stored by the checkpoint format it chose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model_training_framework.errors import CheckpointError
from model_training_framework.trainer.state.reshard import (
    check_reshardable,
    resume_data_position,
    seed_rank,
)
from model_training_framework.trainer.state.resume_check import (
    OPTIMIZER_HPARAMS_KEY,
    OPTIMIZER_LAYOUT_KEY,
)
from model_training_framework.trainer.state.rng import capture_rng_state, restore_rng_state

__all__ = ["TrainerParts", "build_payload", "restore_payload"]


@dataclass
class TrainerParts:
    """The components whose state a checkpoint holds."""

    dist: Any
    module: torch.nn.Module
    stepper: Any
    precision: Any
    hooks: Any
    sharding: Any


def build_payload(parts: TrainerParts, run: Any, config: dict[str, Any]) -> dict[str, Any]:
    """Collect the checkpoint payload (a collective under DDP: call it on every rank).

    ``config`` is the trainer config as the fit started; with the optimizers' hyperparameters
    as they were built (``run.optimizer_hparams``) it lets a resume tell what changed.
    """
    rank_state = {
        "rng": capture_rng_state(),
        "fingerprint": run.fingerprint.state_dict(),
        "streams": [stream.state_dict() for stream in run.streams],
        "metrics": run.metrics.state_dict(),
    }
    per_rank = parts.dist.gather_objects(rank_state)
    return {
        **parts.sharding.state_dicts(parts.module, parts.stepper.optimizers),
        "schedulers": parts.stepper.scheduler_state_dicts(),
        "scaler": parts.precision.state_dict(),
        "trainer": {
            **run.state.state_dict(),  # the loop counters (TrainState's fields)
            "base_seed": run.base_seed,
            "schedule": run.schedule.state_dict(),
            # rank 0's copies are also kept flat, for `mtf inspect`
            "streams": per_rank[0]["streams"],
            "streams_per_rank": [state["streams"] for state in per_rank],
            "loader_names": list(run.names),
            "metrics": per_rank[0]["metrics"],
            "metrics_per_rank": [state["metrics"] for state in per_rank],
            "fingerprint": [state["fingerprint"] for state in per_rank],
            "early_stopping": run.early_stopping.state_dict(),
            "world_size": parts.dist.world_size,
        },
        "rng": [state["rng"] for state in per_rank],
        "hooks": parts.hooks.state_dict(),
        "config": config,
        OPTIMIZER_HPARAMS_KEY: run.optimizer_hparams,
        OPTIMIZER_LAYOUT_KEY: [
            [len(group["params"]) for group in optimizer.param_groups]
            for optimizer in parts.stepper.optimizers
        ],
    }


def _check_loaders(state: Mapping[str, Any], run: Any) -> None:
    if state["loader_names"] != run.names:
        raise CheckpointError(
            f"checkpoint was trained on loaders {state['loader_names']}, this run has "
            f"{run.names}; resume with the same train loaders"
        )


def restore_payload(
    parts: TrainerParts, run: Any, payload: Mapping[str, Any], path: Path
) -> Callable[[], None]:
    """Load every component's state from ``payload`` (read from the checkpoint at ``path``),
    the loop counters into ``run.state``.

    Returns:
        A function that restores this rank's RNG state, which the
        caller calls last (after the ``on_checkpoint_load`` hooks, so nothing they draw shifts
        the random streams).

    Raises:
        CheckpointError: a missing key, another loader set, another world size for a format
            that cannot reshard, or a model whose shapes or keys differ from the checkpoint's.
    """
    dist, rank = parts.dist, parts.dist.rank
    fmt = run.checkpoints.checkpoint_format
    try:
        state = payload["trainer"]
        _check_loaders(state, run)
        same_world = state["world_size"] == dist.world_size
        if not same_world:
            check_reshardable(
                state["world_size"],
                dist.world_size,
                format_reshards=fmt.reshards,
                streams_state=state["streams"],
            )
        tensors = fmt.load_tensors(
            path,
            payload,
            lambda: parts.sharding.state_dicts(parts.module, parts.stepper.optimizers),
        )
        parts.sharding.load_state_dicts(parts.module, parts.stepper.optimizers, tensors)
        parts.stepper.load_scheduler_state_dicts(payload["schedulers"])
        parts.precision.load_state_dict(payload["scaler"])
        run.base_seed = state["base_seed"]
        for stream in run.streams:
            stream.rebase_seed(run.base_seed)
        if same_world:
            _restore_rank_position(run, state, rank)
        else:
            resume_data_position(run.schedule, state["schedule"], run.loader_config, len(run.names))
        run.early_stopping.load_state_dict(state["early_stopping"])
        run.checkpoints.load_state_dict(payload["checkpoint_manager"])
        parts.hooks.load_state_dict(payload["hooks"])
        run.state.load_state_dict(state)
        if same_world:
            rng = payload["rng"][rank]
            return lambda: restore_rng_state(rng)
        global_step = run.state.global_step
        return lambda: seed_rank(run.base_seed, global_step, rank)
    except KeyError as err:
        raise CheckpointError(f"checkpoint lacks {err}: written by another format?") from err


def _restore_rank_position(run: Any, state: Mapping[str, Any], rank: int) -> None:
    """This rank's loader positions, pending metrics and fingerprint (same world size)."""
    run.schedule.load_state_dict(state["schedule"])
    for stream, stream_state in zip(run.streams, state["streams_per_rank"][rank], strict=True):
        stream.load_state_dict(stream_state)
    run.metrics.load_state_dict(state["metrics_per_rank"][rank])
    run.fingerprint.load_state_dict(state["fingerprint"][rank])
