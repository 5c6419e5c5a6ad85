"""DDP failure modes a user meets (2-process Gloo on CPU, and the single-process runs they
share code with): an error on one rank, with DataLoader worker processes alive, ends every
process promptly, with the error naming the failing rank."""

from __future__ import annotations

import pytest

from .launch import COMPARABLE, launch

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
def test_metric_keys_that_differ_across_ranks_are_an_error_not_a_silent_mix(tmp_path, where):
    """Each rank's step returns as many metrics, under other names (only_rank0, only_rank1):
    the sums used to be added position by position, so rank 0 logged the sum of both ranks'
    values under its own key."""
    run = launch(tmp_path, f"keys_{where}", *COMPARABLE, "--rank-metric", where)
    assert run.wait(timeout=_EXIT_TIMEOUT_S) != 0, "the ranks' metrics must not be mixed"
    log = run.output()
    assert log.count("RanksDisagreeError: metric keys differ across ranks") == 2, log[-4000:]
    assert "only_rank0" in log and "only_rank1" in log, log[-4000:]
    assert not list(run.run_dir.glob("final_rank*.pt"))


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
