"""RNG capture/restore, seeding and derived seeds."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from model_training_framework.errors import CheckpointError
from model_training_framework.trainer.data import seeds as seeds_module
from model_training_framework.trainer.data.seeds import derive_seed
from model_training_framework.trainer.state.rng import (
    capture_rng_state,
    restore_rng_state,
    seed_everything,
)


def draw_from_every_generator() -> tuple:
    return (
        [random.random() for _ in range(5)],
        random.gauss(0.0, 1.0),
        np.random.rand(5).tolist(),
        float(np.random.standard_normal()),
        torch.rand(5).tolist(),
        torch.randint(0, 1000, (3,)).tolist(),
    )


def test_restored_state_repeats_the_same_draws():
    random.gauss(0.0, 1.0)  # leaves a cached gaussian in both Python and NumPy
    np.random.standard_normal()
    state = capture_rng_state()
    first = draw_from_every_generator()

    restore_rng_state(state)

    assert draw_from_every_generator() == first


def test_state_survives_a_weights_only_torch_round_trip():
    state = capture_rng_state()
    first = draw_from_every_generator()
    buffer = io.BytesIO()
    torch.save({"rng": state}, buffer)
    buffer.seek(0)

    restore_rng_state(torch.load(buffer, weights_only=True)["rng"])

    assert draw_from_every_generator() == first


def test_captured_state_holds_no_numpy_objects():
    state = capture_rng_state()

    assert isinstance(state["numpy"]["keys"], list)
    assert all(type(k) is int for k in state["numpy"]["keys"])
    assert type(state["numpy"]["pos"]) is int


def test_captured_torch_state_does_not_change_with_later_draws():
    state = capture_rng_state()
    saved = state["torch"].clone()
    torch.rand(100)

    assert torch.equal(state["torch"], saved)


def test_cuda_state_is_none_without_initialised_cuda():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        pytest.skip("CUDA is initialised here")

    assert capture_rng_state()["cuda"] is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_generators_of_every_device_are_restored():
    torch.cuda.init()
    state = capture_rng_state()
    first = [torch.rand(3, device=f"cuda:{i}").tolist() for i in range(torch.cuda.device_count())]

    restore_rng_state(state)

    again = [torch.rand(3, device=f"cuda:{i}").tolist() for i in range(torch.cuda.device_count())]
    assert again == first


@pytest.mark.parametrize("missing", ["python", "numpy", "torch", "cuda"])
def test_missing_top_level_key_is_a_checkpoint_error_naming_it(missing):
    state = capture_rng_state()
    del state[missing]

    with pytest.raises(CheckpointError, match=missing):
        restore_rng_state(state)


def test_missing_nested_key_is_a_checkpoint_error_naming_it():
    state = capture_rng_state()
    del state["numpy"]["pos"]

    with pytest.raises(CheckpointError, match="'pos'"):
        restore_rng_state(state)


def test_wrong_tensor_type_is_a_checkpoint_error():
    state = capture_rng_state()
    state["torch"] = torch.zeros(3)

    with pytest.raises(CheckpointError, match="cannot be restored"):
        restore_rng_state(state)


def test_seed_everything_makes_draws_reproducible():
    seed_everything(1234)
    first = draw_from_every_generator()
    seed_everything(1234)
    again = draw_from_every_generator()
    seed_everything(1235)

    assert again == first
    assert draw_from_every_generator() != first


def test_seed_everything_accepts_seeds_beyond_32_bits():
    seed_everything(2**40 + 7)
    first = draw_from_every_generator()
    seed_everything(2**40 + 7)

    assert draw_from_every_generator() == first


@pytest.mark.parametrize("bad", [1.5, "3", True, None])
def test_seed_everything_refuses_non_int_seeds(bad):
    with pytest.raises(TypeError, match="seed must be an int"):
        seed_everything(bad)


def test_derived_seed_is_a_63_bit_int_that_depends_on_every_key():
    seeds = {
        derive_seed(0, "shuffle", 0, 0),
        derive_seed(0, "shuffle", 0, 1),
        derive_seed(0, "shuffle", 1, 0),
        derive_seed(1, "shuffle", 0, 0),
        derive_seed(0, "shuffle", "0", 0),
        derive_seed(0, "shuffle", 0),
    }

    assert len(seeds) == 6
    assert all(0 <= s < 2**63 for s in seeds)


def test_derived_seed_is_the_same_in_another_process_with_other_hash_seed():
    here = derive_seed(42, "shuffle", 3, 7)
    # Load seeds.py alone: importing the whole trainer package would make this test slow.
    code = (
        "import importlib.util as u, sys;"
        f"spec = u.spec_from_file_location('seeds_alone', {seeds_module.__file__!r});"
        "m = u.module_from_spec(spec); spec.loader.exec_module(m);"
        "print(m.derive_seed(42, 'shuffle', 3, 7))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}

    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()

    assert int(there) == here


@pytest.mark.parametrize("bad_key", [1.5, None, (1, 2), True])
def test_derive_seed_refuses_keys_without_a_stable_encoding(bad_key):
    with pytest.raises(TypeError, match="int or str"):
        derive_seed(0, bad_key)
