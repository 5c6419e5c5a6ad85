"""Resume precedence is requeue-safe: ``fit(resume_from_checkpoint=PATH)`` starts from PATH only
while the run directory has no checkpoint of its own; afterwards the run's own latest wins."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.errors import CheckpointError
from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    TrainerHooks,
)

LOADER = DataLoader(TensorDataset(torch.randn(8, 3), torch.randn(8, 1)), batch_size=2)  # 4 steps


class StartStep(TrainerHooks):
    """Records the global step at which each fit starts training."""

    def __init__(self) -> None:
        self.start_step: int | None = None

    def on_train_start(self, trainer):
        self.start_step = trainer.global_step


def _fit(root: Path, name: str, max_epochs: int, resume_from=None) -> tuple[int, object]:
    config = GenericTrainerConfig(
        experiment_name=name,
        seed=0,
        train_loader_config=MultiDataLoaderConfig(),
        checkpoint={"root_dir": root},
    )
    model = torch.nn.Linear(3, 1)
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])

    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        x, y = batch
        return {"loss": torch.nn.functional.mse_loss(trainer.model(x), y)}

    trainer.set_training_step(step)
    hook = StartStep()
    trainer.add_hook(hook)
    result = trainer.fit([LOADER], max_epochs=max_epochs, resume_from_checkpoint=resume_from)
    return hook.start_step, result


@pytest.fixture
def initial_checkpoint(tmp_path) -> Path:
    """A checkpoint of another experiment after 1 epoch (step 4)."""
    _, result = _fit(tmp_path, "pretrain", max_epochs=1)
    assert result.global_step == 4
    return result.checkpoint_path


def test_explicit_path_starts_a_run_that_has_no_checkpoint_yet(tmp_path, initial_checkpoint):
    start, result = _fit(tmp_path, "finetune", max_epochs=2, resume_from=initial_checkpoint)
    assert (start, result.global_step) == (4, 8)
    assert result.checkpoint_path.parent == tmp_path / "finetune"


def test_a_requeued_command_continues_from_the_runs_own_checkpoint(
    tmp_path, initial_checkpoint, caplog
):
    _fit(tmp_path, "finetune", max_epochs=2, resume_from=initial_checkpoint)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        # the same command again (a requeue), allowed one more epoch
        start, result = _fit(tmp_path, "finetune", max_epochs=3, resume_from=initial_checkpoint)
    assert (start, result.global_step) == (8, 12)  # not 4: the run's progress is kept
    notices = [r for r in caplog.records if "own latest checkpoint" in r.getMessage()]
    assert len(notices) == 1
    # WARNING, not INFO: Python logging shows it without any logging setup
    assert notices[0].levelno == logging.WARNING
    assert str(initial_checkpoint) in notices[0].getMessage()
    assert "new experiment_name" in notices[0].getMessage()


def test_explicit_path_that_is_the_runs_own_latest_says_nothing(tmp_path, caplog):
    _, first = _fit(tmp_path, "run", max_epochs=1)
    with caplog.at_level(logging.WARNING):
        start, _ = _fit(tmp_path, "run", max_epochs=2, resume_from=first.checkpoint_path)
    assert start == 4
    assert not [r for r in caplog.records if "own latest checkpoint" in r.getMessage()]


@pytest.mark.parametrize("latest", ["latest", "LATEST", "Latest"])
def test_latest_keeps_its_meaning_in_any_case(tmp_path, caplog, latest):
    # "LATEST" was taken as a file path (a missing file, or a warning that it was not used)
    _fit(tmp_path, "run", max_epochs=1)
    with caplog.at_level(logging.WARNING):
        start, result = _fit(tmp_path, "run", max_epochs=2, resume_from=latest)
    assert (start, result.global_step) == (4, 8)
    assert not [r for r in caplog.records if "own latest checkpoint" in r.getMessage()]
    with pytest.raises(CheckpointError, match=r"resume_from_checkpoint='latest' but .* has no"):
        _fit(tmp_path, "empty", max_epochs=1, resume_from=latest)


def test_explicit_path_is_used_when_every_own_checkpoint_is_damaged(
    tmp_path, initial_checkpoint, caplog
):
    _fit(tmp_path, "finetune", max_epochs=2, resume_from=initial_checkpoint)
    for path in (tmp_path / "finetune").glob("*.ckpt"):
        if not path.is_symlink():
            path.write_bytes(b"damaged")
    with caplog.at_level(logging.WARNING):
        start, _ = _fit(tmp_path, "finetune", max_epochs=2, resume_from=initial_checkpoint)
    assert start == 4
    assert any("no valid checkpoint" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("as_text", [False, True])
def test_a_run_directory_given_as_the_checkpoint_starts_from_its_latest(
    tmp_path, initial_checkpoint, as_text
):
    # A run directory (as mtf inspect and mtf consolidate take it) was refused with "is a
    # directory, not a checkpoint file; give one of the checkpoint files in it".
    run_dir = initial_checkpoint.parent
    resume_from = f"{run_dir}/" if as_text else run_dir
    start, result = _fit(tmp_path, "finetune", max_epochs=2, resume_from=resume_from)
    assert (start, result.global_step) == (4, 8)


def test_a_directory_without_a_latest_checkpoint_is_named_as_a_directory(tmp_path):
    # It said "checkpoint ... does not exist (none other in ...)" of a folder that exists.
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "epoch_1_step_4.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"is a directory.*epoch_1_step_4\.ckpt"):
        _fit(tmp_path, "finetune", max_epochs=2, resume_from=folder)


@pytest.mark.parametrize("resume_from", [True, False, 1])
def test_a_resume_argument_that_is_not_a_path_is_refused_writing_nothing(tmp_path, resume_from):
    # resume_from_checkpoint=True (a flag in other trainers) failed inside pathlib with
    # "expected str, bytes or os.PathLike object, not bool".
    with pytest.raises(TypeError, match=r"resume_from_checkpoint must be a path.*'latest'.*None"):
        _fit(tmp_path, "flag", max_epochs=1, resume_from=resume_from)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_run_directory_is_named_as_such_with_the_existing_runs(tmp_path):
    # `mtf train --resume runs/nope` said "checkpoint runs/nope does not exist (none other in
    # runs)", as if a checkpoint file were expected and runs/ held none.
    runs = tmp_path / "runs"
    (runs / "alpha").mkdir(parents=True)
    (runs / "beta").mkdir()
    with pytest.raises(CheckpointError) as caught:
        _fit(tmp_path, "finetune", max_epochs=1, resume_from=runs / "nope")
    message = str(caught.value)
    assert "no run directory or checkpoint file" in message
    assert f"run directories in {runs}: alpha, beta" in message
    assert "none other" not in message


def test_a_missing_run_directory_says_when_there_are_no_runs(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    with pytest.raises(CheckpointError, match=r"no run directory or checkpoint file.*holds no run"):
        _fit(tmp_path, "finetune", max_epochs=1, resume_from=runs / "nope")
