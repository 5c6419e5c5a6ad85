"""GenericTrainer: wires the components together and runs ``fit``.

``fit`` checks its inputs (``run.prepare_run``), takes the run directory, finds the checkpoint
to resume (``start.find_resume_point``), opens the ``Run`` (``run.open_run``), restores or
starts it, and hands it to the ``FitLoop`` (loop.py), whose training step is ``step.TrainStep``.
The loop counters live in one ``TrainState`` (train_state.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from model_training_framework.trainer.checks import (
    check_optimizers,
    check_step_function,
    renamed_keywords,
)
from model_training_framework.trainer.config import GenericTrainerConfig
from model_training_framework.trainer.hooks import TrainerHooks
from model_training_framework.trainer.loggers import Logger, NullLogger
from model_training_framework.trainer.loop import FitLoop
from model_training_framework.trainer.metrics.running import scalar_value
from model_training_framework.trainer.parts import build_parts
from model_training_framework.trainer.results import FitResult, WarmStartResult
from model_training_framework.trainer.run import Run, RunPlan, open_run, prepare_run
from model_training_framework.trainer.runtime.failures import build_failure_watch
from model_training_framework.trainer.start import (
    check_inputs_agree,
    config_record,
    find_resume_point,
    open_logger,
    restore_or_start,
    take_run_directory,
)
from model_training_framework.trainer.state.resume_check import optimizer_hyperparameters
from model_training_framework.trainer.state.run_lock import NoRunDirectoryLock, RunDirectoryLock
from model_training_framework.trainer.train_state import TrainState

__all__ = ["GenericTrainer"]

logger = logging.getLogger(__name__)

# Keywords of the guide's older trainers, answered with the new name (docs/migration.md).
_OLD_INIT_KEYWORDS = {
    "optimizer": "pass optimizers=[...] as a list (one optimizer: optimizers=[optimizer])",
    "scheduler": "pass schedulers=[...] as a list, aligned with optimizers",
}
_OLD_FIT_KEYWORDS = {
    "epochs": "use max_epochs=",
    "num_epochs": "use max_epochs=",
    "train_loader": "pass train_loaders=[...] as a list",
    "val_loader": "pass val_loaders=[...] as a list",
}


class GenericTrainer:
    """Multi-dataloader trainer with exact resume, preemption handling and DDP.

    Args:
        config: the trainer configuration; ``train_loader_config`` is required.
        model: the ``torch.nn.Module`` to train (moved to the configured device).
        optimizers: a list of optimizers (``[optimizer]`` for one).
        schedulers: optional list aligned with ``optimizers``: a scheduler (stepped after its
            optimizer steps) or ``{"scheduler": s, "interval": "step" | "epoch"}``.

    Example:
        >>> trainer = GenericTrainer(config, model, [torch.optim.Adam(model.parameters())])
        >>> trainer.set_training_step(training_step)
        >>> result = trainer.fit(train_loaders=[loader_a, loader_b], max_epochs=3)
    """

    @renamed_keywords(_OLD_INIT_KEYWORDS)
    def __init__(
        self,
        config: GenericTrainerConfig,
        model: torch.nn.Module,
        optimizers: Sequence[torch.optim.Optimizer],
        schedulers: Sequence[Any] | None = None,
    ) -> None:
        self.config = _checked_config(config)
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.optimizers = check_optimizers(optimizers)
        self._parts = parts = build_parts(config, model, self.optimizers, schedulers)
        self.device = parts.device
        self._dist, self._module, self._hooks = parts.dist, parts.module, parts.hooks
        self._forward_model: torch.nn.Module = self._module
        self._training_step: Callable[..., Any] | None = None
        self._validation_step: Callable[..., Any] | None = None
        self._warm_start_fn: Callable[..., WarmStartResult] | None = None
        self._code_directories: list[Path] | None = None
        self._logger: Logger = NullLogger()
        self._run: Run | None = None  # while fitting
        self._lock: RunDirectoryLock | NoRunDirectoryLock | None = None  # while owning run_dir
        self._state = TrainState()
        self._loader_weights: list[float] | None = None  # set by update_loader_weights

    # ------------------------------------------------------------------ public API
    @property
    def model(self) -> torch.nn.Module:
        """The model to call in step functions (DDP-wrapped/compiled during ``fit``)."""
        return self._forward_model

    @property
    def unwrapped_model(self) -> torch.nn.Module:
        """The user's module, without DDP or compile wrappers."""
        return self._module

    @property
    def run_dir(self) -> Path:
        """``<checkpoint.root_dir>/<experiment_name>``: everything this run writes."""
        return Path(self.config.checkpoint.root_dir) / self.config.experiment_name

    @property
    def is_rank_zero(self) -> bool:
        return self._dist.is_rank_zero

    @property
    def global_step(self) -> int:
        """Optimizer steps taken, over all resumes."""
        return self._state.global_step

    @property
    def current_epoch(self) -> int:
        """The epoch being trained (0-based; the number of completed epochs)."""
        return self._state.epoch

    @property
    def skipped_nonfinite(self) -> int:
        """Windows dropped by ``on_nonfinite_loss="skip"``."""
        return self._state.skipped_nonfinite

    def set_training_step(self, fn: Callable[..., dict[str, Any]]) -> None:
        """Set ``fn(trainer, batch, batch_idx, dataloader_idx, dataloader_name) -> {"loss": ...}``."""
        self._training_step = check_step_function(fn, "training_step")

    def set_validation_step(self, fn: Callable[..., dict[str, Any]]) -> None:
        """Set ``fn(trainer, batch, batch_idx, dataloader_idx, dataloader_name) -> metrics``."""
        self._validation_step = check_step_function(fn, "validation_step")

    def add_hook(self, hook: TrainerHooks) -> None:
        """Register a ``TrainerHooks`` instance (called after hooks from the config).

        Raises:
            TypeError: ``hook`` is not a ``TrainerHooks`` instance, or a method of it takes
                arguments the trainer does not pass.
            ConfigError: a built-in hook's settings conflict with the config.
        """
        if isinstance(hook, TrainerHooks):  # else add() raises the TypeError that says so
            hook.configure(self.config)
        self._hooks.add(hook)

    def set_warm_start_loader(self, fn: Callable[[Any, str | None], WarmStartResult]) -> None:
        """Load weights only when a run starts fresh: ``fn(trainer, checkpoint_path)``."""
        if not callable(fn):
            raise TypeError(f"warm-start loader must be callable, got {type(fn).__name__}")
        self._warm_start_fn = fn

    def set_code_directories(self, directories: Sequence[str | Path]) -> None:
        """Record in checkpoints the git commit of the first of ``directories`` that lies in a
        git work tree (``mtf train`` passes the config file's folder, the folders of the user's
        modules and the working directory); default: the running script's directory, else the
        working directory."""
        self._code_directories = [Path(d) for d in directories]

    def update_loader_weights(self, weights: Sequence[float]) -> None:
        """Change WEIGHTED sampling weights from the next step on (saved in checkpoints).

        Call it on every rank at the same step (e.g. from a hook) so ranks stay in agreement.
        Called before ``fit``, the weights are the ones the next fit starts with. The config
        is left as it was: the schedule owns the weights, and a resume compares the config.
        """
        weights = list(weights)
        if self._run is not None:
            self._run.schedule.update_weights(weights)
        self._loader_weights = weights

    def log_metrics(self, metrics: dict[str, float]) -> None:
        """Log extra scalars at the current global step (rank 0 only).

        Values may be numbers, one-element tensors or NumPy numbers; each is read as a float
        (a tensor on the GPU costs a device sync), so that ``FitResult.metrics`` and the
        checkpoint hold plain floats.

        Raises:
            TypeError: a value is no number.
        """
        try:
            scalars = {key: scalar_value(key, value) for key, value in metrics.items()}
        except TypeError as err:
            raise TypeError(f"trainer.log_metrics: {err}") from err
        self._logger.log_scalars(scalars, self.global_step)
        self._state.last_metrics.update(scalars)

    # ------------------------------------------------------------------ fit
    @renamed_keywords(_OLD_FIT_KEYWORDS)
    def fit(
        self,
        train_loaders: Sequence[Any],
        val_loaders: Sequence[Any] | None = None,
        max_epochs: int = 1,
        max_steps: int | None = None,
        resume_from_checkpoint: str | Path | None = None,
    ) -> FitResult:
        """Train until ``max_epochs`` epochs or ``max_steps`` optimizer steps are done.

        Returns:
            A ``FitResult``; ``status`` is ``"preempted"`` or ``"interrupted"`` when a signal
            stopped the run after a checkpoint.

        Raises:
            TypeError, ValueError: bad input, before any training step or file write.
        """
        self._dist.setup(self.device)
        plan: RunPlan | None = None
        try:
            with build_failure_watch(self._dist) as failures:
                self._dist.failure_reporter = failures.report
                try:
                    plan = prepare_run(
                        _checked_config(self.config),
                        train_loaders,
                        val_loaders,
                        max_epochs,
                        max_steps,
                        num_optimizers=len(self.optimizers),
                        training_step=self._training_step,
                        validation_step=self._validation_step,
                        loader_weights=self._loader_weights,
                        resume_from=resume_from_checkpoint,
                    )
                    return self._fit(plan, resume_from_checkpoint)
                except BaseException as exc:
                    # NOTE [failure propagation]: the peers hear of it before this rank tears
                    # its process group down (which breaks their pending collectives).
                    error = failures.report(exc)
                    if plan is not None:
                        self._hooks.call("on_exception", self, error)
                    if error is exc:
                        raise
                    raise error from exc
        finally:
            self._dist.failure_reporter = None
            try:
                if plan is not None:
                    self._close()
            finally:
                lock, self._lock = self._lock, None
                if lock is not None:
                    lock.release()

    def _fit(self, plan: RunPlan, resume_from: str | Path | None) -> FitResult:
        check_inputs_agree(self._parts, plan, resume_from)
        record = config_record(self.config)
        hparams = optimizer_hyperparameters(self.optimizers)  # as built, before any resume
        # Ownership, the checkpoint to resume and its fit with this run: all before any write.
        self._lock = take_run_directory(self.run_dir, self.config, self._dist)
        resume = find_resume_point(
            self.config,
            self.run_dir,
            self._parts,
            plan,
            resume_from=resume_from,
            config_record=record,
            optimizer_hparams=hparams,
        )
        model = self._parts.sharding.wrap(self._module, num_loaders=len(plan.train_loaders))
        self._forward_model = (
            torch.compile(model) if self.config.performance.compile_model else model
        )
        if self._dist.is_rank_zero:
            self._lock.record_owner()  # the first write of this fit
        run = self._run = open_run(
            plan,
            self.config,
            state=self._state,
            dist=self._dist,
            device=self.device,
            run_dir=self.run_dir,
            resume=resume,
            config_record=record,
            optimizer_hparams=hparams,
            code_directories=self._code_directories,
            checkpoint_format=self._parts.sharding.checkpoint_format,
        )
        # Built before any hook runs, like the Run; a hook added later still gets every call.
        loop = FitLoop(
            self,
            run,
            self._parts,
            config=self.config,
            training_step=self._training_step,
            validation_step=self._validation_step,
            model=self._forward_model,
        )
        with run.preemption:
            # Hooks added in on_train_start get their saved state too.
            with self._hooks.claiming_saved_state():
                restore_or_start(
                    self,
                    run,
                    self._parts,
                    config=self.config,
                    loader_weights=self._loader_weights,
                    warm_start_fn=self._warm_start_fn,
                )
                self._logger = open_logger(
                    self.config, self.run_dir, run, is_rank_zero=self._dist.is_rank_zero
                )
                self._hooks.call("on_train_start", self)
            result = loop.fit(self._logger)
        self._hooks.call("on_train_end", self, result)
        return result

    def _close(self) -> None:
        run, self._run = self._run, None
        if run is not None:
            run.close()
        self._logger.close()
        self._logger = NullLogger()
        self._forward_model = self._module
        self._parts.sharding.release(self._dist)


def _checked_config(config: Any) -> GenericTrainerConfig:
    if not isinstance(config, GenericTrainerConfig):
        raise TypeError(
            f"config must be a GenericTrainerConfig, got {type(config).__name__}; build one "
            "with GenericTrainerConfig(...), GenericTrainerConfig.from_dict(mapping) or "
            "GenericTrainerConfig.from_yaml(path)"
        )
    config.require_train_loader_config()
    return config
