"""The checkpoint payload: every component's ``state_dict()`` in one dict, and back.

NOTE [exact resume]: what a resumed run needs to continue bit-identically is exactly what is
written here: model, optimizers, schedulers, scaler, the loader schedule's cursor, each rank's
loader positions, pending metrics, data fingerprint and RNG states, early-stopping state, hook
state and the loop counters. Checkpoints are taken only at optimizer-step boundaries, so no
partial gradients are in flight. Per-rank parts are gathered to rank 0, which writes the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import CheckpointError
from .resume_check import OPTIMIZER_HPARAMS_KEY
from .rng import capture_rng_state

__all__ = ["LoopCounters", "TrainerParts", "build_payload", "restore_payload"]


@dataclass
class LoopCounters:
    """The loop's own progress."""

    global_step: int = 0
    epoch: int = 0
    skipped_nonfinite: int = 0
    last_metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainerParts:
    """The components whose state a checkpoint holds."""

    dist: Any
    module: torch.nn.Module
    stepper: Any
    precision: Any
    hooks: Any


def build_payload(
    parts: TrainerParts, run: Any, counters: LoopCounters, config: dict[str, Any]
) -> dict[str, Any]:
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
    stepper_state = parts.stepper.state_dict()
    return {
        "model": parts.module.state_dict(),
        "optimizers": stepper_state["optimizers"],
        "schedulers": stepper_state["schedulers"],
        "scaler": parts.precision.state_dict(),
        "trainer": {
            "epoch": counters.epoch,
            "global_step": counters.global_step,
            "epoch_fresh": run.epoch_fresh,
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
            "skipped_nonfinite": counters.skipped_nonfinite,
            "world_size": parts.dist.world_size,
            "last_metrics": dict(counters.last_metrics),
            "stopped_early_under": run.stopped_early_under,
        },
        "rng": [state["rng"] for state in per_rank],
        "hooks": parts.hooks.state_dict(),
        "config": config,
        OPTIMIZER_HPARAMS_KEY: run.optimizer_hparams,
    }


def _check_compatible(state: Mapping[str, Any], run: Any, world_size: int) -> None:
    if state["world_size"] != world_size:
        raise CheckpointError(
            f"checkpoint was written by {state['world_size']} processes, this run has "
            f"{world_size}; resume with the same world size"
        )
    if state["loader_names"] != run.names:
        raise CheckpointError(
            f"checkpoint was trained on loaders {state['loader_names']}, this run has "
            f"{run.names}; resume with the same train loaders"
        )


def restore_payload(
    parts: TrainerParts, run: Any, payload: Mapping[str, Any]
) -> tuple[LoopCounters, dict[str, Any]]:
    """Load every component's state from ``payload``.

    Returns:
        The loop counters and this rank's RNG state, which the caller restores last (after the
        ``on_checkpoint_load`` hooks, so nothing they draw shifts the random streams).

    Raises:
        CheckpointError: a missing key, another world size or loader set, or a model whose
            shapes or keys differ from the checkpoint's.
    """
    rank = parts.dist.rank
    try:
        state = payload["trainer"]
        _check_compatible(state, run, parts.dist.world_size)
        try:
            parts.module.load_state_dict(payload["model"])
        except RuntimeError as err:
            raise CheckpointError(
                f"checkpoint does not fit this model (different shape or keys): {err}"
            ) from err
        parts.stepper.load_state_dict(payload)
        parts.precision.load_state_dict(payload["scaler"])
        run.schedule.load_state_dict(state["schedule"])
        run.base_seed = state["base_seed"]
        for stream, stream_state in zip(run.streams, state["streams_per_rank"][rank], strict=True):
            stream.rebase_seed(run.base_seed)
            stream.load_state_dict(stream_state)
        run.metrics.load_state_dict(state["metrics_per_rank"][rank])
        run.fingerprint.load_state_dict(state["fingerprint"][rank])
        run.early_stopping.load_state_dict(state["early_stopping"])
        run.checkpoints.load_state_dict(payload["checkpoint_manager"])
        parts.hooks.load_state_dict(payload["hooks"])
        run.epoch_fresh = state["epoch_fresh"]
        # Absent from files written before early stops were recorded: those did not stop early.
        run.stopped_early_under = state.get("stopped_early_under")
        counters = LoopCounters(
            state["global_step"],
            state["epoch"],
            state["skipped_nonfinite"],
            dict(state["last_metrics"]),
        )
        rng = payload["rng"][rank]
    except KeyError as err:
        raise CheckpointError(f"checkpoint lacks {err}: written by another format?") from err
    return counters, rng
