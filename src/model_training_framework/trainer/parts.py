"""The trainer's components that live across fits, built once from the config.

``GenericTrainer`` builds them in its constructor (so users can build ``DistributedSampler``s
before ``fit``, and FSDP2 can shard the model); the training step, the fit loop and the
checkpoint registry receive them as one ``TrainerParts``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from model_training_framework.trainer.config import GenericTrainerConfig
from model_training_framework.trainer.data.devices import build_batch_mover
from model_training_framework.trainer.hooks import HookDispatcher
from model_training_framework.trainer.optim.precision import Precision, build_precision
from model_training_framework.trainer.optim.stepper import OptimizerStepper, parse_schedulers
from model_training_framework.trainer.runtime.distributed import DistributedContext
from model_training_framework.trainer.runtime.sharding import (
    ShardingStrategy,
    build_strategy,
    needs_process_group,
)

__all__ = ["TrainerParts", "build_parts"]


@dataclass(frozen=True)
class TrainerParts:
    """The trainer's components that live across fits (a checkpoint holds their state).

    Attributes:
        dist: the process group and its collectives.
        device: where the model and the batches go.
        module: the user's module, on ``device`` (never wrapped).
        sharding: DDP or FSDP2 (wraps the module for a fit, owns the tensor states).
        precision: autocast and the GradScaler, or full precision.
        stepper: steps one optimizer per window, clipping and schedulers.
        hooks: the registered hooks.
        move_batch: moves a batch to ``device``.
    """

    dist: DistributedContext
    device: torch.device
    module: torch.nn.Module
    sharding: ShardingStrategy
    precision: Precision
    stepper: OptimizerStepper
    hooks: HookDispatcher
    move_batch: Callable[[Any], Any]


def build_parts(
    config: GenericTrainerConfig,
    model: torch.nn.Module,
    optimizers: Sequence[torch.optim.Optimizer],
    schedulers: Sequence[Any] | None,
) -> TrainerParts:
    """Set up the process group, move the model to its device, let the sharding strategy
    prepare it, and build precision, optimizer stepper and the config's hooks.

    Raises:
        TypeError, ValueError: bad ``schedulers`` (see ``parse_schedulers``).
        ConfigError: a built-in hook's settings conflict with the config.
    """
    dist = DistributedContext.from_environment()
    device = dist.device_for(config.device)
    is_sharded = needs_process_group(config.distributed.strategy)
    dist.setup(device, single_process=is_sharded)
    module = model.to(device)
    move_batch = build_batch_mover(device)
    sharding = build_strategy(config.distributed, dist, device)
    sharding.prepare(module, optimizers)
    perf = config.performance
    precision = build_precision(perf.use_amp, perf.amp_dtype, device, is_sharded=is_sharded)
    stepper = OptimizerStepper(
        optimizers,
        parse_schedulers(schedulers, optimizers),
        precision,
        module,
        perf.clip_grad_norm,
        check_every_step=config.check_nonfinite_gradients or config.on_nonfinite_loss == "skip",
    )
    hooks = HookDispatcher.from_config(config.hooks)
    for hook in hooks.hooks:
        hook.configure(config)
    return TrainerParts(dist, device, module, sharding, precision, stepper, hooks, move_batch)
