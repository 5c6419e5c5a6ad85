"""The framework's own cost per batch: GenericTrainer minus a raw loop over the same loaders.

Run: ``.venv/bin/python bench/per_batch_cost.py [--rounds R] [--steps N] [--loaders 2 100]``

A trivial model (``Linear(4, 1)``, batch 2, SGD) makes the torch work per batch small, so what
is left is the framework's per-batch Python: schedule decision, loader bookkeeping, fingerprint,
metric accumulation, the non-finite check, profiling timers, hook dispatch, boundary checks.
Both sides do the same torch work (forward, backward, optimizer step, zero_grad) over DataLoaders
built the same way, taken round-robin; the raw loop restarts a loader that runs dry.

Measurement (as in overhead.py): the raw loop runs *inside* the trainer's run. A hook after every
optimizer step closes a chunk of ``K`` trainer steps every ``K`` steps, runs and times ``K`` steps
of the raw loop (its own model, optimizer and loaders), then reopens the trainer's clock; thread
CPU time (``time.thread_time``). Both sides are thus sampled in alternation every few
milliseconds, so load from other processes hits them alike. Setup, the warm-up steps and the
final checkpoint are outside the timed window. The table shows medians over the rounds and the
spread; the hook's own call is counted as framework cost. Target: <= 8 us per batch with 2 loaders and with 100.

``--log-every N`` sets both log intervals (``log_loss_every_n_steps`` and
``logging.log_scalars_every_n_steps``, default 50 each); ``--log-every 0`` switches both off,
which leaves the cost of the steps between log steps: the difference to the default run is what
the log steps cost (with many loaders a log step writes every loader's loss and timers).

``--calibrate`` adds the method's floor: the same interleaving around a "framework" that does
nothing but run one step of a second raw loop per batch and call the hook (a Python loop, one
call per batch, no trainer). No framework that calls a per-step hook can measure below it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.trainer import (
    CheckpointConfig,
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    SamplingStrategy,
    TrainerHooks,
)

BATCH_SIZE = 2
WARMUP = 200
TARGET_US = 8.0


def make_loaders(num_loaders: int, batches_per_loader: int) -> list[DataLoader]:
    generator = torch.Generator().manual_seed(0)
    n = batches_per_loader * BATCH_SIZE
    return [
        DataLoader(
            TensorDataset(
                torch.randn(n, 4, generator=generator), torch.randn(n, 1, generator=generator)
            ),
            batch_size=BATCH_SIZE,
            shuffle=True,
        )
        for _ in range(num_loaders)
    ]


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(4, 1)


class RawLoop:
    """The hand-written loop: round-robin over the loaders, restart one that runs dry."""

    def __init__(self, num_loaders: int, batches_per_loader: int) -> None:
        self.loaders = make_loaders(num_loaders, batches_per_loader)
        self.iterators = [iter(loader) for loader in self.loaders]
        self.model = make_model()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.step = 0

    def run(self, num_steps: int) -> None:
        model, optimizer, mse = self.model, self.optimizer, torch.nn.functional.mse_loss
        loaders, iterators, num_loaders = self.loaders, self.iterators, len(self.loaders)
        for _ in range(num_steps):
            idx = self.step % num_loaders
            self.step += 1
            try:
                inputs, targets = next(iterators[idx])
            except StopIteration:
                iterators[idx] = iter(loaders[idx])
                inputs, targets = next(iterators[idx])
            loss = mse(model(inputs), targets)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)


class _Interleave(TrainerHooks):
    """After every ``chunk`` trainer steps, times ``chunk`` steps of the raw loop.

    Both sides are sampled in alternation every few milliseconds, so load from other processes
    hits them alike; their thread CPU times are summed over the timed steps.
    """

    def __init__(self, raw: RawLoop, chunk: int, first: int, last: int) -> None:
        self.raw, self.chunk, self.first, self.last = raw, chunk, first, last
        self.framework_s = self.raw_s = 0.0
        self._mark: float | None = None

    def on_after_optimizer_step(self, trainer, optimizer_idx):
        step = trainer.global_step
        if step < self.first or step > self.last or (step - self.first) % self.chunk:
            return
        now = time.thread_time()
        if self._mark is not None:
            self.framework_s += now - self._mark
        if step < self.last:
            self.raw.run(self.chunk)
            after = time.thread_time()
            self.raw_s += after - now
            self._mark = time.thread_time()


def _training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    inputs, targets = batch
    return {"loss": torch.nn.functional.mse_loss(trainer.model(inputs), targets)}


class _Counter:
    """Stands in for the trainer in the floor's hook calls: only the step count."""

    global_step = 0


def measure_floor(num_loaders: int, steps: int, chunk: int) -> tuple[float, float]:
    """(floor, raw) thread CPU microseconds per batch: ``measure`` without a trainer."""
    per_loader = (steps + WARMUP) // num_loaders + 2
    raw, twin = RawLoop(num_loaders, per_loader), RawLoop(num_loaders, per_loader)
    raw.run(WARMUP)
    interleave, counter = _Interleave(raw, chunk, WARMUP, WARMUP + steps), _Counter()
    for step in range(1, WARMUP + steps + 1):
        twin.run(1)
        counter.global_step = step
        interleave.on_after_optimizer_step(counter, 0)
    return 1e6 * interleave.framework_s / steps, 1e6 * interleave.raw_s / steps


def _log_settings(log_every: int | None) -> dict[str, object]:
    """The trainer's log intervals for ``--log-every`` (None: the defaults, 0: off)."""
    if log_every is None:
        return {}
    interval = log_every or None
    return {"log_loss_every_n_steps": interval, "logging": {"log_scalars_every_n_steps": interval}}


def measure(
    num_loaders: int, steps: int, chunk: int, root: Path, log_every: int | None = None
) -> tuple[float, float]:
    """(framework, raw) thread CPU microseconds per batch, interleaved in one trainer run."""
    per_loader = (steps + WARMUP) // num_loaders + 2
    names = [f"l{i}" for i in range(num_loaders)]
    config = GenericTrainerConfig(
        experiment_name=f"cost_{time.monotonic_ns()}",
        seed=0,
        device="cpu",
        train_loader_config=MultiDataLoaderConfig(
            sampling_strategy=SamplingStrategy.ROUND_ROBIN, dataloader_names=names
        ),
        checkpoint=CheckpointConfig(root_dir=str(root)),
        **_log_settings(log_every),
    )
    model = make_model()
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.01)])
    trainer.set_training_step(_training_step)
    raw = RawLoop(num_loaders, per_loader)
    raw.run(WARMUP)
    interleave = _Interleave(raw, chunk, WARMUP, WARMUP + steps)
    trainer.add_hook(interleave)
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        trainer.fit(make_loaders(num_loaders, per_loader), max_steps=WARMUP + steps)
    return 1e6 * interleave.framework_s / steps, 1e6 * interleave.raw_s / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--loaders", type=int, nargs="+", default=[2, 100])
    parser.add_argument("--chunk", type=int, default=20, help="steps per interleaved chunk")
    parser.add_argument(
        "--log-every",
        type=int,
        default=None,
        help="both log intervals in steps (default: the trainer's, 50); 0: logging off",
    )
    parser.add_argument(
        "--calibrate", action="store_true", help="also measure the method's floor (no trainer)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    kinds = ["framework", "floor"] if args.calibrate else ["framework"]
    rows = [(kind, n) for n in args.loaders for kind in kinds]
    costs: dict[tuple[str, int], list[float]] = {row: [] for row in rows}
    raw_us: dict[tuple[str, int], list[float]] = {row: [] for row in rows}
    log_every = "the default" if args.log_every is None else args.log_every or "never"
    print(
        f"{args.rounds} rounds x {args.steps} batches (+{WARMUP} warm-up), Linear(4, 1), "
        f"batch {BATCH_SIZE}, SGD, round-robin loaders, torch threads 1, log every "
        f"{log_every}"
    )
    with tempfile.TemporaryDirectory(prefix="mtf_cost_") as tmp:
        for round_idx in range(args.rounds):
            cells = []
            for kind, n in rows:
                gc.collect()
                if kind == "floor":
                    per_fw, per_raw = measure_floor(n, args.steps, args.chunk)
                else:
                    per_fw, per_raw = measure(n, args.steps, args.chunk, Path(tmp), args.log_every)
                costs[kind, n].append(per_fw - per_raw)
                raw_us[kind, n].append(per_raw)
                cells.append(f"{kind} {n} loaders {per_fw - per_raw:6.2f} us")
            print(f"round {round_idx + 1}/{args.rounds}: " + ", ".join(cells), flush=True)
    print(
        f"\n{'':>10}{'loaders':>8}{'raw us/batch':>14}{'cost us/batch':>15}{'min..max':>16}  target"
    )
    for kind, n in rows:
        values = costs[kind, n]
        target = f"<= {TARGET_US:g} us" if kind == "framework" else "(the method's floor)"
        print(
            f"{kind:>10}{n:>8}{statistics.median(raw_us[kind, n]):>14.2f}"
            f"{statistics.median(values):>15.2f}{min(values):>8.2f}..{max(values):<7.2f}  {target}"
        )


if __name__ == "__main__":
    main()
