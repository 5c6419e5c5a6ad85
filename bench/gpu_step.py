"""Steady-state time per step on a GPU: GenericTrainer vs careful hand loops and Lightning.

Run: ``.venv/bin/python bench/gpu_step.py [--rounds R] [--steps N] [--checkpoint-gb G]``
Smoke run without a GPU (what the test suite runs): ``bench/gpu_step.py --device cpu --tiny``.
Without CUDA and without ``--device cpu`` it prints why and exits (status 0).

Contenders, side by side in one process, on the same model, data and DataLoader settings
(``pin_memory=True`` on CUDA):

* ``careful``: a hand-written loop that never reads a value back from the GPU: batches copied
  with ``non_blocking=True``, ``loss.backward()``, ``step()``, ``zero_grad(set_to_none=True)``;
* ``item``: the same loop plus ``loss.item()`` every step (one host-device sync per step);
* ``framework``: ``GenericTrainer`` with its defaults (profiling on, JSONL + console logging,
  non-finite checks, stop-flag checks), ``use_amp`` on the bf16 workload;
* ``lightning``: ``lightning.Trainer`` (when installed: the ``bench`` extra), automatic
  optimisation, progress bar, logger, checkpointing and model summary off.

Workloads:

* ``launch-bound``: MLP 256-256-256-10, batch 64 from a per-sample ``TensorDataset`` (default
  collation), fp32, Adam: the host's kernel launches and Python set the pace;
* ``compute-bound``: MLP 8192 wide (input 1024, four 8192x8192 layers), batch 1024, bf16
  autocast, Adam; batches are sliced from one tensor (cheap data), so the GPU sets the pace.

Timing: each contender trains ``warmup + steps`` steps; the window between optimizer steps
``warmup`` and ``warmup + steps`` is timed with a ``torch.cuda.synchronize()`` at both ends
only (wall clock). Rounds alternate the contender order; the table shows medians per step and
the ratio to ``careful``. Targets: framework <= 1.02 (compute-bound) and <= 1.10
(launch-bound), and below Lightning on both.

Also: the asynchronous checkpoint's blocking time with a multi-GB CUDA payload (``save()`` with
``async_save=True``: the snapshot to pinned CPU memory) against a synchronous save.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from model_training_framework.trainer import (
    CheckpointConfig,
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    TrainerHooks,
)
from model_training_framework.trainer.state.manager import CheckpointManager

TARGETS = {"launch-bound": 1.10, "compute-bound": 1.02}


# ---------------------------------------------------------------------------- workloads
@dataclass(frozen=True)
class Workload:
    """A model, its data and how it trains."""

    name: str
    widths: tuple[int, ...]  # input, hidden..., output
    batch_size: int
    num_batches: int
    bf16: bool
    per_sample: bool  # a per-sample TensorDataset (default collation) or sliced batches

    def model(self, device: torch.device) -> torch.nn.Module:
        torch.manual_seed(0)
        layers: list[torch.nn.Module] = []
        for idx, (a, b) in enumerate(zip(self.widths, self.widths[1:], strict=False)):
            layers.append(torch.nn.Linear(a, b))
            if idx < len(self.widths) - 2:
                layers.append(torch.nn.ReLU())
        return torch.nn.Sequential(*layers).to(device)

    def loader(self, device: torch.device) -> DataLoader:
        g = torch.Generator().manual_seed(0)
        n = self.num_batches * self.batch_size
        x = torch.randn(n, self.widths[0], generator=g)
        y = torch.randint(self.widths[-1], (n,), generator=g)
        pin = device.type == "cuda"
        if self.per_sample:
            return DataLoader(
                TensorDataset(x, y), batch_size=self.batch_size, shuffle=True, pin_memory=pin
            )
        return DataLoader(
            _SlicedDataset(x, y),
            batch_size=self.batch_size,
            shuffle=False,
            collate_fn=_already_batched,
            pin_memory=pin,
        )


class _SlicedDataset(Dataset):
    """Whole batches by slicing (``__getitems__``): data costs next to nothing."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        start, stop = indices[0], indices[-1] + 1  # sequential sampler: contiguous batches
        return self.x[start:stop], self.y[start:stop]


def _already_batched(batch: Any) -> Any:
    return batch


def workloads(tiny: bool, steps: int) -> list[Workload]:
    batches = steps + 8
    if tiny:
        return [
            Workload("launch-bound", (16, 16, 4), 8, batches, False, True),
            Workload("compute-bound", (16, 32, 32, 4), 8, batches, True, False),
        ]
    return [
        Workload("launch-bound", (256, 256, 256, 10), 64, batches, False, True),
        Workload("compute-bound", (1024, 8192, 8192, 8192, 8192, 10), 1024, batches, True, False),
    ]


def _autocast(work: Workload, device: torch.device) -> Any:
    if work.bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------- contenders
def hand_loop(
    work: Workload, device: torch.device, warmup: int, steps: int, *, read: bool
) -> float:
    """Seconds per step of the careful loop (``read``: plus ``loss.item()`` every step)."""
    model = work.model(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    start = 0.0
    for step, (x, y) in enumerate(work.loader(device)):
        if step == warmup:
            _sync(device)
            start = time.perf_counter()
        elif step == warmup + steps:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(work, device):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if read:
            loss.item()
    _sync(device)
    return (time.perf_counter() - start) / steps


class _Window(TrainerHooks):
    def __init__(self, device: torch.device, first: int, last: int) -> None:
        self.device, self.first, self.last = device, first, last
        self.start = self.seconds = 0.0

    def on_after_optimizer_step(self, trainer, optimizer_idx):
        if trainer.global_step == self.first:
            _sync(self.device)
            self.start = time.perf_counter()
        elif trainer.global_step == self.last:
            _sync(self.device)
            self.seconds = time.perf_counter() - self.start


def _framework_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    x, y = batch
    return {"loss": F.cross_entropy(trainer.model(x), y)}


def framework(work: Workload, device: torch.device, warmup: int, steps: int, root: Path) -> float:
    """Seconds per step of GenericTrainer with its defaults."""
    model = work.model(device)
    config = GenericTrainerConfig(
        experiment_name=f"gpu_step_{time.monotonic_ns()}",
        seed=0,
        device=str(device),
        train_loader_config=MultiDataLoaderConfig(),
        checkpoint=CheckpointConfig(root_dir=str(root)),
        performance={"use_amp": work.bf16, "amp_dtype": "bfloat16"},
    )
    trainer = GenericTrainer(config, model, [torch.optim.Adam(model.parameters(), lr=1e-4)])
    trainer.set_training_step(_framework_step)
    window = _Window(device, warmup, warmup + steps)
    trainer.add_hook(window)
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        trainer.fit([work.loader(device)], max_steps=warmup + steps)
    return window.seconds / steps


def lightning_contender() -> Callable[..., float] | None:
    """Lightning's ``Trainer`` as a contender, or None when ``lightning`` is not installed."""
    try:
        import lightning as L
    except ImportError:
        return None
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)

    class Module(L.LightningModule):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.model(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.model.parameters(), lr=1e-4)

    class Window(L.Callback):
        def __init__(self, device: torch.device, first: int, last: int) -> None:
            self.device, self.first, self.last = device, first, last
            self.start = self.seconds = 0.0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == self.first:
                _sync(self.device)
                self.start = time.perf_counter()
            elif trainer.global_step == self.last:
                _sync(self.device)
                self.seconds = time.perf_counter() - self.start

    def run(work: Workload, device: torch.device, warmup: int, steps: int, root: Path) -> float:
        window = Window(device, warmup, warmup + steps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = L.Trainer(
                accelerator="gpu" if device.type == "cuda" else "cpu",
                devices=1,
                precision="bf16-mixed" if work.bf16 else "32-true",
                max_steps=warmup + steps,
                enable_progress_bar=False,
                enable_checkpointing=False,
                logger=False,
                enable_model_summary=False,
                num_sanity_val_steps=0,
                default_root_dir=str(root),
                callbacks=[window],
            )
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            trainer.fit(Module(work.model(device)), train_dataloaders=work.loader(device))
        return window.seconds / steps

    return run


# ---------------------------------------------------------------------------- checkpoint
def async_checkpoint_blocking(device: torch.device, size_gb: float, root: Path) -> dict[str, float]:
    """Seconds ``save()`` blocks with ``async_save`` vs a synchronous save, for a payload of
    ``size_gb`` GB of tensors on ``device`` (second save of each mode; the first allocates)."""
    numel = min(64 * 2**20, max(1, int(size_gb * 2**30 / 4)))  # tensors of up to 256 MB
    count = max(1, round(size_gb * 2**30 / (4 * numel)))
    payload = {"model": {f"w{i}": torch.randn(numel, device=device) for i in range(count)}}
    results = {}
    for async_save in (False, True):
        config = CheckpointConfig(max_checkpoints=1, async_save=async_save)
        run_dir = root / f"ckpt_async_{async_save}"
        manager = CheckpointManager(config, run_dir, code_version={"commit": None, "dirty": None})
        blocked = []
        for step in range(2):
            _sync(device)
            start = time.perf_counter()
            manager.save(payload, epoch=0, step=step)
            blocked.append(time.perf_counter() - start)
            manager.wait()
        results["async_blocked_s" if async_save else "sync_s"] = blocked[-1]
    results["payload_gb"] = count * numel * 4 / 2**30
    return results


# ---------------------------------------------------------------------------- driver
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (smoke runs)")
    parser.add_argument("--tiny", action="store_true", help="tiny models and few steps (smoke)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3; tiny 1)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 200)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 30)")
    parser.add_argument("--checkpoint-gb", type=float, default=None, help="payload (default 4)")
    parser.add_argument("--no-lightning", action="store_true", help="skip the Lightning contender")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "bench/gpu_step.py measures GPU steps but CUDA is not available here: nothing "
            "measured. Run it on a machine with a GPU (or --device cpu --tiny for a smoke run)."
        )
        return 0
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    rounds = args.rounds or (1 if args.tiny else 3)
    steps = args.steps or (4 if args.tiny else 200)
    warmup = args.warmup or (2 if args.tiny else 30)
    checkpoint_gb = args.checkpoint_gb or (0.01 if args.tiny else 4.0)
    contenders: dict[str, Callable[..., float]] = {
        "careful": lambda w, d, a, n, r: hand_loop(w, d, a, n, read=False),
        "item": lambda w, d, a, n, r: hand_loop(w, d, a, n, read=True),
        "framework": framework,
    }
    lightning = None if args.no_lightning else lightning_contender()
    if lightning is not None:
        contenders["lightning"] = lightning
    else:
        print("lightning not measured (not installed or --no-lightning)")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}, {rounds} rounds x {steps} steps (+{warmup})")
    table: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="mtf_gpu_step_") as tmp:
        for work in workloads(args.tiny, warmup + steps):
            names = list(contenders)
            for round_idx in range(rounds):
                shift = round_idx % len(names)
                for contender in names[shift:] + names[:shift]:
                    if not args.tiny:  # a full collection takes a while with torch loaded
                        gc.collect()
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    seconds = contenders[contender](work, device, warmup, steps, Path(tmp))
                    table.setdefault((work.name, contender), []).append(seconds)
                cells = ", ".join(f"{c} {1e3 * table[(work.name, c)][-1]:.3f} ms" for c in names)
                print(f"{work.name} round {round_idx + 1}/{rounds}: {cells}", flush=True)
        print(f"\n{'workload':<15}{'contender':<11}{'ms/step':>10}{'vs careful':>12}  target")
        for work in workloads(args.tiny, warmup + steps):
            careful = statistics.median(table[(work.name, "careful")])
            for contender in contenders:
                median = statistics.median(table[(work.name, contender)])
                target = f"<= {TARGETS[work.name]:.2f}" if contender == "framework" else ""
                print(
                    f"{work.name:<15}{contender:<11}{1e3 * median:>10.3f}"
                    f"{median / careful:>12.3f}  {target}"
                )
        ckpt = async_checkpoint_blocking(device, checkpoint_gb, Path(tmp))
    ratio = ckpt["async_blocked_s"] / ckpt["sync_s"]
    print(
        f"\nasync checkpoint, {ckpt['payload_gb']:.2f} GB on {device.type}: save() blocks "
        f"{ckpt['async_blocked_s']:.3f} s vs {ckpt['sync_s']:.3f} s synchronous = "
        f"{100 * ratio:.1f} %   target < 10 %"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
