"""GenericTrainer: failing hooks, checkpoint entries from hooks, non-finite losses."""

from __future__ import annotations

import pytest
import torch

from model_training_framework.errors import HookError
from model_training_framework.trainer import (
    TrainerHooks,
)

from .fit_helpers import (
    make_config,
    make_loader,
    make_trainer,
    mse_step,
)


# ---------------------------------------------------------------- hooks and non-finite losses
def test_failing_hook_stops_training_with_its_name(tmp_path):
    class Broken(TrainerHooks):
        def on_epoch_end(self, trainer, epoch, metrics):
            raise RuntimeError("boom")

    trainer = make_trainer(make_config(tmp_path))
    trainer.add_hook(Broken())
    with pytest.raises(HookError, match=r"Broken\.on_epoch_end"):
        trainer.fit([make_loader()], max_epochs=2)


def test_failing_hook_can_be_logged_and_skipped(tmp_path, caplog):
    class Broken(TrainerHooks):
        def on_epoch_end(self, trainer, epoch, metrics):
            raise RuntimeError("boom")

    trainer = make_trainer(make_config(tmp_path, hooks={"continue_on_hook_error": True}))
    trainer.add_hook(Broken())
    assert trainer.fit([make_loader()], max_epochs=2).status.value == "completed"
    assert "Broken" in caplog.text


class _ExtraEntry(TrainerHooks):
    """Adds its own entry to every checkpoint and reads it back on resume (the documented use
    of on_checkpoint_save / on_checkpoint_load)."""

    def __init__(self) -> None:
        self.loaded = None

    def on_checkpoint_save(self, trainer, checkpoint):
        checkpoint["my_entry"] = {"step": trainer.global_step, "table": torch.arange(3)}

    def on_checkpoint_load(self, trainer, checkpoint):
        self.loaded = checkpoint["my_entry"]


def test_an_entry_added_by_on_checkpoint_save_reaches_on_checkpoint_load(tmp_path):
    # The resume used to refuse the checkpoint: "holds ['my_entry'] that nothing in this run
    # restores".
    trainer = make_trainer(make_config(tmp_path))
    trainer.add_hook(_ExtraEntry())
    trainer.fit([make_loader()], max_epochs=1)
    resumed, hook = make_trainer(make_config(tmp_path)), _ExtraEntry()
    resumed.add_hook(hook)
    assert resumed.fit([make_loader()], max_epochs=2).global_step == 4
    assert hook.loaded["step"] == 2 and torch.equal(hook.loaded["table"], torch.arange(3))


def test_an_entry_a_hook_added_needs_no_hook_to_resume(tmp_path):
    trainer = make_trainer(make_config(tmp_path))
    trainer.add_hook(_ExtraEntry())
    trainer.fit([make_loader()], max_epochs=1)
    assert make_trainer(make_config(tmp_path)).fit([make_loader()], max_epochs=2).global_step == 4


def _nan_on_second_batch(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    out = mse_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name)
    if batch_idx == 1:
        out["loss"] = out["loss"] * float("nan")
    return out


def test_nonfinite_loss_raises_by_default(tmp_path):
    trainer = make_trainer(make_config(tmp_path), step=_nan_on_second_batch)
    with pytest.raises(FloatingPointError, match="on_nonfinite_loss"):
        trainer.fit([make_loader()])


def test_nonfinite_loss_can_be_skipped_and_counted(tmp_path):
    model = torch.nn.Linear(3, 1)
    trainer = make_trainer(
        make_config(tmp_path, on_nonfinite_loss="skip"), model, step=_nan_on_second_batch
    )
    result = trainer.fit([make_loader()], max_epochs=2)
    assert result.metrics["train/skipped_nonfinite"] == 2.0
    assert all(torch.isfinite(p).all() for p in model.parameters())
