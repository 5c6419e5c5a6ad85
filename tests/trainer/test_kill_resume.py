"""Golden kill-and-resume test: a real training process is SIGKILLed (or sent SIGUSR1) at
random moments, rerun until done, and must end bit-identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from .resume_utils import assert_states_equal

SCRIPT = Path(__file__).parent / "scripts" / "train_script.py"
pytestmark = pytest.mark.slow


def _run(
    root: Path,
    name: str,
    *extra: str,
    kill_after_s: float | None = None,
    signum=signal.SIGKILL,
    after_training_starts: bool = False,
    after_steps: int = 1,
):
    """Run the script; optionally send ``signum`` ``kill_after_s`` seconds after start (or after
    its ``after_steps``-th printed step, when ``after_training_starts``: a signal handler exists
    only then)."""
    proc = subprocess.Popen(
        [sys.executable, "-u", str(SCRIPT), str(root), name, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    head = []
    if after_training_starts:
        steps_seen = 0
        for line in proc.stdout:
            head.append(line)
            steps_seen += line.startswith("STEP ")
            if steps_seen == after_steps or line.startswith("STATUS"):
                break
    finished = bool(head) and head[-1].startswith("STATUS")
    # A run that already reported its status is only exiting; killing it there (slow under load)
    # would make every rerun of the finished run "fail" and the loop never see a completion.
    if kill_after_s is not None and not finished:
        try:
            proc.wait(timeout=kill_after_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signum)
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, "".join(head) + out


def _final(root: Path, name: str) -> dict:
    return torch.load(root / name / "final.pt", weights_only=False)


def _assert_same_final(root: Path, reference: str, resumed: str) -> None:
    ref, got = _final(root, reference), _final(root, resumed)
    assert got["global_step"] == ref["global_step"]
    assert got["fingerprint"] == ref["fingerprint"], "resumed run saw different data"
    assert_states_equal(ref["model"], got["model"], "model")
    assert_states_equal(ref["optimizer"], got["optimizer"], "optimizer")


@pytest.mark.parametrize("workers", [0, 2])
def test_sigkill_at_random_moments_resumes_bit_identically(tmp_path, workers):
    extra = ["--slow-ms", "25", "--ballast-mb", "24", "--workers", str(workers)]
    code, out = _run(tmp_path, "reference", *extra)
    assert code == 0, out
    rng = random.Random(1234 + workers)
    kills = 0
    for _attempt in range(40):
        code, out = _run(
            tmp_path,
            "killed",
            *extra,
            # Random in steps, then in time: a wall-clock window alone can end before the next
            # save on every attempt when the machine is loaded (no progress, no completion).
            kill_after_s=rng.uniform(0.0, 0.3),
            after_training_starts=True,
            after_steps=rng.randint(1, 7),
        )
        if code == 0:
            break
        assert code == -signal.SIGKILL, out
        kills += 1
    else:
        pytest.fail("run never completed")
    assert kills >= 2, "the run finished before it could be killed; slow it down"
    _assert_same_final(tmp_path, "reference", "killed")
    # a kill mid-save leaves a temporary file; the next run's checkpoint manager removes it
    leftovers = [p.name for p in (tmp_path / "killed").iterdir() if ".tmp" in p.name]
    assert leftovers == [], f"stale temporary files after the final run: {leftovers}"


def test_sigusr1_preempts_with_a_checkpoint_and_resumes_bit_identically(tmp_path):
    extra = ["--slow-ms", "10"]
    assert _run(tmp_path, "reference", *extra)[0] == 0
    preemptions = 0
    for _attempt in range(20):
        code, out = _run(
            tmp_path,
            "preempted",
            *extra,
            kill_after_s=0.2,
            signum=signal.SIGUSR1,
            after_training_starts=True,
        )
        if "STATUS preempted" not in out:
            break  # finished before the signal came (a late signal may then end the process)
        assert code == 3, out
        preemptions += 1
    assert preemptions >= 1
    assert _run(tmp_path, "preempted", *extra)[0] == 0  # resuming a finished run changes nothing
    _assert_same_final(tmp_path, "reference", "preempted")


def test_logs_hold_each_step_once_after_a_kill_and_resume(tmp_path):
    """Checkpoints every 3 steps, losses logged every 5: killed after step 11, the run resumes
    from step 9 and logs step 10 again; metrics.jsonl and TensorBoard must hold it once."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-u",
            str(SCRIPT),
            str(tmp_path),
            "run",
            "--slow-ms",
            "20",
            "--tensorboard",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.strip() == "STEP 11":
            proc.kill()
            break
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    code, out = _run(tmp_path, "run", "--tensorboard")
    assert code == 0, out
    assert "resumed from" in out and "step 9" in out, out

    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    loss_steps = [r["step"] for r in records if "train/loss" in r]
    assert loss_steps == sorted(set(loss_steps)), loss_steps
    assert 10 in loss_steps  # logged before the kill and again after the resume
    accumulator = EventAccumulator(
        str(tmp_path / "run" / "tensorboard"), size_guidance={"scalars": 0}
    )
    accumulator.Reload()
    tb_steps = [event.step for event in accumulator.Scalars("train/loss")]
    assert tb_steps == loss_steps


@pytest.mark.parametrize("persistent", [False, True], ids=["workers", "persistent_workers"])
def test_sigterm_to_the_whole_process_group_preempts_with_a_checkpoint(tmp_path, persistent):
    """What Slurm and systemd do: SIGTERM to every process, DataLoader workers included. The
    workers ignore it; the main process checkpoints and ends "preempted"; a rerun finishes."""
    extra = ["--slow-ms", "20", "--workers", "2", *(["--persistent"] if persistent else [])]
    proc = subprocess.Popen(
        [sys.executable, "-u", str(SCRIPT), str(tmp_path), "run", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a job step has
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.strip() == "STEP 4":
            os.killpg(proc.pid, signal.SIGTERM)
            break
    out = "".join(seen) + proc.communicate(timeout=120)[0]
    assert proc.returncode == 3, out
    assert "killed by signal" not in out, out
    status = [line.split() for line in out.splitlines() if line.startswith("STATUS")]
    assert status and status[0][1] == "preempted", out
    stopped_at = int(status[0][2])
    latest = torch.load(tmp_path / "run" / "latest.ckpt", weights_only=True)
    assert latest["global_step"] == stopped_at >= 4

    code, out = _run(tmp_path, "run", *extra)
    assert code == 0 and "STATUS completed" in out, out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_cuda_sigkill_resumes_bit_identically_with_dropout(tmp_path, precision):
    """On a GPU: dropout draws from the CUDA RNG, fp16 runs a GradScaler, bf16 autocast; two
    SIGKILLs mid-training and the resumed run still ends bit-identical to the uninterrupted one."""
    extra = ["--device", "cuda", "--precision", precision, "--ballast-mb", "8"]
    code, out = _run(tmp_path, "reference", *extra)
    assert code == 0, out
    rng = random.Random(99)
    for _kill in range(2):
        code, out = _run(
            tmp_path,
            "killed",
            *extra,
            kill_after_s=0.0,
            after_training_starts=True,
            after_steps=rng.randint(4, 9),
        )
        assert code == -signal.SIGKILL, out
    code, out = _run(tmp_path, "killed", *extra)
    assert code == 0, out
    assert "resumed from" in out, out
    _assert_same_final(tmp_path, "reference", "killed")
