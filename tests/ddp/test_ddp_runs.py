"""Real 2-process Gloo DDP runs on CPU (torchrun --standalone): every rank takes the same decisions.

Each run is ``ddp_worker.py``: two loaders (round robin or weighted), per-loader SGD
optimizers, gradient accumulation 2 with a partial window at each epoch end, clipping, and a
validation loader, every loader behind a ``DistributedSampler``.

Tolerances: both ranks end bit-identical (``torch.equal``); the 2-process run (batch B per rank)
matches one process with batch 2B to float32 rounding (measured max |diff| ~2e-8 on weights of
size ~1, checked with rtol=1e-6, atol=1e-6): DDP averages two half-batch gradients where one
process sums one full batch, so the summation order differs and bitwise equality is not
expected. Kill-and-resume and preemption-and-resume end bit-identical to an uninterrupted
2-process run.
"""

from __future__ import annotations

import os
import random
import shutil
import signal

import pytest
import torch

from model_training_framework.trainer.state.run_lock import RunDirectoryLock, read_lock_state

from ..trainer.resume_utils import assert_states_equal
from .launch import COMPARABLE, RESUMABLE, launch
from .worker_model import Net

pytestmark = pytest.mark.ddp


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Reference runs, launched together (they use separate free ports) to save wall time."""
    out = tmp_path_factory.mktemp("ddp_reference")
    launched = {
        "single": launch(out, "single", *COMPARABLE, "--single", nproc=0),
        "ddp": launch(out, "ddp", *COMPARABLE),
        "ddp_bf16": launch(out, "ddp_bf16", *COMPARABLE, "--amp"),
        "resumable": launch(out, "resumable", *RESUMABLE),
    }
    for name, run in launched.items():
        assert run.wait() == 0, f"{name} failed:\n{run.output()[-4000:]}"
    return launched


def _assert_ranks_identical(run) -> None:
    rank0, rank1 = run.final(0), run.final(1)
    assert rank0["global_step"] == rank1["global_step"] > 0
    assert_states_equal(rank0["model"], rank1["model"], "model")
    assert_states_equal(rank0["optimizers"], rank1["optimizers"], "optimizers")
    return rank0, rank1


def test_both_ranks_end_with_identical_parameters_and_optimizer_state(runs):
    _assert_ranks_identical(runs["ddp"])


def test_bf16_autocast_with_clipping_keeps_ranks_identical(runs):
    rank0, _ = _assert_ranks_identical(runs["ddp_bf16"])
    assert all(torch.isfinite(v).all() for v in rank0["model"].values())
    assert not torch.equal(
        rank0["model"]["trunk.0.weight"], runs["ddp"].final(0)["model"]["trunk.0.weight"]
    )


def test_two_ranks_match_one_process_with_the_global_batch(runs):
    single, ddp = runs["single"].final(0), runs["ddp"].final(0)
    assert ddp["global_step"] == single["global_step"]
    for key, value in single["model"].items():
        torch.testing.assert_close(
            ddp["model"][key], value, rtol=1e-6, atol=1e-6, msg=f"param {key}"
        )
    with torch.random.fork_rng(devices=[]):
        initial = Net().state_dict()
    moved = (single["model"]["trunk.0.weight"] - initial["trunk.0.weight"]).abs().max()
    assert moved > 1e-3, "training barely moved the weights: the comparison would be vacuous"


def test_train_and_val_metrics_are_reduced_sample_weighted_across_ranks(runs):
    single, rank0, rank1 = runs["single"].final(0), runs["ddp"].final(0), runs["ddp"].final(1)
    keys = ["val/loss", "val/mae", "train/loss", "train/dl_a/loss"]
    for key in keys:
        assert rank0["metrics"][key] == rank1["metrics"][key], key
        assert rank0["metrics"][key] == pytest.approx(single["metrics"][key], rel=1e-6), key


def test_only_rank_zero_writes_logs_and_checkpoints(runs):
    log = runs["ddp"].output()
    assert "[rank0] STATUS completed" in log and "[rank1] STATUS completed" in log
    assert "data_fingerprint" in log
    assert log.count("val/loss") == runs["single"].output().count("val/loss")  # one console logger


def test_sigkill_of_the_whole_job_resumes_bit_identically(runs, tmp_path):
    first = launch(tmp_path, "killed", *RESUMABLE)
    first.wait_for(
        "a checkpoint at step >= 6", lambda: any(s >= 6 for s in first.checkpoint_steps())
    )
    first.kill()
    assert not list(first.run_dir.glob("final_rank*.pt")), "the run finished before the kill"
    second = launch(tmp_path, "killed", *RESUMABLE)
    assert second.wait() == 0, second.output()[-4000:]
    assert "resumed from" in second.output()
    _assert_same_final(runs["resumable"], second)


def test_sigusr1_to_one_rank_preempts_both_with_one_checkpoint_then_resumes_exactly(runs, tmp_path):
    first = launch(tmp_path, "preempted", *RESUMABLE)
    first.wait_for(
        "a first checkpoint",
        lambda: bool(first.checkpoint_steps()) and len(first.worker_pids()) == 2,
    )
    os.kill(first.worker_pids()[1], signal.SIGUSR1)  # rank 1 only; torchrun gets nothing
    assert first.wait() != 0, "torchrun reports the workers' exit code 3 (preempted)"
    finals = [first.final(0), first.final(1)]
    assert [f["status"] for f in finals] == ["preempted", "preempted"], first.output()[-4000:]
    stopped_at = finals[0]["global_step"]
    assert finals[1]["global_step"] == stopped_at
    assert stopped_at in first.checkpoint_steps(), "no checkpoint at the preemption step"
    assert stopped_at < runs["resumable"].final(0)["global_step"]
    assert "signalled on another rank" in first.output()
    second = launch(tmp_path, "preempted", *RESUMABLE)
    assert second.wait() == 0, second.output()[-4000:]
    _assert_same_final(runs["resumable"], second)


def test_sigusr1_to_a_random_rank_at_random_steps_resumes_exactly(runs, tmp_path):
    """Three preemptions, each of a random rank at a random step, then a run to the end: both
    ranks stop together every time, and the end is bit-identical to an uninterrupted run."""
    rng = random.Random(20261204)
    total = runs["resumable"].final(0)["global_step"]
    stopped_at = 0
    for _ in range(3):
        run = launch(tmp_path, "random_preempt", *RESUMABLE)
        target = rng.randint(stopped_at + 1, stopped_at + 3)
        run.wait_for(
            f"a checkpoint at step >= {target}",
            lambda run=run, target=target: (
                len(run.worker_pids()) == 2 and any(s >= target for s in run.checkpoint_steps())
            ),
        )
        rank = rng.choice([0, 1])
        os.kill(run.worker_pids()[rank], signal.SIGUSR1)
        assert run.wait() != 0, "torchrun reports the workers' exit code 3 (preempted)"
        finals = [run.final(0), run.final(1)]
        assert [f["status"] for f in finals] == ["preempted", "preempted"], run.output()[-4000:]
        assert finals[0]["global_step"] == finals[1]["global_step"] > stopped_at
        stopped_at = finals[0]["global_step"]
        assert stopped_at in run.checkpoint_steps()
        for path in run.run_dir.glob("final_rank*.pt"):
            path.unlink()
    assert stopped_at < total, "the preemptions must all land before the end"
    last = launch(tmp_path, "random_preempt", *RESUMABLE)
    assert last.wait() == 0, last.output()[-4000:]
    _assert_same_final(runs["resumable"], last)


def test_loader_lengths_that_differ_across_ranks_stop_every_rank_with_a_clear_error(tmp_path):
    run = launch(tmp_path, "unequal", *COMPARABLE, "--unequal", "--no-sampler")
    assert run.wait(timeout=60) != 0
    log = run.output()
    assert log.count("train loader 'b' has different lengths on different ranks ([8, 6])") == 2, (
        log[-4000:]
    )
    # Plain loaders under DDP: one warning per loader, from rank 0 only.
    for kind, name in (("train", "a"), ("train", "b"), ("val", "dl0")):
        assert log.count(f"{kind} loader '{name}' has no DistributedSampler") == 1, log[-4000:]
    assert "[rank1] WARNING" not in log


def test_an_explicit_checkpoint_starts_a_run_once_then_its_own_checkpoints_win(runs, tmp_path):
    """A requeue repeats the command: resume_from_checkpoint=PATH must not restart from PATH
    once the run has checkpoints of its own (rank 0 decides, both ranks load the same file)."""
    initial = runs["ddp"].run_dir / "latest.ckpt"
    first = launch(tmp_path, "target", *COMPARABLE, "--epochs", "3", "--resume-from", str(initial))
    assert first.wait() == 0, first.output()[-4000:]
    assert f"resumed from {initial} at epoch 2, step 10" in first.output()
    assert "STATUS completed 15" in first.output()  # 5 optimizer steps per epoch
    again = launch(tmp_path, "target", *COMPARABLE, "--epochs", "4", "--resume-from", str(initial))
    assert again.wait() == 0, again.output()[-4000:]
    log = again.output()
    assert log.count("own latest checkpoint") == 1, log[-4000:]  # rank 0 says it, once
    own = tmp_path / "target" / "epoch_3_step_15.ckpt"
    assert f"resumed from {own} at epoch 3, step 15" in log, log[-4000:]
    assert log.count("STATUS completed 20") == 2, log[-4000:]


def test_resuming_with_a_different_world_size_is_a_clear_error(runs, tmp_path):
    shutil.copytree(runs["resumable"].run_dir, tmp_path / "resumable")
    run = launch(tmp_path, "resumable", *RESUMABLE, "--single", nproc=0)
    assert run.wait(timeout=60) != 0
    assert "does not fit this run; nothing was written" in run.output()
    assert "world_size: 2 -> 1" in run.output()


def test_collective_errors_reach_every_rank_instead_of_hanging(tmp_path):
    run = launch(tmp_path, "collectives", "--check-collectives")
    assert run.wait(timeout=60) == 0, run.output()[-4000:]
    log = run.output()
    for rank in (0, 1):
        assert (
            f"rank {rank} reduce_sum error: metric reduction across ranks got lists of 1 to 2"
            in log
        )
        assert (
            f"rank {rank} reduce_sum_by_slot error: the ranks accumulated metrics of different "
            "loaders (rank 0: ['dl0']; rank 1: ['dl1'])" in log
        )
        assert f"rank {rank} collectives done" in log
    assert "rank 0 rank_zero_call error: FileNotFoundError: no such checkpoint" in log
    assert "rank 1 rank_zero_call error: RankZeroError: rank 0 failed" in log
    assert "rank 1 all_ranks_call error: OSError: disk full" in log
    assert (
        "rank 0 all_ranks_call error: RankFailedError: rank 1 failed, so rank 0 stops too: "
        "OSError: disk full" in log
    )


def test_only_rank_zero_holds_the_run_directory_lock(tmp_path):
    run = launch(tmp_path, "locked", *RESUMABLE)
    run.wait_for(
        "a checkpoint and both pids",
        lambda: bool(run.checkpoint_steps()) and len(run.worker_pids()) == 2,
    )
    state = read_lock_state(run.run_dir)
    assert run.wait() == 0, run.output()[-4000:]
    assert state.is_held and state.owner.pid == run.worker_pids()[0]
    assert not read_lock_state(run.run_dir).is_held


def test_a_run_directory_owned_by_a_live_process_stops_every_rank_without_writing(tmp_path):
    with RunDirectoryLock(tmp_path / "owned"):
        run = launch(tmp_path, "owned", *COMPARABLE)
        assert run.wait(timeout=60) != 0
    log = run.output()
    owned = f"run directory {tmp_path / 'owned'} is owned by a live process (host"
    assert f"RunDirectoryBusyError: {owned}" in log, log[-4000:]  # rank 0
    assert "RankZeroError: rank 0 failed, so rank 1 stops too: RunDirectoryBusyError" in log
    assert f"pid {os.getpid()}" in log
    written = sorted(p.name for p in run.run_dir.iterdir() if not p.name.startswith("pid_rank"))
    assert written == [".lock"], written


def test_a_step_that_fails_before_a_collective_its_peers_entered_does_not_hang(tmp_path):
    run = launch(tmp_path, "stuck", "--check-stuck-collective")
    assert run.wait(timeout=60) != 0, "the job must fail, not hang"
    log = run.output()
    assert "rank 0 failed: OSError: disk full" in log, log[-4000:]
    assert "rank 1 stops: rank 0 failed: OSError: disk full" in log, log[-4000:]
    assert "rank 1 is still busy" in log, log[-4000:]


def _assert_same_final(reference, resumed) -> None:
    for rank in (0, 1):
        ref, got = reference.final(rank), resumed.final(rank)
        assert got["status"] == "completed"
        assert got["global_step"] == ref["global_step"]
        assert got["fingerprint"] == ref["fingerprint"], f"rank {rank} saw different data"
        assert_states_equal(ref["model"], got["model"], f"rank{rank}.model")
        assert_states_equal(ref["optimizers"], got["optimizers"], f"rank{rank}.optimizers")


def test_default_checkpoint_config_ends_cleanly_on_every_rank(tmp_path):
    """Default settings save at every epoch end, so the last step is already saved at the end
    of fit: every rank must skip the final save (none may enter its collective alone)."""
    run = launch(tmp_path, "default_ckpt", *COMPARABLE, "--default-checkpoint")
    assert run.wait() == 0, run.output()[-4000:]
    _assert_ranks_identical(run)


def _run_records(run_dir) -> dict[str, bytes]:
    """The run's own files (not the worker's pid and final-state files, nor the lock)."""
    worker_files = ("pid_rank", "final_rank", "start_rank")
    return {
        path.name: path.read_bytes()
        for path in sorted(run_dir.iterdir())
        if path.is_file() and path.name != ".lock" and not path.name.startswith(worker_files)
    }


def test_rerunning_a_finished_run_with_default_settings_ends_cleanly_and_writes_nothing(tmp_path):
    """The same torchrun command again after the run completed (a user's rerun, a requeue that
    came late): every rank sees the finished run, returns at once and the records stay as they
    were (NOTE [finished rerun])."""
    first = launch(tmp_path, "finished", *COMPARABLE, "--default-checkpoint")
    assert first.wait() == 0, first.output()[-4000:]
    records = _run_records(first.run_dir)
    assert "metrics.jsonl" in records and any(name.endswith(".ckpt") for name in records)
    again = launch(tmp_path, "finished", *COMPARABLE, "--default-checkpoint")
    assert again.wait() == 0, again.output()[-4000:]
    assert _run_records(again.run_dir) == records
    _assert_ranks_identical(again)


@pytest.mark.parametrize(
    ("where", "rank", "error"),
    [
        ("step", 1, "InjectedFailure: injected failure in the step at step 3"),
        ("hook", 0, "HookError: hook FaultHooks.on_after_optimizer_step raised InjectedFailure"),
        ("loader", 1, "InjectedFailure: injected failure in the loader at step 3"),
        ("save", 0, "CheckpointError"),
    ],
)
def test_a_rank_that_raises_stops_every_rank_naming_it(tmp_path, where, rank, error):
    run = launch(
        tmp_path, f"fail_{where}", *COMPARABLE, "--save-every", "2", "--fail", f"{where}:{rank}:3"
    )
    assert run.wait(timeout=60) != 0, "the job must fail, not hang"
    log = run.output()
    assert f"rank {rank} failed: {error}" in log, log[-4000:]
    assert f"RankFailedError: rank {rank} failed" in log, log[-4000:]  # the peer names it
    assert not list(run.run_dir.glob("final_rank*.pt"))


def test_a_failed_rank_that_stays_alive_does_not_hang_its_peers(tmp_path):
    """The failing rank keeps its own process group up (as a blocked NCCL peer would): the
    peer waiting in a collective is ended by the failure watch, not the 30 min timeout."""
    run = launch(
        tmp_path,
        "linger",
        *COMPARABLE,
        "--own-process-group",
        "--linger-s",
        "300",
        "--fail",
        "step:1:3",
    )
    assert run.wait(timeout=60) != 0, "the job must fail, not hang"
    log = run.output()
    assert "rank 1 failed: InjectedFailure" in log, log[-4000:]
    assert "rank 0 stops: rank 1 failed: InjectedFailure" in log, log[-4000:]


# Every decision that leads to a collective, exercised where it used to split the ranks: each
# run must end with exit code 0 on both ranks and bit-identical parameters across ranks.
DECISION_RUNS = {
    "step_save_on_last_step": ["--save-every", "5"],  # 10 steps: saves at 5 and 10
    "max_steps_on_a_save": ["--save-every", "3", "--max-steps", "6"],
    "sequential": ["--strategy", "sequential", "--default-checkpoint"],
    "round_robin": ["--strategy", "round_robin", "--default-checkpoint", "--shuffle"],
    "weighted": ["--strategy", "weighted", "--default-checkpoint", "--save-every", "3"],
    "alternating": ["--strategy", "alternating", "--default-checkpoint", "--save-every", "4"],
    "partial_window": ["--accum", "4", "--save-every-epochs", "1", "--save-every", "2"],
    "step_validation": ["--default-checkpoint", "--val-every-steps", "2"],
    "early_stopping": ["--default-checkpoint", "--val-every-steps", "2", "--early-stop", "1"],
    "time_trigger": ["--save-every-minutes", "0.0005", "--slow-ms", "10"],
    "nonfinite_skip_on_one_rank": ["--default-checkpoint", "--nonfinite-skip", "1:3"],
    "uneven_iterable": ["--default-checkpoint", "--iterable"],
}


_CONCURRENT_DECISION_RUNS = 4


@pytest.fixture(scope="module")
def decision_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_decisions")
    launched = {}
    names = list(DECISION_RUNS)
    # A few jobs at a time: all twelve at once (24 ranks) on a 2-core CI machine made each
    # run slow enough to hit the hang timeout.
    for first in range(0, len(names), _CONCURRENT_DECISION_RUNS):
        batch = names[first : first + _CONCURRENT_DECISION_RUNS]
        for name in batch:
            launched[name] = launch(out, name, "--epochs", "2", *DECISION_RUNS[name])
        for name in batch:
            launched[name].wait(timeout=240)
    return launched


@pytest.mark.parametrize("name", list(DECISION_RUNS))
def test_every_rank_ends_cleanly_with_identical_parameters(decision_runs, name):
    run = decision_runs[name]
    assert run.proc.returncode == 0, run.output()[-4000:]
    rank0, _ = _assert_ranks_identical(run)
    assert rank0["status"] == ("early_stopped" if name == "early_stopping" else "completed")
    assert run.checkpoint_steps()[-1] == rank0["global_step"], "the last step is saved"


def test_early_stopping_stops_before_the_last_step(decision_runs):
    early, full = (
        decision_runs["early_stopping"].final(0),
        decision_runs["step_validation"].final(0),
    )
    assert early["global_step"] == 4 < full["global_step"]  # 2nd validation; patience 1


def test_time_trigger_saved_between_step_and_epoch_saves(decision_runs):
    assert len(decision_runs["time_trigger"].checkpoint_steps()) == 2  # max_checkpoints
    assert "saved checkpoint" in decision_runs["time_trigger"].output()


def test_a_nonfinite_step_on_one_rank_is_skipped_on_both(decision_runs):
    rank0, rank1 = (decision_runs["nonfinite_skip_on_one_rank"].final(r) for r in (0, 1))
    assert rank0["metrics"]["train/skipped_nonfinite"] == 1.0
    assert rank1["metrics"]["train/skipped_nonfinite"] == 1.0


def test_an_iterable_loader_that_runs_dry_on_one_rank_ends_the_pass_on_both(decision_runs):
    run = decision_runs["uneven_iterable"]
    assert "train loader 'b' ran dry on another rank: rank 0 drops" in run.output()
