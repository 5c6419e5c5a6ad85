"""The failures ``ddp_worker.py --fail WHERE:RANK:STEP`` injects on one rank: in the training
step (``step``), the validation step (``val``), a hook (``hook``: after an optimizer step;
``train_start``, ``epoch_end``, ``val_end``, ``train_end``), the loader (``loader``, also in
DataLoader workers with ``--workers``; ``FaultyDataset``) or rank 0's save (``FaultHooks``)."""

from __future__ import annotations

import torch.distributed as dist
from torch.utils.data import TensorDataset

from model_training_framework.trainer import GenericTrainer, TrainerHooks


class InjectedFailure(ValueError):
    """The error ``--fail`` raises."""


class Fault:
    """``--fail WHERE:RANK:STEP``: raise on one rank once ``global_step`` reaches STEP."""

    def __init__(self, spec: str | None, rank: int) -> None:
        where, fail_rank, step = (spec or "none:-1:0").split(":")
        self.where, self.step, self.armed = where, int(step), int(fail_rank) == rank
        self.trainer: GenericTrainer | None = None

    def due(self, where: str) -> bool:
        return (
            self.armed
            and self.where == where
            and self.trainer is not None
            and self.trainer.global_step >= self.step
        )

    def check(self, where: str) -> None:
        if self.due(where):
            raise InjectedFailure(f"injected failure in the {where} at step {self.step}")


class FaultHooks(TrainerHooks):
    """The hook and save faults: a hook that raises, a payload rank 0 cannot write."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault

    def on_train_start(self, trainer):
        if dist.is_initialized():  # which backend the trainer's process group runs on
            print(f"BACKEND {dist.get_backend()} world {dist.get_world_size()}", flush=True)

        self.fault.check("train_start")

    def on_after_optimizer_step(self, trainer, optimizer_idx):
        self.fault.check("hook")

    def on_epoch_end(self, trainer, epoch, metrics):
        self.fault.check("epoch_end")

    def on_validation_end(self, trainer, *args):
        self.fault.check("val_end")

    def on_train_end(self, trainer, *args):
        self.fault.check("train_end")

    def on_checkpoint_save(self, trainer, payload):
        if self.fault.due("save"):
            payload["unwritable"] = object()  # CheckpointManager.save raises on rank 0


class FaultyDataset(TensorDataset):
    """Raises in ``__getitem__`` once the fault is due (the loader fault)."""

    fault: Fault | None = None

    def __getitem__(self, index):
        if self.fault is not None:
            self.fault.check("loader")
        return super().__getitem__(index)


class ReweighOnce(TrainerHooks):
    """``--reweigh-on-rank0``: new WEIGHTED loader weights after optimizer step ``step``
    (added on one rank only: a user mistake that makes the ranks' schedules differ)."""

    def __init__(self, step: int, weights: list[float]) -> None:
        self.step, self.weights = step, weights

    def on_after_optimizer_step(self, trainer, optimizer_idx):
        if trainer.global_step == self.step:
            trainer.update_loader_weights(self.weights)
