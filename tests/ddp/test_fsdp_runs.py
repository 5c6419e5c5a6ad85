"""Real 2-process Gloo FSDP2 runs on CPU (``distributed.strategy: fsdp``) with sharded checkpoints.

Each run is ``ddp_worker.py --fsdp``: the two-loader model of the DDP tests with its trunk as an
FSDP unit (``fsdp_wrap``), per-loader SGD optimizers, gradient accumulation 2 with a partial
window at each epoch end, clipping (sharded gradient norm) and validation. States are compared
after gathering the full tensors on every rank.

Tolerances: the FSDP run matches the DDP run with rtol=atol=1e-6 (reduce-scatter and all-reduce
may sum in another order; measured: bit-identical on this machine). Kill-and-resume at the same
world size, SIGUSR1 to one rank (preemption, with asynchronous sharded saves) and fallback past
a damaged checkpoint end bit-identical to an uninterrupted run.
Resuming at another world size (2 -> 1, 1 -> 2) loads bit-identical model and optimizer state;
the data that follows is split differently, so only the step count is compared after that.
"""

from __future__ import annotations

import os
import shutil
import signal

import pytest
import torch

from model_training_framework.io_utils import is_temp_file
from model_training_framework.trainer.state.dcp import consolidate_checkpoint

from ..trainer.resume_utils import assert_states_equal
from .launch import COMPARABLE, launch
from .launch import RESUMABLE as RESUMABLE_ARGS
from .worker_model import Net

pytestmark = pytest.mark.ddp

FSDP = ["--fsdp", "--fsdp-wrap"]
RESUMABLE = [*FSDP, *RESUMABLE_ARGS]
ONE_EPOCH = [*FSDP, "--shuffle", "--epochs", "1"]
TWO_EPOCHS = [*FSDP, "--shuffle", "--epochs", "2", "--dump-start"]
# Steps per epoch: 2 ranks x batch 4: loaders of 5 and 4 batches -> 9 micro-batches -> 5 steps
# (accumulation 2, the last window partial); 1 process x batch 4: 10 + 8 -> 18 -> 9 steps.
STEPS_PER_EPOCH = {2: 5, 1: 9}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Reference runs, launched together (separate free ports) to save wall time."""
    out = tmp_path_factory.mktemp("fsdp_reference")
    launched = {
        "ddp": launch(out, "ddp", *COMPARABLE),
        "fsdp": launch(out, "fsdp", *COMPARABLE, *FSDP),
        "fsdp_bf16": launch(out, "fsdp_bf16", *COMPARABLE, *FSDP, "--amp"),
        "resumable": launch(out, "resumable", *RESUMABLE),
        "one_epoch_2": launch(out, "one_epoch_2", *ONE_EPOCH),
        "one_epoch_1": launch(out, "one_epoch_1", *ONE_EPOCH, nproc=0),
    }
    for name, run in launched.items():
        assert run.wait(timeout=180) == 0, f"{name} failed:\n{run.output()[-4000:]}"
    return launched


def _assert_ranks_identical(run):
    rank0, rank1 = run.final(0), run.final(1)
    assert rank0["global_step"] == rank1["global_step"] > 0
    assert_states_equal(rank0["model"], rank1["model"], "model")
    assert_states_equal(rank0["optimizers"], rank1["optimizers"], "optimizers")
    return rank0


def test_gathered_parameters_are_equal_on_both_ranks_and_match_ddp(runs):
    fsdp, ddp = _assert_ranks_identical(runs["fsdp"]), runs["ddp"].final(0)
    assert fsdp["global_step"] == ddp["global_step"]
    for key, value in ddp["model"].items():
        torch.testing.assert_close(fsdp["model"][key], value, rtol=1e-6, atol=1e-6, msg=key)
    for key in ("val/loss", "train/loss", "train/dl_b/loss"):
        assert fsdp["metrics"][key] == pytest.approx(ddp["metrics"][key], rel=1e-6), key
    with torch.random.fork_rng(devices=[]):
        initial = Net().state_dict()
    moved = (fsdp["model"]["trunk.0.weight"] - initial["trunk.0.weight"]).abs().max()
    assert moved > 1e-3, "training barely moved the weights: the comparison would be vacuous"


def test_bf16_autocast_under_fsdp_keeps_ranks_identical(runs):
    rank0 = _assert_ranks_identical(runs["fsdp_bf16"])
    assert all(torch.isfinite(v).all() for v in rank0["model"].values())


def test_checkpoints_are_sharded_directories_that_rotate_and_consolidate(runs, tmp_path):
    run = runs["resumable"]
    directories = sorted(p for p in run.run_dir.glob("*.ckpt") if not p.is_symlink())
    assert len(directories) == 2, directories  # max_checkpoints
    for directory in directories:
        names = {p.name for p in directory.iterdir()}
        assert names == {".metadata", "__0_0.distcp", "__1_0.distcp", "trainer_state.pt"}
    latest = run.run_dir / "latest.ckpt"
    assert latest.is_symlink() and latest.resolve() == directories[-1].resolve()
    assert not [p for p in run.run_dir.iterdir() if is_temp_file(p)], "temporary left"
    model_file = consolidate_checkpoint(run.run_dir, tmp_path / "model.pt")
    plain = Net()
    plain.load_state_dict(torch.load(model_file, weights_only=True))
    assert_states_equal(run.final(0)["model"], plain.state_dict(), "consolidated")


def test_sigkill_of_the_whole_job_resumes_bit_identically(runs, tmp_path):
    first = launch(tmp_path, "killed", *RESUMABLE)
    first.wait_for(
        "a checkpoint at step >= 6", lambda: any(s >= 6 for s in first.checkpoint_steps())
    )
    first.kill()
    assert not list(first.run_dir.glob("final_rank*.pt")), "the run finished before the kill"
    second = launch(tmp_path, "killed", *RESUMABLE)
    assert second.wait(timeout=180) == 0, second.output()[-4000:]
    assert "resumed from" in second.output()
    _assert_same_final(runs["resumable"], second)


def test_a_damaged_newest_checkpoint_and_a_torn_directory_fall_back_to_an_older_one(runs, tmp_path):
    run_dir = tmp_path / "resumable"
    shutil.copytree(runs["resumable"].run_dir, run_dir, symlinks=True)
    for final in run_dir.glob("final_rank*.pt"):
        final.unlink()
    older, newest = sorted(p for p in run_dir.glob("*.ckpt") if not p.is_symlink())
    shard = newest / "__1_0.distcp"
    shard.write_bytes(shard.read_bytes()[:100])
    torn = run_dir / ".epoch_9_step_999.ckpt.0123456789abcdef.tmp"
    torn.mkdir()
    (torn / "__0_0.distcp").write_bytes(b"half a shard")
    rerun = launch(tmp_path, "resumable", *RESUMABLE)
    assert rerun.wait(timeout=180) == 0, rerun.output()[-4000:]
    log = rerun.output()
    assert f"resumed from {older}" in log, log[-4000:]
    assert "truncated or missing" in log and "skipped 1 checkpoint(s)" in log
    assert not torn.exists()
    _assert_same_final(runs["resumable"], rerun)


@pytest.mark.parametrize(("written_by", "resumed_by"), [(2, 1), (1, 2)])
def test_resuming_at_another_world_size_loads_the_same_state_and_continues(
    runs, tmp_path, written_by, resumed_by
):
    reference = runs[f"one_epoch_{written_by}"]
    name = f"one_epoch_{written_by}"
    shutil.copytree(reference.run_dir, tmp_path / name, symlinks=True)
    resumed = launch(tmp_path, name, *TWO_EPOCHS, nproc=resumed_by if resumed_by > 1 else 0)
    assert resumed.wait(timeout=180) == 0, resumed.output()[-4000:]
    log = resumed.output()
    assert "batches now split differently across ranks" in log
    saved_step = STEPS_PER_EPOCH[written_by]
    assert f"at epoch 1, step {saved_step}" in log
    for rank in range(resumed_by):
        start = torch.load(resumed.run_dir / f"start_rank{rank}.pt", weights_only=False)
        assert start["global_step"] == saved_step
        assert_states_equal(reference.final(0)["model"], start["model"], f"rank{rank}.model")
        assert_states_equal(
            reference.final(0)["optimizers"], start["optimizers"], f"rank{rank}.optimizers"
        )
        final = resumed.final(rank)
        assert final["status"] == "completed"
        assert final["global_step"] == saved_step + STEPS_PER_EPOCH[resumed_by]


def test_sigusr1_to_one_rank_preempts_both_with_an_async_sharded_save_then_resumes_exactly(
    runs, tmp_path
):
    args = [*RESUMABLE, "--async-save"]
    first = launch(tmp_path, "preempted", *args)
    first.wait_for(
        "a first checkpoint",
        lambda: bool(first.checkpoint_steps()) and len(first.worker_pids()) == 2,
    )
    os.kill(first.worker_pids()[1], signal.SIGUSR1)  # rank 1 only; torchrun gets nothing
    assert first.wait(timeout=180) != 0, "torchrun reports the workers' exit code 3 (preempted)"
    finals = [first.final(0), first.final(1)]
    assert [f["status"] for f in finals] == ["preempted", "preempted"], first.output()[-4000:]
    stopped_at = finals[0]["global_step"]
    assert finals[1]["global_step"] == stopped_at
    assert stopped_at in first.checkpoint_steps(), "no checkpoint at the preemption step"
    assert stopped_at < runs["resumable"].final(0)["global_step"]
    second = launch(tmp_path, "preempted", *args)
    assert second.wait(timeout=180) == 0, second.output()[-4000:]
    _assert_same_final(runs["resumable"], second)


def _assert_same_final(reference, resumed) -> None:
    for rank in (0, 1):
        ref, got = reference.final(rank), resumed.final(rank)
        assert got["status"] == "completed"
        assert got["global_step"] == ref["global_step"]
        assert got["fingerprint"] == ref["fingerprint"], f"rank {rank} saw different data"
        assert_states_equal(ref["model"], got["model"], f"rank{rank}.model")
        assert_states_equal(ref["optimizers"], got["optimizers"], f"rank{rank}.optimizers")
