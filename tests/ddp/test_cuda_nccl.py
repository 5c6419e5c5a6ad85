"""torchrun on one GPU (NCCL under FSDP2): a preempted or killed job resumes bit-identical to an
uninterrupted one; the stop flags are agreed over the CPU (Gloo) side group.

Skipped without CUDA; on a GPU machine run ``pytest -m ddp tests/ddp/test_cuda_nccl.py``.
"""

from __future__ import annotations

import os
import signal

import pytest
import torch

from ..trainer.resume_utils import assert_states_equal
from .launch import RESUMABLE, launch

pytestmark = [
    pytest.mark.ddp,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def _assert_same_final(reference, resumed) -> None:
    ref, got = reference.final(0), resumed.final(0)
    assert got["status"] == "completed" and got["global_step"] == ref["global_step"]
    assert got["fingerprint"] == ref["fingerprint"], "the resumed job saw different data"
    assert_states_equal(ref["model"], got["model"], "model")
    assert_states_equal(ref["optimizers"], got["optimizers"], "optimizers")


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_torchrun_job_on_cuda_preempted_then_killed_resumes_bit_identically(tmp_path, strategy):
    """One process under torchrun: plain (no process group for a world of one) and FSDP2 (a
    one-process NCCL group, sharded DCP checkpoints)."""
    NCCL = [
        *RESUMABLE,
        "--device",
        "cuda",
        *(["--fsdp", "--fsdp-wrap"] if strategy == "fsdp" else []),
    ]
    reference = launch(tmp_path, "reference", *NCCL, nproc=1)
    assert reference.wait() == 0, reference.output()[-4000:]
    if strategy == "fsdp":
        assert "BACKEND nccl world 1" in reference.output(), reference.output()[-4000:]

    preempted = launch(tmp_path, "run", *NCCL, nproc=1)
    preempted.wait_for(
        "a first checkpoint",
        lambda: bool(preempted.checkpoint_steps()) and len(preempted.worker_pids()) == 1,
    )
    os.kill(preempted.worker_pids()[0], signal.SIGUSR1)
    assert preempted.wait() != 0, "torchrun reports the worker's exit code 3 (preempted)"
    assert preempted.final(0)["status"] == "preempted", preempted.output()[-4000:]

    killed = launch(tmp_path, "run", *NCCL, nproc=1)
    stopped_at = preempted.final(0)["global_step"]
    killed.wait_for(
        "a checkpoint after the resume",
        lambda: any(s > stopped_at + 2 for s in killed.checkpoint_steps()),
    )
    killed.kill()

    last = launch(tmp_path, "run", *NCCL, nproc=1)
    assert last.wait() == 0, last.output()[-4000:]
    assert "resumed from" in last.output()
    _assert_same_final(reference, last)
