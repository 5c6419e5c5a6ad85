"""What a checkpoint's payload holds: one entry per key of the trainer's state registry.

Format version 2 (this one) stores every registry entry under its own top-level key
(:mod:`.entries` builds the registry):

    run             the run that wrote it: world size, train loader names, config, optimizer
                    hyperparameters and layout (checked on resume, never restored)
    model           the model's state (in the shards for sharded checkpoints)
    optimizers      one state per optimizer (in the shards for sharded checkpoints)
    schedulers      one state per scheduler
    scaler          the AMP gradient scaler
    train_state     the loop counters (``TrainState``'s fields)
    data            the data seed and the loader schedule's cursor
    streams         per rank: each train loader's position
    pending_metrics per rank: metrics not logged yet
    fingerprint     per rank: the data fingerprint
    early_stopping  the early-stopping state
    hooks           each hook's state
    rng             per rank: the Python, NumPy and torch RNG states

Format version 1 kept most of these in one ``trainer`` dict; :func:`upgrade` turns a
version-1 payload into this layout when it is read, so checkpoints written before resume.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "DATA_KEY",
    "EARLY_STOPPING_KEY",
    "FINGERPRINT_KEY",
    "FORMAT_VERSION",
    "HOOKS_KEY",
    "PENDING_METRICS_KEY",
    "RNG_KEY",
    "RUN_KEY",
    "SCALER_KEY",
    "SCHEDULERS_KEY",
    "STREAMS_KEY",
    "TRAIN_STATE_KEY",
    "inspect_view",
    "upgrade",
]

FORMAT_VERSION = 2

RUN_KEY = "run"
SCHEDULERS_KEY = "schedulers"
SCALER_KEY = "scaler"
TRAIN_STATE_KEY = "train_state"
DATA_KEY = "data"
STREAMS_KEY = "streams"
PENDING_METRICS_KEY = "pending_metrics"
FINGERPRINT_KEY = "fingerprint"
EARLY_STOPPING_KEY = "early_stopping"
HOOKS_KEY = "hooks"
RNG_KEY = "rng"

# run entry
WORLD_SIZE = "world_size"
LOADER_NAMES = "loader_names"
CONFIG = "config"
OPTIMIZER_HPARAMS = "optimizer_hparams"
OPTIMIZER_LAYOUT = "optimizer_layout"
# data entry
BASE_SEED = "base_seed"
SCHEDULE = "schedule"

_FORMAT_VERSION_KEY = "format_version"  # file_format.FORMAT_VERSION_KEY (not imported: no cycle)
_V1_TRAIN_STATE = ("epoch", "global_step", "epoch_fresh", "skipped_nonfinite", "last_metrics")


def upgrade(content: dict[str, Any]) -> dict[str, Any]:
    """``content`` (a checkpoint's metadata and payload) in this format version's layout.

    Raises:
        KeyError: A version-1 payload lacks an entry (the caller reports the file).
    """
    version = content[_FORMAT_VERSION_KEY]
    while version in _UPGRADES:
        content = _UPGRADES[version](dict(content))
        version = content[_FORMAT_VERSION_KEY]
    return content


def _from_version_1(content: dict[str, Any]) -> dict[str, Any]:
    trainer = content.pop("trainer")
    world_size = trainer[WORLD_SIZE]
    rng = content.pop(RNG_KEY)
    layout = content.pop(OPTIMIZER_LAYOUT, None)
    if layout is None:
        layout = _optimizer_layout(content["optimizers"])
    train_state = {key: trainer[key] for key in _V1_TRAIN_STATE}
    # absent from files written before early stops were recorded: those did not stop early
    train_state["stopped_early_under"] = trainer.get("stopped_early_under")
    content.update(
        {
            RUN_KEY: {
                WORLD_SIZE: world_size,
                LOADER_NAMES: list(trainer[LOADER_NAMES]),
                CONFIG: content.pop(CONFIG),
                # absent from files written before the hyperparameters were recorded
                OPTIMIZER_HPARAMS: content.pop(OPTIMIZER_HPARAMS, None),
                OPTIMIZER_LAYOUT: layout,
            },
            TRAIN_STATE_KEY: train_state,
            DATA_KEY: {BASE_SEED: trainer[BASE_SEED], SCHEDULE: trainer[SCHEDULE]},
            STREAMS_KEY: list(trainer["streams_per_rank"]),
            PENDING_METRICS_KEY: list(trainer["metrics_per_rank"]),
            FINGERPRINT_KEY: list(trainer[FINGERPRINT_KEY]),
            EARLY_STOPPING_KEY: trainer[EARLY_STOPPING_KEY],
            RNG_KEY: list(rng),
            _FORMAT_VERSION_KEY: 2,
        }
    )
    return content


def _optimizer_layout(optimizers: list[Mapping[str, Any]]) -> list[list[int]]:
    return [[len(group["params"]) for group in state["param_groups"]] for state in optimizers]


_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _from_version_1}


def inspect_view(content: Mapping[str, Any]) -> dict[str, Any]:
    """The trainer state ``mtf inspect`` shows: loop counters, loader names, schedule, rank 0's
    loader positions, metrics and RNG state, early stopping and the data seed."""
    run = _mapping(content.get(RUN_KEY))
    data = _mapping(content.get(DATA_KEY))
    view: dict[str, Any] = dict(_mapping(content.get(TRAIN_STATE_KEY)))
    view.update({key: run[key] for key in (WORLD_SIZE, LOADER_NAMES) if key in run})
    view.update(data)
    for key in (STREAMS_KEY, PENDING_METRICS_KEY, FINGERPRINT_KEY, RNG_KEY):
        per_rank = content.get(key)
        if isinstance(per_rank, list) and per_rank:
            view[key] = per_rank[0]
    if EARLY_STOPPING_KEY in content:
        view[EARLY_STOPPING_KEY] = content[EARLY_STOPPING_KEY]
    return view


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
