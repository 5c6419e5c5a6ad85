"""`mtf status` also lists runs started from Python (checkpoints but no status.json)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.cli.main import main
from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
)


def test_status_reads_epoch_and_step_from_the_latest_checkpoint(tmp_path, capsys):
    model = torch.nn.Linear(2, 1)
    config = GenericTrainerConfig(
        experiment_name="api_run",
        train_loader_config=MultiDataLoaderConfig(),
        checkpoint={"root_dir": str(tmp_path / "runs")},
        log_loss_every_n_steps=1,
    )
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    trainer.set_training_step(
        lambda t, batch, *a: {"loss": torch.nn.functional.mse_loss(t.model(batch[0]), batch[1])}
    )
    data = TensorDataset(torch.randn(8, 2), torch.randn(8, 1))
    trainer.fit([DataLoader(data, batch_size=4)], max_epochs=2)
    capsys.readouterr()

    assert main(["status", str(tmp_path / "runs")]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[:4] == ["api_run", "checkpointed", "2", "4"]
    assert row[4].startswith("train/loss=")
