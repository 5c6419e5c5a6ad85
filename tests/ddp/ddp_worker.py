"""A small two-loader training run for the DDP tests; launch it with torchrun (or alone).

Usage:
    python -m torch.distributed.run --standalone --nproc_per_node=2 ddp_worker.py OUT NAME [opts]
    python ddp_worker.py OUT NAME --single [opts]      # the single-process equivalent

Under DDP each rank reads its shard through a ``DistributedSampler`` with batch size B; with
``--single`` one process reads the same data with batch size 2B (the same global batch).
Every rank writes ``OUT/NAME/pid_rank<r>`` when it starts and ``OUT/NAME/final_rank<r>.pt``
(status, step, model, optimizer states, metrics, data fingerprint) when ``fit`` returns.
Exit code: 0 completed or early-stopped, 3 preempted, 1 when ``fit`` raised (``--fail``
injects an error on one rank: in the training step, a hook, the loader or rank 0's save).
``--check-collectives`` instead exercises the error paths of ``DistributedContext`` and exits.
``--fsdp`` trains with ``distributed.strategy: fsdp`` (sharded checkpoint directories); the
states in ``final_rank<r>.pt`` (and with ``--dump-start`` in ``start_rank<r>.pt``, taken when
training starts, after a resume) are then the full tensors gathered from every rank.

Run as a script (torchrun runs it so), it imports its siblings by plain name: the loaders are
in ``worker_data.py``, the injected failures in ``worker_faults.py``, the model and its gathered
states in ``worker_model.py`` (the tests import ``Net`` from there), the ``--check-*`` runs in
``worker_collectives.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from worker_collectives import check_collectives, check_stuck_collective
from worker_data import loaders
from worker_faults import Fault, FaultHooks, FaultyDataset, ReweighOnce
from worker_model import DumpAtStart, Net, full_states

from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
)

STATUS_PREEMPTED = 3


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("name")
    parser.add_argument("--single", action="store_true", help="one process, batch 2B, no sampler")
    parser.add_argument("--strategy", default="round_robin")
    parser.add_argument("--batch", type=int, default=4, help="per-rank batch size B")
    parser.add_argument("--accum", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--shuffle", action="store_true")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--slow-ms", type=float, default=0.0)
    parser.add_argument("--save-every", type=int, default=None)
    parser.add_argument("--no-sampler", action="store_true", help="plain loaders under DDP")
    parser.add_argument("--unequal", action="store_true", help="rank 1's loader 'b' is shorter")
    parser.add_argument(
        "--default-checkpoint", action="store_true", help="CheckpointConfig defaults (root only)"
    )
    parser.add_argument("--save-every-epochs", type=int, default=None)
    parser.add_argument("--save-every-minutes", type=float, default=None)
    parser.add_argument("--val-every-steps", type=int, default=None)
    parser.add_argument("--early-stop", type=int, default=None, help="patience (val/loss)")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--nonfinite-skip", default=None, help="RANK:STEP: NaN loss there")
    parser.add_argument("--nonfinite-raise", default=None, help="RANK:STEP: NaN loss there")
    parser.add_argument("--iterable", action="store_true", help="loader 'b' uneven iterable")
    parser.add_argument(
        "--iterable-val", action="store_true", help="uneven iterable val: 5 batches, 3 on rank 1"
    )
    parser.add_argument(
        "--fail",
        default=None,
        help="WHERE:RANK:STEP (step|val|hook|train_start|epoch_end|val_end|train_end|loader|save)",
    )
    parser.add_argument("--workers", type=int, default=0, help="DataLoader num_workers")
    parser.add_argument("--persistent", action="store_true", help="persistent_workers")
    parser.add_argument("--unequal-val", action="store_true", help="rank 1's val set is shorter")
    parser.add_argument(
        "--reweigh-on-rank0", action="store_true", help="update_loader_weights on rank 0 only"
    )
    parser.add_argument(
        "--rank-metric",
        choices=["train", "val"],
        default=None,
        help="that step also returns a metric named after the rank (only_rank<r> = 10 + r)",
    )
    parser.add_argument("--own-process-group", action="store_true", help="init it ourselves")
    parser.add_argument("--linger-s", type=float, default=0.0, help="stay alive after an error")
    parser.add_argument("--check-collectives", action="store_true")
    parser.add_argument(
        "--check-stuck-collective",
        action="store_true",
        help="all_ranks_call whose fn fails on rank 0 before a collective rank 1 enters",
    )
    parser.add_argument("--device", default="cpu", help="'cpu' (Gloo) or 'cuda' (NCCL)")
    parser.add_argument("--fsdp", action="store_true", help="distributed.strategy: fsdp")
    parser.add_argument("--fsdp-wrap", action="store_true", help="fsdp_wrap the trunk")
    parser.add_argument("--async-save", action="store_true")
    parser.add_argument("--dump-start", action="store_true", help="write start_rank<r>.pt")
    parser.add_argument("--resume-from", default=None, help="fit(resume_from_checkpoint=...)")
    parser.add_argument(
        "--signal-in-validation",
        default=None,
        help="RANK:STEP:BATCH: SIGUSR1 to that rank at that validation batch (once per run dir)",
    )
    return parser.parse_args()


def checkpoint_section(args: argparse.Namespace) -> dict:
    if args.default_checkpoint:
        return {"root_dir": args.out}
    return {
        "root_dir": args.out,
        "save_every_n_steps": args.save_every,
        "save_every_n_epochs": args.save_every_epochs,
        "save_every_n_minutes": args.save_every_minutes,
        "max_checkpoints": 2,
    }


def extra_config(args: argparse.Namespace) -> dict:
    extra: dict = {}
    if args.val_every_steps:
        extra["validation"] = {"frequency": "every_n_steps", "every_n_steps": args.val_every_steps}
    if args.early_stop:
        extra.update(
            early_stopping_patience=args.early_stop,
            early_stopping_metric="val/loss",
            early_stopping_min_delta=1e6,  # no evaluation counts as an improvement
        )
    if args.nonfinite_skip:
        extra["on_nonfinite_loss"] = "skip"
    if args.iterable_val:  # how validation reads a loader without a length: up to 8 batches
        extra["val_loader_config"] = MultiDataLoaderConfig(
            sampling_strategy="sequential",
            epoch_length_policy="fixed_num_steps",
            steps_per_epoch=8,
            cycle_short_loaders=False,
        )
    return extra


def build_trainer(args: argparse.Namespace, model: Net, fault: Fault) -> GenericTrainer:
    weighted = args.strategy == "weighted"
    rank = int(os.environ.get("RANK", "0"))
    config = GenericTrainerConfig(
        experiment_name=args.name,
        seed=7,
        device=args.device,
        train_loader_config=MultiDataLoaderConfig(
            sampling_strategy=args.strategy,
            dataloader_names=["a", "b"],
            dataloader_weights=[2.0, 1.0] if weighted else None,
            alternating_pattern=[0, 0, 1] if args.strategy == "alternating" else None,
            **(
                {"epoch_length_policy": "fixed_num_steps", "steps_per_epoch": 9}
                if args.iterable
                else {}
            ),
        ),
        per_loader_optimizer_id=[0, 1],
        checkpoint=checkpoint_section(args),
        performance={
            "gradient_accumulation_steps": args.accum,
            "clip_grad_norm": 0.5,
            "use_amp": args.amp,
            "amp_dtype": "bfloat16",
        },
        logging={"progress_bar": False},
        log_loss_every_n_steps=1,
        **extra_config(args),
        distributed={
            "strategy": "fsdp" if args.fsdp else "ddp",
            "fsdp_wrap": ["Sequential"] if args.fsdp_wrap else [],
        },
    )
    config.checkpoint.async_save = args.async_save
    trunk_and_a = [*model.trunk.parameters(), *model.heads[0].parameters()]
    optimizers = [
        torch.optim.SGD(trunk_and_a, lr=0.05, momentum=0.9),
        torch.optim.SGD(model.heads[1].parameters(), lr=0.05),
    ]
    trainer = GenericTrainer(config, model, optimizers)
    fault.trainer = trainer
    trainer.add_hook(FaultHooks(fault))
    nan_rank, nan_step = map(
        int, (args.nonfinite_skip or args.nonfinite_raise or "-1:-1").split(":")
    )

    def rank_metric(where: str) -> dict[str, float]:
        return {f"only_rank{rank}": 10.0 + rank} if args.rank_metric == where else {}

    def training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        if args.slow_ms:
            time.sleep(args.slow_ms / 1000)
        fault.check("step")
        x, y, _ = batch
        pred = trainer.model(x, dataloader_idx)
        loss = torch.nn.functional.mse_loss(pred.float(), y)
        if rank == nan_rank and trainer.global_step == nan_step:
            loss = loss * float("nan")
        return {"loss": loss, **rank_metric("train")}

    def validation_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        signal_in_validation(args, rank, trainer.global_step, batch_idx)
        fault.check("val")
        x, y, _ = batch
        pred = trainer.model(x, 0)
        return {
            "loss": torch.nn.functional.mse_loss(pred.float(), y),
            "mae": (pred.float() - y).abs().mean(),
            **rank_metric("val"),
        }

    trainer.set_training_step(training_step)
    if args.reweigh_on_rank0 and rank == 0:
        trainer.add_hook(ReweighOnce(3, [1.0, 5.0]))
    trainer.set_validation_step(validation_step)
    if args.dump_start:
        trainer.add_hook(DumpAtStart(Path(args.out) / args.name))
    return trainer


def signal_in_validation(args: argparse.Namespace, rank: int, step: int, batch_idx: int) -> None:
    """``--signal-in-validation``: a preemption signal in the middle of a validation pass, sent
    once (a marker file keeps the resumed run, which redoes that pass, from sending it again)."""
    if args.signal_in_validation is None:
        return
    target = tuple(int(part) for part in args.signal_in_validation.split(":"))
    marker = Path(args.out) / args.name / "signalled_in_validation"
    if (rank, step, batch_idx) == target and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGUSR1)


def main() -> int:
    args = parse_args()
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO, format=f"[rank{rank}] %(levelname)s %(name)s: %(message)s"
    )
    if args.check_collectives:
        return check_collectives(rank)
    if args.check_stuck_collective:
        return check_stuck_collective(rank)
    run_dir = Path(args.out) / args.name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / f"pid_rank{rank}").write_text(str(os.getpid()))
    if args.own_process_group:
        dist.init_process_group("gloo")  # the trainer then leaves it up when fit fails
    model = Net()
    fault = Fault(args.fail, rank)
    trainer = build_trainer(args, model, fault)
    train, val = loaders(args, rank)
    FaultyDataset.fault = fault
    try:
        result = trainer.fit(
            train,
            val,
            max_epochs=args.epochs,
            max_steps=args.max_steps,
            resume_from_checkpoint=args.resume_from,
        )
    except BaseException:
        if args.linger_s:  # a process that stays alive after its error (NCCL-like peers)
            time.sleep(args.linger_s)
        raise
    print(f"[rank{rank}] STATUS {result.status.value} {result.global_step}", flush=True)
    final = {
        "status": result.status.value,
        "global_step": result.global_step,
        **full_states(trainer),
        "metrics": result.metrics,
        "fingerprint": result.data_fingerprint,
    }
    torch.save(final, run_dir / f"final_rank{rank}.pt")
    return 0 if result.status.value in ("completed", "early_stopped") else STATUS_PREEMPTED


if __name__ == "__main__":
    sys.exit(main())
