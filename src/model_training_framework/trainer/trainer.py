"""GenericTrainer: wires the components together and runs ``fit``.

The loop reads like the spec: pick a slot from the loader schedule, run one micro-step, and at
each optimizer-step boundary log, validate, checkpoint and check for a stop request.
NOTE [exact resume]: checkpoints are written only at optimizer-step boundaries (no partial
gradients in flight), and every piece of state goes through ``state_dict()``/``load_state_dict()``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from model_training_framework.errors import ConfigError
from model_training_framework.trainer.checks import (
    check_loaders,
    check_optimizers,
    check_step_function,
    checked_loss,
)
from model_training_framework.trainer.config import (
    GenericTrainerConfig,
    SamplingStrategy,
    ValidationFrequency,
)
from model_training_framework.trainer.data.devices import build_batch_mover
from model_training_framework.trainer.data.fingerprint import DataFingerprint, NullFingerprint
from model_training_framework.trainer.data.streams import LoaderStream, build_streams, loader_length
from model_training_framework.trainer.hooks import HookDispatcher, TrainerHooks
from model_training_framework.trainer.loggers import NullLogger, build_logger
from model_training_framework.trainer.loggers.factory import writes_to_console
from model_training_framework.trainer.metrics.early_stopping import (
    EarlyStopping,
    MonitoredMetricsCheck,
)
from model_training_framework.trainer.metrics.profiling import (
    NullProfiler,
    TraceWindow,
    build_profiler,
)
from model_training_framework.trainer.metrics.progress import (
    ProgressDisplay,
    build_progress_display,
)
from model_training_framework.trainer.metrics.running import (
    NullTrainMetrics,
    TrainMetrics,
    loader_shares,
    lr_key,
    numeric_items,
)
from model_training_framework.trainer.optim.nonfinite import FiniteGuard
from model_training_framework.trainer.optim.precision import build_precision
from model_training_framework.trainer.optim.stepper import OptimizerStepper, parse_schedulers
from model_training_framework.trainer.results import FitResult, FitStatus, WarmStartResult
from model_training_framework.trainer.run import Run, build_schedule, prepare_run
from model_training_framework.trainer.runtime.distributed import (
    DistributedContext,
    check_loader_lengths_agree,
    warn_unsharded_loaders,
)
from model_training_framework.trainer.runtime.failures import build_failure_watch
from model_training_framework.trainer.runtime.preemption import PreemptionHandler, StopRequest
from model_training_framework.trainer.runtime.sharding import build_strategy, needs_process_group
from model_training_framework.trainer.runtime.worker_signals import shield_workers
from model_training_framework.trainer.state.manager import CheckpointManager
from model_training_framework.trainer.state.payload import (
    LoopCounters,
    TrainerParts,
    build_payload,
    restore_payload,
)
from model_training_framework.trainer.state.resume import find_checkpoint, warm_start
from model_training_framework.trainer.state.resume_check import (
    WEIGHTS_KEY,
    RunFacts,
    check_resume,
    optimizer_hyperparameters,
)
from model_training_framework.trainer.state.rng import seed_everything
from model_training_framework.trainer.state.run_lock import (
    NoRunDirectoryLock,
    RunDirectoryLock,
    build_run_lock,
)
from model_training_framework.trainer.validation import run_validation

__all__ = ["GenericTrainer"]

logger = logging.getLogger(__name__)

_STOP_STATUS = {
    StopRequest.PREEMPT: FitStatus.PREEMPTED,
    StopRequest.INTERRUPT: FitStatus.INTERRUPTED,
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
        self._dist = DistributedContext.from_environment()
        self.device = self._dist.device_for(config.device)
        # Now, so users can build DistributedSamplers before fit (and FSDP2 can shard).
        self._dist.setup(
            self.device, single_process=needs_process_group(config.distributed.strategy)
        )
        self._module = model.to(self.device)
        self._move_batch = build_batch_mover(self.device)
        self._sharding = build_strategy(config.distributed, self._dist, self.device)
        self._sharding.prepare(self._module, self.optimizers)
        self._forward_model: torch.nn.Module = self._module
        perf = config.performance
        self._precision = build_precision(
            perf.use_amp,
            perf.amp_dtype,
            self.device,
            is_sharded=needs_process_group(config.distributed.strategy),
        )
        self._stepper = OptimizerStepper(
            self.optimizers,
            parse_schedulers(schedulers, len(self.optimizers)),
            self._precision,
            self._module,
            perf.clip_grad_norm,
        )
        self._hooks = HookDispatcher.from_config(config.hooks)
        for hook in self._hooks.hooks:
            hook.configure(self.config)
        self._training_step: Callable[..., Any] | None = None
        self._validation_step: Callable[..., Any] | None = None
        self._warm_start_fn: Callable[..., WarmStartResult] | None = None
        self._code_directories: list[Path] | None = None
        self._logger: Any = NullLogger()
        self._profiler: NullProfiler = NullProfiler()
        self._progress: ProgressDisplay | None = None
        self._run: Run | None = None
        self._lock: RunDirectoryLock | NoRunDirectoryLock | None = None  # while owning run_dir
        self._last_metrics: dict[str, float] = {}
        self.global_step = 0
        self.current_epoch = 0
        self.skipped_nonfinite = 0

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
        """
        if self._run is not None:
            self._run.schedule.update_weights(list(weights))
        self.config.train_loader_config.dataloader_weights = list(weights)

    def log_metrics(self, metrics: dict[str, float]) -> None:
        """Log extra scalars at the current global step (rank 0 only)."""
        self._logger.log_scalars(metrics, self.global_step)
        self._last_metrics.update(metrics)

    # ------------------------------------------------------------------ fit
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
        run: Run | None = None
        try:
            with build_failure_watch(self._dist) as failures:
                self._dist.failure_reporter = failures.report
                try:
                    run = self._prepare(train_loaders, val_loaders, max_epochs, max_steps)
                    return self._fit(run, resume_from_checkpoint)
                except BaseException as exc:
                    # NOTE [failure propagation]: the peers hear of it before this rank tears
                    # its process group down (which breaks their pending collectives).
                    error = failures.report(exc)
                    if run is not None:
                        self._hooks.call("on_exception", self, error)
                    if error is exc:
                        raise
                    raise error from exc
        finally:
            self._dist.failure_reporter = None
            try:
                if run is not None:
                    self._close()
            finally:
                if run is not None and run.owns_run_directory:
                    self._release_run_directory()

    def _fit(self, run: Run, resume_from: str | Path | None) -> FitResult:
        warn_unsharded_loaders(
            self._dist,
            [("train", run.train_loaders, run.names), ("val", run.val_loaders, run.val_names)],
        )
        check_loader_lengths_agree(
            self._dist,
            run.train_loaders,
            run.names,
            {
                "validation loader lengths": [loader_length(v) for v in run.val_loaders],
                "max_epochs": run.max_epochs,
                "max_steps": run.max_steps,
                "resume_from_checkpoint": None if resume_from is None else str(resume_from),
            },
        )
        run.config_record = _plain_config(self.config)
        run.optimizer_hparams = optimizer_hyperparameters(self.optimizers)
        # Ownership, the checkpoint to resume and its fit with this run: all before any write.
        self._take_run_directory(run)
        self._find_resume_point(run, resume_from)
        self._wrap_model(run)
        self._open(run)
        with self._preemption:
            self._restore_or_start(run)
            self._open_logger(run)
            self._hooks.call("on_train_start", self)
            status = self._train(run)
            result = self._finish(run, status)
        self._hooks.call("on_train_end", self, result)
        return result

    # ------------------------------------------------------------------ preparation
    def _prepare(self, train_loaders, val_loaders, max_epochs, max_steps) -> Run:
        _checked_config(self.config)
        if self._training_step is None:
            raise ValueError(
                "no training step: call trainer.set_training_step(fn) before fit(); fn is "
                "called as fn(trainer, batch, batch_idx, dataloader_idx, dataloader_name)"
            )
        val = check_loaders(val_loaders, "val_loaders", allow_none=True)
        if val and self._validation_step is None:
            raise ValueError(
                "val_loaders were given but no validation step: call set_validation_step(fn)"
            )
        return prepare_run(
            self.config,
            train_loaders,
            val,
            max_epochs,
            max_steps,
            num_optimizers=len(self.optimizers),
        )

    def _wrap_model(self, run: Run) -> None:
        model = self._sharding.wrap(self._module, num_loaders=len(run.train_loaders))
        if self.config.performance.compile_model:
            model = torch.compile(model)
        self._forward_model = model

    def _take_run_directory(self, run: Run) -> None:
        """Lock the run directory on rank 0, agreed by every rank (NOTE [run directory lock])."""
        lock = build_run_lock(self.run_dir, enabled=self.config.fault_tolerance.lock_run_directory)
        self._dist.rank_zero_call(lock.acquire)
        self._lock = lock
        run.owns_run_directory = True

    def _release_run_directory(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def _open(self, run: Run) -> None:
        cfg = self.config
        rank_zero = self._dist.is_rank_zero
        if rank_zero:
            self._lock.record_owner()  # the first write of this fit
        base_seed = self._dist.broadcast_object(
            cfg.seed if cfg.seed is not None else int(torch.randint(2**62, (1,)).item())
        )
        run.base_seed = base_seed
        self._preemption = PreemptionHandler(cfg.preemption, reduce_max=self._dist.reduce_max)
        shield_workers([*run.train_loaders, *run.val_loaders], self._preemption.signals)
        run.streams = build_streams(
            run.train_loaders,
            run.names,
            base_seed,
            require_resumable=cfg.fault_tolerance.require_resumable_iterables,
        )
        run.metrics = (
            TrainMetrics(run.names)
            if cfg.log_loss_every_n_steps is not None
            else NullTrainMetrics(run.names)  # step metrics off: nothing piles up unread
        )
        run.fingerprint = (
            DataFingerprint() if cfg.fault_tolerance.record_data_fingerprint else NullFingerprint()
        )
        run.is_distributed = self._dist.is_distributed
        run.has_batch_start_hooks = self._hooks.has("on_train_batch_start")
        run.has_batch_end_hooks = self._hooks.has("on_train_batch_end")
        run.has_backward_hooks = self._hooks.has("on_before_backward") or self._hooks.has(
            "on_after_backward"
        )
        run.early_stopping = EarlyStopping(
            cfg.early_stopping_patience,
            cfg.early_stopping_metric,
            cfg.early_stopping_mode,
            cfg.early_stopping_min_delta,
        )
        run.monitored_check = MonitoredMetricsCheck(
            {
                "early_stopping_metric": cfg.early_stopping_metric
                if run.early_stopping.enabled
                else None,
                "checkpoint.monitor_metric": cfg.checkpoint.monitor_metric,
            },
            has_validation=bool(run.val_loaders),
        )
        run.checkpoints = CheckpointManager(
            cfg.checkpoint,
            self.run_dir,
            is_rank_zero=rank_zero,
            code_directory=self._code_directories,
            checkpoint_format=self._sharding.checkpoint_format,
        )
        self._guard = FiniteGuard(cfg.on_nonfinite_loss, reduce_max=self._dist.reduce_max)
        self._profiler = build_profiler(
            cfg.profile_training,
            run.names,
            run.val_names,
            sync_cuda=cfg.performance.sync_cuda_for_profiling,
        )
        self._progress = build_progress_display(cfg.logging, is_rank_zero=rank_zero)
        perf = cfg.performance
        run.trace = TraceWindow(
            perf.profiler_trace_start_step,
            perf.profiler_trace_num_steps,
            self.run_dir / "profiler",
            self._dist.rank,
        )
        self._run = run

    # ------------------------------------------------------------------ resume
    def _find_resume_point(self, run: Run, resume_from: str | Path | None) -> None:
        """Choose the checkpoint to resume (if any) and check that it fits this run; reads
        only, so a refused resume writes nothing."""
        reader = CheckpointManager(
            self.config.checkpoint,
            self.run_dir,
            is_rank_zero=False,
            checkpoint_format=self._sharding.checkpoint_format,
        )
        run.resume_point = find_checkpoint(
            reader,
            self._dist,
            resume_from,
            auto_resume=self.config.preemption.resume_from_latest_symlink,
            run_dir=self.run_dir,
        )
        if run.resume_point is None:
            return
        path, payload = run.resume_point
        current = RunFacts(
            config=run.config_record,
            model_state=self._module.state_dict(),
            optimizer_layout=[[len(g["params"]) for g in o.param_groups] for o in self.optimizers],
            optimizer_hparams=run.optimizer_hparams,
            world_size=self._dist.world_size,
            loader_names=run.names,
            loader_lengths=list(run.schedule.lengths),
        )
        allow = self.config.fault_tolerance.allow_schedule_changes_on_resume
        reshards = self._sharding.checkpoint_format.reshards
        run.resume_diff = self._dist.rank_zero_call(
            lambda: check_resume(
                path,
                RunFacts.from_payload(payload),
                current,
                allow_schedule_changes=allow,
                reshards=reshards,
            )
        )

    def _restore_or_start(self, run: Run) -> None:
        if run.resume_point is not None:
            path, payload = run.resume_point
            self._load_payload(run, payload, path)
            weighted = run.schedule.strategy is SamplingStrategy.WEIGHTED
            if weighted and run.resume_diff.changed(WEIGHTS_KEY):
                # allowed (else check_resume refused): the new weights replace the restored ones
                run.schedule.update_weights(self.config.train_loader_config.dataloader_weights)
            run.checkpoint_path = path
            run.start_step = run.last_saved_step = run.last_train_log_step = self.global_step
            return
        if self.config.seed is not None:
            seed_everything(self.config.seed)
        warm_start(self, self._module, self._warm_start_fn, self.config.warm_start)
        run.schedule.start_epoch(0)
        run.epoch_fresh = True

    def _open_logger(self, run: Run) -> None:
        """Open the loggers once the start step is known: records a previous attempt logged
        after it are dropped, so a resumed run never repeats a step."""
        self._logger = build_logger(
            self.config.logging,
            self.run_dir,
            is_rank_zero=self._dist.is_rank_zero,
            hparams=run.config_record,
            start_step=run.start_step,
        )
        if run.checkpoint_path is None:
            return
        notice = (
            f"resumed from {run.checkpoint_path} at epoch {self.current_epoch}, "
            f"step {self.global_step}"
        )
        # Recorded by every backend; the console logger (the default) shows it without any
        # logging setup. Without it, the line goes to Python logging as before.
        self._logger.log_text("resume", notice, self.global_step)
        if not writes_to_console(self.config.logging):
            logger.info("%s", notice)

    def _parts(self) -> TrainerParts:
        return TrainerParts(
            self._dist, self._module, self._stepper, self._precision, self._hooks, self._sharding
        )

    def _load_payload(self, run: Run, payload: dict[str, Any], path: Path) -> None:
        counters, restore_rng = restore_payload(self._parts(), run, payload, path)
        self.global_step, self.current_epoch = counters.global_step, counters.epoch
        self.skipped_nonfinite, self._last_metrics = (
            counters.skipped_nonfinite,
            counters.last_metrics,
        )
        self._hooks.call("on_checkpoint_load", self, payload)
        restore_rng()  # last: nothing may draw from the streams before training

    # ------------------------------------------------------------------ the loop
    def _train(self, run: Run) -> FitStatus:
        if run.stopped_early_under == run.limits():  # a finished run stays finished
            self._logger.log_text(
                "status",
                f"the run already stopped early at step {self.global_step}; nothing to do "
                "(raise training.max_epochs or max_steps to train further)",
                self.global_step,
            )
            return FitStatus.EARLY_STOPPED
        run.stopped_early_under = None
        self._module.train()
        self._stepper.zero_grad()
        while self.current_epoch < run.max_epochs and not run.steps_done(self.global_step):
            if run.epoch_fresh:
                self._hooks.call("on_epoch_start", self, self.current_epoch)
                run.epoch_fresh = False
            self._start_progress(run)
            status = self._run_epoch(run)
            if status is not None:
                return status
        return FitStatus.COMPLETED

    def _run_epoch(self, run: Run) -> FitStatus | None:
        schedule = run.schedule
        while not run.steps_done(self.global_step):
            slot = schedule.next_slot()
            if slot is None:
                return self._end_epoch(run)
            if self._micro_step(run, slot):
                status = self._after_optimizer_step(run, run.last_loader)
                if status is not None:
                    return status
        return None

    def _micro_step(self, run: Run, slot: Any) -> bool:
        """One batch forward/backward; True when it closes an accumulation window."""
        t0 = time.perf_counter()
        fetched = self._fetch(run, slot)
        if fetched is None:
            return False  # a loader ran dry and nothing replaces it: the epoch ends next
        slot, batch, indices = fetched
        idx, batch_idx = slot.loader_idx, slot.batch_idx
        name = run.names[idx]
        if run.has_batch_start_hooks:
            self._hooks.call("on_train_batch_start", self, batch, batch_idx, idx, name)
        run.window_size += 1
        # NOTE [no_sync]: only the window's last micro-batch synchronises gradients (DDP's
        # all-reduce, FSDP2's reduce-scatter); the epoch's last planned batch closes a partial
        # window the same way (a window cut short by a loader that ran dry is synchronised by
        # the sharding strategy's finish_partial_window instead).
        closes = (
            run.window_size == run.grad_accum
            or run.schedule_position() == run.schedule.epoch_length()
        )
        run.is_window_synced = closes
        t1 = time.perf_counter()
        with self._sharding.gradient_sync(self._forward_model, closes_window=closes):
            outputs = self._precision.run_step(
                self._training_step, self, batch, batch_idx, idx, name
            )
            loss = checked_loss(outputs)
            t2 = time.perf_counter()
            scale = run.loss_scales[idx]
            scaled = loss if scale == 1.0 else loss * scale
            if run.has_backward_hooks:
                self._hooks.call("on_before_backward", self, scaled)
            self._precision.backward(scaled)
            if run.has_backward_hooks:
                self._hooks.call("on_after_backward", self)
        loss = loss.detach()  # stays on the device: see NOTE [non-finite steps]
        self._guard.add_loss(loss)
        self._profiler.sync()
        t3 = time.perf_counter()
        num_samples = run.streams[idx].num_samples(batch, indices)
        run.metrics.add(idx, numeric_items(outputs, loss), num_samples)
        self._profiler.record_train(idx, t1 - t0, t2 - t1, t3 - t2)
        if run.has_batch_end_hooks:
            self._hooks.call("on_train_batch_end", self, batch, batch_idx, idx, name, outputs)
        run.last_loader = idx
        return closes

    def _fetch(self, run: Run, slot: Any) -> tuple[Any, Any, Sequence[int] | None] | None:
        """The batch for ``slot`` (on the device) and its sample indices, folded into the
        fingerprint; a loader that runs dry hands over to the slot the schedule gives instead."""
        while True:
            stream: LoaderStream = run.streams[slot.loader_idx]
            try:
                batch, ran_dry = stream.fetch(slot.pass_idx, slot.batch_idx), False
            except StopIteration:
                ran_dry = True
            if stream.is_iterable and run.is_distributed:
                ran_dry = self._agree_ran_dry(stream, ran_dry)
            if not ran_dry:
                break
            slot = run.schedule.mark_exhausted(slot.loader_idx)
            if slot is None:
                return None
        batch = self._move_batch(batch)  # NOTE [device prefetch]; nothing on CPU
        indices = stream.sample_indices(slot.pass_idx, slot.batch_idx)
        run.fingerprint.update(slot.loader_idx, slot.pass_idx, slot.batch_idx, indices)
        return slot, batch, indices

    def _agree_ran_dry(self, stream: LoaderStream, ran_dry: bool) -> bool:
        """An iterable loader ends its pass on every rank as soon as it runs dry on one (one
        small all-reduce per batch of an iterable loader); the others drop the batch they got."""
        agreed = bool(self._dist.reduce_max(int(ran_dry)))
        if agreed and not ran_dry:
            logger.warning(
                "train loader '%s' ran dry on another rank: rank %d drops the rest of its pass "
                "(give every rank an equal shard to use all its data)",
                stream.name,
                self._dist.rank,
            )
        return agreed

    def _optimizer_step(self, run: Run, loader_idx: int) -> None:
        opt_idx = run.optimizer_ids[loader_idx]
        t0 = time.perf_counter()
        if not run.is_window_synced:  # a window cut short ran without gradient sync
            self._sharding.finish_partial_window(self._module)
        if not self._stepper.step(
            opt_idx,
            self.global_step + 1,
            self._guard,
            before_step=lambda: self._hooks.call("on_before_optimizer_step", self, opt_idx),
            after_clip=lambda norm: self._hooks.call("on_gradient_clip", self, opt_idx, norm),
        ):
            self.skipped_nonfinite += 1
        run.window_size, run.is_window_synced = 0, False
        self.global_step += 1
        self._hooks.call("on_after_optimizer_step", self, opt_idx)
        run.trace.at_step(self.global_step)
        self._profiler.sync()
        self._profiler.record_optimizer(loader_idx, time.perf_counter() - t0)

    def _after_optimizer_step(self, run: Run, loader_idx: int) -> FitStatus | None:
        self._optimizer_step(run, loader_idx)
        step = self.global_step
        metrics: dict[str, float] = {}
        every_n = self.config.log_loss_every_n_steps
        log_step_metrics = _is_due(step, every_n) or (every_n is not None and run.steps_done(step))
        if log_step_metrics:
            metrics.update(self._train_metrics(run))
        if _is_due(step, self.config.logging.log_scalars_every_n_steps):
            metrics.update(self._profiler.pop_train_means())
        validation = self.config.validation
        if (
            validation.frequency == ValidationFrequency.EVERY_N_STEPS
            and step % validation.every_n_steps == 0
        ):
            metrics.update(self._validate(run))
        self._log(metrics)
        if self._progress is not None and log_step_metrics:
            self._progress.update(run.schedule_position(), self._last_metrics)
        return self._boundary_decisions(run, metrics, epoch_end=False)

    def _end_epoch(self, run: Run) -> FitStatus | None:
        if run.window_size:
            status = self._after_optimizer_step(run, run.last_loader)
            if status is not None:
                return status
        self._stepper.end_epoch()
        completed = self.current_epoch + 1
        loader_cfg = self.config.train_loader_config
        weighted = loader_cfg.sampling_strategy == SamplingStrategy.WEIGHTED
        metrics = (
            loader_shares(run.names, run.schedule.counts(), loader_cfg.dataloader_weights)
            if weighted
            else {}
        )
        metrics.update(self._flush_train_metrics(run))
        if (
            self.config.validation.frequency == ValidationFrequency.PER_EPOCH
            and completed % self.config.validate_every_n_epochs == 0
        ):
            metrics.update(self._validate(run))
        self._log(metrics)
        self._logger.log_text("data_fingerprint", run.fingerprint.hexdigest, self.global_step)
        self._hooks.call("on_epoch_end", self, self.current_epoch, dict(self._last_metrics))
        self.current_epoch = completed
        run.epoch_fresh = True
        # Start the next epoch even after the last one, so a checkpoint written now resumes
        # into a full epoch when the run is continued with a larger max_epochs.
        run.schedule.start_epoch(completed)
        return self._boundary_decisions(run, metrics, epoch_end=True)

    def _boundary_decisions(
        self, run: Run, metrics: dict[str, float], *, epoch_end: bool
    ) -> FitStatus | None:
        """Early stopping, checkpoint triggers and stop requests, agreed by every rank."""
        early_stop = False
        # The monitored metric is logged at the same steps on every rank, reduced over ranks.
        if run.early_stopping.enabled and run.early_stopping.metric in metrics:
            early_stop = bool(self._dist.reduce_max(int(run.early_stopping.update(metrics))))
        request = self._preemption.agreed_request()
        should_save = run.checkpoints.should_save(
            step=self.global_step, epoch_end=epoch_end, epoch=self.current_epoch - epoch_end
        )
        if self.config.checkpoint.save_every_n_minutes:  # wall clocks differ across ranks
            should_save = bool(self._dist.reduce_max(int(should_save)))
        if early_stop:
            self._log(self._flush_train_metrics(run))
            run.stopped_early_under = run.limits()  # saved: a rerun returns at once
        if should_save or request != StopRequest.NONE or early_stop:
            self._save_checkpoint(run, preempted=request == StopRequest.PREEMPT)
        if request != StopRequest.NONE:
            return _STOP_STATUS[request]
        if early_stop:
            logger.info(
                "early stopping: %s did not improve for %d evaluations",
                run.early_stopping.metric,
                run.early_stopping.patience,
            )
            return FitStatus.EARLY_STOPPED
        return None

    # ------------------------------------------------------------------ metrics, validation
    def _flush_train_metrics(self, run: Run) -> dict[str, float]:
        """The training metrics of the steps since the last log (none when it was this step).

        Called at epoch ends and when an early stop ends the run, before the checkpoint of that
        boundary, so the checkpoint holds no pending values that a resumed run would log twice.
        """
        if (
            self.config.log_loss_every_n_steps is None
            or self.global_step <= run.last_train_log_step
        ):
            return {}
        return self._train_metrics(run)

    def _train_metrics(self, run: Run) -> dict[str, float]:
        self._guard.raise_if_bad()  # NOTE [non-finite steps]: read at logging steps
        run.last_train_log_step = self.global_step
        metrics = run.metrics.pop_means(self._dist.reduce_sum)
        now = time.perf_counter()
        samples = sum(self._dist.reduce_sum([float(run.metrics.pop_samples())]))
        metrics["train/samples_per_sec"] = samples / max(now - run.last_log_time, 1e-9)
        metrics["epoch"] = float(self.current_epoch)
        run.last_log_time = now
        for idx, lr in enumerate(self._stepper.learning_rates()):
            metrics[lr_key(idx)] = lr
        if self.skipped_nonfinite or self.config.on_nonfinite_loss == "skip":
            metrics["train/skipped_nonfinite"] = float(self.skipped_nonfinite)
        return metrics

    def _validate(self, run: Run) -> dict[str, float]:
        if not run.val_loaders:
            return {}
        self._hooks.call("on_validation_start", self)
        cfg = self.config
        schedule = build_schedule(
            cfg.val_loader_config, [loader_length(v) for v in run.val_loaders]
        )
        metrics = run_validation(
            self,
            run.val_loaders,
            run.val_names,
            schedule,
            self._validation_step,
            aggregation=cfg.validation.aggregation,
            primary_metric=cfg.validation.primary_metric,
            custom_fn=cfg.validation.resolve_aggregation_fn(),
            reduce_sum=self._dist.reduce_sum,
        )
        profile = self._profiler.pop_val_means()
        if cfg.logging.log_scalars_every_n_steps is not None:  # None: profiling metrics off
            metrics.update(profile)
        self._hooks.call("on_validation_end", self, metrics)
        return metrics

    def _log(self, metrics: dict[str, float]) -> None:
        if metrics:
            self._logger.log_scalars(metrics, self.global_step)
            self._last_metrics.update(metrics)
            if self._run is not None:
                self._run.monitored_check.check(metrics, self._last_metrics)

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self, run: Run, *, preempted: bool) -> None:
        """Write a checkpoint; a collective: every rank calls it at the same boundary.

        NOTE [same decisions]: every rank records the save (step and rank 0's path), so the
        decisions that depend on it (the final save in ``_finish``) are the same on every rank;
        rank 0's write error reaches every rank through the one gather that ends the save.
        """
        self._guard.raise_if_bad()  # never persist a non-finite step
        payload = self._build_payload(run)
        self._hooks.call("on_checkpoint_save", self, payload)
        outcomes = self._dist.all_ranks_call(
            lambda: self._write_checkpoint(run, payload, preempted)
        )
        run.checkpoint_path, requeued = outcomes[0]
        if requeued:
            self._preemption.note_requeued()
        run.last_saved_step = self.global_step

    def _write_checkpoint(
        self, run: Run, payload: dict[str, Any], preempted: bool
    ) -> tuple[Path | None, bool]:
        """Rank 0 writes (and on preemption waits for the file and requeues); other ranks only
        restart their save timer, or write their shards when the format is sharded (FSDP).
        Returns the checkpoint written (None on other ranks) and whether the job was requeued."""
        started = time.monotonic()
        path = run.checkpoints.save(
            payload, epoch=self.current_epoch, step=self.global_step, metrics=self._last_metrics
        )
        if preempted:
            run.checkpoints.wait()
            elapsed = time.monotonic() - started
            if self._preemption.checkpoint_deadline_exceeded(elapsed):
                logger.warning(
                    "preemption checkpoint took %.1f s, over preemption.max_checkpoint_sec", elapsed
                )
            if self._dist.is_rank_zero:
                return path, self._preemption.requeue_if_under_slurm()
        return path, False

    def _build_payload(self, run: Run) -> dict[str, Any]:
        counters = LoopCounters(
            self.global_step, self.current_epoch, self.skipped_nonfinite, self._last_metrics
        )
        return build_payload(self._parts(), run, counters, run.config_record)

    # ------------------------------------------------------------------ finishing
    def _finish(self, run: Run, status: FitStatus) -> FitResult:
        if status == FitStatus.COMPLETED and run.last_saved_step != self.global_step:
            self._save_checkpoint(run, preempted=False)
        self._dist.all_ranks_call(run.checkpoints.wait)  # an async save's error reaches all
        summary = self._profiler.summary() if self.global_step > run.start_step else ""
        if summary and self._dist.is_rank_zero:
            logger.info("%s", summary)
        return FitResult(
            status=status,
            global_step=self.global_step,
            epoch=self.current_epoch,
            metrics=dict(self._last_metrics),
            checkpoint_path=run.checkpoint_path,
            data_fingerprint=run.fingerprint.hexdigest,
        )

    def _close(self) -> None:
        if self._progress is not None:
            self._progress.close()
        if self._run is not None:
            self._run.trace.close(self.global_step)
            for stream in self._run.streams:
                stream.close()
            if self._run.checkpoints is not None:
                self._run.checkpoints.wait()
        self._logger.close()
        self._logger = NullLogger()
        self._run = None
        self._forward_model = self._module
        self._sharding.release(self._dist)

    def _start_progress(self, run: Run) -> None:
        if self._progress is not None:
            self._progress.start(
                run.schedule.epoch_length(),
                self.current_epoch,
                initial_batch=run.schedule_position(),
            )


def _is_due(step: int, every_n_steps: int | None) -> bool:
    """Whether an interval of ``every_n_steps`` steps ends at ``step`` (None: never)."""
    return every_n_steps is not None and step % every_n_steps == 0


def _checked_config(config: Any) -> GenericTrainerConfig:
    if not isinstance(config, GenericTrainerConfig):
        raise TypeError(f"config must be a GenericTrainerConfig, got {type(config).__name__}")
    if config.train_loader_config is None:
        raise ConfigError(
            "MultiDataLoaderConfig not provided: GenericTrainerConfig.train_loader_config is "
            "required, even for one loader: GenericTrainerConfig(train_loader_config="
            "MultiDataLoaderConfig(sampling_strategy=SamplingStrategy.SEQUENTIAL, "
            "dataloader_names=['main']))"
        )
    return config


def _plain_config(config: GenericTrainerConfig) -> dict[str, Any]:
    try:
        return config.to_dict()
    except ConfigError as err:  # e.g. a lambda as validation.aggregation_fn
        logger.warning("config is not fully serialisable (%s); storing its repr", err)
        return {"repr": repr(config)}
