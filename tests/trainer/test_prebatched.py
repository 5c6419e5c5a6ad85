"""Pre-batched datasets (`DataLoader(dataset, batch_size=None)`): every item is a whole batch.

For a map-style dataset the item's index is the position: resume slices the (shuffled) item
order like any other, so it is exact without replay and the data fingerprint names the items.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from model_training_framework.trainer import SamplingStrategy

from .resume_utils import (
    RunSpec,
    assert_resumes_exactly,
    basic_config,
    indexed_dataset,
    make_trainer,
    small_model,
)


class Blocks(Dataset):
    """Item ``i`` is the block of rows ``starts[i]:starts[i + 1]`` of an indexed dataset (the
    last block may be shorter), as WebDataset shards or token blocks would be."""

    def __init__(self, num_rows: int, block: int, seed: int, *, augment: bool = False) -> None:
        self.x, self.y, self.idx = indexed_dataset(num_rows, seed=seed).tensors
        self.starts = [*range(0, num_rows, block), num_rows]
        self.augment = augment

    def __len__(self) -> int:
        return len(self.starts) - 1

    def __getitem__(self, i: int):
        rows = slice(self.starts[i], self.starts[i + 1])
        x = self.x[rows]
        if self.augment:  # random augmentation: must not depend on where a run resumed
            x = x + 0.01 * torch.randn(x.shape) + random.random()
        return x, self.y[rows], self.idx[rows]


def _prebatched_run(*, num_workers: int = 0, shuffle: bool = True):
    def make(root: Path, name: str) -> RunSpec:
        config = basic_config(
            root, name, sampling_strategy=SamplingStrategy.ROUND_ROBIN, dataloader_names=["a", "b"]
        )
        loaders = [
            DataLoader(
                Blocks(37, 4, seed=1, augment=num_workers > 0),
                batch_size=None,
                shuffle=shuffle,
                num_workers=num_workers,
            ),
            DataLoader(indexed_dataset(23, seed=2), batch_size=4, shuffle=True),
        ]
        val = [DataLoader(Blocks(16, 8, seed=3), batch_size=None)]
        model = small_model()
        return RunSpec(
            config, model, [torch.optim.AdamW(model.parameters(), lr=1e-2)], loaders, val
        )

    return make


@pytest.mark.parametrize("stop_after", [3, 10, 16, 21])
def test_prebatched_map_dataset_resumes_exactly(stop_after, tmp_path):
    assert_resumes_exactly(_prebatched_run(), stop_after, tmp_path)


def test_prebatched_dataset_with_worker_processes_resumes_exactly(tmp_path):
    assert_resumes_exactly(_prebatched_run(num_workers=2), 7, tmp_path)


def test_prebatched_items_are_shuffled_per_pass_and_each_seen_once(tmp_path):
    spec = _prebatched_run()(tmp_path, "order")
    trainer, recorder = make_trainer(spec)
    trainer.fit(spec.train_loaders, max_epochs=2)
    seen = [list(rows) for loader, rows in recorder.seen if loader == 0]
    first, second = seen[:10], seen[10:]  # 10 blocks per pass
    dataset = Blocks(37, 4, seed=1)
    blocks = sorted(dataset[i][2].tolist() for i in range(len(dataset)))
    assert sorted(first) == blocks == sorted(second)
    assert first != second  # a new order in each pass


def test_fingerprint_names_the_items_not_just_their_positions(tmp_path):
    def fingerprint(seed: int) -> str:
        spec = _prebatched_run()(tmp_path / str(seed), "fp")
        spec.config.seed = seed
        trainer, _ = make_trainer(spec)
        return trainer.fit(spec.train_loaders, max_epochs=1).data_fingerprint

    assert fingerprint(1) == fingerprint(1)
    assert fingerprint(1) != fingerprint(2)  # same positions, other items


def test_metrics_of_prebatched_items_count_their_samples(tmp_path):
    """Blocks of 4 and 2 rows: the logged mean weights each block by its rows."""
    config = basic_config(tmp_path, "weights")
    config.log_loss_every_n_steps = 2
    model = small_model()
    trainer, _ = make_trainer(
        RunSpec(config, model, [torch.optim.SGD(model.parameters(), lr=0.0)], [])
    )

    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        x, y, _ = batch
        loss = torch.nn.functional.mse_loss(trainer.model(x), y)
        return {"loss": loss, "rows": float(len(x))}

    trainer.set_training_step(step)
    result = trainer.fit([DataLoader(Blocks(6, 4, seed=0), batch_size=None)], max_epochs=1)
    assert result.metrics["train/rows"] == pytest.approx((4 * 4 + 2 * 2) / 6)
    rows = [json.loads(line) for line in (tmp_path / "weights" / "metrics.jsonl").open()]
    assert any("train/samples_per_sec" in row for row in rows)
