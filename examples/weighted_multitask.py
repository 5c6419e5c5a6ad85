"""Two tasks, two loaders, two optimizers: WEIGHTED sampling and aggregated validation.

A shared encoder feeds a regression head (task "reg") and a classification head (task "cls").
The training loaders are sampled 3:1 with the WEIGHTED strategy (every prefix of an epoch stays
within one batch of that ratio), each loader's batches are stepped by its own optimizer
(``per_loader_optimizer_id``), the classification loss is scaled by ``loss_weights_per_loader``,
and validation averages the two tasks' losses with equal weight (MACRO_AVG_EQUAL_LOADERS), so
``val/loss`` does not favour the task with more validation samples::

    python examples/weighted_multitask.py --epochs 2
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter

import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.trainer import (
    CheckpointConfig,
    EpochLengthPolicy,
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    SamplingStrategy,
    TrainerHooks,
    ValAggregation,
    ValidationConfig,
)


class MultiTaskModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU())
        self.heads = torch.nn.ModuleDict(
            {"reg": torch.nn.Linear(32, 1), "cls": torch.nn.Linear(32, 3)}
        )

    def forward(self, inputs: torch.Tensor, task: str) -> torch.Tensor:
        return self.heads[task](self.encoder(inputs))


def regression_data(num_samples: int, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(num_samples, 6, generator=generator)
    return TensorDataset(inputs, inputs.sum(dim=1, keepdim=True))


def classification_data(num_samples: int, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(num_samples, 6, generator=generator)
    return TensorDataset(inputs, (inputs[:, 0] > 0).long() + (inputs[:, 1] > 1).long())


def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    inputs, targets = batch
    outputs = trainer.model(inputs, dataloader_name)  # the loader name picks the head
    if dataloader_name == "reg":
        return {"loss": torch.nn.functional.mse_loss(outputs, targets)}
    accuracy = (outputs.argmax(dim=1) == targets).float().mean()
    return {"loss": torch.nn.functional.cross_entropy(outputs, targets), "accuracy": accuracy}


class CountBatches(TrainerHooks):
    """Counts how many training batches each loader gave (to show the 3:1 ratio)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def on_train_batch_end(
        self, trainer, batch, batch_idx, dataloader_idx, dataloader_name, outputs
    ):
        self.counts[dataloader_name] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--run-root", default="runs", help="checkpoint.root_dir")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # progress and checkpoints

    config = GenericTrainerConfig(
        experiment_name="weighted_multitask",
        seed=0,
        device="cpu",
        train_loader_config=MultiDataLoaderConfig(
            sampling_strategy=SamplingStrategy.WEIGHTED,
            dataloader_names=["reg", "cls"],
            dataloader_weights=[3.0, 1.0],
            epoch_length_policy=EpochLengthPolicy.FIXED_NUM_STEPS,
            steps_per_epoch=40,
        ),
        val_loader_config=MultiDataLoaderConfig(
            sampling_strategy=SamplingStrategy.SEQUENTIAL,
            dataloader_names=["reg", "cls"],
            cycle_short_loaders=False,
        ),
        validation=ValidationConfig(aggregation=ValAggregation.MACRO_AVG_EQUAL_LOADERS),
        per_loader_optimizer_id=[0, 1],  # loader "reg" -> optimizer 0, "cls" -> optimizer 1
        loss_weights_per_loader=[1.0, 0.5],
        checkpoint=CheckpointConfig(root_dir=args.run_root),
        preemption={"resume_from_latest_symlink": False},  # always start fresh in this demo
    )
    torch.manual_seed(0)
    model = MultiTaskModel()
    optimizers = [
        torch.optim.Adam([*model.encoder.parameters(), *model.heads["reg"].parameters()], lr=1e-2),
        torch.optim.Adam([*model.encoder.parameters(), *model.heads["cls"].parameters()], lr=1e-2),
    ]
    trainer = GenericTrainer(config, model, optimizers)
    trainer.set_training_step(step)
    trainer.set_validation_step(step)
    counter = CountBatches()
    trainer.add_hook(counter)

    result = trainer.fit(
        train_loaders=[
            DataLoader(regression_data(1024, seed=1), batch_size=16, shuffle=True),
            DataLoader(classification_data(1024, seed=2), batch_size=16, shuffle=True),
        ],
        val_loaders=[
            DataLoader(regression_data(256, seed=3), batch_size=128),
            DataLoader(classification_data(64, seed=4), batch_size=32),
        ],
        max_epochs=args.epochs,
    )
    metrics = result.metrics
    print(f"batches per loader: {dict(counter.counts)}")
    print(
        f"{result.status.value} after {result.global_step} steps: val/loss {metrics['val/loss']:.4f} "
        f"(reg {metrics['val/dl_reg/loss']:.4f}, cls {metrics['val/dl_cls/loss']:.4f}, "
        f"cls accuracy {metrics['val/dl_cls/accuracy']:.3f})"
    )


if __name__ == "__main__":
    main()
