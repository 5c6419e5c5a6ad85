"""DDP failure modes a user meets (2-process Gloo on CPU, and the single-process runs they
share code with): an error on one rank, with DataLoader worker processes alive, ends every
process promptly, with the error naming the failing rank; inputs that differ across ranks
(loaders in a log window, validation lengths, the world size of a checkpoint) are clear errors on every
rank; a metric returned on one rank only is averaged where it was returned, as in one process;
a rank killed outright, or Ctrl-C to torchrun, leaves a run that resumes exactly."""

from __future__ import annotations

import os
import signal

import pytest

from ..trainer.resume_utils import assert_states_equal
from .launch import COMPARABLE, RESUMABLE, launch

pytestmark = pytest.mark.ddp

_EXIT_TIMEOUT_S = 60.0


@pytest.mark.parametrize(
    ("name", "args"),
    [
        # the validation pass's iterator (workers alive) is referenced by the traceback
        ("val_step_with_workers", ["--fail", "val:0:0", "--workers", "2"]),
        # persistent train workers outlive the pass that raised
        ("step_with_persistent_workers", ["--fail", "step:0:3", "--workers", "2", "--persistent"]),
    ],
)
def test_a_single_process_that_raises_with_dataloader_workers_alive_exits(tmp_path, name, args):
    """The workers ignore SIGTERM (NOTE [worker signals]); left alive when fit raised, they
    made the interpreter wait for them at exit, forever (multiprocessing's atexit join)."""
    run = launch(tmp_path, name, *COMPARABLE, "--single", *args, nproc=0)
    assert run.wait(timeout=_EXIT_TIMEOUT_S) == 1, run.output()[-4000:]
    assert "InjectedFailure: injected failure" in run.output()


def test_a_rank_whose_validation_step_raises_with_loader_workers_stops_both_cleanly(tmp_path):
    """The failing rank tears its process group down and exits; its peer's pending
    collective breaks and it raises RankFailedError (not ended by the failure watch's grace
    period, which is what happened while the workers kept the failing rank alive)."""
    run = launch(tmp_path, "ddp_val_workers", *COMPARABLE, "--fail", "val:1:0", "--workers", "2")
    assert run.wait(timeout=_EXIT_TIMEOUT_S) != 0, "the job must fail, not hang"
    log = run.output()
    assert "rank 1 failed: InjectedFailure: injected failure in the val" in log, log[-4000:]
    assert "RankFailedError: rank 1 failed" in log, log[-4000:]
    assert "is still busy" not in log, log[-4000:]


@pytest.mark.parametrize("where", ["train", "val"])
def test_a_metric_returned_on_one_rank_only_is_its_mean_where_returned_as_in_one_process(
    tmp_path, where
):
    """Each rank's step returns a metric the other never returns (only_rank<r> = 10 + r): as
    in one process, a metric is averaged over the batches that returned it, so every rank logs
    both, each at its own value. It used to stop both ranks (metric keys differ) and, before
    that, to add the two ranks' values position by position."""
    run = launch(tmp_path, f"keys_{where}", *COMPARABLE, "--rank-metric", where)
    assert run.wait(timeout=_EXIT_TIMEOUT_S) == 0, run.output()[-4000:]
    rank0, rank1 = run.final(0)["metrics"], run.final(1)["metrics"]
    reduced = [k for k in rank0 if k.startswith(f"{where}/") and "samples_per_sec" not in k]
    assert {k: rank1.get(k) for k in reduced} == {k: rank0[k] for k in reduced}
    for rank in (0, 1):
        keys = [k for k in rank0 if k.startswith(f"{where}/") and k.endswith(f"only_rank{rank}")]
        assert f"{where}/only_rank{rank}" in keys, sorted(rank0)
        assert any("/dl_" in key for key in keys), sorted(rank0)
        assert all(rank0[key] == 10.0 + rank for key in keys), {k: rank0[k] for k in keys}


def test_a_nonfinite_loss_on_one_rank_stops_both_naming_that_rank(tmp_path):
    """on_nonfinite_loss='raise' (default): the check is agreed, so every rank raises the same
    error together; it used to be announced as 'rank 0 failed' (rank 1 had the NaN)."""
    run = launch(tmp_path, "nan_rank1", *COMPARABLE, "--nonfinite-raise", "1:3")
    assert run.wait(timeout=_EXIT_TIMEOUT_S) != 0
    log = run.output()
    error = "NonFiniteError: training loss not finite at global step 4 on rank 1,"
    assert log.count(error) == 2, log[-4000:]  # each rank's traceback
    assert "rank 0 failed" not in log, log[-4000:]
    assert not list(run.run_dir.glob("final_rank*.pt"))


def _assert_bitwise(reference, resumed) -> None:
    for rank in (0, 1):
        ref, got = reference.final(rank), resumed.final(rank)
        assert got["status"] == "completed" and got["global_step"] == ref["global_step"]
        assert got["fingerprint"] == ref["fingerprint"], f"rank {rank} saw different data"
        assert_states_equal(ref["model"], got["model"], f"rank{rank}.model")
        assert_states_equal(ref["optimizers"], got["optimizers"], f"rank{rank}.optimizers")


@pytest.mark.slow
def test_sigkill_of_one_rank_or_ctrl_c_to_torchrun_then_resume_bit_identically(tmp_path):
    """SIGKILL of rank 1 alone: its peer's Gloo collective breaks, the job ends within seconds
    and leaves only complete checkpoints. SIGINT to the torchrun parent (Ctrl-C in its
    terminal; the workers run in sessions of their own): torchrun passes it on, both ranks
    checkpoint at the same step and return 'interrupted'. Both runs, rerun, end bit-identical
    to an uninterrupted run."""
    reference = launch(tmp_path, "reference", *RESUMABLE)
    killed = launch(tmp_path, "killed", *RESUMABLE)
    interrupted = launch(tmp_path, "interrupted", *RESUMABLE)
    for run in (killed, interrupted):
        run.wait_for(
            "a checkpoint and both pids",
            lambda run=run: bool(run.checkpoint_steps()) and len(run.worker_pids()) == 2,
        )
    os.kill(killed.worker_pids()[1], signal.SIGKILL)
    os.kill(interrupted.proc.pid, signal.SIGINT)
    assert killed.wait(timeout=30) != 0 and interrupted.wait(timeout=60) != 0
    assert not list(killed.run_dir.glob("final_rank*.pt")), "rank 0 must not finish alone"
    assert not [p for p in killed.run_dir.iterdir() if p.name.startswith(".") and p.name != ".lock"]
    finals = [interrupted.final(0), interrupted.final(1)]
    assert [f["status"] for f in finals] == ["interrupted"] * 2, interrupted.output()[-4000:]
    assert finals[0]["global_step"] == finals[1]["global_step"]
    assert finals[0]["global_step"] in interrupted.checkpoint_steps()
    for path in interrupted.run_dir.glob("final_rank*.pt"):
        path.unlink()
    assert reference.wait() == 0, reference.output()[-4000:]
    for name in ("killed", "interrupted"):
        again = launch(tmp_path, name, *RESUMABLE)
        assert again.wait() == 0, again.output()[-4000:]
        assert "resumed from" in again.output()
        _assert_bitwise(reference, again)


def test_resuming_a_one_process_run_with_two_ranks_is_a_clear_error_on_both(tmp_path):
    first = launch(tmp_path, "grown", *COMPARABLE, "--single", "--max-steps", "2", nproc=0)
    assert first.wait() == 0, first.output()[-4000:]
    run = launch(tmp_path, "grown", *COMPARABLE)
    assert run.wait(timeout=_EXIT_TIMEOUT_S) != 0
    log = run.output()
    assert "does not fit this run; nothing was written" in log and "world_size: 1 -> 2" in log
    assert "RankZeroError: rank 0 failed, so rank 1 stops too: CheckpointError" in log


def test_validation_loader_lengths_that_differ_across_ranks_are_a_clear_error(tmp_path):
    run = launch(tmp_path, "unequal_val", *COMPARABLE, "--unequal-val", "--no-sampler")
    assert run.wait(timeout=_EXIT_TIMEOUT_S) != 0
    log = run.output()
    assert log.count("RanksDisagreeError: validation loader lengths") == 2, log[-4000:]
    assert "([[8], [6]])" in log, log[-4000:]


def test_loader_weights_changed_on_one_rank_only_stop_both_saying_so(tmp_path):
    """The ranks' schedules then differ, so they train on different loaders: caught where
    their metric keys differ, with an error that names the likely cause."""
    run = launch(tmp_path, "reweigh", "--strategy", "weighted", "--reweigh-on-rank0")
    assert run.wait(timeout=_EXIT_TIMEOUT_S) != 0
    log = run.output()
    assert log.count("update_loader_weights on every rank with the same weights") == 2, log[-4000:]
