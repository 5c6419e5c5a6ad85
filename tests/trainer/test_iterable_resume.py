"""A stateful iterable dataset resumed right after its pass ended inside a batch.

DataLoader reads an IterableDataset item by item; when the items end in the middle of a batch
it returns the short batch and only the *next* fetch raises StopIteration. The dataset itself
already moved on (here: to its next pass) when its generator ended, so a checkpoint taken
between the two holds a dataset state past the end of the pass the trainer still reads.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from model_training_framework.trainer import EpochLengthPolicy
from model_training_framework.trainer.data.streams import _source_ended

from .fit_helpers import make_config, make_loader, make_trainer, mse_step


class _Passes(IterableDataset):
    """Five items per pass, values ``100 * pass + position``; (pass, offset) is its state."""

    def __init__(self) -> None:
        self.pass_idx, self.offset = 0, 0

    def __iter__(self):
        while self.offset < 5:
            value = 100 * self.pass_idx + self.offset
            self.offset += 1
            yield torch.full((3,), value / 1000), torch.zeros(1)
        self.pass_idx, self.offset = self.pass_idx + 1, 0

    def state_dict(self):
        return {"pass_idx": self.pass_idx, "offset": self.offset}

    def load_state_dict(self, state):
        self.pass_idx, self.offset = state["pass_idx"], state["offset"]


def _fit(tmp_path, name, seen, *, cycle, max_steps=None):
    loader_cfg = {
        "epoch_length_policy": EpochLengthPolicy.FIXED_NUM_STEPS,
        "steps_per_epoch": 4,
        "cycle_short_loaders": cycle,
    }

    def step(trainer, batch, batch_idx, *rest):
        seen.append((batch_idx, round(float(batch[0][0, 0]) * 1000)))
        return mse_step(trainer, batch, batch_idx, *rest)

    torch.manual_seed(0)
    trainer = make_trainer(make_config(tmp_path, name=name, loader=loader_cfg), step=step)
    return trainer.fit([DataLoader(_Passes(), batch_size=2)], max_epochs=3, max_steps=max_steps)


@pytest.mark.parametrize("cycle", [True, False], ids=["cycle", "no_cycle"])
def test_a_resume_just_after_a_short_last_batch_ends_that_pass_as_the_full_run_does(
    tmp_path, cycle
):
    # The old code reopened the pass at batch 3 and read the dataset's next pass as if it
    # were the rest of pass 0: batch_idx 3 instead of 0, another fingerprint and, without
    # cycling, batches that the uninterrupted run never trained on.
    full_seen, split_seen = [], []
    full = _fit(tmp_path, "full", full_seen, cycle=cycle)
    first = _fit(tmp_path, "split", split_seen, cycle=cycle, max_steps=3)  # ends at item 4
    assert first.global_step == 3 and split_seen[-1] == (2, 4)
    resumed = _fit(tmp_path, "split", split_seen, cycle=cycle)
    assert split_seen == full_seen
    assert resumed.global_step == full.global_step
    assert resumed.data_fingerprint == full.data_fingerprint
    model_full = torch.load(tmp_path / "full" / "latest.ckpt", weights_only=True)["model"]
    model_split = torch.load(tmp_path / "split" / "latest.ckpt", weights_only=True)["model"]
    for key, value in model_full.items():
        assert torch.equal(value, model_split[key]), key


def _fit_beside_a_map_loader(tmp_path, name, seen, max_steps=None):
    """SEQUENTIAL, 4 batches an epoch: two of a map-style loader, then two of the stream."""
    loader_cfg = {
        "sampling_strategy": "sequential",
        "epoch_length_policy": EpochLengthPolicy.FIXED_NUM_STEPS,
        "steps_per_epoch": 4,
    }

    def step(trainer, batch, batch_idx, dataloader_idx, *rest):
        seen.append((dataloader_idx, batch_idx, round(float(batch[0][0, 0]) * 1000)))
        return mse_step(trainer, batch, batch_idx, dataloader_idx, *rest)

    torch.manual_seed(0)
    trainer = make_trainer(make_config(tmp_path, name=name, loader=loader_cfg), step=step)
    loaders = [make_loader(8, 1, batch_size=2), DataLoader(_Passes(), batch_size=2)]
    return trainer.fit(loaders, max_epochs=3, max_steps=max_steps)


def test_a_checkpoint_saved_before_the_resumed_stream_is_read_again_keeps_its_position(tmp_path):
    # The old code saved the dataset's live state, which a resumed stream only loads at its
    # first fetch: a checkpoint written before that fetch held a fresh dataset (offset 0), and
    # the run resumed from it read items 0 and 1 again instead of item 4.
    full_seen, split_seen = [], []
    full = _fit_beside_a_map_loader(tmp_path, "full", full_seen)
    _fit_beside_a_map_loader(tmp_path, "split", split_seen, max_steps=4)  # stream at item 4
    _fit_beside_a_map_loader(tmp_path, "split", split_seen, max_steps=6)  # map loader only
    resumed = _fit_beside_a_map_loader(tmp_path, "split", split_seen)
    assert split_seen == full_seen
    assert resumed.data_fingerprint == full.data_fingerprint


def test_the_installed_torch_still_says_when_a_pass_ended_inside_a_batch():
    """The fix above reads DataLoader's private ``_dataset_fetcher.ended``; without it, the
    stream silently falls back to 'not ended'. This pins it for the installed torch, so an
    upgrade that drops it fails here instead of resuming such passes wrongly again."""
    iterator = iter(DataLoader(_Passes(), batch_size=2))
    assert not _source_ended(iterator)
    batches = [next(iterator), next(iterator), next(iterator)]
    assert [len(batch[0]) for batch in batches] == [2, 2, 1]
    assert _source_ended(iterator)
