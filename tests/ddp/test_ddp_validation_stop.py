"""DDP: a preemption signal to one rank during validation stops the pass on both ranks at the
same batch, checkpoints, and the resumed job redoes that pass and ends bit-identical."""

from __future__ import annotations

import pytest

from model_training_framework.trainer.state.file_format import read_checkpoint

from ..trainer.resume_utils import assert_states_equal
from .launch import RESUMABLE, launch

pytestmark = pytest.mark.ddp

_ARGS = [*RESUMABLE, "--val-every-steps", "2"]


def test_sigusr1_to_one_rank_during_validation_stops_both_and_resumes_exactly(tmp_path):
    reference = launch(tmp_path, "reference", *_ARGS)
    # rank 1, validation at step 4, its second of four batches
    first = launch(tmp_path, "preempted", *_ARGS, "--signal-in-validation", "1:4:1")
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

    second = launch(tmp_path, "preempted", *_ARGS, "--signal-in-validation", "1:4:1")
    assert second.wait() == 0, second.output()[-4000:]
    for rank in (0, 1):
        ref, got = reference.final(rank), second.final(rank)
        assert got["status"] == "completed" and got["global_step"] == ref["global_step"]
        assert got["fingerprint"] == ref["fingerprint"], f"rank {rank} saw different data"
        assert_states_equal(ref["model"], got["model"], f"rank{rank}.model")
        assert_states_equal(ref["optimizers"], got["optimizers"], f"rank{rank}.optimizers")
        assert got["metrics"]["val/loss"] == ref["metrics"]["val/loss"]
