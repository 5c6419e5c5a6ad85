"""DDP: a preemption signal to one rank during validation stops the pass on both ranks at the
same batch, checkpoints, and the resumed job redoes that pass and ends bit-identical; with a
map-style validation loader, and with an iterable one whose shards differ in length."""

from __future__ import annotations

import pytest

from model_training_framework.trainer.state.file_format import read_checkpoint

from ..trainer.resume_utils import assert_states_equal
from .launch import RESUMABLE, launch

pytestmark = pytest.mark.ddp

_ARGS = [*RESUMABLE, "--val-every-steps", "2"]


def _assert_stops_and_resumes_exactly(tmp_path, args: list[str], signal_at: str) -> None:
    reference = launch(tmp_path, "reference", *args)
    first = launch(tmp_path, "preempted", *args, "--signal-in-validation", signal_at)
    assert reference.wait() == 0, reference.output()[-4000:]
    assert first.wait() != 0, "torchrun reports the workers' exit code 3 (preempted)"
    log = first.output()
    finals = [first.final(0), first.final(1)]
    assert [f["status"] for f in finals] == ["preempted", "preempted"], log[-4000:]
    assert [f["global_step"] for f in finals] == [4, 4]
    for rank in (0, 1):
        assert f"[rank{rank}] WARNING" in log and "validation cut short" in log, log[-4000:]
    saved = read_checkpoint(first.run_dir / "epoch_0_step_4.ckpt")
    assert saved["train_state"]["pending_validation"] == "step"

    second = launch(tmp_path, "preempted", *args, "--signal-in-validation", signal_at)
    assert second.wait() == 0, second.output()[-4000:]
    for rank in (0, 1):
        ref, got = reference.final(rank), second.final(rank)
        assert got["status"] == "completed" and got["global_step"] == ref["global_step"]
        assert got["fingerprint"] == ref["fingerprint"], f"rank {rank} saw different data"
        assert_states_equal(ref["model"], got["model"], f"rank{rank}.model")
        assert_states_equal(ref["optimizers"], got["optimizers"], f"rank{rank}.optimizers")
        assert got["metrics"]["val/loss"] == ref["metrics"]["val/loss"]


def test_sigusr1_to_one_rank_during_validation_stops_both_and_resumes_exactly(tmp_path):
    # rank 1, validation at step 4, its second of four batches
    _assert_stops_and_resumes_exactly(tmp_path, _ARGS, "1:4:1")


def test_an_iterable_validation_pass_is_cut_short_on_both_ranks_too(tmp_path):
    # rank 0 has 5 validation batches, rank 1 only 3: the signal reaches rank 0 at its 4th,
    # when rank 1 has run out and waits for it; before, the pass ran to its end
    _assert_stops_and_resumes_exactly(tmp_path, [*_ARGS, "--iterable-val"], "0:4:3")
