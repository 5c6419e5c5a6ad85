"""``mtf inspect`` and ``mtf plot`` on a finished tiny run."""

from __future__ import annotations

import json
import zipfile

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


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("experiment.yaml", b"experiment_name: tiny\nseed: 0\n"),
        ("bad.ckpt", b"not a checkpoint"),
        ("empty.ckpt", b""),
        ("archive.zip", None),  # a zip archive, but not one that torch.save wrote
    ],
)
def test_inspect_of_a_file_that_is_no_checkpoint_says_so_and_never_to_delete_it(
    project, capsys, name, content
):
    path = project.root / name
    if content is None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "my data")
    else:
        path.write_bytes(content)

    assert main(["inspect", name]) == EXIT_ERROR

    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mtf: error: {name} is not a checkpoint file") and "\n" not in err
    assert "latest.ckpt" in err and "run directory" in err  # what inspect takes instead
    assert "corrupt" not in err and "delete" not in err
    assert path.exists()


def test_inspect_of_a_damaged_checkpoint_advises_keeping_it(finished_run, capsys):
    damaged = finished_run / "damaged.ckpt"
    data = (finished_run / "latest.ckpt").read_bytes()
    damaged.write_bytes(data[: len(data) // 2])
    capsys.readouterr()

    assert main(["inspect", str(damaged)]) == EXIT_ERROR

    err = capsys.readouterr().err.strip()
    assert f"checkpoint {damaged} is truncated or corrupt" in err and "\n" not in err
    assert "delete" not in err and "move it aside and keep it" in err
    assert "epoch_2_step_16.ckpt" in err  # the checkpoint to resume from instead


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


def test_plot_of_a_runs_folder_or_a_misspelt_run_names_the_run_directories(project, capsys):
    """`mtf plot runs` (the folder of run directories) and `mtf plot runs/my_first_experimen`
    (a typo) said only 'no metrics.jsonl in ...'; the error now names the run directories
    there are, or the close one."""
    for name in ("my_first_experiment", "lr_0.01"):
        (project.root / "runs" / name).mkdir(parents=True)
        (project.root / "runs" / name / "metrics.jsonl").write_text('{"step": 1}\n')

    assert main(["plot", "runs"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "runs holds run directories: runs/lr_0.01, runs/my_first_experiment" in err

    assert main(["plot", "runs/my_first_experimen"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "runs/my_first_experimen does not exist (did you mean runs/my_first_experiment?)" in err
