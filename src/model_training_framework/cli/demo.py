"""``mtf demo``: train a small classifier on two loaders on the CPU, with checkpoints and resume.

Data: scikit-learn's bundled handwritten digits (the ``data`` extra) split into two loaders,
"clean" and "noisy" (the same images with Gaussian noise), sampled WEIGHTED 2:1. Without
scikit-learn the demo falls back to a synthetic two-cluster problem. Rerunning the demo resumes
from the run's latest checkpoint; ``--fresh`` starts over.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run_demo"]

EXPERIMENT = "demo"


def _digits() -> tuple[Any, Any, str]:
    import torch

    try:
        from sklearn.datasets import load_digits
    except ImportError:
        generator = torch.Generator().manual_seed(0)
        labels = torch.randint(0, 10, (1797,), generator=generator)
        centers = torch.randn(10, 64, generator=generator)
        features = centers[labels] + 0.8 * torch.randn(1797, 64, generator=generator)
        return (
            features,
            labels,
            "synthetic clusters (install model-training-framework[data] for real digits)",
        )
    digits = load_digits()
    features = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    return features, torch.tensor(digits.target), "scikit-learn digits (1797 images, 8x8)"


def _loaders(batch_size: int) -> tuple[list[Any], list[Any], str]:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    features, labels, source = _digits()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    features, labels = features[order], labels[order]
    split = int(0.8 * len(labels))
    train_x, train_y, val_x, val_y = (
        features[:split],
        labels[:split],
        features[split:],
        labels[split:],
    )
    noisy_x = train_x + 0.3 * torch.randn(train_x.shape, generator=torch.Generator().manual_seed(1))
    train = [
        DataLoader(TensorDataset(train_x, train_y), batch_size=batch_size, shuffle=True),
        DataLoader(TensorDataset(noisy_x, train_y), batch_size=batch_size, shuffle=True),
    ]
    val = [DataLoader(TensorDataset(val_x, val_y), batch_size=256)]
    return train, val, source


def _step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    import torch

    x, y = batch
    logits = trainer.model(x)
    loss = torch.nn.functional.cross_entropy(logits, y)
    accuracy = (logits.argmax(dim=1) == y).float().mean()
    return {"loss": loss, "accuracy": accuracy}


def run_demo(run_root: Path, epochs: int, fresh: bool) -> int:
    """Train (or resume) the demo run under ``run_root/demo``; returns a process exit code."""
    import torch

    from model_training_framework.experiment.exit_codes import exit_code_for
    from model_training_framework.text import counted
    from model_training_framework.trainer.config import (
        CheckpointConfig,
        GenericTrainerConfig,
        MultiDataLoaderConfig,
        SamplingStrategy,
    )
    from model_training_framework.trainer.trainer import GenericTrainer

    run_dir = run_root / EXPERIMENT
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    train, val, source = _loaders(batch_size=32)
    torch.set_num_threads(1)  # a tiny MLP runs fastest on one thread
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(128, 10)
    )
    config = GenericTrainerConfig(
        experiment_name=EXPERIMENT,
        seed=0,
        device="cpu",
        train_loader_config=MultiDataLoaderConfig(
            sampling_strategy=SamplingStrategy.WEIGHTED,
            dataloader_names=["clean", "noisy"],
            dataloader_weights=[2.0, 1.0],
        ),
        val_loader_config=MultiDataLoaderConfig(
            sampling_strategy=SamplingStrategy.SEQUENTIAL,
            dataloader_names=["holdout"],
            cycle_short_loaders=False,
        ),
        checkpoint=CheckpointConfig(root_dir=str(run_root), save_every_n_steps=50),
        log_loss_every_n_steps=30,
    )
    trainer = GenericTrainer(config, model, [torch.optim.AdamW(model.parameters(), lr=3e-3)])
    trainer.set_training_step(_step)
    trainer.set_validation_step(_step)
    log = logging.getLogger("mtf.demo")
    resuming = (run_dir / "latest.ckpt").exists()
    log.info("data: %s", source)
    log.info("%s run in %s", "resuming" if resuming else "starting", run_dir)
    result = trainer.fit(train_loaders=train, val_loaders=val, max_epochs=epochs)
    accuracy = result.metrics.get("val/accuracy")
    log.info(
        "%s after %s, %s; val/accuracy %s",
        result.status.value,
        counted(result.epoch, "epoch"),
        counted(result.global_step, "step"),
        "n/a" if accuracy is None else f"{accuracy:.3f}",
    )
    log.info("checkpoint: %s", result.checkpoint_path)
    log.info("metrics:    %s", run_dir / "metrics.jsonl")
    log.info("plot it:    mtf plot %s", run_dir)
    return exit_code_for(result.status)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``mtf demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="train a small model on two loaders (CPU, < 1 min); rerun to resume",
        description=__doc__,
    )
    parser.add_argument(
        "--run-root",
        type=Path,
        default=Path("runs"),
        help="parent of the run directory (default: ./runs)",
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs to train (default: 3)")
    parser.add_argument("--fresh", action="store_true", help="delete the previous demo run first")
    parser.set_defaults(handler=lambda args: run_demo(args.run_root, args.epochs, args.fresh))
