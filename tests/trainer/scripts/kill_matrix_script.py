"""One configurable training run that can SIGKILL itself at a precise moment.

Usage: python kill_matrix_script.py ROOT NAME CASE_JSON [KILL ...]

CASE_JSON sets the run: ``strategy`` (a SamplingStrategy value), ``gas`` (gradient
accumulation steps), ``iterable`` (the second train loader reads a stateful IterableDataset;
then the epoch is ``steps_per_epoch`` micro-batches, FIXED_NUM_STEPS), ``val_every`` (None: no
validation; "epoch": the default, once per epoch; else every N optimizer steps), ``scheduler`` (an ExponentialLR stepping
per optimizer step), ``checkpoint`` (the checkpoint section; ``{}`` keeps every default),
``workers`` (of the map-style train loader), ``log_every`` (log_loss_every_n_steps, default 1;
None keeps the default), ``loader`` and ``performance`` (more fields of those sections),
``max_epochs``.

Each KILL is ``PHASE@STEP``; it fires once per run directory (a marker file
``ROOT/NAME.killed.<i>`` records it), so rerunning the same command resumes past it:

- ``window@S``: inside the training step, mid accumulation window, once global_step is S
  (after ``gas // 2`` micro-batches of the window went through backward);
- ``validation@S``: inside the validation step, at the second validation batch of the pass that
  runs at step S or later;
- ``after_save@S``: just after the first checkpoint at step S or later is published
  (``latest.ckpt`` moved);
- ``mid_write@S``: in the middle of writing the first checkpoint at step S or later (part of the
  temporary file written, nothing renamed).

On completion it writes ROOT/NAME/final.pt (model, optimizer and scheduler state, data
fingerprint, global step) and prints ``STATUS completed``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from model_training_framework.trainer import GenericTrainer, GenericTrainerConfig, TrainerHooks
from model_training_framework.trainer.state import file_format, manager


def dataset(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return TensorDataset(x, x.sum(1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=g))


class Stream(IterableDataset):
    """A shuffled stream that knows where it stands: (pass, offset) is its whole state."""

    def __init__(self, n: int, seed: int) -> None:
        self.data, self.n, self.seed = dataset(n, seed), n, seed
        self.pass_idx, self.offset = 0, 0

    def __iter__(self):
        order = torch.randperm(
            self.n, generator=torch.Generator().manual_seed(self.seed * 1000 + self.pass_idx)
        )
        while self.offset < self.n:
            item = self.data[int(order[self.offset])]
            self.offset += 1
            yield item
        self.pass_idx, self.offset = self.pass_idx + 1, 0

    def state_dict(self) -> dict[str, int]:
        return {"pass_idx": self.pass_idx, "offset": self.offset}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.pass_idx, self.offset = state["pass_idx"], state["offset"]


class Kills:
    """The kills asked for, each fired once (its marker file says it fired)."""

    def __init__(self, root: Path, name: str, specs: list[str]) -> None:
        self.pending: dict[str, tuple[int, Path]] = {}
        for idx, spec in enumerate(specs):
            phase, step = spec.split("@")
            marker = root / f"{name}.killed.{idx}"
            if not marker.exists():
                self.pending.setdefault(phase, (int(step), marker))
        self.trainer: GenericTrainer | None = None

    def due(self, phase: str) -> bool:
        due = self.pending.get(phase)
        return due is not None and self.trainer is not None and self.trainer.global_step >= due[0]

    def fire(self, phase: str) -> None:
        marker = self.pending[phase][1]
        marker.write_text(f"{phase} at step {self.trainer.global_step}\n")
        print("KILL", phase, self.trainer.global_step, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


def patch_checkpoint_writes(kills: Kills) -> None:
    """Kill in the middle of a checkpoint write, or just after a checkpoint is published."""
    original_write = file_format.atomic_write

    def atomic_write(path, write):
        if not kills.due("mid_write"):
            return original_write(path, write)

        def half_write(handle):
            calls = [0]

            class Killing:
                def write(self, data):
                    calls[0] += 1
                    written = handle.write(data)
                    if calls[0] == 3:
                        handle.flush()
                        kills.fire("mid_write")
                    return written

                def flush(self):
                    handle.flush()

            write(Killing())
            kills.fire("mid_write")  # a file written in fewer calls: killed before the rename

        return original_write(path, half_write)

    file_format.atomic_write = atomic_write
    original_symlink = manager.atomic_symlink

    def atomic_symlink(link, target):
        original_symlink(link, target)
        if str(link).endswith("latest.ckpt") and kills.due("after_save"):
            kills.fire("after_save")

    manager.atomic_symlink = atomic_symlink


def build(case: dict[str, Any], root: str, name: str, kills: Kills):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1)
    )
    loader_config: dict[str, Any] = {
        "sampling_strategy": case["strategy"],
        "dataloader_names": ["a", "b"],
        **case["loader"],
    }
    if case["strategy"] == "weighted":
        loader_config["dataloader_weights"] = [2.0, 1.0]
    if case["strategy"] == "alternating":
        loader_config["alternating_pattern"] = [0, 0, 1]
    if case["iterable"]:
        loader_config["epoch_length_policy"] = "fixed_num_steps"
        loader_config["steps_per_epoch"] = case.get("steps_per_epoch", 13)
    extra: dict[str, Any] = {}
    if case["log_every"] is not None:
        extra["log_loss_every_n_steps"] = case["log_every"]
    if case["val_every"] not in (None, "epoch"):
        extra["validation"] = {"frequency": "every_n_steps", "every_n_steps": case["val_every"]}
    config = GenericTrainerConfig(
        experiment_name=name,
        seed=11,
        train_loader_config=loader_config,
        checkpoint={"root_dir": root, **case["checkpoint"]},
        performance={"gradient_accumulation_steps": case["gas"], **case["performance"]},
        logging={"progress_bar": False},
        **extra,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    scheds = (
        [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.95)] if case["scheduler"] else None
    )
    trainer = GenericTrainer(config, model, [opt], scheds)
    kills.trainer = trainer
    gas, in_window = case["gas"], [0]

    def train_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        if in_window[0] == gas // 2 and kills.due("window"):
            kills.fire("window")
        in_window[0] += 1
        x, y = batch
        pred = trainer.model(x)
        return {"loss": torch.nn.functional.mse_loss(pred, y), "mae": (pred - y).abs().mean()}

    def val_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        if batch_idx == 1 and kills.due("validation"):
            kills.fire("validation")
        x, y = batch
        return {"loss": torch.nn.functional.mse_loss(trainer.model(x), y)}

    class WindowClosed(TrainerHooks):
        def on_after_optimizer_step(self, trainer, optimizer_idx):
            in_window[0] = 0  # also after a partial window flushed at an epoch end

    trainer.set_training_step(train_step)
    trainer.set_validation_step(val_step)
    trainer.add_hook(WindowClosed())
    second = (
        DataLoader(Stream(22, 2), batch_size=4)
        if case["iterable"]
        else DataLoader(dataset(20, 2), batch_size=4, shuffle=True)
    )
    train = [
        DataLoader(dataset(24, 1), batch_size=4, shuffle=True, num_workers=case["workers"]),
        second,
    ]
    val = [DataLoader(dataset(12, 3), batch_size=4)] if case["val_every"] else None
    return trainer, model, opt, scheds, train, val


def main() -> int:
    root, name, case_json, *kill_specs = sys.argv[1:]
    case = {"scheduler": False, "val_every": None, "iterable": False, "workers": 0, "log_every": 1}
    case.update(loader={}, performance={})
    case.update(json.loads(case_json))
    kills = Kills(Path(root), name, kill_specs)
    patch_checkpoint_writes(kills)
    trainer, model, opt, scheds, train, val = build(case, root, name, kills)
    result = trainer.fit(train, val, max_epochs=case.get("max_epochs", 3))
    print("STATUS", result.status.value, result.global_step, flush=True)
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "schedulers": [s.state_dict() for s in scheds or []],
        "fingerprint": result.data_fingerprint,
        "global_step": result.global_step,
    }
    torch.save(state, Path(root) / name / "final.pt")
    return 0 if result.status.value == "completed" else 3


if __name__ == "__main__":
    sys.exit(main())
