"""Hooks written for the reference framework: old signatures (adapted once, with a warning),
the reference's extra hook methods, and the built-in hooks users compose."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.errors import ConfigError
from model_training_framework.trainer import (
    EarlyStoppingHook,
    GenericTrainer,
    GenericTrainerConfig,
    GradientMonitorHook,
    LoggingHook,
    ModelCheckpointHook,
    MultiDataLoaderConfig,
    RuntimeProfilingHook,
    TrainerHooks,
)
from model_training_framework.trainer.hooks import HookDispatcher
from model_training_framework.trainer.hooks import dispatch as hook_dispatch


def _loader(n: int = 8, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(
        TensorDataset(torch.randn(n, 3, generator=g), torch.randn(n, 1, generator=g)), batch_size=2
    )


def _step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    x, y = batch
    return {"loss": torch.nn.functional.mse_loss(trainer.model(x), y)}


def _trainer(tmp_path: Path, **changes) -> GenericTrainer:
    config = GenericTrainerConfig(
        experiment_name="hooks",
        seed=0,
        train_loader_config=MultiDataLoaderConfig(dataloader_names=["a", "b"]),
        checkpoint={"root_dir": tmp_path},
        **changes,
    )
    model = torch.nn.Linear(3, 1)
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    trainer.set_training_step(_step)
    trainer.set_validation_step(_step)
    return trainer


def _jsonl(tmp_path: Path) -> list[dict]:
    text = (tmp_path / "hooks" / "metrics.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


# ---------------------------------------------------------------- reference signatures


class ReferenceStyleHook(TrainerHooks):
    """The three methods whose signature changed, written as the reference had them."""

    def __init__(self) -> None:
        self.batch_starts: list[tuple[int, str]] = []
        self.validation_epochs: list[int] = []
        self.ended = 0

    def on_train_batch_start(self, trainer, batch, loader_idx, loader_name):
        self.batch_starts.append((loader_idx, loader_name))

    def on_validation_start(self, trainer, epoch):
        self.validation_epochs.append(epoch)

    def on_train_end(self, trainer):
        self.ended += 1


def test_reference_signatures_work_and_warn_once_when_added(tmp_path):
    trainer = _trainer(tmp_path)
    hook = ReferenceStyleHook()
    with pytest.warns(DeprecationWarning) as caught:
        trainer.add_hook(hook)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 3
    assert "on_train_batch_start(trainer, batch, loader_idx, loader_name)" in messages[0]
    assert all("reference framework's signature" in m for m in messages)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing warns per call
        trainer.fit([_loader(), _loader(4, 1)], val_loaders=[_loader(4, 2)], max_epochs=2)
    assert hook.batch_starts[:3] == [(0, "a"), (1, "b"), (0, "a")]
    assert len(hook.batch_starts) == 12
    assert hook.validation_epochs == [0, 1]
    assert hook.ended == 1


def test_current_signatures_do_not_warn(tmp_path):
    class Current(TrainerHooks):
        def on_train_batch_start(self, trainer, batch, batch_idx, dataloader_idx, name):
            pass

        def on_train_end(self, trainer, result):
            pass

        def on_validation_start(self, trainer):
            pass

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _trainer(tmp_path).add_hook(Current())


def test_signatures_are_read_once_when_the_hook_is_added(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path)
    with pytest.warns(DeprecationWarning):
        trainer.add_hook(ReferenceStyleHook())

    def no_more_binding(*args, **kwargs):
        raise AssertionError("a hook method was bound (its signature read) while training")

    monkeypatch.setattr(hook_dispatch, "bind_hook_method", no_more_binding)
    trainer.fit([_loader(), _loader()], max_epochs=1)


def test_a_method_with_neither_signature_is_refused_when_added(tmp_path):
    class Wrong(TrainerHooks):
        def on_train_end(self, trainer, result, extra):
            pass

    with pytest.raises(
        TypeError, match=r"Wrong\.on_train_end.*on_train_end\(self, trainer, result\)"
    ):
        _trainer(tmp_path).add_hook(Wrong())


def test_reference_hook_loaded_from_the_config_is_adapted_too():
    from model_training_framework.trainer.config import HooksConfig

    config = HooksConfig(hook_classes=[f"{__name__}.ReferenceStyleHook"])
    with pytest.warns(DeprecationWarning) as caught:
        dispatcher = HookDispatcher.from_config(config)
    assert len(caught) == 3
    dispatcher.call("on_train_end", object(), "result")
    assert dispatcher.hooks[0].ended == 1


def test_reference_signature_warnings_point_at_the_users_call(tmp_path):
    # Python shows a DeprecationWarning by default only when it is attributed to __main__, so
    # the warning must name the user's add_hook / GenericTrainer line, not the package's.
    with pytest.warns(DeprecationWarning) as caught:
        _trainer(tmp_path).add_hook(ReferenceStyleHook())
    with pytest.warns(DeprecationWarning) as from_config:
        _trainer(tmp_path, hooks={"hook_classes": [f"{__name__}.ReferenceStyleHook"]})
    assert len(caught) == len(from_config) == 3
    assert {Path(w.filename) for w in [*caught, *from_config]} == {Path(__file__)}


def test_a_script_adding_a_reference_hook_shows_the_warning(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        "import torch\n"
        "from model_training_framework.trainer import *\n"
        "class Old(TrainerHooks):\n"
        "    def on_train_end(self, trainer):\n"
        "        pass\n"
        "model = torch.nn.Linear(1, 1)\n"
        "config = GenericTrainerConfig(train_loader_config=MultiDataLoaderConfig())\n"
        "trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])\n"
        "trainer.add_hook(Old())\n",
        encoding="utf-8",
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "Old.on_train_end(trainer) is the reference framework's signature" in done.stderr
    assert "script.py:9: DeprecationWarning" in done.stderr


def test_a_hook_method_the_trainer_never_calls_is_named_in_a_warning(tmp_path, caplog):
    # on_validation_batch_start (no such hook here) or a misspelt name was silently never run.
    class Misnamed(TrainerHooks):
        def on_validation_batch_start(self, trainer, batch, batch_idx, dl_idx, dl_name):
            pass

        def on_train_ends(self, trainer, result):
            pass

        def on_train_end(self, trainer, result):
            pass

    with caplog.at_level(logging.WARNING, logger="model_training_framework"):
        _trainer(tmp_path).add_hook(Misnamed())
    warned = [r.getMessage() for r in caplog.records if "never calls" in r.getMessage()]
    assert len(warned) == 1
    assert "Misnamed.on_train_ends (did you mean on_train_end?)" in warned[0]
    assert "Misnamed.on_validation_batch_start (did you mean on_validation_" in warned[0]


def test_hooks_with_known_methods_only_do_not_warn(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="model_training_framework"):
        trainer = _trainer(tmp_path)
        for hook in (ReferenceStyleHook(), LoggingHook(), GradientMonitorHook()):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                trainer.add_hook(hook)
    assert not [r for r in caplog.records if "never calls" in r.getMessage()]


# ---------------------------------------------------------------- the reference's extra hook methods


class Recorder(TrainerHooks):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_before_backward(self, trainer, loss):
        self.events.append(
            ("before_backward", loss.requires_grad, trainer.model.weight.grad is None)
        )

    def on_after_backward(self, trainer):
        self.events.append(("after_backward", trainer.model.weight.grad is not None))

    def on_gradient_clip(self, trainer, optimizer_idx, total_norm):
        self.events.append(("clip", optimizer_idx, float(total_norm)))

    def on_before_optimizer_step(self, trainer, optimizer_idx):
        self.events.append(("before_step",))


def test_backward_hooks_fire_around_every_backward(tmp_path):
    trainer = _trainer(tmp_path, performance={"gradient_accumulation_steps": 2})
    hook = Recorder()
    trainer.add_hook(hook)
    trainer.fit([_loader(), _loader()], max_epochs=1)
    kinds = [event[0] for event in hook.events]
    assert kinds[:5] == ["before_backward", "after_backward"] * 2 + ["before_step"]
    assert kinds.count("before_backward") == kinds.count("after_backward") == 8
    assert hook.events[0] == ("before_backward", True, True)
    assert "clip" not in kinds  # no clipping configured


def test_gradient_clip_hook_gets_the_norm_before_clipping(tmp_path):
    trainer = _trainer(tmp_path, performance={"clip_grad_norm": 1e-6})
    hook = Recorder()
    trainer.add_hook(hook)
    trainer.fit([_loader(), _loader()], max_steps=3)
    clips = [event for event in hook.events if event[0] == "clip"]
    assert len(clips) == 3
    assert all(idx == 0 and norm > 1e-6 for _, idx, norm in clips)
    kinds = [event[0] for event in hook.events]
    assert kinds.index("clip") < kinds.index("before_step")


# ---------------------------------------------------------------- built-in hooks


def test_early_stopping_hook_stops_training(tmp_path):
    trainer = _trainer(tmp_path)
    trainer.add_hook(EarlyStoppingHook(monitor="train/loss", patience=1, mode="max"))
    assert trainer.config.early_stopping_patience == 1
    result = trainer.fit([_loader(), _loader()], max_epochs=20)
    assert result.status.value == "early_stopped"
    assert result.epoch < 20


def test_builtin_hook_conflicting_with_the_config_is_an_error_that_changes_nothing(tmp_path):
    trainer = _trainer(tmp_path, early_stopping_patience=5)
    with pytest.raises(ConfigError, match="EarlyStoppingHook sets early_stopping_patience=2"):
        trainer.add_hook(EarlyStoppingHook(monitor="train/loss", patience=2))
    assert trainer.config.early_stopping_metric == "val/loss"  # not half applied
    assert trainer._hooks.hooks == ()  # not registered either


def test_model_checkpoint_hook_drives_the_trainers_checkpoints(tmp_path):
    trainer = _trainer(tmp_path)
    trainer.add_hook(
        ModelCheckpointHook(monitor="val/loss", save_every_n_steps=2, max_checkpoints=1)
    )
    trainer.fit([_loader(), _loader()], val_loaders=[_loader(4, 3)], max_epochs=1)
    run_dir = tmp_path / "hooks"
    assert (run_dir / "best.ckpt").exists()
    periodic = [p for p in run_dir.glob("epoch_*.ckpt") if not p.is_symlink()]
    assert [p.name for p in periodic] == ["epoch_1_step_8.ckpt"]  # written at the epoch end


def test_gradient_monitor_logs_the_norm_at_its_interval(tmp_path):
    trainer = _trainer(tmp_path)
    norms: dict[int, float] = {}

    class Expected(TrainerHooks):
        def on_before_optimizer_step(self, trainer, optimizer_idx):
            grads = [p.grad.flatten() for p in trainer.model.parameters()]
            norms[trainer.global_step + 1] = float(torch.cat(grads).norm())

    trainer.add_hook(Expected())
    trainer.add_hook(GradientMonitorHook(log_every_n_steps=3))
    trainer.fit([_loader(), _loader()], max_epochs=1)
    logged = {
        row["step"]: row["train/grad_norm/opt_0"]
        for row in _jsonl(tmp_path)
        if "train/grad_norm/opt_0" in row
    }
    assert sorted(logged) == [3, 6]
    assert all(logged[step] == pytest.approx(norms[step], rel=1e-5) for step in logged)


def test_logging_hook_sets_the_interval_and_writes_progress_lines(tmp_path, caplog):
    trainer = _trainer(tmp_path)
    trainer.add_hook(LoggingHook(log_every_n_steps=4))
    with caplog.at_level(logging.INFO, logger="model_training_framework.progress"):
        trainer.fit([_loader(), _loader()], val_loaders=[_loader(4, 3)], max_epochs=1)
    steps = [row["step"] for row in _jsonl(tmp_path) if "train/loss" in row]
    assert steps == [4, 8]
    lines = [
        r.getMessage() for r in caplog.records if r.name == "model_training_framework.progress"
    ]
    assert lines[0] == "training starts at epoch 0, step 0"
    validation = [line for line in lines if line.startswith("validation at step 8:")]
    assert len(validation) == 1 and "val/loss" in validation[0]
    assert "profile/" not in validation[0]
    assert lines[-1] == "training ended: completed at step 8"


def test_runtime_profiling_hook_logs_timings_at_its_interval(tmp_path):
    trainer = _trainer(tmp_path, profile_training=False)
    with pytest.raises(ConfigError, match="profile_training"):
        trainer.add_hook(RuntimeProfilingHook(log_every_n_steps=2))
    trainer = _trainer(tmp_path)
    trainer.add_hook(RuntimeProfilingHook(log_every_n_steps=2))
    trainer.fit([_loader(), _loader()], max_epochs=1)
    steps = [row["step"] for row in _jsonl(tmp_path) if "profile/train/dl_a/time_forward_ms" in row]
    assert steps == [2, 4, 6, 8]


def test_builtin_hooks_load_from_dotted_paths_in_the_config(tmp_path):
    path = "model_training_framework.trainer.EarlyStoppingHook"
    trainer = _trainer(
        tmp_path,
        hooks={
            "hook_classes": [path],
            "hook_configs": {path: {"monitor": "train/loss", "patience": 4}},
        },
    )
    assert (trainer.config.early_stopping_metric, trainer.config.early_stopping_patience) == (
        "train/loss",
        4,
    )


BUILTIN_HOOK_SETTINGS = {
    "model_training_framework.trainer.EarlyStoppingHook": {"patience": 2},
    "model_training_framework.trainer.ModelCheckpointHook": {"save_every_n_steps": 3},
    "model_training_framework.trainer.RuntimeProfilingHook": {"log_every_n_steps": 5},
    "model_training_framework.trainer.LoggingHook": {"log_every_n_steps": 4},
}


def test_builtin_hooks_from_a_config_file_that_lists_every_default(tmp_path):
    # `mtf train` and sweep jobs read a config whose every key is written out (defaults too);
    # a default there is no setting of the user's, so the hook's value is no conflict. It was:
    # "EarlyStoppingHook sets early_stopping_patience=2 but the config already has None".
    written = _trainer(tmp_path).config.to_dict()
    written["hooks"] = {
        "hook_classes": list(BUILTIN_HOOK_SETTINGS),
        "hook_configs": BUILTIN_HOOK_SETTINGS,
    }
    config = GenericTrainerConfig.from_dict(written)
    model = torch.nn.Linear(3, 1)
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    assert trainer.config.early_stopping_patience == 2
    assert trainer.config.checkpoint.save_every_n_steps == 3
    assert trainer.config.logging.log_scalars_every_n_steps == 5
    assert trainer.config.log_loss_every_n_steps == 4


def test_a_value_other_than_the_default_in_a_config_file_still_conflicts(tmp_path):
    config = GenericTrainerConfig.from_dict(
        _trainer(tmp_path, early_stopping_patience=5).config.to_dict()
    )
    model = torch.nn.Linear(3, 1)
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    with pytest.raises(ConfigError, match="EarlyStoppingHook sets early_stopping_patience=2"):
        trainer.add_hook(EarlyStoppingHook(patience=2))


@pytest.mark.parametrize("cls", [LoggingHook, GradientMonitorHook, RuntimeProfilingHook])
def test_interval_must_be_positive(cls):
    with pytest.raises(ValueError, match="log_every_n_steps"):
        cls(log_every_n_steps=0)
