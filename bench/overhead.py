"""Per-step overhead of GenericTrainer vs a hand-written PyTorch loop (target: median
ratio <= 1.03, and below PyTorch Lightning; profiling on costs < 1 % of the step time).

Run: ``.venv/bin/python bench/overhead.py [--quick] [--rounds R] [--steps N] [--chunk K]``

The same work for every contender: a small MLP on the CPU (one torch thread), two DataLoaders
over TensorDatasets (``shuffle=True``, batch 64) taken round-robin, cross-entropy loss, Adam,
``zero_grad`` / ``backward`` / ``step`` once per batch. Contenders:

* ``framework``: ``GenericTrainer`` with its defaults: profiling on, console logger (its lines
  go to /dev/null so the table stays readable), ``metrics.jsonl``, the progress display, a
  checkpoint at the end (outside the timed window);
* ``framework-noprof``: the same with ``profile_training=False``;
* ``hand`` (only with ``--calibrate``): a second copy of the hand-written loop, timed the same
  way; its ratio is the floor of the method (about 1.00; the framework's ratio includes it);
* ``lightning``: PyTorch Lightning's ``Trainer`` (when ``lightning`` is installed) with the two
  loaders alternated by a small round-robin iterable (one batch per step, automatic
  optimisation). Switched off for fairness: progress bar, checkpointing, logger, model summary,
  sanity validation.

Measurement, built to survive a busy machine: the hand-written loop runs *inside* each
contender's run. A callback after every optimizer step closes a chunk of ``K`` contender steps
every ``K`` steps, then runs ``K`` steps of the hand-written loop (its own model, optimizer and
loaders over the same datasets) and times them, then reopens the contender's clock. Both sides
are thus sampled in alternation every few milliseconds, so load from other processes hits them
alike. Per run, the ratio is (contender time over all chunks) / (hand time over all chunks); the
table shows the median over ``R`` runs per contender (order rotated per round), on the CPU clock
of the thread (``time.thread_time``, the main figure) and on the wall clock. The first
``warmup`` steps of every run are not timed; setup and the final checkpoint are outside.

Targets: framework <= 1.03 and below Lightning; profiling on/off < 1.01. An end-to-end on/off
ratio cannot resolve much below 1 % on a busy machine, so the profiler's own per-step calls
(``StepProfiler.record_*``, ``sync`` and the periodic report) are also timed directly and shown
as a share of the hand-written step.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import logging
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.trainer import (
    CheckpointConfig,
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    SamplingStrategy,
    TrainerHooks,
)
from model_training_framework.trainer.metrics.profiling import StepProfiler

IN_FEATURES, HIDDEN, CLASSES, BATCH_SIZE = 128, 256, 10, 64
LR = 1e-3


@dataclass(frozen=True)
class Work:
    """What every contender trains on."""

    warmup: int
    steps: int
    chunk: int
    datasets: tuple[TensorDataset, TensorDataset]

    @property
    def total_steps(self) -> int:
        return self.warmup + self.steps


def make_work(warmup: int, steps: int, chunk: int) -> Work:
    """Two datasets long enough that no loader ends an epoch inside a run."""
    per_loader_batches = (warmup + steps) // 2 + 8
    generator = torch.Generator().manual_seed(0)
    datasets = tuple(
        TensorDataset(
            torch.randn(per_loader_batches * BATCH_SIZE, IN_FEATURES, generator=generator),
            torch.randint(CLASSES, (per_loader_batches * BATCH_SIZE,), generator=generator),
        )
        for _ in range(2)
    )
    return Work(warmup, steps - steps % chunk, chunk, datasets)  # type: ignore[arg-type]


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(IN_FEATURES, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, CLASSES),
    )


def make_loaders(work: Work) -> list[DataLoader]:
    return [DataLoader(ds, batch_size=BATCH_SIZE, shuffle=True) for ds in work.datasets]


def _clocks() -> tuple[float, float]:
    return time.thread_time(), time.perf_counter()


# ---------------------------------------------------------------------------- the hand loop
class HandLoop:
    """The hand-written loop: alternate two loaders, restart one when it runs dry."""

    def __init__(self, work: Work) -> None:
        self.model = make_model()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.loaders = make_loaders(work)
        self.iterators = [iter(loader) for loader in self.loaders]
        self.step = 0
        self.model.train()

    def run(self, num_steps: int) -> None:
        model, optimizer = self.model, self.optimizer
        for _ in range(num_steps):
            idx = self.step % 2
            self.step += 1
            try:
                inputs, targets = next(self.iterators[idx])
            except StopIteration:
                self.iterators[idx] = iter(self.loaders[idx])
                inputs, targets = next(self.iterators[idx])
            loss = F.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


@dataclass
class Interleaver:
    """Alternates chunks of contender steps with timed chunks of the hand-written loop."""

    work: Work
    hand: HandLoop
    contender_s: list[float] = field(default_factory=lambda: [0.0, 0.0])  # cpu, wall
    hand_s: list[float] = field(default_factory=lambda: [0.0, 0.0])
    _mark: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        self.hand.run(self.work.warmup)

    def at_step(self, step: int) -> None:
        """Call after every optimizer step of the contender (``step`` counts from 1)."""
        if step < self.work.warmup or step > self.work.total_steps:
            return
        if (step - self.work.warmup) % self.work.chunk:
            return
        now = _clocks()
        if self._mark is not None:
            self._add(self.contender_s, self._mark, now)
        if step < self.work.total_steps:
            self.hand.run(self.work.chunk)
            after = _clocks()
            self._add(self.hand_s, now, after)
            self._mark = _clocks()

    @staticmethod
    def _add(total: list[float], start: tuple[float, float], end: tuple[float, float]) -> None:
        total[0] += end[0] - start[0]
        total[1] += end[1] - start[1]

    def result(self) -> RunResult:
        assert self.hand_s[0] > 0 and self.contender_s[0] > 0, "no chunk was timed"
        steps = self.work.steps
        return RunResult(
            cpu_ratio=self.contender_s[0] / self.hand_s[0],
            wall_ratio=self.contender_s[1] / self.hand_s[1],
            cpu_us=1e6 * self.contender_s[0] / steps,
            hand_cpu_us=1e6 * self.hand_s[0] / steps,
        )


@dataclass(frozen=True)
class RunResult:
    """One contender run: time ratios to the interleaved hand loop, and per-step CPU times."""

    cpu_ratio: float
    wall_ratio: float
    cpu_us: float
    hand_cpu_us: float


# ---------------------------------------------------------------------------- contenders
def training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    inputs, targets = batch
    return {"loss": F.cross_entropy(trainer.model(inputs), targets)}


class _InterleaveHook(TrainerHooks):
    def __init__(self, interleaver: Interleaver) -> None:
        self._interleaver = interleaver

    def on_after_optimizer_step(self, trainer, optimizer_idx):
        self._interleaver.at_step(trainer.global_step)


def _run_framework(work: Work, root: Path, *, profile: bool) -> RunResult:
    model = make_model()
    config = GenericTrainerConfig(
        experiment_name=f"overhead_{time.monotonic_ns()}",
        seed=0,
        device="cpu",
        profile_training=profile,
        train_loader_config=MultiDataLoaderConfig(
            sampling_strategy=SamplingStrategy.ROUND_ROBIN, dataloader_names=["a", "b"]
        ),
        checkpoint=CheckpointConfig(root_dir=str(root)),
    )
    trainer = GenericTrainer(config, model, [torch.optim.Adam(model.parameters(), lr=LR)])
    trainer.set_training_step(training_step)
    interleaver = Interleaver(work, HandLoop(work))
    trainer.add_hook(_InterleaveHook(interleaver))
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        trainer.fit(train_loaders=make_loaders(work), max_steps=work.total_steps)
    return interleaver.result()


def run_hand(work: Work, root: Path) -> RunResult:
    """Calibration: a second hand-written loop as the contender (the method's floor, ~1.00)."""
    contender = HandLoop(work)
    interleaver = Interleaver(work, HandLoop(work))
    for step in range(1, work.total_steps + 1):
        contender.run(1)
        interleaver.at_step(step)
    return interleaver.result()


def run_framework(work: Work, root: Path) -> RunResult:
    return _run_framework(work, root, profile=True)


def run_framework_noprof(work: Work, root: Path) -> RunResult:
    return _run_framework(work, root, profile=False)


def lightning_contender() -> Callable[[Work, Path], RunResult] | None:
    """The Lightning contender, or None when ``lightning`` is not installed."""
    try:
        import lightning as L
    except ImportError:
        return None
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)

    class RoundRobin:
        """Alternates two loaders batch by batch; restarts a loader that runs dry."""

        def __init__(self, loaders: list[DataLoader], length: int) -> None:
            self.loaders, self.length = loaders, length

        def __len__(self) -> int:
            return self.length

        def __iter__(self) -> Iterator[Any]:
            iterators = [iter(loader) for loader in self.loaders]
            for step in range(self.length):
                idx = step % 2
                try:
                    yield next(iterators[idx])
                except StopIteration:
                    iterators[idx] = iter(self.loaders[idx])
                    yield next(iterators[idx])

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = make_model()

        def training_step(self, batch, batch_idx):
            inputs, targets = batch
            return F.cross_entropy(self.model(inputs), targets)

        def configure_optimizers(self):
            return torch.optim.Adam(self.model.parameters(), lr=LR)

    class InterleaveCallback(L.Callback):
        def __init__(self, interleaver: Interleaver) -> None:
            self._interleaver = interleaver

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self._interleaver.at_step(trainer.global_step)

    def run_lightning(work: Work, root: Path) -> RunResult:
        interleaver = Interleaver(work, HandLoop(work))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. the hint to use srun when Slurm is installed
            trainer = L.Trainer(
                accelerator="cpu",
                devices=1,
                max_steps=work.total_steps,
                enable_progress_bar=False,
                enable_checkpointing=False,
                logger=False,
                enable_model_summary=False,
                num_sanity_val_steps=0,
                default_root_dir=str(root),
                callbacks=[InterleaveCallback(interleaver)],
            )
        data = RoundRobin(make_loaders(work), work.total_steps)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            trainer.fit(Module(), train_dataloaders=data)
        return interleaver.result()

    return run_lightning


# ---------------------------------------------------------------------------- profiler cost
def profiler_cost_per_step_s(repeats: int = 20_000, log_every: int = 10) -> float:
    """Time of the profiler's own calls for one step (records + a share of the report)."""
    profiler = StepProfiler(["a", "b"], [], sync_cuda=False)
    start = time.thread_time()
    for step in range(1, repeats + 1):
        idx = step % 2
        profiler.record_train(idx, 1e-4, 2e-4, 3e-4)
        profiler.sync()
        profiler.record_optimizer(idx, 1e-4)
        profiler.sync()
        if step % log_every == 0:
            profiler.pop_train_means()
    return (time.thread_time() - start) / repeats


# ---------------------------------------------------------------------------- driver
Contender = Callable[[Work, Path], RunResult]
Results = dict[str, list[RunResult]]


def measure(contenders: dict[str, Contender], work: Work, rounds: int) -> Results:
    """One run of every contender per round (order rotated per round)."""
    names = list(contenders)
    results: Results = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="mtf_overhead_") as tmp:
        for round_idx in range(rounds):
            shift = round_idx % len(names)
            for name in names[shift:] + names[:shift]:
                gc.collect()
                results[name].append(contenders[name](work, Path(tmp)))
            cells = ", ".join(f"{n} {results[n][-1].cpu_ratio:.3f}" for n in names)
            print(f"round {round_idx + 1}/{rounds} (cpu ratio to hand): {cells}", flush=True)
    return results


def _median(results: list[RunResult], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in results)


def print_table(results: Results, profiler_s: float) -> None:
    """One table: per contender, the median ratios to the interleaved hand loop."""
    targets = {"framework": "<= 1.03", "lightning": "framework below it"}
    print()
    print(
        f"{'contender':<18}{'cpu ratio':>10}{'min..max':>15}{'wall ratio':>12}"
        f"{'cpu us/step':>13}{'hand us/step':>14}  target"
    )
    for name, runs in results.items():
        ratios = [r.cpu_ratio for r in runs]
        print(
            f"{name:<18}{_median(runs, 'cpu_ratio'):>10.3f}{min(ratios):>8.3f}..{max(ratios):<5.3f}"
            f"{_median(runs, 'wall_ratio'):>12.3f}{_median(runs, 'cpu_us'):>13.1f}"
            f"{_median(runs, 'hand_cpu_us'):>14.1f}  {targets.get(name, '')}"
        )
    if "framework-noprof" in results:
        on_off = _median(results["framework"], "cpu_ratio") / _median(
            results["framework-noprof"], "cpu_ratio"
        )
        print(
            f"\nprofiling on / off (ratio of the median cpu ratios): {on_off:.4f}   target < 1.01"
        )
    hand_us = statistics.median(r.hand_cpu_us for runs in results.values() for r in runs)
    print(
        f"profiler calls per step, timed directly: {profiler_s * 1e6:.2f} us "
        f"= {1e8 * profiler_s / hand_us:.3f} % of the hand-written step   target < 1 %"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 400 steps")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 7)")
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps per run (default 1500)"
    )
    parser.add_argument("--chunk", type=int, default=20, help="steps per interleaved chunk")
    parser.add_argument("--warmup", type=int, default=40, help="untimed steps before timing")
    parser.add_argument("--no-lightning", action="store_true", help="skip the Lightning contender")
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="add a 'hand' contender: the hand loop against itself (the method's floor)",
    )
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    steps = args.steps or (400 if args.quick else 1500)
    torch.set_num_threads(1)
    work = make_work(args.warmup, steps, args.chunk)
    contenders: dict[str, Contender] = {
        "framework": run_framework,
        "framework-noprof": run_framework_noprof,
    }
    if args.calibrate:
        contenders["hand"] = run_hand
    lightning = None if args.no_lightning else lightning_contender()
    if lightning is not None:
        contenders["lightning"] = lightning
    else:
        print("lightning not measured (not installed or --no-lightning)")
    print(
        f"{rounds} rounds x {work.steps} timed steps (+{work.warmup} warm-up) in chunks of "
        f"{work.chunk}, batch {BATCH_SIZE}, MLP {IN_FEATURES}-{HIDDEN}-{HIDDEN}-{CLASSES}, "
        "torch threads 1"
    )
    results = measure(contenders, work, rounds)
    print_table(results, profiler_cost_per_step_s())


if __name__ == "__main__":
    main()
