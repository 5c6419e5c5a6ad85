"""Progress display: live bar on a TTY, plain periodic lines otherwise, nothing when disabled."""

from __future__ import annotations

import io
import sys

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.trainer import (
    CheckpointConfig,
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    TrainerHooks,
)
from model_training_framework.trainer.config import LoggingConfig
from model_training_framework.trainer.loggers import ConsoleLogger
from model_training_framework.trainer.metrics.progress import (
    ProgressDisplay,
    build_progress_display,
    format_eta,
    format_progress_postfix,
)

METRICS = {
    "train/loss": 0.4312,
    "train/dl_b/loss": 0.45,
    "train/dl_a/loss": 0.41,
    "train/dl_a/acc": 0.9,
    "train/samples_per_sec": 812.4,
    "profile/train/dl_a/time_data_ms": 1.0,
}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_postfix_shows_loss_per_loader_losses_and_throughput():
    assert format_progress_postfix(METRICS) == "loss=0.4312, a=0.41, b=0.45, 812 samples/s"


def test_plain_lines_are_throttled_and_carry_percent_and_eta():
    stream, clock = io.StringIO(), _Clock()
    progress = ProgressDisplay(stream=stream, min_interval_s=30.0, clock=clock)
    assert not progress.is_live
    progress.start(total_batches=100, epoch=2)
    clock.now_s += 10.0
    progress.update(10, METRICS)  # first update: shown at once
    clock.now_s += 10.0
    progress.update(20, METRICS)  # 10 s after the last line: held back
    clock.now_s += 30.0
    progress.update(50, METRICS)  # 40 s after the last line: shown
    lines = stream.getvalue().splitlines()
    assert lines == [
        "epoch 2 batch 10/100 (10%) | loss=0.4312, a=0.41, b=0.45, 812 samples/s | ETA 0:01:30",
        "epoch 2 batch 50/100 (50%) | loss=0.4312, a=0.41, b=0.45, 812 samples/s | ETA 0:00:50",
    ]


def test_plain_close_shows_the_last_state_reached():
    stream, clock = io.StringIO(), _Clock()
    progress = ProgressDisplay(stream=stream, clock=clock)
    progress.start(total_batches=None, epoch=0, initial_batch=40)
    progress.update(41, {"train/loss": 1.0})
    progress.update(42, {"train/loss": 0.5})
    progress.close()
    progress.close()
    assert stream.getvalue().splitlines() == [
        "epoch 0 batch 41 | loss=1",
        "epoch 0 batch 42 | loss=0.5",
    ]


def test_starting_the_next_epoch_flushes_the_previous_one():
    stream, clock = io.StringIO(), _Clock()
    progress = ProgressDisplay(stream=stream, clock=clock)
    progress.start(total_batches=4, epoch=0)
    progress.update(1)
    progress.update(4)
    progress.start(total_batches=4, epoch=1)
    assert stream.getvalue().splitlines()[-1] == "epoch 0 batch 4/4 (100%) | ETA 0:00:00"


def test_live_bar_on_a_terminal_shows_epoch_position_and_postfix():
    stream = _Terminal()
    progress = ProgressDisplay(stream=stream)
    assert progress.is_live
    progress.start(total_batches=200, epoch=3, initial_batch=50)
    progress.update(120, METRICS)
    progress.close()
    final = stream.getvalue().split("\r")[-1]
    assert final.startswith("epoch 3:  60%")
    assert "120/200" in final and "batch/s" in final
    assert "loss=0.4312, a=0.41, b=0.45, 812 samples/s" in final


def test_disabled_display_writes_nothing():
    stream = _Terminal()
    progress = ProgressDisplay(enabled=False, stream=stream)
    progress.start(total_batches=10, epoch=0)
    progress.update(5, METRICS)
    progress.close()
    assert stream.getvalue() == ""


def test_build_shows_progress_only_on_rank_zero_with_progress_bar_on():
    for progress_bar, is_rank_zero, expect_output in [
        (True, True, True),
        (True, False, False),
        (False, True, False),
    ]:
        stream = io.StringIO()
        config = LoggingConfig(progress_bar=progress_bar)
        progress = build_progress_display(config, is_rank_zero=is_rank_zero, stream=stream)
        progress.start(total_batches=2, epoch=0)
        progress.update(1)
        progress.close()
        assert bool(stream.getvalue()) == expect_output, (progress_bar, is_rank_zero)


def test_console_lines_print_above_the_live_bar_without_breaking_it():
    stream = _Terminal()
    progress = ProgressDisplay(stream=stream)
    progress.start(total_batches=200, epoch=1)
    progress.update(10, {"train/loss": 0.5})
    ConsoleLogger(stream).log_scalars({"epoch": 1, "train/loss": 0.5}, step=10)
    progress.update(20, {"train/loss": 0.4})
    progress.close()
    output = stream.getvalue()
    # The bar is cleared, the line written whole, and the bar drawn again after it.
    assert "\repoch 1 step 10 | train/loss 0.5\n\repoch 1:" in output
    # tqdm pads a redrawn bar with spaces when it is shorter than the one it replaces (the
    # rate may have one digit less), so the final bar is compared without them
    final = output.split("\r")[-1]
    assert final.endswith("\n") and final.rstrip().endswith("loss=0.4]"), repr(final)


def test_trainer_progress_counts_the_epochs_batches_while_log_lines_name_the_global_step(
    tmp_path, capsys
):
    """Epoch 1 of 8 batches ends at global step 16: `batch 8/8` on the progress line and
    `step 16` on the log line, so the two numbers are never confused."""
    config = GenericTrainerConfig(
        experiment_name="names",
        train_loader_config=MultiDataLoaderConfig(),
        checkpoint=CheckpointConfig(root_dir=str(tmp_path)),
        log_loss_every_n_steps=8,
    )
    model = torch.nn.Linear(2, 1)
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    trainer.set_training_step(
        lambda trainer, batch, *args: {
            "loss": torch.nn.functional.mse_loss(trainer.model(batch[0]), batch[1])
        }
    )
    data = TensorDataset(torch.randn(16, 2), torch.randn(16, 1))
    trainer.fit([DataLoader(data, batch_size=2)], max_epochs=2)
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("epoch 1 batch 8/8 (100%) | loss=") for line in lines), lines
    assert any(line.startswith("epoch 1 step 16 | train/loss") for line in lines), lines
    assert not any(" step 8/8" in line or " step 16/" in line for line in lines), lines


def test_a_broken_pipe_switches_the_progress_lines_off_for_the_rest_of_the_run(failing_stream):
    # A BrokenPipeError from a progress line ended training (`mtf demo 2>&1 | head -3`).
    stream = failing_stream(BrokenPipeError(32, "Broken pipe"))
    progress = ProgressDisplay(stream=stream, min_interval_s=0.0)
    progress.start(total_batches=10, epoch=0)
    progress.update(5, METRICS)
    progress.update(10, METRICS)
    progress.close()
    progress.start(total_batches=10, epoch=1)
    progress.update(5, METRICS)
    progress.close()
    assert stream.writes == 1


def test_other_write_errors_of_the_progress_lines_still_raise(failing_stream):
    progress = ProgressDisplay(
        stream=failing_stream(OSError(28, "No space left")), min_interval_s=0
    )
    progress.start(total_batches=10, epoch=0)
    with pytest.raises(OSError, match="No space"):
        progress.update(5, METRICS)


def test_the_eta_of_an_epoch_shorter_than_a_second_is_not_zero():
    # The demo's epochs take a fraction of a second, and the ETA (whole seconds) read 0:00:00
    # at 33% as at 100%.
    stream, clock = io.StringIO(), _Clock()
    progress = ProgressDisplay(stream=stream, clock=clock)
    progress.start(total_batches=90, epoch=0)
    clock.now_s += 0.02
    progress.update(30, {})
    assert stream.getvalue().splitlines() == ["epoch 0 batch 30/90 (33%) | ETA <1s"]


def test_format_eta_shows_hours_minutes_seconds_and_under_a_second():
    assert [format_eta(s) for s in (0.0, 0.04, 0.99, 1.0, 110.2, 3725.0)] == [
        "0:00:00",
        "<1s",
        "<1s",
        "0:00:01",
        "0:01:50",
        "1:02:05",
    ]


def test_the_same_position_is_shown_once_per_epoch():
    stream, clock = io.StringIO(), _Clock()
    progress = ProgressDisplay(stream=stream, min_interval_s=0.0, clock=clock)
    progress.start(total_batches=4, epoch=0)
    progress.update(4, {"train/loss": 1.0})
    progress.update(4, {"train/loss": 1.0})  # the epoch end repeats the last logged position
    progress.close()
    assert stream.getvalue().splitlines() == ["epoch 0 batch 4/4 (100%) | loss=1 | ETA 0:00:00"]


class _SaveMarker(TrainerHooks):
    def on_checkpoint_save(self, trainer, checkpoint):
        sys.stderr.write("SAVING\n")


@pytest.mark.parametrize("log_every", [4, 3])
def test_an_epochs_last_progress_line_comes_before_its_validation_and_checkpoint(
    tmp_path, capsys, log_every
):
    # Not on a terminal, "epoch 0 batch 8/8" was printed when the next epoch started: after
    # the epoch's validation line and its checkpoint's save line. With a log interval that
    # does not divide the epoch, the epoch's last line even stayed at batch 6/8.
    config = GenericTrainerConfig(
        experiment_name="order",
        train_loader_config=MultiDataLoaderConfig(),
        checkpoint=CheckpointConfig(root_dir=str(tmp_path)),
        log_loss_every_n_steps=log_every,
    )
    model = torch.nn.Linear(2, 1)
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    step = lambda trainer, batch, *args: {  # noqa: E731
        "loss": torch.nn.functional.mse_loss(trainer.model(batch[0]), batch[1])
    }
    trainer.set_training_step(step)
    trainer.set_validation_step(step)
    trainer.add_hook(_SaveMarker())
    data = TensorDataset(torch.randn(16, 2), torch.randn(16, 1))
    loader = DataLoader(data, batch_size=2)
    trainer.fit([loader], [loader], max_epochs=2)
    lines = capsys.readouterr().err.splitlines()
    for epoch, step in ((0, 8), (1, 16)):
        last = lines.index(next(x for x in lines if x.startswith(f"epoch {epoch} batch 8/8")))
        validation = next(
            i for i, x in enumerate(lines) if f"step {step} |" in x and "val/loss" in x
        )
        saving = lines.index("SAVING", validation)
        assert last < validation < saving, lines
