"""A tiny real training job for the end-to-end Slurm tests (what the launchers run).

Usage: ``python train_job.py --config EXPERIMENT_DIR/config.yaml`` (the launchers' default
COMMAND). It reads the experiment's ``ExperimentConfig``, trains a small MLP on two synthetic
loaders with ``GenericTrainer`` (run directory ``<checkpoint.root_dir>/<experiment_name>``) and
auto-resumes from that run's latest checkpoint when one exists.

``custom_params`` it reads:

- ``step_sleep_s`` (default 0): seconds to sleep in every training step, so that a test can
  signal the job mid-training. It changes no numbers.
- ``num_samples`` (default 32): samples per loader (batch size 4).
- ``report_every_n_steps`` (default 0: never): print a progress line when a training step
  starts after a multiple of this many optimizer steps.
- ``num_workers`` (default 0): DataLoader worker processes per loader.

Output lines a test can wait for (stdout, flushed):

- ``[train_job] training started: global_step=K restart=R`` once, in the first training step
  of this process (K > 0 after a resume).
- ``[train_job] at global_step=K restart=R`` (see ``report_every_n_steps``).
- ``[train_job] status=S global_step=K`` when ``fit`` returns.

Exit status: 0 completed (``<run dir>/final.pt`` holds the model state dict, the optimizer state,
the data fingerprint and the global step), 3 preempted (checkpoint written; rerun resumes),
1 any other status.

Several tasks (``slurm.ntasks_per_node`` > 1: the job script starts them with ``srun``): each
task is one DDP rank (Gloo), its rank taken from ``SLURM_PROCID`` by the trainer (no torchrun);
the loaders shard the data with a ``DistributedSampler``, only rank 0 prints the progress lines,
every rank prints its ``status=... rank=R world=W`` line and writes ``final_rank<R>.pt``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from model_training_framework.experiment.config import ExperimentConfig
from model_training_framework.trainer import GenericTrainer

EXIT_PREEMPTED = 3
STARTED_MARK = "[train_job] training started"
BATCH_SIZE = 4


def _dataset(num_samples: int, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(num_samples, 8, generator=generator)
    return TensorDataset(x, x.sum(1, keepdim=True))


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(16, 1)
    )


def _loader(dataset: TensorDataset, world_size: int, seed: int, num_workers: int) -> DataLoader:
    if world_size == 1:
        return DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=num_workers)
    sampler = DistributedSampler(dataset, shuffle=True, seed=seed)  # after the trainer: see docs
    return DataLoader(dataset, batch_size=BATCH_SIZE, sampler=sampler, num_workers=num_workers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the experiment's config.yaml")
    args = parser.parse_args()
    experiment = ExperimentConfig.from_yaml(args.config)
    step_sleep_s = float(experiment.custom_params.get("step_sleep_s", 0.0))
    num_samples = int(experiment.custom_params.get("num_samples", 32))
    report_every_n_steps = int(experiment.custom_params.get("report_every_n_steps", 0))
    num_workers = int(experiment.custom_params.get("num_workers", 0))
    restart = os.environ.get("SLURM_RESTART_COUNT", "0")

    model = _model(experiment.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=experiment.optimizer.lr)
    trainer = GenericTrainer(experiment.to_trainer_config(), model, [optimizer])
    rank = int(os.environ.get("RANK", "0"))  # set by the trainer under srun (from SLURM_PROCID)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    reported_steps: set[int] = set()

    def training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        step = trainer.global_step
        if rank == 0 and not reported_steps:
            print(f"{STARTED_MARK}: global_step={step} restart={restart}", flush=True)
        if (
            rank == 0
            and report_every_n_steps
            and step % report_every_n_steps == 0
            and step not in reported_steps
        ):
            print(f"[train_job] at global_step={step} restart={restart}", flush=True)
        reported_steps.add(step)
        time.sleep(step_sleep_s)
        x, y = batch
        return {"loss": torch.nn.functional.mse_loss(trainer.model(x), y)}

    trainer.set_training_step(training_step)
    loaders = [
        _loader(_dataset(num_samples, seed), world_size, seed, num_workers) for seed in (1, 2)
    ]
    result = trainer.fit(
        loaders,
        max_epochs=experiment.training.max_epochs,
        max_steps=experiment.training.max_steps,
    )
    suffix = f" rank={rank} world={world_size}" if world_size > 1 else ""
    print(
        f"[train_job] status={result.status.value} global_step={result.global_step}{suffix}",
        flush=True,
    )
    if result.status.value == "preempted":
        return EXIT_PREEMPTED
    if result.status.value != "completed":
        return 1
    run_dir = Path(experiment.checkpoint.root_dir) / experiment.experiment_name
    final = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "fingerprint": result.data_fingerprint,
        "global_step": result.global_step,
    }
    if rank == 0:
        torch.save(final, run_dir / "final.pt")
    if world_size > 1:
        torch.save(final, run_dir / f"final_rank{rank}.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
