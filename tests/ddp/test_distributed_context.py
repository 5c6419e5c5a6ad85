"""Fast single-process checks of trainer/runtime/distributed.py (launch detection, sampler checks) and
of DistributedSampler epochs in loader streams; the multi-process behaviour is in
test_ddp_runs.py (marker ddp)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    DistributedSampler,
    IterableDataset,
    TensorDataset,
)

from model_training_framework.trainer.data.streams import LoaderStream
from model_training_framework.trainer.runtime.distributed import (
    DistributedContext,
    Launch,
    RanksDisagreeError,
    detect_launch,
)
from model_training_framework.trainer.runtime.loader_checks import (
    check_loader_lengths_agree,
    has_distributed_sampler,
    loaders_without_distributed_sampler,
)

DATA = TensorDataset(torch.arange(12))


def test_torchrun_variables_give_rank_world_size_and_local_rank():
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "SLURM_PROCID": "0"}
    assert detect_launch(env) == Launch(rank=3, world_size=4, local_rank=1)


def test_an_srun_step_with_several_tasks_gives_the_slurm_layout():
    env = {"SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1"}
    assert detect_launch(env) == Launch(rank=5, world_size=8, local_rank=1)
    env = {"SLURM_NTASKS": "2", "SLURM_STEP_ID": "0", "SLURM_PROCID": "1"}
    assert detect_launch(env) == Launch(rank=1, world_size=2, local_rank=0)


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"SLURM_NTASKS": "4", "SLURM_PROCID": "0"},  # the batch script itself, not a step
        {"SLURM_NTASKS": "4", "SLURM_PROCID": "0", "SLURM_STEP_ID": "batch"},
        {"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"},
    ],
)
def test_a_plain_process_or_a_batch_script_is_a_single_process(env):
    assert detect_launch(env) == Launch()


def test_single_process_collectives_are_identities():
    ctx = DistributedContext()
    assert not ctx.is_distributed and ctx.is_rank_zero
    assert ctx.reduce_max(3) == 3
    assert ctx.reduce_sum([1.5, 2.0]) == [1.5, 2.0]
    assert ctx.gather_objects({"a": 1}) == [{"a": 1}]
    assert ctx.broadcast_object("x") == "x"
    assert ctx.rank_zero_call(lambda: 7) == 7
    grad = torch.ones(2)
    ctx.all_reduce_mean_([grad])
    assert torch.equal(grad, torch.ones(2))
    ctx.setup(torch.device("cpu"))  # nothing to set up in one process
    assert not ctx.owns_process_group


def test_rank_zero_call_in_one_process_raises_the_original_error():
    def fail():
        raise FileNotFoundError("gone")

    with pytest.raises(FileNotFoundError, match="gone"):
        DistributedContext().rank_zero_call(fail)


class _Stream(IterableDataset):
    def __iter__(self):
        return iter(range(3))


def test_loaders_without_a_distributed_sampler_are_named():
    sharded = DataLoader(
        DATA, batch_size=2, sampler=DistributedSampler(DATA, num_replicas=2, rank=0)
    )
    in_batch_sampler = DataLoader(
        DATA, batch_sampler=BatchSampler(DistributedSampler(DATA, num_replicas=2, rank=1), 2, False)
    )
    plain = DataLoader(DATA, batch_size=2, shuffle=True)
    iterable = DataLoader(_Stream(), batch_size=2)
    assert has_distributed_sampler(sharded) and has_distributed_sampler(in_batch_sampler)
    names = ["sharded", "in_batch_sampler", "plain", "iterable"]
    loaders = [sharded, in_batch_sampler, plain, iterable]
    assert loaders_without_distributed_sampler(loaders, names) == ["plain"]


class _EpochBatches:
    """A custom batch sampler over a DistributedSampler (not a torch BatchSampler)."""

    def __init__(self, sampler: DistributedSampler) -> None:
        self.sampler = sampler

    def __iter__(self):
        order = list(self.sampler)
        return iter([order[i : i + 2] for i in range(0, len(order), 2)])

    def __len__(self) -> int:
        return (len(self.sampler) + 1) // 2


@pytest.mark.parametrize("custom_batches", [False, True])
def test_each_pass_sets_the_distributed_sampler_epoch_to_the_pass_index(custom_batches):
    sampler = DistributedSampler(DATA, num_replicas=2, rank=1, shuffle=True, seed=3)
    if custom_batches:
        loader = DataLoader(DATA, batch_sampler=_EpochBatches(sampler))
    else:
        loader = DataLoader(DATA, batch_size=2, sampler=sampler)
    stream = LoaderStream(loader, 0, "a", base_seed=1)
    for pass_idx in (0, 1, 4):
        first = stream.fetch(pass_idx, 0)[0].tolist()
        assert sampler.epoch == pass_idx
        sampler_order = list(sampler)  # DistributedSampler's own order for that epoch
        assert first == [DATA[i][0].item() for i in sampler_order[:2]]
    # A fresh stream opened mid-pass (as after a resume) gives the same batch.
    assert (
        stream.fetch(1, 2)[0].tolist()
        == LoaderStream(loader, 0, "a", base_seed=1).fetch(1, 2)[0].tolist()
    )


def test_host_collectives_under_nccl_run_over_a_gloo_group_on_cpu_tensors(monkeypatch, tmp_path):
    """Stop flags, metric sums and objects are host values: under NCCL they must not go
    through the GPU (a copy and a host sync per step), but over a Gloo group of the same ranks.
    Simulated in one process: a Gloo world of 1 whose default backend reads as NCCL."""
    dist = torch.distributed
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        monkeypatch.setattr(dist, "get_backend", lambda group=None: "nccl")
        monkeypatch.setattr(
            torch.cuda, "current_device", lambda: pytest.fail("host collective touched CUDA")
        )
        ctx = DistributedContext(Launch(rank=0, world_size=2, local_rank=0))  # take the DDP path
        assert ctx.reduce_max(3) == 3
        assert ctx.reduce_sum([1.5, 2.0]) == [1.5, 2.0]
        assert ctx._host() is not dist.group.WORLD
        monkeypatch.undo()
        assert dist.get_backend(ctx._host()) == "gloo"
    finally:
        dist.destroy_process_group()


class _TwoRanks:
    """What ``gather_objects`` returns on 2 ranks whose second rank has ``other`` settings."""

    def __init__(self, other: dict[str, object]) -> None:
        self.other = other

    def gather_objects(self, obj):
        lengths, settings = obj
        return [obj, (lengths, {**settings, **self.other})]


def test_a_setting_that_differs_across_ranks_is_named_in_a_readable_error():
    loaders = [DataLoader(DATA, batch_size=4)]
    settings = {"validation loader lengths": [3], "max_epochs": 2}
    with pytest.raises(RanksDisagreeError) as raised:
        check_loader_lengths_agree(_TwoRanks({"max_epochs": 3}), loaders, ["a"], settings)
    assert str(raised.value).startswith("max_epochs: not the same on every rank ([2, 3]);")
    with pytest.raises(RanksDisagreeError) as raised:
        check_loader_lengths_agree(
            _TwoRanks({"validation loader lengths": [4]}), loaders, ["a"], settings
        )
    assert str(raised.value).startswith(
        "validation loader lengths: not the same on every rank ([[3], [4]]);"
    )
