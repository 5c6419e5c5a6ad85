"""Resume latency at 10 %, 50 % and 90 % of a 100k-batch epoch (target: < 1 s
at every position, flat in position, and no replay: one batch fetched before the first step).

Run: ``.venv/bin/python bench/resume_latency.py [--batches N] [--repeats R]``

One loader whose epoch has ``N`` batches (default 100 000): a map-style dataset of
``N * batch_size`` tiny samples computed on the fly (nothing stored), ``shuffle=True``. A trivial
model trains honestly to 90 % of the epoch, saving a checkpoint every 10 % (so the files at 10 %,
50 % and 90 % are real checkpoints of a real run). Then, for each of them, a fresh trainer calls
``fit(resume_from_checkpoint=...)`` and a hook on ``on_train_batch_start`` records the time of
the first training step and stops the run. The latency is that time minus the time ``fit`` was
called; it covers input checks, opening the loader, loading the checkpoint, restoring every
state and fetching the first batch. Each position is measured ``R`` times, interleaved, and the
median is shown. A fresh start (no checkpoint) is measured the same way for reference.

No replay: the dataset counts ``__getitem__`` calls; resuming at batch k must fetch only the
first batch's samples (``batch_size``), not ``k * batch_size``, and the first batch must be
batch k of the epoch. Targets: every latency < 1 s, and flat (max/min close to 1).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from model_training_framework.errors import HookError
from model_training_framework.trainer import (
    CheckpointConfig,
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    SamplingStrategy,
    TrainerHooks,
)

BATCH_SIZE = 4
FRACTIONS = (0.1, 0.5, 0.9)
EXPERIMENT = "resume_latency"


class ComputedDataset(Dataset):
    """``length`` samples computed from their index; counts how many were fetched."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.fetched = 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.fetched += 1
        value = float(index % 1009) / 1009.0
        return torch.tensor([value]), torch.tensor([2.0 * value])


def training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    inputs, targets = batch
    return {"loss": torch.nn.functional.mse_loss(trainer.model(inputs), targets)}


class _StopAtFirstStep(TrainerHooks):
    """Records the first training step's time, batch index and fetch count, then stops."""

    class Stop(Exception):
        """Raised to end the run once the first step was reached."""

    def __init__(self, dataset: ComputedDataset) -> None:
        self._dataset = dataset
        self.reached_s: float | None = None
        self.batch_idx: int | None = None
        self.fetched: int | None = None

    def on_train_batch_start(self, trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        self.reached_s = time.perf_counter()
        self.batch_idx, self.fetched = batch_idx, self._dataset.fetched
        raise self.Stop


def make_trainer(root: Path, save_every: int | None) -> GenericTrainer:
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    config = GenericTrainerConfig(
        experiment_name=EXPERIMENT,
        seed=0,
        device="cpu",
        log_loss_every_n_steps=1000,
        train_loader_config=MultiDataLoaderConfig(
            sampling_strategy=SamplingStrategy.SEQUENTIAL, dataloader_names=["main"]
        ),
        checkpoint=CheckpointConfig(
            root_dir=str(root), save_every_n_steps=save_every, max_checkpoints=10
        ),
    )
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.01)])
    trainer.set_training_step(training_step)
    return trainer


def make_loader(num_batches: int) -> tuple[DataLoader, ComputedDataset]:
    dataset = ComputedDataset(num_batches * BATCH_SIZE)
    return DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True), dataset


def train_and_checkpoint(root: Path, num_batches: int) -> dict[float, Path]:
    """Train to 90 % of the epoch, saving every 10 %; return the checkpoints by fraction."""
    step_every = num_batches // 10
    trainer = make_trainer(root, save_every=step_every)
    loader, _ = make_loader(num_batches)
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        result = trainer.fit(train_loaders=[loader], max_steps=9 * step_every)
    assert result.global_step == 9 * step_every, result
    found = {path.name: path for path in (root / EXPERIMENT).glob("*.ckpt")}
    checkpoints = {}
    for fraction in FRACTIONS:
        step = round(fraction * 10) * step_every
        name = f"epoch_0_step_{step}.ckpt"
        if name not in found:
            raise FileNotFoundError(
                f"expected {name} in {root / EXPERIMENT}, found {sorted(found)}"
            )
        checkpoints[fraction] = found[name]
    return checkpoints


@dataclass(frozen=True)
class FirstStep:
    latency_s: float
    batch_idx: int
    fetched: int


def time_first_step(root: Path, num_batches: int, checkpoint: Path | None) -> FirstStep:
    """Seconds from calling fit(...) to the first training step."""
    trainer = make_trainer(root, save_every=None)
    loader, dataset = make_loader(num_batches)
    hook = _StopAtFirstStep(dataset)
    trainer.add_hook(hook)
    if checkpoint is None:  # a fresh start: nothing to resume from in this directory
        trainer.config.experiment_name = f"{EXPERIMENT}_fresh"
    started = time.perf_counter()
    with (
        open(os.devnull, "w") as sink,
        contextlib.redirect_stderr(sink),
        contextlib.suppress(HookError),
    ):
        trainer.fit(train_loaders=[loader], resume_from_checkpoint=checkpoint)
    assert hook.reached_s is not None, "the first step was not reached"
    assert hook.batch_idx is not None and hook.fetched is not None
    return FirstStep(hook.reached_s - started, hook.batch_idx, hook.fetched)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100_000, help="batches per epoch")
    parser.add_argument("--repeats", type=int, default=5, help="measurements per position")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="mtf_resume_latency_") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        checkpoints = train_and_checkpoint(root, args.batches)
        print(
            f"trained {9 * (args.batches // 10)} steps of a {args.batches}-batch epoch "
            f"(batch {BATCH_SIZE}, shuffled) in {time.perf_counter() - started:.1f} s; "
            "checkpoints every 10 %"
        )
        positions: dict[str, Path | None] = {"fresh start": None}
        positions.update({f"{fraction:.0%}": path for fraction, path in checkpoints.items()})
        results: dict[str, list[FirstStep]] = {label: [] for label in positions}
        for _ in range(args.repeats):
            for label, path in positions.items():
                results[label].append(time_first_step(root, args.batches, path))
    print(
        f"\n{'position':<14}{'first batch':>12}{'samples fetched':>17}{'median ms':>11}{'max ms':>9}"
    )
    for label, runs in results.items():
        latencies = [r.latency_s * 1e3 for r in runs]
        print(
            f"{label:<14}{runs[0].batch_idx:>12}{runs[0].fetched:>17}"
            f"{statistics.median(latencies):>11.1f}{max(latencies):>9.1f}"
        )
    resumed = [statistics.median(r.latency_s for r in results[f"{f:.0%}"]) for f in FRACTIONS]
    print(
        f"\nresume latency: max {max(resumed) * 1e3:.1f} ms (target < 1000 ms), "
        f"max/min {max(resumed) / min(resumed):.3f} (flat: close to 1)"
    )
    replayed = [r for f in FRACTIONS for r in results[f"{f:.0%}"] if r.fetched != BATCH_SIZE]
    print(
        "no replay: every resume fetched only its first batch"
        if not replayed
        else f"REPLAY: a resume fetched {replayed[0].fetched} samples before its first step"
    )


if __name__ == "__main__":
    main()
