"""``mtf inspect`` and ``mtf plot`` on a finished tiny run."""

from __future__ import annotations

import json

import pytest

from model_training_framework.cli.main import EXIT_ERROR, main


@pytest.fixture
def finished_run(project):
    assert main(["train", str(project.write_config())]) == 0  # 2 epochs, 16 steps
    return project.run_dir()


def test_inspect_shows_progress_loaders_and_sections(finished_run, capsys):
    capsys.readouterr()
    assert main(["inspect", str(finished_run)]) == 0  # a run directory means its latest.ckpt

    lines = [line.split(None, 1) for line in capsys.readouterr().out.splitlines()]
    assert ["progress", "2 epoch(s) completed, global step 16"] in lines
    loaders = [text for label, text in lines if label == "loader"]
    assert [text.split(":")[0] for text in loaders] == ["a", "b"]
    metrics = [text for label, text in lines if label == "metric"]
    assert any(text.startswith("val/loss = ") for text in metrics)
    assert not any(text.startswith("profile/") for text in metrics)
    assert ["section", "model: 4 tensor(s), 196 B"] in lines  # (4*8 + 8 + 8 + 1) float32


def test_inspect_json_is_machine_readable(finished_run, capsys):
    capsys.readouterr()
    assert main(["inspect", str(finished_run / "latest.ckpt"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["global_step"] == 16
    assert info["sections"]["model"]["num_tensors"] == 4


def test_inspect_of_a_non_checkpoint_is_a_one_line_error(project, capsys):
    (project.root / "bad.ckpt").write_bytes(b"not a checkpoint")
    assert main(["inspect", "bad.ckpt"]) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("mtf: error: checkpoint bad.ckpt is truncated or corrupt")
        and "\n" not in err
    )


def test_plot_writes_a_png(finished_run, capsys, tmp_path):
    pytest.importorskip("matplotlib")
    capsys.readouterr()
    assert main(["plot", str(finished_run), "-o", str(tmp_path / "out.png")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out.png")
    assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_of_a_folder_without_metrics_is_an_error(project, capsys):
    (project.root / "nothing").mkdir()
    assert main(["plot", "nothing"]) == EXIT_ERROR
    assert "no metrics.jsonl in nothing" in capsys.readouterr().err
