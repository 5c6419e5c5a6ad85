"""``mtf train``: a YAML config plus a user module train, resume, report preemption and errors."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import yaml

from model_training_framework.cli.main import EXIT_ERROR, EXIT_PREEMPTED, main
from model_training_framework.trainer.state.file_format import read_checkpoint
from model_training_framework.trainer.state.run_lock import RunDirectoryLock

from .conftest import COMPONENTS, experiment_dict


def _status(run_dir):
    return json.loads((run_dir / "status.json").read_text())


def test_train_runs_the_experiment_and_records_config_and_status(project):
    config = project.write_config()

    assert main(["train", str(config)]) == 0

    status = _status(project.run_dir())
    assert status["status"] == "completed"
    assert status["epoch"] == 2
    assert status["global_step"] == 16  # 2 epochs x (4 + 4 batches), round robin, SUM_OF_LENGTHS
    assert "val/loss" in status["metrics"]
    recorded = yaml.safe_load((project.run_dir() / "experiment.yaml").read_text())
    assert recorded["model"]["factory"] == f"{project.module}.build_model"
    assert (project.run_dir() / "latest.ckpt").exists()


def test_rerun_with_more_epochs_continues_from_the_latest_checkpoint(project):
    config = project.write_config(training={"max_epochs": 1})
    assert main(["train", str(config)]) == 0
    assert _status(project.run_dir())["global_step"] == 8

    assert main(["train", str(config), "--set", "training.max_epochs=3"]) == 0

    status = _status(project.run_dir())
    assert (status["epoch"], status["global_step"]) == (3, 24)


def _preempting_at_step_5(project, monkeypatch) -> dict[str, str]:
    """The ``model`` section of a run whose training step asks for preemption at step 5."""
    monkeypatch.setenv("PREEMPT_AT_STEP", "5")
    monkeypatch.delenv("PREEMPTED", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    return {
        "factory": f"{project.module}.build_model",
        "training_step": f"{project.module}.preempting_step",
        "validation_step": f"{project.module}.validation_step",
    }


def test_preempted_run_exits_with_the_preempted_code_and_resumes(project, monkeypatch):
    model = _preempting_at_step_5(project, monkeypatch)
    config = project.write_config(model=model)

    assert main(["train", str(config)]) == EXIT_PREEMPTED
    preempted = _status(project.run_dir())
    assert preempted["status"] == "preempted"
    assert 5 <= preempted["global_step"] < 16

    assert main(["train", str(config)]) == 0
    assert _status(project.run_dir())["global_step"] == 16


def test_set_override_changes_a_nested_value(project):
    config = project.write_config()

    assert main(["train", str(config), "--set", "training.max_steps=3"]) == 0

    assert _status(project.run_dir())["global_step"] == 3


@pytest.mark.parametrize(
    ("optimizer", "override"),
    [
        ({"name": "sgd", "learning_rate": 0.01}, "optimizer.lr=0.05"),  # an old config file
        ({"name": "sgd", "lr": 0.01}, "optimizer.learning_rate=0.05"),  # an old habit
    ],
)
def test_set_with_the_other_spelling_of_a_renamed_key_overrides_it(project, optimizer, override):
    # Both used to fail: "optimizer.lr: conflicts with the deprecated key
    # 'optimizer.learning_rate' (0.05 vs 0.01); remove 'optimizer.learning_rate' ...".
    config = project.write_config(optimizer=optimizer, training={"max_steps": 1})

    with pytest.warns(DeprecationWarning, match=r"'optimizer\.learning_rate'"):
        assert main(["train", str(config), "--set", override]) == 0

    recorded = yaml.safe_load((project.run_dir() / "experiment.yaml").read_text())
    assert recorded["optimizer"]["lr"] == 0.05 and "learning_rate" not in recorded["optimizer"]


def test_set_inside_a_renamed_section_changes_the_new_section(project):
    config = project.write_config(
        multi={"sampling_strategy": "round_robin", "dataloader_names": ["a", "b"]},
        training={"max_steps": 1},
    )

    with pytest.warns(DeprecationWarning, match="'multi'"):
        assert main(["train", str(config), "--set", "multi.sampling_strategy=sequential"]) == 0

    recorded = yaml.safe_load((project.run_dir() / "experiment.yaml").read_text())
    assert recorded["train_loader_config"]["sampling_strategy"] == "sequential"
    assert recorded["train_loader_config"]["dataloader_names"] == ["a", "b"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {
                "model": {
                    "training_step": "MOD.training_step",
                    "validation_step": "MOD.training_step",
                }
            },
            "model.factory is missing",
        ),
        ({"optimizer": {"name": "adamx"}}, "'adamx' is not a torch.optim class"),
        ({"optimizer": {"lrr": 0.1}}, "did you mean 'lr'"),
        ({"data": {"train": {"name": "a"}}}, "data.train must be a list"),
        ({"data": {"train": [{"name": "a", "factory": "MOD.not_a_dataset"}]}}, "returned a list"),
        (
            {"data": {"train": [{"name": "a", "factory": "MOD.ready_loader", "batch_size": 4}]}},
            "the factory returned a DataLoader",
        ),
        (
            {"data": {"train": [{"name": "a", "factory": "MOD.missing"}]}},
            "has no attribute 'missing'",
        ),
        ({"data": {"trian": []}}, "unknown key(s) ['trian']"),
        (
            {"train_loader_config": {"dataloader_names": ["x", "y"]}},
            "train_loader_config.dataloader_names is ['x', 'y']",
        ),
    ],
)
def test_bad_configs_fail_with_one_line_naming_the_problem(project, capsys, change, expected):
    change = json.loads(json.dumps(change).replace("MOD", project.module))
    config = project.write_config(**change)

    assert main(["train", str(config)]) == EXIT_ERROR

    err = capsys.readouterr().err.strip()
    assert err.startswith("mtf: error:") and "\n" not in err
    assert expected in err
    assert not project.run_dir().exists()  # nothing written before the checks


def test_missing_config_file_is_a_one_line_error(project, capsys):
    assert main(["train", "nope.yaml"]) == EXIT_ERROR
    assert capsys.readouterr().err.strip() == "mtf: error: config file nope.yaml does not exist"


def test_missing_validation_step_with_val_loaders_is_an_error(project, capsys):
    config = project.write_config(
        model={
            "factory": f"{project.module}.build_model",
            "training_step": f"{project.module}.training_step",
        }
    )

    assert main(["train", str(config)]) == EXIT_ERROR

    assert "model.validation_step is not set" in capsys.readouterr().err


def _git(cwd, *args):
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_train_records_the_commit_of_the_repository_holding_the_config(
    project, tmp_path_factory, monkeypatch
):
    config = project.write_config(training={"max_epochs": 1})
    _git(project.root, "init", "-q")
    _git(project.root, "add", ".")
    _git(project.root, "commit", "-q", "-m", "user project")
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # not a git work tree
    monkeypatch.chdir(elsewhere)

    assert main(["train", str(config)]) == 0

    checkpoint = read_checkpoint(elsewhere / "runs" / "tiny" / "latest.ckpt")
    assert checkpoint["code_version"]["commit"] == _git(project.root, "rev-parse", "HEAD")
    assert checkpoint["code_version"]["dirty"] is False


def test_train_falls_back_to_the_working_directorys_repository(project, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")  # config and module, not in a git work tree
    module = f"{project.module}_outside"
    (outside / f"{module}.py").write_text(COMPONENTS, encoding="utf-8")
    config = outside / "experiment.yaml"
    config.write_text(yaml.safe_dump(experiment_dict(module, training={"max_epochs": 1})))
    _git(project.root, "init", "-q")  # the working directory
    _git(project.root, "commit", "-q", "--allow-empty", "-m", "cwd project")
    try:
        assert main(["train", str(config)]) == 0
    finally:
        sys.modules.pop(module, None)

    checkpoint = read_checkpoint(project.run_dir() / "latest.ckpt")
    assert checkpoint["code_version"]["commit"] == _git(project.root, "rev-parse", "HEAD")


def test_train_on_a_run_directory_owned_by_a_live_process_is_refused_writing_nothing(
    project, capsys
):
    config = project.write_config()
    run_dir = project.run_dir()
    with RunDirectoryLock(run_dir):  # a live owner (a second open file: flock refuses it too)
        before = sorted(path.name for path in run_dir.iterdir())
        lock_record = (run_dir / ".lock").read_bytes()

        assert main(["train", str(config)]) == EXIT_ERROR

        err = capsys.readouterr().err.strip()
        assert err.startswith("mtf: error:") and "\n" not in err
        assert f"run directory {run_dir} is owned by a live process" in err
        assert sorted(path.name for path in run_dir.iterdir()) == before == [".lock"]
        assert (run_dir / ".lock").read_bytes() == lock_record


def test_train_rerun_with_a_changed_learning_rate_warns_naming_it(project, caplog):
    config = project.write_config(training={"max_epochs": 1})
    assert main(["train", str(config)]) == 0

    with caplog.at_level(
        logging.WARNING, logger="model_training_framework.trainer.state.resume_check"
    ):
        assert main(["train", str(config), "--set", "optimizer.lr=0.05"]) == 0

    assert "optimizers[0].param_groups[0].lr: 0.01 -> 0.05" in caplog.text


def test_train_rerun_with_a_changed_width_is_refused_listing_the_shapes(project, capsys):
    config = project.write_config(training={"max_epochs": 1})
    assert main(["train", str(config)]) == 0
    capsys.readouterr()

    assert main(["train", str(config), "--set", "model.hidden=16"]) == EXIT_ERROR

    err = capsys.readouterr().err
    assert "does not fit this run; nothing was written" in err
    assert "model.0.weight: [8, 4] -> [16, 4]" in err and "model.2.weight: [1, 8] -> [1, 16]" in err


def test_train_rerun_with_a_changed_width_changes_no_file(project):
    config = project.write_config(training={"max_epochs": 1})
    assert main(["train", str(config)]) == 0
    files = sorted(p for p in project.run_dir().rglob("*") if p.is_file())
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}

    assert main(["train", str(config), "--set", "model.hidden=16"]) == EXIT_ERROR

    files = sorted(p for p in project.run_dir().rglob("*") if p.is_file())
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files} == before


def _snapshot(run_dir):
    return {
        p.name: p.read_bytes()
        for p in sorted(run_dir.iterdir())
        if p.is_file() and p.name != ".lock"
    }


def test_a_rejected_rerun_writes_nothing_and_the_run_still_resumes(project, monkeypatch, capsys):
    model = _preempting_at_step_5(project, monkeypatch)
    config = project.write_config(model=model)
    assert main(["train", str(config)]) == EXIT_PREEMPTED
    before = _snapshot(project.run_dir())
    assert json.loads(before["status.json"])["status"] == "preempted"

    one_loader = experiment_dict(project.module, model=model)
    one_loader["data"]["train"] = one_loader["data"]["train"][:1]
    other = project.root / "one_loader.yaml"
    other.write_text(yaml.safe_dump(one_loader))
    assert main(["train", str(other)]) == EXIT_ERROR
    assert "does not fit this run" in capsys.readouterr().err

    assert _snapshot(project.run_dir()) == before  # config, status, logs, checkpoints
    assert main(["resume", "tiny", "--runs-dir", str(project.root / "runs")]) == 0
    assert _status(project.run_dir())["global_step"] == 16


@pytest.mark.parametrize("stop", ["completed", "early_stopped"])
def test_a_finished_run_rerun_with_the_same_limits_returns_at_once(project, stop):
    changes = {"training": {"max_epochs": 20}}
    if stop == "early_stopped":  # nothing counts as an improvement: stops at the 2nd evaluation
        changes.update(early_stopping_patience=1, early_stopping_min_delta=1e9)
    else:
        changes["training"] = {"max_epochs": 2}
    config = project.write_config(**changes)
    assert main(["train", str(config)]) == 0
    first = _status(project.run_dir())
    assert first["status"] == stop
    checkpoints = _snapshot(project.run_dir())

    for _rerun in range(2):
        assert main(["train", str(config)]) == 0
        again = _status(project.run_dir())
        assert (again["status"], again["global_step"], again["epoch"]) == (
            stop,
            first["global_step"],
            first["epoch"],
        )
    after = _snapshot(project.run_dir())
    assert {k: v for k, v in after.items() if k.endswith(".ckpt")} == {
        k: v for k, v in checkpoints.items() if k.endswith(".ckpt")
    }


@pytest.mark.parametrize("stop", ["completed", "early_stopped"])
def test_a_finished_run_rerun_keeps_its_config_and_status_records(project, stop):
    changes = {"training": {"max_epochs": 2}}
    if stop == "early_stopped":  # nothing counts as an improvement: stops at the 2nd evaluation
        changes.update(training={"max_epochs": 20}, early_stopping_patience=1)
        changes.update(early_stopping_min_delta=1e9)
    config = project.write_config(**changes)
    assert main(["train", str(config)]) == 0
    run_dir = project.run_dir()

    def records():  # every file but the lock, which names whichever process holds it
        files = [p for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != ".lock"]
        return {p: (p.lstat().st_mtime_ns, p.read_bytes()) for p in files}

    before = records()
    assert {"experiment.yaml", "status.json", "metrics.jsonl", "hparams.json"} <= {
        p.name for p in before
    }

    # same limits (a learning rate change is only warned about): nothing to train, nothing to
    # record; experiment.yaml still describes the config the run trained with, and the logs
    # get no resume record
    assert main(["train", str(config), "--set", "optimizer.lr=0.05"]) == 0

    assert records() == before
