"""Tests for the console logger's line."""

from __future__ import annotations

import io
import sys

import pytest

from model_training_framework.trainer.loggers import ConsoleLogger
from model_training_framework.trainer.loggers.console import format_metrics_line

METRICS = {
    "epoch": 1,
    "train/samples_per_sec": 812.4,
    "train/dl_b/loss": 0.5,
    "train/dl_a/loss": 0.41,
    "train/dl_a/acc": 0.9,
    "train/loss": 0.43121,
    "train/lr/opt_0": 0.001,
    "profile/train/dl_a/time_data_ms": 1.25,
    "val/acc": 0.8,
    "val/loss": 0.6,
}


def test_line_shows_epoch_step_losses_lr_and_throughput_in_stable_order():
    assert format_metrics_line(METRICS, step=120) == (
        "epoch 1 step 120 | train/loss 0.4312 | train/dl_a/loss 0.41 | train/dl_b/loss 0.5"
        " | val/loss 0.6 | val/acc 0.8 | lr 0.001 | 812 samples/s"
    )


def test_line_order_does_not_depend_on_insertion_order():
    reversed_metrics = dict(reversed(list(METRICS.items())))
    assert format_metrics_line(reversed_metrics, 5) == format_metrics_line(METRICS, 5)


def test_several_optimizers_show_each_learning_rate():
    line = format_metrics_line({"train/lr/opt_1": 0.2, "train/lr/opt_0": 0.1}, step=3)
    assert line == "step 3 | train/lr/opt_0 0.1 | train/lr/opt_1 0.2"


def test_profiling_and_per_loader_non_loss_metrics_stay_off_the_line():
    line = format_metrics_line(METRICS, step=1)
    assert "profile/" not in line
    assert "train/dl_a/acc" not in line


def test_logger_writes_one_line_per_call_to_its_stream():
    stream = io.StringIO()
    logger = ConsoleLogger(stream)
    logger.log_scalars(METRICS, step=120)
    logger.log_scalars({"train/loss": 0.4}, step=130)
    assert stream.getvalue().splitlines() == [
        format_metrics_line(METRICS, 120),
        "step 130 | train/loss 0.4",
    ]


def test_profiling_only_metrics_write_nothing():
    stream = io.StringIO()
    ConsoleLogger(stream).log_scalars({"profile/train/dl_a/time_data_ms": 1.0}, step=10)
    assert stream.getvalue() == ""


def test_text_is_written_with_step_and_key():
    stream = io.StringIO()
    ConsoleLogger(stream).log_text("note", "warmup done", step=50)
    assert stream.getvalue() == "step 50 | note: warmup done\n"


def test_default_stream_is_stderr(capsys):
    ConsoleLogger().log_scalars({"train/loss": 1.0}, step=2)
    assert capsys.readouterr().err == "step 2 | train/loss 1\n"


def test_a_replaced_stderr_is_asked_again_whether_it_is_a_terminal(monkeypatch):
    class _Stream(io.StringIO):
        def __init__(self, is_tty: bool) -> None:
            super().__init__()
            self.is_tty, self.asked = is_tty, 0

        def isatty(self) -> bool:
            self.asked += 1
            return self.is_tty

    logger = ConsoleLogger()
    plain = _Stream(is_tty=False)
    monkeypatch.setattr(sys, "stderr", plain)
    logger.log_text("a", "one", 1)
    logger.log_text("a", "two", 2)
    assert plain.getvalue() == "step 1 | a: one\nstep 2 | a: two\n" and plain.asked == 1
    terminal = _Stream(is_tty=True)
    monkeypatch.setattr(sys, "stderr", terminal)
    logger.log_text("a", "three", 3)
    assert terminal.asked == 1 and "step 3 | a: three" in terminal.getvalue()


def _many_loaders(count: int, split: str = "train") -> dict[str, float]:
    return {f"{split}/dl_{i:03d}/loss": 0.25 + i / 1000 for i in range(count)}


def test_up_to_eight_per_loader_losses_are_shown_one_by_one():
    line = format_metrics_line({"train/loss": 0.3, **_many_loaders(8)}, step=50)
    assert line.count("train/dl_") == 8


def test_many_per_loader_losses_are_one_range_field_so_the_line_stays_concise():
    metrics = {
        "epoch": 2,
        "train/loss": 0.3,
        **_many_loaders(50),
        "val/loss": 0.5,
        **_many_loaders(3, "val"),
        "train/lr/opt_0": 0.01,
        "train/samples_per_sec": 1000.0,
    }
    assert format_metrics_line(metrics, step=100) == (
        "epoch 2 step 100 | train/loss 0.3 | train/dl_*/loss 0.25..0.299 (50 loaders)"
        " | val/loss 0.5 | val/dl_000/loss 0.25 | val/dl_001/loss 0.251 | val/dl_002/loss 0.252"
        " | lr 0.01 | 1000 samples/s"
    )


def test_a_range_field_with_integer_values_is_formatted_like_single_values():
    metrics = {f"val/dl_{i}/loss": i for i in range(10)}
    assert format_metrics_line(metrics, step=7) == "step 7 | val/dl_*/loss 0..9 (10 loaders)"


def test_a_broken_pipe_switches_the_console_off_once_and_training_goes_on(caplog, failing_stream):
    # A BrokenPipeError (the reader of `mtf demo 2>&1 | head -3` quit) ended training.
    stream = failing_stream(BrokenPipeError(32, "Broken pipe"))
    logger = ConsoleLogger(stream=stream)
    with caplog.at_level("WARNING"):
        logger.log_scalars(METRICS, step=1)
        logger.log_scalars(METRICS, step=2)
        logger.log_text("status", "resumed", step=2)
    assert stream.writes == 1
    assert [r.getMessage() for r in caplog.records if "console output" in r.getMessage()] == [
        "console output stopped: its reader went away (broken pipe); training goes on"
    ]


def test_other_write_errors_of_the_console_still_raise(failing_stream):
    logger = ConsoleLogger(stream=failing_stream(OSError(28, "No space left on device")))
    with pytest.raises(OSError, match="No space"):
        logger.log_scalars(METRICS, step=1)
