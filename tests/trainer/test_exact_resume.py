"""Exact resume: stop anywhere, resume in a fresh trainer, end bit-identical."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, Sampler, WeightedRandomSampler

from model_training_framework.trainer import (
    EpochLengthPolicy,
    SamplingStrategy,
    ValidationFrequency,
)

from .resume_utils import (
    RunSpec,
    assert_resumes_exactly,
    assert_states_equal,
    basic_config,
    indexed_dataset,
    make_trainer,
    small_model,
)


def _two_loader_run(loader_config: dict, *, num_workers: int = 0, **config_changes):
    def make(root: Path, name: str) -> RunSpec:
        config = basic_config(root, name, **loader_config)
        for key, value in config_changes.items():
            section, _, field = key.partition("__")
            if field:
                setattr(getattr(config, section), field, value)
            else:
                setattr(config, key, value)
        model = small_model()
        loaders = [
            DataLoader(
                indexed_dataset(37, seed=1), batch_size=4, shuffle=True, num_workers=num_workers
            ),
            DataLoader(
                indexed_dataset(23, seed=2), batch_size=4, shuffle=True, num_workers=num_workers
            ),
        ]
        val = [DataLoader(indexed_dataset(16, seed=3), batch_size=8)]
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        return RunSpec(config, model, [opt], loaders, val, max_epochs=2)

    return make


STRATEGIES = {
    "round_robin_sum": {
        "sampling_strategy": SamplingStrategy.ROUND_ROBIN,
        "dataloader_names": ["a", "b"],
    },
    "sequential_max": {
        "sampling_strategy": SamplingStrategy.SEQUENTIAL,
        "epoch_length_policy": EpochLengthPolicy.MAX_OF_LENGTHS,
    },
    "weighted_fixed": {
        "sampling_strategy": SamplingStrategy.WEIGHTED,
        "dataloader_weights": [0.7, 0.3],
        "epoch_length_policy": EpochLengthPolicy.FIXED_NUM_STEPS,
        "steps_per_epoch": 11,
    },
    "alternating_burst": {
        "sampling_strategy": SamplingStrategy.ALTERNATING,
        "alternating_pattern": [0, 0, 1],
        "burst_size": 2,
    },
}


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("stop_after", [3, 10, 17])
def test_every_strategy_resumes_bit_identically(strategy, stop_after, tmp_path):
    assert_resumes_exactly(_two_loader_run(STRATEGIES[strategy]), stop_after, tmp_path)


def test_resume_at_epoch_boundary_starts_a_full_next_epoch(tmp_path):
    # 10 + 6 = 16 batches per epoch with ROUND_ROBIN + SUM: step 16 is the epoch's end.
    assert_resumes_exactly(_two_loader_run(STRATEGIES["round_robin_sum"]), 16, tmp_path)


def test_gradient_accumulation_resumes_exactly(tmp_path):
    make = _two_loader_run(STRATEGIES["weighted_fixed"], performance__gradient_accumulation_steps=3)
    assert_resumes_exactly(make, 2, tmp_path)


def test_bf16_autocast_and_step_validation_resume_exactly(tmp_path):
    make = _two_loader_run(
        STRATEGIES["round_robin_sum"],
        performance__use_amp=True,
        validation__frequency=ValidationFrequency.EVERY_N_STEPS,
        validation__every_n_steps=4,
    )
    assert_resumes_exactly(make, 9, tmp_path)


def test_schedulers_resume_exactly(tmp_path):
    base = _two_loader_run(STRATEGIES["round_robin_sum"])

    def make(root, name):
        spec = base(root, name)
        opt = spec.optimizers[0]
        spec.schedulers = [torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)]
        return spec

    assert_resumes_exactly(make, 7, tmp_path)


def test_worker_processes_resume_exactly(tmp_path):
    assert_resumes_exactly(
        _two_loader_run(STRATEGIES["alternating_burst"], num_workers=2), 5, tmp_path
    )


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGINT])
def test_signal_checkpoints_and_resumes_exactly(signum, tmp_path):
    assert_resumes_exactly(
        _two_loader_run(STRATEGIES["round_robin_sum"]), 6, tmp_path, stop_signal=signum
    )


def test_resumed_fit_of_a_finished_run_does_nothing(tmp_path):
    make = _two_loader_run(STRATEGIES["round_robin_sum"])
    spec = make(tmp_path, "run")
    first, _ = make_trainer(spec)
    done = first.fit(spec.train_loaders, max_epochs=1)
    spec2 = make(tmp_path, "run")
    again, recorder = make_trainer(spec2)
    result = again.fit(spec2.train_loaders, max_epochs=1)
    assert result.global_step == done.global_step and recorder.seen == []


def test_continuing_a_finished_run_with_more_epochs_matches_one_long_run(tmp_path):
    make = _two_loader_run(STRATEGIES["round_robin_sum"])
    full_spec = make(tmp_path / "full", "run")
    full, full_rec = make_trainer(full_spec)
    full.fit(full_spec.train_loaders, max_epochs=3)
    seen = []
    for epochs in (1, 3):
        spec = make(tmp_path / "split", "run")
        trainer, recorder = make_trainer(spec)
        result = trainer.fit(spec.train_loaders, max_epochs=epochs)
        seen += recorder.seen
    assert result.epoch == 3 and result.global_step == full.global_step
    assert seen == full_rec.seen
    assert_states_equal(full.unwrapped_model.state_dict(), trainer.unwrapped_model.state_dict())


class _ShuffledBatches(Sampler):
    """A user's batch sampler that shuffles with its own generator (like bucketing samplers)."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        self.n, self.batch_size, self.generator = n, batch_size, generator

    def __iter__(self):
        order = torch.randperm(self.n, generator=self.generator).tolist()
        return (order[i : i + self.batch_size] for i in range(0, self.n, self.batch_size))

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)


def _own_generator_loader(kind: str, dataset) -> DataLoader:
    generator = torch.Generator().manual_seed(3)
    if kind == "sampler":
        weights = torch.ones(len(dataset))
        sampler = WeightedRandomSampler(weights, len(dataset), generator=generator)
        return DataLoader(dataset, batch_size=4, sampler=sampler)
    if kind == "batch_sampler":
        return DataLoader(dataset, batch_sampler=_ShuffledBatches(len(dataset), 4, generator))
    sampler = WeightedRandomSampler(torch.ones(len(dataset)), len(dataset), generator=generator)
    return DataLoader(dataset, batch_sampler=BatchSampler(sampler, 4, drop_last=False))


@pytest.mark.parametrize("kind", ["sampler", "batch_sampler", "sampler_in_batch_sampler"])
def test_samplers_with_their_own_generator_resume_exactly(kind, tmp_path):
    # WeightedRandomSampler(generator=g) and batch samplers holding a generator draw from it,
    # not from the global RNG: each pass must still be a function of the seed and pass number.
    def make(root: Path, name: str) -> RunSpec:
        config = basic_config(root, name, **STRATEGIES["round_robin_sum"])
        model = small_model()
        loaders = [
            _own_generator_loader(kind, indexed_dataset(37, seed=1)),
            _own_generator_loader(kind, indexed_dataset(23, seed=2)),
        ]
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        return RunSpec(config, model, [opt], loaders, max_epochs=3)

    assert_resumes_exactly(make, 21, tmp_path)
