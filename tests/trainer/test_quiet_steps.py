"""Boundaries between periodic events: skipped work, same decisions (NOTE [quiet steps])."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    TrainerHooks,
    ValidationFrequency,
)


def _loader(n: int, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    data = TensorDataset(torch.randn(n, 3, generator=g), torch.randn(n, 1, generator=g))
    return DataLoader(data, batch_size=2)


def _step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    x, y = batch
    return {"loss": torch.nn.functional.mse_loss(trainer.model(x), y)}


def _trainer(tmp_path: Path, **changes) -> GenericTrainer:
    cfg = GenericTrainerConfig(
        experiment_name="q",
        seed=0,
        train_loader_config=MultiDataLoaderConfig(),
        checkpoint={"root_dir": str(tmp_path), "save_every_n_steps": 7, "max_checkpoints": 10},
        log_loss_every_n_steps=3,
        logging={"log_scalars_every_n_steps": 5},
        validation={"frequency": ValidationFrequency.EVERY_N_STEPS, "every_n_steps": 4},
        **changes,
    )
    model = torch.nn.Linear(3, 1)
    trainer = GenericTrainer(cfg, model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    trainer.set_training_step(_step)
    trainer.set_validation_step(_step)
    return trainer


def _steps_with(rows: list[dict], prefix: str) -> list[int]:
    return [row["step"] for row in rows if any(key.startswith(prefix) for key in row)]


def test_every_periodic_event_falls_on_its_step(tmp_path):
    result = _trainer(tmp_path).fit([_loader(200)], val_loaders=[_loader(4, 1)], max_steps=22)
    assert result.global_step == 22
    run_dir = tmp_path / "q"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert _steps_with(rows, "train/loss") == [3, 6, 9, 12, 15, 18, 21, 22]
    # the last step flushes the profiling means of its partial window, like the train loss
    assert _steps_with(rows, "profile/train/") == [5, 10, 15, 20, 22]
    assert _steps_with(rows, "val/") == [4, 8, 12, 16, 20]
    saved = sorted(int(p.stem.rsplit("_", 1)[1]) for p in run_dir.glob("epoch_*_step_*.ckpt"))
    assert saved == [7, 14, 21, 22]


class _SignalAt(TrainerHooks):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_after_optimizer_step(self, trainer, optimizer_idx):
        if trainer.global_step == self.step:
            signal.raise_signal(signal.SIGUSR1)


def test_a_stop_signal_between_periodic_events_stops_at_that_step(tmp_path):
    trainer = _trainer(tmp_path)
    trainer.add_hook(_SignalAt(11))  # no event is due at step 11
    result = trainer.fit([_loader(200)], max_steps=22)
    assert result.status.value == "preempted"
    assert result.global_step == 11
    assert result.checkpoint_path is not None and "step_11" in Path(result.checkpoint_path).name
