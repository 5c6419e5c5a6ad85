"""Model, data and step functions of the production example, named by dotted paths in
``experiment.yaml`` (``components.build_model``, ...).

The task: classify points of two interleaved spirals. Two training loaders give the same task
two ways: ``clean`` points and ``jittered`` points (Gaussian noise added); validation uses a
held-out clean set. Everything is generated from a seed, so the example needs no downloads.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import TensorDataset

__all__ = ["build_model", "spirals", "training_step", "validation_step"]


def build_model(hidden: int = 32, depth: int = 2, dropout: float = 0.0) -> torch.nn.Module:
    """An MLP from 2-d points to 2 classes.

    Args:
        hidden: width of each hidden layer.
        depth: number of hidden layers (>= 1).
        dropout: dropout probability after each hidden layer.

    Returns:
        The model.
    """
    layers: list[torch.nn.Module] = []
    width = 2
    for _ in range(depth):
        layers += [torch.nn.Linear(width, hidden), torch.nn.ReLU(), torch.nn.Dropout(dropout)]
        width = hidden
    layers.append(torch.nn.Linear(width, 2))
    return torch.nn.Sequential(*layers)


def spirals(num_points: int = 512, noise: float = 0.0, seed: int = 0) -> TensorDataset:
    """Two interleaved spirals, ``num_points`` points in total, labels 0 and 1.

    Args:
        num_points: dataset size.
        noise: standard deviation of Gaussian noise added to each coordinate.
        seed: generator seed (different seeds give different samples of the same task).

    Returns:
        A ``TensorDataset`` of (point, label).
    """
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_points) % 2
    radius = torch.rand(num_points, generator=generator) * 3.0 + 0.25
    angle = radius * 2.5 + labels * math.pi
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    points = points + noise * torch.randn(points.shape, generator=generator)
    return TensorDataset(points, labels)


def training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    """Cross-entropy loss and accuracy of one batch."""
    points, labels = batch
    logits = trainer.model(points)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    accuracy = (logits.argmax(dim=1) == labels).float().mean()
    return {"loss": loss, "accuracy": accuracy}


def validation_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    """The same metrics on validation data (the trainer runs this under ``torch.no_grad``)."""
    return training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name)
