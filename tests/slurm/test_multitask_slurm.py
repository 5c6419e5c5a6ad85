"""Real Slurm, two tasks (``-m slurm``): DDP jobs that the generated job script starts with srun.

The experiments ask for ``ntasks_per_node: 2``, so the launcher's script starts
``scripts/train_job.py`` through ``srun`` (no torchrun): each task takes its rank from
SLURM_PROCID and the two train with Gloo. One job runs uninterrupted; a second, identical one is
signalled with ``scancel --signal=USR1 --batch`` (the batch shell only, as ``--signal=B:USR1``
does before the time limit): the batch shell forwards the signal through srun to both tasks,
they agree on a step, rank 0 checkpoints and requeues, the requeued job resumes on both tasks,
and both end bit-identical to the uninterrupted job.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from model_training_framework.launch.slurm.parsing import JobState
from model_training_framework.slurm import SlurmCommands, SLURMJobMonitor, SLURMLauncher

from .test_e2e_trainer import _git_project, _wait_for_match

pytestmark = pytest.mark.slurm

REPORT_EVERY_N_STEPS = 5
SIGNAL_AFTER = re.compile(rf"\[train_job\] at global_step={REPORT_EVERY_N_STEPS} restart=0")
STARTED = re.compile(r"\[train_job\] training started: global_step=(\d+) restart=(\d+)")
STOPPED = re.compile(r"\[train_job\] status=(\w+) global_step=(\d+) rank=(\d) world=(\d)")
# 2 loaders x 32 samples, a DistributedSampler over 2 ranks, batch 4, round robin, 2 epochs
TOTAL_STEPS = 16
STEP_SLEEP_S = 0.3  # slow enough to be signalled mid-training; changes no numbers


def _experiment(name: str, checkpoint_root: Path) -> dict:
    return {
        "experiment_name": name,
        "seed": 21,
        "train_loader_config": {"sampling_strategy": "round_robin", "dataloader_names": ["a", "b"]},
        "checkpoint": {"root_dir": str(checkpoint_root.resolve()), "save_every_n_steps": 4},
        "logging": {"progress_bar": False},
        "optimizer": {"lr": 0.01},
        "training": {"max_epochs": 2},
        "slurm": {
            "ntasks_per_node": 2,
            "cpus_per_task": 1,
            "mem": "400M",
            "time": "00:05:00",
            "signal_grace_s": 30,
        },
        "custom_params": {
            "step_sleep_s": STEP_SLEEP_S,
            "num_samples": 32,
            "report_every_n_steps": REPORT_EVERY_N_STEPS,
        },
    }


def _log(submission) -> Path:
    return submission.experiment_dir / "logs" / f"slurm-{submission.job_id}.out"


def _final(run_dir: Path, rank: int) -> dict:
    return torch.load(run_dir / f"final_rank{rank}.pt", weights_only=False)


def _assert_equal_states(got: dict, want: dict, what: str, *, same_data: bool = True) -> None:
    assert got["global_step"] == want["global_step"] == TOTAL_STEPS, what
    if same_data:  # each rank reads its own shard: the fingerprints are per rank
        assert got["fingerprint"] == want["fingerprint"], f"{what}: other batches"
    for key, tensor in want["model"].items():
        assert torch.equal(got["model"][key], tensor), f"{what}: model weight {key} differs"
    for param_idx, state in want["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(got["optimizer"]["state"][param_idx][key], value), (
                f"{what}: optimizer state {param_idx}/{key} differs"
            )


def test_two_task_srun_jobs_end_cleanly_and_a_preempted_one_resumes_bit_identically(
    slurm_cluster, tmp_path
):
    project = _git_project(tmp_path / "project")
    commands = SlurmCommands(env=slurm_cluster.env)
    launcher = SLURMLauncher(
        project_root=project, experiments_dir=tmp_path / "experiments", commands=commands
    )
    runs = tmp_path / "runs"
    reference = launcher.submit_single_experiment(
        _experiment("two_tasks", runs), project / "train_job.py"
    )
    target = launcher.submit_single_experiment(
        _experiment("two_tasks_preempted", runs), project / "train_job.py"
    )
    assert reference.launch == target.launch == "srun"
    script = reference.script_path.read_text()
    assert "\nsrun " in script and "torchrun" not in script and "\nexec " not in script

    _wait_for_match(_log(target), SIGNAL_AFTER, timeout_s=120)
    commands.scancel([target.job_id], signal="USR1", batch_only=True)
    states = SLURMJobMonitor(commands).wait_for_jobs(
        [reference.job_id, target.job_id], timeout_s=240, poll_interval_s=0.5
    )

    assert states[reference.job_id].state is JobState.COMPLETED, _log(reference).read_text()
    assert states[reference.job_id].exit_code == 0
    assert states[reference.job_id].restart_count == 0
    stops = sorted(STOPPED.findall(_log(reference).read_text()))
    assert stops == [
        ("completed", str(TOTAL_STEPS), "0", "2"),
        ("completed", str(TOTAL_STEPS), "1", "2"),
    ]
    ref = [_final(runs / "two_tasks", rank) for rank in (0, 1)]
    _assert_equal_states(ref[1], ref[0], "rank 1 vs rank 0", same_data=False)

    text = _log(target).read_text()
    assert states[target.job_id].state is JobState.COMPLETED, text
    assert states[target.job_id].exit_code == 0, text
    assert states[target.job_id].restart_count == 1, text
    starts = [(int(step), int(restart)) for step, restart in STARTED.findall(text)]
    assert len(starts) == 2 and starts[0] == (0, 0) and starts[1][1] == 1, text
    assert REPORT_EVERY_N_STEPS <= starts[1][0] < TOTAL_STEPS, text  # resumed mid-training
    preempted_at = str(starts[1][0])
    # Both tasks stopped at the same step and outlived Slurm's SIGTERM of the requeue.
    assert sorted(STOPPED.findall(text)) == [
        ("completed", str(TOTAL_STEPS), "0", "2"),
        ("completed", str(TOTAL_STEPS), "1", "2"),
        ("preempted", preempted_at, "0", "2"),
        ("preempted", preempted_at, "1", "2"),
    ], text
    for rank in (0, 1):
        _assert_equal_states(_final(runs / "two_tasks_preempted", rank), ref[rank], f"rank {rank}")
