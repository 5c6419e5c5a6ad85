"""The trainer's checkpoint state: one registry, saved and loaded symmetrically.

:func:`state_registry` names every component whose state a checkpoint holds, under the key it
is stored at (``layout.py`` lists them). :func:`build_payload` saves exactly those entries and
:func:`restore_payload` loads exactly those (``registry.py``: strict about entries left over
or missing). Entries load in the registry's order: the run record first (it refuses other
train loaders or an unfollowable world size before anything changes), the RNG last (after the
``on_checkpoint_load`` hooks, so nothing they draw shifts the random streams).

NOTE [exact resume]: what a resumed run needs to continue bit-identically is exactly what the
registry holds: model, optimizers, schedulers, scaler, the loop counters, the data seed and the
schedule's cursor, each rank's loader positions, pending metrics, data fingerprint and RNG
states, early-stopping and hook state. Checkpoints are taken only at optimizer-step
boundaries, so no partial gradients are in flight. Per-rank entries are gathered in one
collective (rank 0 writes them); the model and optimizer states come from the sharding
strategy (full tensors under DDP, each rank's shards under FSDP2) and are stored by the
checkpoint format it chose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from model_training_framework.trainer.parts import TrainerParts
from model_training_framework.trainer.state import layout
from model_training_framework.trainer.state.entries import (
    DataState,
    ModelState,
    OptimizersState,
    RngState,
    RunRecord,
    SchedulersState,
    StreamsState,
)
from model_training_framework.trainer.state.format import MODEL_KEY, OPTIMIZERS_KEY, TENSOR_KEYS
from model_training_framework.trainer.state.registry import (
    PerRank,
    Stateful,
    check_entries,
    load_state,
    save_state,
)
from model_training_framework.trainer.state.reshard import check_streams_reshardable, seed_rank

__all__ = ["build_payload", "restore_payload", "state_registry"]


def state_registry(parts: TrainerParts, run: Any) -> dict[str, Stateful]:
    """Every entry a checkpoint of this fit saves and a resume restores, in load order."""
    dist, optimizers = parts.dist, parts.stepper.optimizers
    record = RunRecord(run, dist, optimizers, run.checkpoints.checkpoint_format.reshards)
    return {
        layout.RUN_KEY: record,
        MODEL_KEY: ModelState(parts.sharding, parts.module),
        OPTIMIZERS_KEY: OptimizersState(parts.sharding, parts.module, optimizers),
        layout.SCHEDULERS_KEY: SchedulersState(parts.stepper),
        layout.SCALER_KEY: parts.precision,
        layout.TRAIN_STATE_KEY: run.state,
        layout.DATA_KEY: DataState(run, record),
        layout.STREAMS_KEY: PerRank(
            StreamsState(run.streams),
            dist,
            on_other_world_size=lambda saved: check_streams_reshardable(saved, dist.world_size),
        ),
        # at another world size, pending metrics and the fingerprint start afresh
        layout.PENDING_METRICS_KEY: PerRank(run.metrics, dist),
        layout.FINGERPRINT_KEY: PerRank(run.fingerprint, dist),
        layout.EARLY_STOPPING_KEY: run.early_stopping,
        layout.HOOKS_KEY: parts.hooks,
        layout.RNG_KEY: PerRank(
            RngState(),
            dist,
            on_other_world_size=lambda _: seed_rank(
                run.base_seed, run.state.global_step, dist.rank
            ),
        ),
    }


def build_payload(parts: TrainerParts, run: Any) -> dict[str, Any]:
    """Every registry entry's state (a collective under DDP: call it on every rank)."""
    return save_state(state_registry(parts, run), parts.dist)


def restore_payload(
    parts: TrainerParts, run: Any, payload: Mapping[str, Any], path: Path
) -> Callable[[], None]:
    """Load every registry entry from ``payload`` (read from the checkpoint at ``path``), and
    let the checkpoint manager restore its own state from the file's metadata.

    Returns:
        A function that restores this rank's RNG state, which the caller calls last (after the
        ``on_checkpoint_load`` hooks, so nothing they draw shifts the random streams).

    Raises:
        CheckpointError: the checkpoint's entries differ from this run's, it was trained on
            other loaders or at another world size its format cannot follow, or its model,
            optimizers or schedulers do not fit this run's.
    """
    registry = state_registry(parts, run)
    check_entries(registry, payload, path)  # before a sharded checkpoint's tensors are read
    tensors = run.checkpoints.checkpoint_format.load_tensors(
        path, payload, lambda: {key: registry[key].state_dict() for key in TENSOR_KEYS}
    )
    restore_rng = load_state(registry, {**payload, **tensors}, path, defer=(layout.RNG_KEY,))
    run.checkpoints.restore(payload)
    return restore_rng
