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
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, TensorDataset

from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    TrainerHooks,
)

STATUS_PREEMPTED = 3


def dataset(n: int, seed: int) -> FaultyDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = x.sum(1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=g)
    return FaultyDataset(x, y, torch.arange(n))


class InjectedFailure(ValueError):
    """The error ``--fail`` raises."""


class Fault:
    """``--fail WHERE:RANK:STEP``: raise on one rank once ``global_step`` reaches STEP."""

    def __init__(self, spec: str | None, rank: int) -> None:
        where, fail_rank, step = (spec or "none:-1:0").split(":")
        self.where, self.step, self.armed = where, int(step), int(fail_rank) == rank
        self.trainer: GenericTrainer | None = None

    def due(self, where: str) -> bool:
        return (
            self.armed
            and self.where == where
            and self.trainer is not None
            and self.trainer.global_step >= self.step
        )

    def check(self, where: str) -> None:
        if self.due(where):
            raise InjectedFailure(f"injected failure in the {where} at step {self.step}")


class FaultHooks(TrainerHooks):
    """The hook and save faults: a hook that raises, a payload rank 0 cannot write."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault

    def on_train_start(self, trainer):
        if dist.is_initialized():  # which backend the trainer's process group runs on
            print(f"BACKEND {dist.get_backend()} world {dist.get_world_size()}", flush=True)

    def on_after_optimizer_step(self, trainer, optimizer_idx):
        self.fault.check("hook")

    def on_checkpoint_save(self, trainer, payload):
        if self.fault.due("save"):
            payload["unwritable"] = object()  # CheckpointManager.save raises on rank 0


class FaultyDataset(TensorDataset):
    """Raises in ``__getitem__`` once the fault is due (the loader fault)."""

    fault: Fault | None = None

    def __getitem__(self, index):
        if self.fault is not None:
            self.fault.check("loader")
        return super().__getitem__(index)


class RankShard(IterableDataset):
    """An iterable loader without a length whose shards differ across ranks (resumable)."""

    def __init__(self, data: TensorDataset, rank: int, num_items: int) -> None:
        self.data, self.items, self.pos = data, list(range(rank, num_items, 2)), 0

    def __iter__(self):
        if self.pos >= len(self.items):
            self.pos = 0
        while self.pos < len(self.items):
            self.pos += 1
            yield self.data[self.items[self.pos - 1]]

    def state_dict(self) -> dict:
        return {"pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.pos = state["pos"]


class ValShard(IterableDataset):
    """``--iterable-val``: a validation set without a length, rank 0's shard the longer."""

    def __init__(self, data: TensorDataset, rank: int) -> None:
        self.data, self.items = data, range(0, 20) if rank == 0 else range(20, 32)

    def __iter__(self):
        return (self.data[idx] for idx in self.items)


class Net(torch.nn.Module):
    """A shared trunk and one head per loader (no dropout: the runs are comparable)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.trunk = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh())
        self.heads = torch.nn.ModuleList([torch.nn.Linear(16, 1), torch.nn.Linear(16, 1)])

    def forward(self, x: torch.Tensor, head: int) -> torch.Tensor:
        return self.heads[head](self.trunk(x))


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
    parser.add_argument("--iterable", action="store_true", help="loader 'b' uneven iterable")
    parser.add_argument(
        "--iterable-val", action="store_true", help="uneven iterable val: 5 batches, 3 on rank 1"
    )
    parser.add_argument("--fail", default=None, help="WHERE:RANK:STEP (step|hook|loader|save)")
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


def loaders(args: argparse.Namespace, rank: int) -> tuple[list[DataLoader], list[DataLoader]]:
    sizes = {"a": 40, "b": 24 if args.unequal and rank == 1 else 32, "val": 32}
    data = {name: dataset(n, seed) for seed, (name, n) in enumerate(sizes.items())}

    def make(name: str, shuffle: bool) -> DataLoader:
        if args.iterable_val and name == "val":
            return DataLoader(ValShard(data[name], rank), batch_size=args.batch)
        if args.iterable and name == "b":
            return DataLoader(RankShard(data[name], rank, 28 - 4 * rank), batch_size=args.batch)
        if args.single:
            return DataLoader(data[name], batch_size=2 * args.batch, shuffle=shuffle)
        if args.no_sampler:
            return DataLoader(data[name], batch_size=args.batch, shuffle=shuffle)
        # explicit replicas and rank: no process group exists yet (the trainer makes it)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        sampler = DistributedSampler(
            data[name], num_replicas=world, rank=rank, shuffle=shuffle, seed=11
        )
        return DataLoader(data[name], batch_size=args.batch, sampler=sampler)

    return [make("a", args.shuffle), make("b", args.shuffle)], [make("val", False)]


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
    nan_rank, nan_step = map(int, (args.nonfinite_skip or "-1:-1").split(":"))

    def training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        if args.slow_ms:
            time.sleep(args.slow_ms / 1000)
        fault.check("step")
        x, y, _ = batch
        pred = trainer.model(x, dataloader_idx)
        loss = torch.nn.functional.mse_loss(pred.float(), y)
        if rank == nan_rank and trainer.global_step == nan_step:
            loss = loss * float("nan")
        return {"loss": loss}

    def validation_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        signal_in_validation(args, rank, trainer.global_step, batch_idx)
        x, y, _ = batch
        pred = trainer.model(x, 0)
        return {
            "loss": torch.nn.functional.mse_loss(pred.float(), y),
            "mae": (pred.float() - y).abs().mean(),
        }

    trainer.set_training_step(training_step)
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


def full_states(trainer: GenericTrainer) -> dict:
    """Model and optimizer states with full tensors (gathered from every rank under FSDP)."""
    model, optimizers = trainer.unwrapped_model, trainer.optimizers
    if not isinstance(model, FSDPModule):
        return {
            "model": model.state_dict(),
            "optimizers": [opt.state_dict() for opt in optimizers],
        }
    options = StateDictOptions(full_state_dict=True, cpu_offload=False)
    return {
        "model": get_model_state_dict(model, options=options),
        "optimizers": [get_optimizer_state_dict(model, opt, options=options) for opt in optimizers],
    }


class DumpAtStart(TrainerHooks):
    """Writes the (gathered) states as training starts: what a resume loaded."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def on_train_start(self, trainer) -> None:
        states = {"global_step": trainer.global_step, **full_states(trainer)}
        torch.save(states, self.run_dir / f"start_rank{int(os.environ.get('RANK', '0'))}.pt")


def check_collectives(rank: int) -> int:
    """Error paths of DistributedContext: each must raise on every rank, none may hang."""
    from model_training_framework.trainer.runtime.distributed import (
        DistributedContext,
        RankFailedError,
        RankZeroError,
    )

    ctx = DistributedContext.from_environment()
    ctx.setup(torch.device("cpu"))
    try:
        assert ctx.reduce_sum([1.0, float(rank)]) == [2.0, 1.0]
        try:
            ctx.reduce_sum([1.0] * (rank + 1))
        except ValueError as err:
            print(f"rank {rank} reduce_sum error: {err}", flush=True)
        grads = [torch.full((2, 2), float(rank)), torch.full((3,), 2.0 * rank)]
        ctx.all_reduce_mean_(grads)
        assert torch.equal(grads[0], torch.full((2, 2), 0.5)) and torch.equal(
            grads[1], torch.ones(3)
        )

        def fail() -> None:
            raise FileNotFoundError("no such checkpoint")

        try:
            ctx.rank_zero_call(fail)
        except (FileNotFoundError, RankZeroError) as err:
            print(f"rank {rank} rank_zero_call error: {type(err).__name__}: {err}", flush=True)
        assert ctx.rank_zero_call(lambda: "chosen") == "chosen"

        def fail_on_rank_one() -> int:
            if rank == 1:
                raise OSError("disk full")
            return rank

        try:
            ctx.all_ranks_call(fail_on_rank_one)
        except (OSError, RankFailedError) as err:
            print(f"rank {rank} all_ranks_call error: {type(err).__name__}: {err}", flush=True)
        assert ctx.all_ranks_call(lambda: rank * 10) == [0, 10]
        print(f"rank {rank} collectives done", flush=True)
    finally:
        ctx.teardown()
    return 0


def check_stuck_collective(rank: int) -> int:
    """Rank 0's step fails before a collective that rank 1's step runs (a sharded write): the
    announced failure must end rank 1 instead of leaving it there until the timeout."""
    from model_training_framework.trainer.runtime.distributed import DistributedContext
    from model_training_framework.trainer.runtime.failures import build_failure_watch

    ctx = DistributedContext.from_environment()
    ctx.setup(torch.device("cpu"))

    def write() -> None:
        if rank == 0:
            raise OSError("disk full")
        dist.barrier()  # rank 0 never comes

    with build_failure_watch(ctx) as watch:
        ctx.failure_reporter = watch.report
        ctx.all_ranks_call(write)
    return 0


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
