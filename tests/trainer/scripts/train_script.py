"""A real training run for kill-and-resume tests: rerun it until it prints COMPLETED.

Usage: python train_script.py ROOT NAME [--slow-ms N] [--ballast-mb M] [--workers W] [--tensorboard]
       [--persistent] [--hidden H] [--lr LR] [--wait-for FILE [--wait-at-step S]]
       [--device D] [--precision fp32|fp16|bf16]
``--wait-for`` holds training at step S (default 1) until FILE exists: a test can act while the
run is certainly alive and mid-training.
On completion it writes ROOT/NAME/final.pt (model, optimizer state, data fingerprint).
Exit code 3 means preempted (checkpoint written); rerunning resumes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    SamplingStrategy,
    TrainerHooks,
)

# autocast dtype per --precision (fp32: no autocast; fp16 on CUDA adds a GradScaler)
_AMP_DTYPES = {"fp32": "bfloat16", "fp16": "float16", "bf16": "bfloat16"}


def dataset(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return TensorDataset(x, x.sum(1, keepdim=True), torch.arange(n))


class Net(torch.nn.Module):
    def __init__(self, ballast_mb: int, hidden: int = 32) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(8, hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(hidden, 1),
        )
        # Large checkpoints make a kill during a checkpoint write likely.
        self.register_buffer("ballast", torch.zeros(ballast_mb * 262144))

    def forward(self, x):
        return self.body(x)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("name")
    parser.add_argument("--slow-ms", type=float, default=0.0)
    parser.add_argument("--ballast-mb", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--tensorboard", action="store_true", help="log to TensorBoard too")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--wait-for", type=Path, default=None)
    parser.add_argument("--wait-at-step", type=int, default=1)
    parser.add_argument("--persistent", action="store_true", help="persistent loader workers")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=sorted(_AMP_DTYPES), default="fp32")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = Net(args.ballast_mb, args.hidden)
    config = GenericTrainerConfig(
        experiment_name=args.name,
        seed=7,
        train_loader_config=MultiDataLoaderConfig(
            sampling_strategy=SamplingStrategy.WEIGHTED,
            dataloader_names=["a", "b"],
            dataloader_weights=[2.0, 1.0],
        ),
        checkpoint={"root_dir": args.root, "save_every_n_steps": 3, "max_checkpoints": 2},
        device=args.device,
        performance={
            "gradient_accumulation_steps": 2,
            "use_amp": args.precision != "fp32",
            "amp_dtype": _AMP_DTYPES[args.precision],
        },
        logging={
            "progress_bar": False,
            "logger_type": "composite" if args.tensorboard else "console",
            "composite_loggers": ["console", "tensorboard"] if args.tensorboard else None,
        },
        log_loss_every_n_steps=5,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.7)
    trainer = GenericTrainer(config, model, [opt], [sched])

    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        if args.slow_ms:
            time.sleep(args.slow_ms / 1000)
        waits = args.wait_for is not None and trainer.global_step >= args.wait_at_step
        if waits and not args.wait_for.exists():
            print("WAITING", trainer.global_step, flush=True)
            while not args.wait_for.exists():
                time.sleep(0.02)
        x, y, _ = batch
        return {"loss": torch.nn.functional.mse_loss(trainer.model(x), y)}

    trainer.set_training_step(step)
    loaders = [
        DataLoader(
            dataset(n, seed),
            batch_size=4,
            shuffle=True,
            num_workers=args.workers,
            persistent_workers=args.persistent,
        )
        for n, seed in ((40, 1), (28, 2))
    ]

    class Announce(TrainerHooks):
        """Prints each optimizer step so the test knows training is under way."""

        def on_after_optimizer_step(self, trainer, optimizer_idx):
            print("STEP", trainer.global_step, flush=True)

    trainer.add_hook(Announce())
    result = trainer.fit(loaders, max_epochs=3)
    print("STATUS", result.status.value, result.global_step, flush=True)
    if result.status.value != "completed":
        return 3
    state = {
        "model": {k: v for k, v in model.state_dict().items() if k != "ballast"},
        "optimizer": opt.state_dict(),
        "fingerprint": result.data_fingerprint,
        "global_step": result.global_step,
    }
    torch.save(state, Path(args.root) / args.name / "final.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
