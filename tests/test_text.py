"""User-facing counts: ``1 epoch``, ``2 epochs``."""

from __future__ import annotations

import logging


def test_counted_uses_the_singular_for_one_only():
    from model_training_framework.text import counted

    assert [counted(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]
    assert counted(1, "entry", "entries") == "1 entry"
    assert counted(3, "entry", "entries") == "3 entries"


def test_the_demo_summary_says_1_epoch(tmp_path, caplog):
    # It said "completed after 1 epochs, 90 steps" (and "interrupted after 1 epochs").
    from model_training_framework.cli.demo import run_demo

    with caplog.at_level(logging.INFO):
        assert run_demo(tmp_path, epochs=1, fresh=False) == 0
    assert "completed after 1 epoch, 90 steps; val/accuracy" in caplog.text
