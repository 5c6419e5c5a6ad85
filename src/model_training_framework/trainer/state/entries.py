"""Registry entries that adapt trainer components to ``state_dict``/``load_state_dict``.

Components that already speak it (the AMP scaler, the train state, early stopping, hooks, the
running metrics, the data fingerprint) are registry entries as they are (see ``payload.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from model_training_framework.errors import CheckpointError
from model_training_framework.trainer.state import layout
from model_training_framework.trainer.state.reshard import check_world_size, resume_data_position
from model_training_framework.trainer.state.rng import capture_rng_state, restore_rng_state

__all__ = [
    "DataState",
    "ModelState",
    "OptimizersState",
    "RngState",
    "RunRecord",
    "SchedulersState",
    "StreamsState",
]


class RunRecord:
    """What the run that wrote a checkpoint was: checked on resume, never restored.

    ``resume_check.RunFacts`` compares it with this run before anything is loaded. Loading
    it refuses other train loaders and a world-size change the checkpoint format cannot
    follow, and remembers the saved world size for the data position.
    """

    def __init__(
        self, run: Any, dist: Any, optimizers: Sequence[torch.optim.Optimizer], reshards: bool
    ) -> None:
        self._run, self._dist, self._optimizers, self._reshards = run, dist, optimizers, reshards
        self.saved_world_size: int | None = None

    @property
    def resharded(self) -> bool:
        """The loaded checkpoint was written at another world size."""
        return self.saved_world_size not in (None, self._dist.world_size)

    def state_dict(self) -> dict[str, Any]:
        return {
            layout.WORLD_SIZE: self._dist.world_size,
            layout.LOADER_NAMES: list(self._run.names),
            layout.CONFIG: self._run.config_record,
            layout.OPTIMIZER_HPARAMS: self._run.optimizer_hparams,
            layout.OPTIMIZER_LAYOUT: [
                [len(group["params"]) for group in optimizer.param_groups]
                for optimizer in self._optimizers
            ],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if list(state[layout.LOADER_NAMES]) != list(self._run.names):
            raise CheckpointError(
                f"checkpoint was trained on loaders {state[layout.LOADER_NAMES]}, this run has "
                f"{self._run.names}; resume with the same train loaders"
            )
        check_world_size(
            state[layout.WORLD_SIZE], self._dist.world_size, format_reshards=self._reshards
        )
        self.saved_world_size = state[layout.WORLD_SIZE]


class ModelState:
    """The model's state as the sharding strategy gives and takes it."""

    def __init__(self, sharding: Any, module: torch.nn.Module) -> None:
        self._sharding, self._module = sharding, module

    def state_dict(self) -> dict[str, Any]:
        return self._sharding.model_state_dict(self._module)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sharding.load_model_state_dict(self._module, state)


class OptimizersState:
    """Every optimizer's state as the sharding strategy gives and takes it."""

    def __init__(
        self, sharding: Any, module: torch.nn.Module, optimizers: Sequence[torch.optim.Optimizer]
    ) -> None:
        self._sharding, self._module, self._optimizers = sharding, module, optimizers

    def state_dict(self) -> list[dict[str, Any]]:
        return self._sharding.optimizer_state_dicts(self._module, self._optimizers)

    def load_state_dict(self, states: Sequence[dict[str, Any]]) -> None:
        self._sharding.load_optimizer_state_dicts(self._module, self._optimizers, states)


class SchedulersState:
    """Every learning-rate scheduler's state, in the order they were given."""

    def __init__(self, stepper: Any) -> None:
        self._stepper = stepper

    def state_dict(self) -> list[dict[str, Any]]:
        return self._stepper.scheduler_state_dicts()

    def load_state_dict(self, states: Sequence[Mapping[str, Any]]) -> None:
        self._stepper.load_scheduler_state_dicts(states)


class DataState:
    """The run's data seed and the loader schedule's cursor.

    At another world size (a resharded checkpoint) the schedule restarts at the same fraction
    of the same epoch instead (see ``reshard.py``).
    """

    def __init__(self, run: Any, record: RunRecord) -> None:
        self._run, self._record = run, record

    def state_dict(self) -> dict[str, Any]:
        return {
            layout.BASE_SEED: self._run.base_seed,
            layout.SCHEDULE: self._run.schedule.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        run = self._run
        run.base_seed = state[layout.BASE_SEED]
        for stream in run.streams:
            stream.rebase_seed(run.base_seed)
        if self._record.resharded:
            resume_data_position(
                run.schedule, state[layout.SCHEDULE], run.loader_config, len(run.names)
            )
        else:
            run.schedule.load_state_dict(state[layout.SCHEDULE])


class StreamsState:
    """Each train loader's position on this rank."""

    def __init__(self, streams: Sequence[Any]) -> None:
        self._streams = streams

    def state_dict(self) -> list[dict[str, Any]]:
        return [stream.state_dict() for stream in self._streams]

    def load_state_dict(self, states: Sequence[Mapping[str, Any]]) -> None:
        for stream, state in zip(self._streams, states, strict=True):
            stream.load_state_dict(state)


class RngState:
    """This rank's Python, NumPy and torch (CPU and CUDA) RNG states."""

    def state_dict(self) -> dict[str, Any]:
        return capture_rng_state()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        restore_rng_state(state)
