"""``mtf sweep`` (dry run, local), ``mtf status`` and ``mtf resume`` on a tiny project."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from model_training_framework.cli.main import EXIT_ERROR, main


def _grid(project, **extra):
    project.write_config("base.yaml", training={"max_steps": 3})
    grid = {
        "name": "g",
        "base_config": "base.yaml",
        "parameters": {"optimizer.lr": [0.01, 0.02]},
        **extra,
    }
    path = project.root / "grid.yaml"
    path.write_text(yaml.safe_dump(grid), encoding="utf-8")
    return path


def test_dry_run_writes_every_experiment_and_shows_the_job_script(project, capsys):
    grid = _grid(project)

    assert main(["sweep", str(grid), "--dry-run"]) == 0

    out = capsys.readouterr().out
    sweep_dir = project.root / "experiments" / "grid"
    names = sorted(p.name for p in sweep_dir.iterdir() if (p / "config.yaml").exists())
    assert names == ["tiny_lr-0.01", "tiny_lr-0.02"]
    for name in names:
        assert name in out
        script = (sweep_dir / name / "job.sbatch.sh").read_text()
        assert "-m model_training_framework.experiment.entry --config" in script
        assert "#SBATCH --signal=B:USR1@" in script
        config = yaml.safe_load((sweep_dir / name / "config.yaml").read_text())
        assert config["checkpoint"]["root_dir"] == str(project.root / "runs")  # made absolute
    assert "#!/bin/bash" in out  # the first script is printed
    assert (sweep_dir / "manifest.yaml").is_file()
    assert not (project.root / "runs").exists()  # nothing trained


def test_a_sweep_whose_names_differ_only_in_case_is_refused_before_writing(project, capsys):
    # On macOS or Windows tiny_act-ReLU and tiny_act-relu are one directory: the second
    # experiment would overwrite the first one's config.yaml and resume its run as its own.
    grid = _grid(project, parameters={"model.act": ["ReLU", "relu"]})

    assert main(["sweep", str(grid), "--dry-run"]) == EXIT_ERROR

    err = capsys.readouterr().err
    assert "tiny_act-ReLU" in err and "tiny_act-relu" in err and "only in case" in err
    assert not (project.root / "experiments").exists()


def test_dry_run_shows_exec_for_one_task_and_srun_for_more(project, capsys):
    grid = _grid(project)
    grid_dict = yaml.safe_load(grid.read_text())
    grid_dict["parameters"]["slurm.ntasks_per_node"] = [1, 2]
    grid.write_text(yaml.safe_dump(grid_dict), encoding="utf-8")

    assert main(["sweep", str(grid), "--dry-run"]) == 0

    out = capsys.readouterr().out
    scripts = {}
    for line in out.splitlines():
        if line.strip().endswith(("(launch: exec)", "(launch: srun)")):
            path, _, launch = line.strip().partition("  ")
            scripts[launch] = (project.root / path).read_text() if path else ""
    assert set(scripts) == {"(launch: exec)", "(launch: srun)"}, out
    single, multi = scripts["(launch: exec)"], scripts["(launch: srun)"]
    assert "\nexec " in single and "\nsrun " not in single
    assert "\nsrun " in multi and "\nexec " not in multi
    assert "trap 'kill -USR1 $! 2>/dev/null || true' USR1" in multi


@pytest.mark.slow  # two subprocesses importing torch
def test_local_sweep_runs_every_experiment_and_status_reports_them(project, capsys):
    grid = _grid(project)

    assert main(["sweep", str(grid), "--local", "--parallel", "2"]) == 0
    capsys.readouterr()

    assert main(["status", str(project.root / "experiments" / "grid"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["status"], r["global_step"]) for r in rows] == [
        ("tiny_lr-0.01", "completed", 3),
        ("tiny_lr-0.02", "completed", 3),
    ]


@pytest.mark.slow  # two subprocesses importing torch
def test_local_sweep_reports_an_interrupted_experiment_as_interrupted(project, capsys, monkeypatch):
    """An experiment whose process got Ctrl-C checkpointed and exited 130; the summary said
    'failed (exit 130)' and the sweep exited 1, although a rerun continues it."""
    monkeypatch.setenv("PREEMPT_AT_STEP", "1")
    monkeypatch.setenv("PREEMPT_SIGNAL", "SIGINT")
    grid = _grid(project)
    base = yaml.safe_load((project.root / "base.yaml").read_text())
    base["model"]["training_step"] = f"{project.module}.preempting_step"
    (project.root / "base.yaml").write_text(yaml.safe_dump(base))

    assert main(["sweep", str(grid), "--local", "--parallel", "2"]) == 130
    out = capsys.readouterr().out
    assert "failed" not in out
    assert out.count(": interrupted; logs in") == 2


def test_status_shows_pending_experiments_and_a_table(project, capsys):
    grid = _grid(project)
    main(["sweep", str(grid), "--dry-run"])
    capsys.readouterr()

    assert main(["status", "experiments/grid"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["experiment", "status", "epoch", "step", "loss", "job"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["tiny_lr-0.01", "pending"],
        ["tiny_lr-0.02", "pending"],
    ]


def test_status_of_an_empty_folder_is_an_error(project, capsys):
    (project.root / "empty").mkdir()
    assert main(["status", "empty"]) == EXIT_ERROR
    assert "no experiments or runs under empty" in capsys.readouterr().err


def test_slurm_sweep_without_slurm_is_a_one_line_error(project, capsys, monkeypatch, tmp_path):
    """A machine without Slurm (a laptop, a GPU box): git is there, sbatch is not."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    monkeypatch.setenv("PATH", str(bin_dir))
    grid = _grid(project)

    assert main(["sweep", str(grid), "--slurm"]) != 0

    err = capsys.readouterr().err.strip()
    assert "sbatch" in err and "\n" not in err


@pytest.mark.parametrize(
    "line",
    [
        "#SBATCH --time={{TIMEE}}",  # an unknown placeholder: refused when the template is read
        "echo {{LAUNCH}}",  # {{LAUNCH}} inside a line: refused when a script is rendered
    ],
)
def test_a_sweep_with_a_bad_template_writes_nothing(project, capsys, line):
    grid = _grid(project)
    template = project.root / "my.sbatch.sh"
    template.write_text("#!/bin/bash\n#SBATCH --job-name={{JOB_NAME}}\n" + line + "\n")

    assert main(["sweep", str(grid), "--dry-run", "--template", str(template)]) == EXIT_ERROR

    assert capsys.readouterr().err.startswith("mtf: error: ")
    assert not (project.root / "experiments").exists()  # no manifest for a sweep never made


@pytest.mark.parametrize(
    ("line", "placeholder"),
    [
        ("#SBATCH --time={{TIMEE}}", "{{TIMEE}}"),
        ("echo {{LAUNCH}}", "{{LAUNCH}}"),
        ("#SBATCH --comment={{COMMAND}}", "{{COMMAND}}"),
        ("echo {{EXTRA_DIRECTIVES}}", "{{EXTRA_DIRECTIVES}}"),
    ],
)
def test_a_template_error_names_the_template_file_and_the_placeholder(
    project, capsys, line, placeholder
):
    grid = _grid(project)
    template = project.root / "my.sbatch.sh"
    template.write_text("#!/bin/bash\n#SBATCH --job-name={{JOB_NAME}}\n" + line + "\n")

    assert main(["sweep", str(grid), "--dry-run", "--template", str(template)]) == EXIT_ERROR

    err = capsys.readouterr().err
    assert f"sbatch template {template} line 3: " in err, err
    assert placeholder in err, err


def test_a_sweep_with_a_missing_template_says_so_and_writes_nothing(project, capsys):
    grid = _grid(project)

    assert main(["sweep", str(grid), "--dry-run", "--template", "my.sbatch.sh"]) == EXIT_ERROR

    err = capsys.readouterr().err.strip()
    assert err.startswith("mtf: error: sbatch template 'my.sbatch.sh' is not a file"), err
    assert not (project.root / "experiments").exists()


def test_sweep_needs_exactly_one_mode(project, capsys):
    grid = _grid(project)
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", str(grid), "--local", "--slurm"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_resume_finds_a_train_run_by_name_and_continues_it(project, capsys):
    config = project.write_config(training={"max_steps": 3})
    assert main(["train", str(config)]) == 0
    record = project.run_dir() / "experiment.yaml"
    data = yaml.safe_load(record.read_text())
    data["training"]["max_steps"] = 5
    record.write_text(yaml.safe_dump(data))

    assert main(["resume", "tiny"]) == 0

    status = json.loads((project.run_dir() / "status.json").read_text())
    assert (status["status"], status["global_step"]) == ("completed", 5)


def test_resume_with_checkpoint_keeps_the_runs_own_progress(project, caplog):
    config = project.write_config(training={"max_steps": 3})
    assert main(["train", str(config)]) == 0
    record = project.run_dir() / "experiment.yaml"
    data = yaml.safe_load(record.read_text())
    data["training"]["max_steps"] = 5
    record.write_text(yaml.safe_dump(data))
    elsewhere = project.root / "pretrained.ckpt"  # never read: the run has its own checkpoint

    assert main(["resume", "tiny", "--checkpoint", str(elsewhere)]) == 0

    status = json.loads((project.run_dir() / "status.json").read_text())
    assert (status["status"], status["global_step"]) == ("completed", 5)
    assert "own latest checkpoint" in caplog.text


def test_resume_without_a_checkpoint_fails_clearly(project, capsys):
    grid = _grid(project)
    main(["sweep", str(grid), "--dry-run"])
    capsys.readouterr()

    assert main(["resume", "tiny_lr-0.01"]) == EXIT_ERROR

    err = capsys.readouterr().err
    assert "has no checkpoint" in err
    # It never ran: the advice is how to start it, not the trainer's "drop the argument"
    # (mtf resume has no argument to drop).
    assert "drop the argument" not in err
    assert "mtf train experiments/grid/tiny_lr-0.01/config.yaml" in err
    assert not (project.root / "runs").exists()


def test_resume_of_an_unknown_name_lists_where_it_looked(project, capsys):
    assert main(["resume", "ghost"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "no experiment 'ghost'" in err and "runs/ghost/experiment.yaml" in err


def test_resume_of_a_misspelt_name_suggests_the_close_ones(project, capsys):
    """`mtf resume tiny_lr-0.1` after a sweep that made tiny_lr-0.01 and tiny_lr-0.02: the
    error listed only where it looked; like an unknown config key, it names the close ones."""
    assert main(["sweep", str(_grid(project)), "--dry-run"]) == 0
    capsys.readouterr()
    assert main(["resume", "tiny_lr-0.1"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "no experiment 'tiny_lr-0.1'" in err
    assert "did you mean 'tiny_lr-0.01' or 'tiny_lr-0.02'?" in err


def _files(directory):
    return {p: p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_sweep_does_not_take_over_a_run_it_did_not_create(project, capsys):
    # Names come from the base name and the swept values only, so another sweep (or an
    # `mtf train` run) can hold the same run directory: the sweep used to resume that run's
    # checkpoint and report it as its own ("completed", someone else's weights).
    solo = project.write_config("solo.yaml", experiment_name="tiny_lr-0.01")
    assert main(["train", str(solo)]) == 0
    before = _files(project.root / "runs")
    grid = _grid(project)
    capsys.readouterr()

    assert main(["sweep", str(grid), "--dry-run"]) == EXIT_ERROR

    err = capsys.readouterr().err
    assert f"{project.root / 'runs' / 'tiny_lr-0.01'}" in err
    assert "experiment_name" in err and "Traceback" not in err
    assert not (project.root / "experiments").exists()  # nothing written
    assert _files(project.root / "runs") == before


def test_a_sweep_rerun_into_its_own_experiments_dir_is_not_a_clash(project, capsys):
    grid = _grid(project)
    assert main(["sweep", str(grid), "--dry-run"]) == 0
    experiment_dir = project.root / "experiments" / "grid" / "tiny_lr-0.01"
    config = experiment_dir / "config.yaml"
    assert main(["train", str(config)]) == 0  # what the sweep's job runs
    capsys.readouterr()

    assert main(["sweep", str(grid), "--dry-run"]) == 0


@pytest.mark.slow  # four subprocesses importing torch
def test_two_local_sweeps_with_the_same_names_do_not_share_runs(project, capsys):
    grid = _grid(project)
    assert main(["sweep", str(grid), "--local"]) == 0
    project.write_config(
        "adamw_base.yaml", training={"max_steps": 3}, optimizer={"name": "adamw", "lr": 0.1}
    )
    other = project.root / "other.yaml"
    other.write_text(
        yaml.safe_dump(
            {
                "name": "other",
                "base_config": "adamw_base.yaml",
                "parameters": {"optimizer.lr": [0.01, 0.02]},
            }
        ),
        encoding="utf-8",
    )
    before = _files(project.root / "runs")
    capsys.readouterr()

    assert main(["sweep", str(other), "--local"]) == EXIT_ERROR

    assert "tiny_lr-0.01" in capsys.readouterr().err
    assert _files(project.root / "runs") == before
    assert main(["sweep", str(grid), "--local"]) == 0  # rerunning the first sweep still works


@pytest.mark.slow  # a subprocess importing torch
def test_status_shows_a_local_experiment_that_failed_before_training_as_failed(project, capsys):
    # It failed before fit (a model argument the factory does not take), so its run wrote no
    # records: `mtf status` said "pending", as if it had never run.
    grid = _grid(project, parameters={"model.hiddn": [4]})
    assert main(["sweep", str(grid), "--local"]) == 1
    capsys.readouterr()

    assert main(["status", "experiments/grid", "--json"]) == 0

    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["status"]) == ("tiny_hiddn-4", "failed")


def test_an_invalid_swept_config_is_one_readable_line(project, capsys):
    grid = _grid(project, parameters={"optimizer.lrr": [0.1]})

    assert main(["sweep", str(grid), "--dry-run"]) == EXIT_ERROR

    err = capsys.readouterr().err
    assert "\n" not in err.strip() and ":;" not in err
    assert "is not a valid config: optimizer.lrr: unknown key; did you mean 'lr'?" in err
