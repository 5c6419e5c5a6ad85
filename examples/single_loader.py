"""One training loader through the multi-loader API: the smallest complete example.

Even a single DataLoader is passed as a list, the step functions take
``(trainer, batch, batch_idx, dataloader_idx, dataloader_name)``, and the config names the
loader. Run it twice: the second run resumes from the checkpoint of the first and finishes at
once (delete ``runs/single_loader`` or pass ``--fresh`` to start over)::

    python examples/single_loader.py --epochs 3
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.trainer import (
    CheckpointConfig,
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    SamplingStrategy,
)


def make_data(num_samples: int, seed: int) -> TensorDataset:
    """Noisy linear regression: y = x @ w + 0.1 * noise, with 8 features."""
    generator = torch.Generator().manual_seed(seed)
    weights = torch.arange(1.0, 9.0) / 8.0
    inputs = torch.randn(num_samples, 8, generator=generator)
    targets = inputs @ weights + 0.1 * torch.randn(num_samples, generator=generator)
    return TensorDataset(inputs, targets.unsqueeze(1))


def training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    inputs, targets = batch
    loss = torch.nn.functional.mse_loss(trainer.model(inputs), targets)
    return {"loss": loss}


def validation_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    inputs, targets = batch
    return {"loss": torch.nn.functional.mse_loss(trainer.model(inputs), targets)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--run-root", default="runs", help="checkpoint.root_dir")
    parser.add_argument("--fresh", action="store_true", help="delete the previous run first")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # progress and checkpoints
    if args.fresh:
        shutil.rmtree(Path(args.run_root) / "single_loader", ignore_errors=True)

    config = GenericTrainerConfig(
        experiment_name="single_loader",
        seed=0,
        device="cpu",
        train_loader_config=MultiDataLoaderConfig(
            sampling_strategy=SamplingStrategy.SEQUENTIAL,
            dataloader_names=["main"],  # one name for the one loader
        ),
        val_loader_config=MultiDataLoaderConfig(
            sampling_strategy=SamplingStrategy.SEQUENTIAL,
            dataloader_names=["validation"],
        ),
        checkpoint=CheckpointConfig(root_dir=args.run_root),
    )
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    trainer = GenericTrainer(
        config=config,
        model=model,
        optimizers=[torch.optim.SGD(model.parameters(), lr=0.05)],  # a list, even for one
    )
    trainer.set_training_step(training_step)
    trainer.set_validation_step(validation_step)

    result = trainer.fit(
        train_loaders=[DataLoader(make_data(512, seed=1), batch_size=32, shuffle=True)],
        val_loaders=[DataLoader(make_data(128, seed=2), batch_size=64)],
        max_epochs=args.epochs,
    )
    # metrics holds the last logged value of each key (restored from the checkpoint on a rerun)
    val_loss = result.metrics.get("val/loss")
    print(
        f"{result.status.value}: {result.epoch} epochs, {result.global_step} steps, "
        f"val/loss {'n/a' if val_loss is None else f'{val_loss:.4f}'}, "
        f"checkpoint {result.checkpoint_path}"
    )


if __name__ == "__main__":
    main()
