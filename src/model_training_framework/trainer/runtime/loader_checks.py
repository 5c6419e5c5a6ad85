"""Loaders across ranks: does each one shard its data by rank, and does every rank see the same
number of batches (so that every rank follows the same schedule)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch.utils.data import DistributedSampler, IterableDataset

from model_training_framework.trainer.data.user_loaders import loader_length
from model_training_framework.trainer.runtime.distributed import (
    DistributedContext,
    RanksDisagreeError,
)

__all__ = [
    "check_loader_lengths_agree",
    "has_distributed_sampler",
    "loaders_without_distributed_sampler",
    "warn_unsharded_loaders",
]

logger = logging.getLogger(__name__)


def has_distributed_sampler(loader: Any) -> bool:
    """Whether ``loader`` shards its data by rank (a ``DistributedSampler`` or a sampler that
    knows ``num_replicas``, used directly or inside its batch sampler)."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    candidates = [
        getattr(loader, "sampler", None),
        batch_sampler,
        getattr(batch_sampler, "sampler", None),
    ]
    return any(
        isinstance(c, DistributedSampler) or hasattr(c, "num_replicas")
        for c in candidates
        if c is not None
    )


def loaders_without_distributed_sampler(loaders: Iterable[Any], names: Iterable[str]) -> list[str]:
    """Names of the map-style loaders that would give every rank the same samples.

    Iterable datasets are left out: sharding them by rank is up to the dataset.
    """
    return [
        name
        for loader, name in zip(loaders, names, strict=True)
        if not isinstance(getattr(loader, "dataset", None), IterableDataset)
        and not has_distributed_sampler(loader)
    ]


def check_loader_lengths_agree(
    dist_context: DistributedContext,
    loaders: Sequence[Any],
    names: Sequence[str],
    settings: Mapping[str, Any] | None = None,
) -> None:
    """Every rank must see the same number of batches per train loader (same schedule) and
    the same ``settings`` (what else steers the loop: ``fit``'s limits, validation lengths).

    One ``all_gather_object``, once per ``fit``.

    Raises:
        RanksDisagreeError: on every rank, naming the first loader or setting that differs.
    """
    settings = dict(settings or {})
    gathered = dist_context.gather_objects(
        ([loader_length(loader) for loader in loaders], settings)
    )
    for idx, name in enumerate(names):
        per_rank = [rank_lengths[idx] for rank_lengths, _ in gathered]
        if len(set(per_rank)) > 1:
            raise RanksDisagreeError(
                f"train loader '{name}' has different lengths on different ranks ({per_rank}); "
                "every rank must follow the same schedule: use a DistributedSampler (drop_last "
                "or padding) so each rank gets equal batches"
            )
    for key in settings:
        per_rank = [rank_settings[key] for _, rank_settings in gathered]
        if any(value != per_rank[0] for value in per_rank):
            raise RanksDisagreeError(
                f"{key}: not the same on every rank ({per_rank}); every rank must take the same "
                "decisions: call fit() with the same arguments on every rank and give "
                "validation loaders a DistributedSampler so each rank gets equal batches"
            )


def warn_unsharded_loaders(
    dist_context: DistributedContext,
    groups: Sequence[tuple[str, Sequence[Any], Sequence[str]]],
) -> None:
    """On rank 0 of a multi-process run, warn once per loader without a DistributedSampler.

    Args:
        groups: ``(kind, loaders, names)`` triples, e.g. ``("train", loaders, names)``.
    """
    if not (dist_context.is_distributed and dist_context.is_rank_zero):
        return
    for kind, loaders, names in groups:
        for name in loaders_without_distributed_sampler(loaders or [], names):
            logger.warning(
                "%s loader '%s' has no DistributedSampler: each of the %d ranks sees all its "
                "samples; pass sampler=DistributedSampler(dataset) to shard it by rank",
                kind,
                name,
                dist_context.world_size,
            )
