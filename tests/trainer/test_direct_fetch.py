"""A map-style stream read in this process takes its batches from the iterator's fetch directly
(NOTE [direct fetch]): the same batches as through ``next``, and the profiler still sees them."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.trainer.data.streams import LoaderStream


def _stream(**loader_kwargs):
    data = TensorDataset(torch.arange(40.0).reshape(20, 2))
    return LoaderStream(DataLoader(data, batch_size=3, shuffle=True, **loader_kwargs), 0, "a", 7)


def _pass(stream, pass_idx, start=0):
    batches = []
    try:
        for batch_idx in range(start, 100):
            batches.append(stream.fetch(pass_idx, batch_idx)[0])
    except StopIteration:
        pass
    return batches


def test_direct_reads_give_the_batches_next_gives():
    direct = _stream()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]):
        through_next = _pass(_stream(), 1)
    read = _pass(direct, 1)
    assert direct._reads_directly
    assert len(read) == 7  # 20 samples in batches of 3, the last one short
    assert all(torch.equal(a, b) for a, b in zip(read, through_next, strict=True))


def test_a_pass_opened_mid_way_and_the_next_pass_read_directly_as_well():
    stream, reference = _stream(), _stream()
    full = _pass(reference, 0) + _pass(reference, 1)
    assert all(torch.equal(a, b) for a, b in zip(_pass(stream, 0, start=4), full[4:7], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(_pass(stream, 1), full[7:], strict=True))


def test_the_torch_profiler_still_sees_the_dataloader_range():
    stream = _stream()
    stream.fetch(0, 0)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        stream.fetch(0, 1)
    assert any("DataLoader" in event.name for event in prof.events())
