"""The data-order fingerprint: order-sensitive, resumable at any batch, pinned format."""

from __future__ import annotations

import json

import pytest

from model_training_framework.trainer.data.fingerprint import (
    FOLD_EVERY,
    DataFingerprint,
    NullFingerprint,
)


def _feed(fp: DataFingerprint, batches) -> DataFingerprint:
    for loader, pass_idx, batch_idx, indices in batches:
        fp.update(loader, pass_idx, batch_idx, indices)
    return fp


BATCHES = [(i % 3, i // 50, i % 50, [i, i + 1, 2 * i]) for i in range(3 * FOLD_EVERY + 7)]


def test_same_batches_same_fingerprint_and_order_matters():
    a = _feed(DataFingerprint(), BATCHES).hexdigest
    assert a == _feed(DataFingerprint(), BATCHES).hexdigest
    swapped = [BATCHES[1], BATCHES[0], *BATCHES[2:]]
    assert a != _feed(DataFingerprint(), swapped).hexdigest
    other_indices = [*BATCHES[:-1], (*BATCHES[-1][:3], [0, 1, 3])]
    assert a != _feed(DataFingerprint(), other_indices).hexdigest


@pytest.mark.parametrize(
    "stop", [0, 1, FOLD_EVERY - 1, FOLD_EVERY, FOLD_EVERY + 1, len(BATCHES) - 1]
)
def test_restoring_at_any_batch_gives_the_uninterrupted_fingerprint(stop):
    full = _feed(DataFingerprint(), BATCHES).hexdigest
    first = _feed(DataFingerprint(), BATCHES[:stop])
    resumed = DataFingerprint()
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert _feed(resumed, BATCHES[stop:]).hexdigest == full


@pytest.mark.parametrize("read_at", [1, FOLD_EVERY - 1, FOLD_EVERY, FOLD_EVERY + 3])
def test_reading_the_fingerprint_midway_changes_nothing(read_at):
    # NOTE [deferred records]: a read writes the kept records; the folds stay where they were
    full = _feed(DataFingerprint(), BATCHES).hexdigest
    read = _feed(DataFingerprint(), BATCHES[:read_at])
    assert read.hexdigest == _feed(DataFingerprint(), BATCHES[:read_at]).hexdigest
    read.state_dict()
    assert _feed(read, BATCHES[read_at:]).hexdigest == full


def test_records_appended_directly_give_the_fingerprint_of_update():
    # the training step appends to .records and writes them at FOLD_EVERY (no call per batch)
    direct = DataFingerprint()
    for record in BATCHES:
        direct.records.append(record)
        if len(direct.records) >= FOLD_EVERY:
            direct.write_records()
    assert direct.hexdigest == _feed(DataFingerprint(), BATCHES).hexdigest


def test_null_fingerprint_drops_appended_records():
    null = NullFingerprint()
    null.records.extend(BATCHES[:3])
    null.write_records()
    assert null.records == [] and null.hexdigest == NullFingerprint().hexdigest


def test_fingerprint_format_is_pinned():
    # A change to the record layout or folding changes every stored fingerprint: on purpose only.
    fp = _feed(DataFingerprint(), [(0, 0, 0, [3, 1, 2]), (1, 0, 0, None)])
    assert fp.hexdigest == PINNED


PINNED = "a9b2c1f73a68cd8a24ba36b844d004ce"
