"""SLURMLauncher without a Slurm controller: dry runs, files, snapshots, sbatch errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from model_training_framework.errors import LauncherError
from model_training_framework.experiment.config import ExperimentConfig
from model_training_framework.experiment.manager import read_config_file
from model_training_framework.launch.slurm.template import sbatch_directives
from model_training_framework.slurm import (
    SlurmCommands,
    SLURMLauncher,
    TemplateError,
    read_code_version,
)

SPEC_PLACEHOLDERS = [
    "JOB_NAME", "EXPERIMENT_NAME", "EXPERIMENT_DIR", "CONFIG_PATH", "SCRIPT_PATH", "PYTHON",
    "CODE_DIR", "LOG_DIR", "ACCOUNT", "PARTITION", "NODES", "NTASKS_PER_NODE", "GPUS_PER_NODE",
    "CPUS_PER_TASK", "MEM", "TIME", "CONSTRAINT", "QOS", "SIGNAL_GRACE_S",
]  # fmt: skip


def _fake_sbatch_path(tmp_path: Path, body: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "sbatch"
    script.write_text(f"#!/bin/bash\n{body}\n")
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_dry_run_writes_everything_and_never_calls_sbatch(git_project, tmp_path):
    commands = SlurmCommands(
        env=_fake_sbatch_path(tmp_path, f"touch {tmp_path}/sbatch_called; echo 1")
    )
    launcher = SLURMLauncher(
        project_root=git_project, experiments_dir=tmp_path / "exps", commands=commands
    )
    experiments = [
        ExperimentConfig(experiment_name=f"run_{i}", slurm={"mem": "1G"}) for i in range(3)
    ]

    result = launcher.submit_experiment_batch(
        experiments, git_project / "train.py", max_concurrent=2, dry_run=True
    )

    assert not (tmp_path / "sbatch_called").exists()
    assert result.is_dry_run and result.success_count == 3 and result.job_ids == []
    for item, experiment in zip(result.results, experiments, strict=True):
        assert (
            ExperimentConfig.from_yaml(item.experiment_dir / "config.yaml").experiment_name
            == experiment.experiment_name
        )
        assert (item.experiment_dir / "logs").is_dir()
        script = item.script_path.read_text()
        assert subprocess.run(["bash", "-n", str(item.script_path)], check=False).returncode == 0
        assert f"--output={item.experiment_dir}/logs/slurm-%j.out" in sbatch_directives(script)
        assert "--mem=1G" in sbatch_directives(script)
    (array_script,) = (tmp_path / "exps" / ".mtf_arrays").glob("*/array.sbatch.sh")
    assert "--array=0-2%2" in sbatch_directives(array_script.read_text())
    assert subprocess.run(["bash", "-n", str(array_script)], check=False).returncode == 0


def test_array_script_runs_the_experiment_of_its_task_id(git_project, tmp_path):
    template = "#!/bin/bash\n#SBATCH --job-name={{JOB_NAME}}\necho {{EXPERIMENT_NAME}} > {{EXPERIMENT_DIR}}/which\n"
    launcher = SLURMLauncher(template, project_root=git_project, experiments_dir=tmp_path / "e")
    result = launcher.submit_experiment_batch(
        [{"experiment_name": n} for n in ["a", "b", "c"]], None, dry_run=True
    )
    (array_script,) = (tmp_path / "e" / ".mtf_arrays").glob("*/array.sbatch.sh")

    subprocess.run(
        ["bash", str(array_script)], env={**os.environ, "SLURM_ARRAY_TASK_ID": "1"}, check=True
    )

    assert (result.results[1].experiment_dir / "which").read_text() == "b\n"
    assert not (result.results[0].experiment_dir / "which").exists()
    bad = subprocess.run(
        ["bash", str(array_script)], env={**os.environ, "SLURM_ARRAY_TASK_ID": "3"}, check=False
    )
    assert bad.returncode == 2


def test_every_spec_placeholder_is_provided(git_project, tmp_path):
    template = "#!/bin/bash\n" + "".join(
        f"echo {name}={{{{{name}}}}}\n" for name in SPEC_PLACEHOLDERS
    )
    launcher = SLURMLauncher(template, project_root=git_project, experiments_dir=tmp_path / "e")
    item = launcher.submit_single_experiment(
        {"experiment_name": "x"}, git_project / "train.py", dry_run=True
    )
    out = subprocess.run(
        ["bash", str(item.script_path)], capture_output=True, text=True, check=True
    ).stdout
    values = dict(line.split("=", 1) for line in out.splitlines())
    assert values["CONFIG_PATH"] == str(item.experiment_dir / "config.yaml")
    assert values["MEM"] == "4G" and values["ACCOUNT"] == "" and values["SIGNAL_GRACE_S"] == "120"


def test_experiments_with_different_resources_go_to_separate_arrays(git_project, tmp_path):
    launcher = SLURMLauncher(project_root=git_project, experiments_dir=tmp_path / "e")
    experiments = [
        {"experiment_name": "small", "slurm": {"mem": "1G"}},
        {"experiment_name": "big", "slurm": {"mem": "9G"}},
    ]
    launcher.submit_experiment_batch(experiments, git_project / "train.py", dry_run=True)
    scripts = sorted(
        p.read_text() for p in (tmp_path / "e" / ".mtf_arrays").glob("*/array.sbatch.sh")
    )
    assert len(scripts) == 2
    assert all("--array=0-0" in sbatch_directives(text) for text in scripts)
    assert all(text.count(" exec bash ") == 1 for text in scripts)


def test_submission_snapshots_committed_and_uncommitted_code(git_project, tmp_path):
    (git_project / "train.py").write_text((git_project / "train.py").read_text() + "\n# edited\n")
    (git_project / "helper.py").write_text("VALUE = 1\n")
    commands = SlurmCommands(env=_fake_sbatch_path(tmp_path, "echo 77"))
    launcher = SLURMLauncher(
        project_root=git_project, experiments_dir=git_project / "experiments", commands=commands
    )

    item = launcher.submit_single_experiment({"experiment_name": "snap"}, git_project / "train.py")

    assert item.job_id == "77"
    version = read_code_version(item.experiment_dir)
    head = subprocess.run(
        ["git", "-C", str(git_project), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    assert version.commit == head.stdout.strip() and version.dirty is True
    code_dir = Path(version.code_dir)
    assert (code_dir / "train.py").read_text().endswith("# edited\n")
    assert (code_dir / "helper.py").read_text() == "VALUE = 1\n"
    assert not (code_dir / "experiments").exists()  # the experiments dir is not copied into itself
    assert f"{code_dir}/train.py" in item.script_path.read_text()
    status = subprocess.run(
        ["git", "-C", str(git_project), "status", "--porcelain"], capture_output=True, text=True
    )
    assert "?? helper.py" in status.stdout  # the user's index was not touched
    record = json.loads((item.experiment_dir / "code_version.json").read_text())
    assert record["patch_path"] and Path(record["patch_path"]).read_text().count("helper.py") >= 1


def test_sbatch_refusal_marks_experiments_failed_with_stderr(git_project, tmp_path):
    commands = SlurmCommands(
        env=_fake_sbatch_path(tmp_path, "echo 'sbatch: error: Invalid account' >&2; exit 1")
    )
    launcher = SLURMLauncher(
        project_root=git_project, experiments_dir=tmp_path / "e", commands=commands
    )
    result = launcher.submit_experiment_batch(
        [{"experiment_name": "a"}, {"experiment_name": "b"}], git_project / "train.py"
    )
    assert result.success_count == 0 and len(result.failed) == 2
    assert all("Invalid account" in item.error for item in result.failed)
    with pytest.raises(LauncherError, match="Invalid account"):
        launcher.submit_single_experiment({"experiment_name": "c"}, git_project / "train.py")


def test_missing_sbatch_is_a_clear_error(git_project, tmp_path):
    commands = SlurmCommands(env={"PATH": str(tmp_path / "empty")})
    launcher = SLURMLauncher(
        project_root=git_project, experiments_dir=tmp_path / "e", commands=commands
    )
    with pytest.raises(LauncherError, match="'sbatch' not found"):
        launcher.submit_single_experiment({"experiment_name": "a"}, git_project / "train.py")


@pytest.mark.parametrize("name", ["my dir", "a;b", "../up", ".hidden", "new\nline", "", "q'uote"])
def test_hostile_experiment_names_are_rejected_before_any_write(git_project, tmp_path, name):
    launcher = SLURMLauncher(project_root=git_project, experiments_dir=tmp_path / "e")
    with pytest.raises(ValueError, match="experiment_name"):
        launcher.submit_experiment_batch(
            [{"experiment_name": "ok"}, {"experiment_name": name}], None, dry_run=True
        )
    assert not (tmp_path / "e").exists()


def test_hostile_experiments_dir_is_quoted_in_scripts(git_project, tmp_path, hostile_name):
    experiments_dir = tmp_path / hostile_name.replace("\t", " ")
    launcher = SLURMLauncher(project_root=git_project, experiments_dir=experiments_dir)
    item = launcher.submit_single_experiment(
        {"experiment_name": "x"}, git_project / "train.py", dry_run=True
    )
    script = item.script_path.read_text()
    assert subprocess.run(["bash", "-n", str(item.script_path)], check=False).returncode == 0
    probe = (
        script.split("\nset -euo pipefail\n")[1]
        .replace("exec ", "echo ", 1)
        .replace("cd ", "echo ", 1)
    )
    out = subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True
    ).stdout
    assert str(item.experiment_dir / "config.yaml") in out
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    ("experiments", "error"),
    [([], "no experiments"), ([{"experiment_name": "a"}, {"experiment_name": "a"}], "unique"),
     ([{"experiment_name": "RunA"}, {"experiment_name": "runa"}], "only in case"),
     ([{"experiment_name": "a", "slurm": {"gpu": 1}}], "unknown slurm key")],
)  # fmt: skip
def test_invalid_batches_are_rejected(git_project, tmp_path, experiments, error):
    launcher = SLURMLauncher(project_root=git_project, experiments_dir=tmp_path / "e")
    with pytest.raises(ValueError, match=error):
        launcher.submit_experiment_batch(experiments, None, dry_run=True)


def test_dict_experiments_are_written_as_yaml(git_project, tmp_path):
    launcher = SLURMLauncher(project_root=git_project, experiments_dir=tmp_path / "e")
    item = launcher.submit_single_experiment(
        {"experiment_name": "d", "lr": 0.5}, git_project / "train.py", dry_run=True
    )
    assert yaml.safe_load((item.experiment_dir / "config.yaml").read_text()) == {
        "experiment_name": "d",
        "lr": 0.5,
    }


def test_dict_experiment_strings_that_look_like_numbers_stay_strings(git_project, tmp_path):
    launcher = SLURMLauncher(project_root=git_project, experiments_dir=tmp_path / "e")
    item = launcher.submit_single_experiment(
        {"experiment_name": "d", "tag": "1e-3"}, git_project / "train.py", dry_run=True
    )
    loaded = read_config_file(item.experiment_dir / "config.yaml")
    assert loaded == {"experiment_name": "d", "tag": "1e-3"}


@pytest.mark.parametrize("use_dict", [False, True])
def test_a_relative_checkpoint_root_is_the_projects_not_the_snapshots(
    git_project, tmp_path, use_dict
):
    # The job runs in the code snapshot: a relative root_dir put the checkpoints inside it, so
    # a resubmitted sweep (a new snapshot) started every experiment from scratch.
    commands = SlurmCommands(env=_fake_sbatch_path(tmp_path, "echo 5"))
    launcher = SLURMLauncher(
        project_root=git_project, experiments_dir=tmp_path / "e", commands=commands
    )
    checkpoint = {"root_dir": "runs"}
    experiment = (
        {"experiment_name": "rel", "checkpoint": checkpoint}
        if use_dict
        else ExperimentConfig(experiment_name="rel", checkpoint=checkpoint)
    )

    item = launcher.submit_single_experiment(experiment, git_project / "train.py")

    written = read_config_file(item.experiment_dir / "config.yaml")
    assert written["checkpoint"]["root_dir"] == str((git_project / "runs").resolve())
    assert checkpoint == {"root_dir": "runs"}  # the caller's experiment is left as it was
    if not use_dict:
        assert experiment.checkpoint.root_dir == "runs"


def test_an_absolute_checkpoint_root_and_a_dict_without_one_are_written_as_given(
    git_project, tmp_path
):
    launcher = SLURMLauncher(project_root=git_project, experiments_dir=tmp_path / "e")
    absolute = str(tmp_path / "elsewhere")
    experiments = [
        ExperimentConfig(experiment_name="abs", checkpoint={"root_dir": absolute}),
        {"experiment_name": "plain", "lr": 0.5},
    ]
    result = launcher.submit_experiment_batch(experiments, git_project / "train.py", dry_run=True)
    first, second = (
        read_config_file(item.experiment_dir / "config.yaml") for item in result.results
    )
    assert first["checkpoint"]["root_dir"] == absolute
    assert second == {"experiment_name": "plain", "lr": 0.5}


def test_checkpoints_under_the_project_are_not_copied_into_the_code_snapshot(git_project, tmp_path):
    # Run directories that git does not ignore were copied into every snapshot and into its
    # patch: each resubmission duplicated all checkpoints of the project.
    old_run = git_project / "runs" / "earlier_run"
    old_run.mkdir(parents=True)
    (old_run / "latest.ckpt").write_bytes(b"\0checkpoint bytes\0" * 1000)
    (git_project / "helper.py").write_text("VALUE = 1\n")
    commands = SlurmCommands(env=_fake_sbatch_path(tmp_path, "echo 9"))
    launcher = SLURMLauncher(
        project_root=git_project, experiments_dir=tmp_path / "e", commands=commands
    )
    experiment = ExperimentConfig(experiment_name="x", checkpoint={"root_dir": "runs"})

    item = launcher.submit_single_experiment(experiment, git_project / "train.py")

    version = read_code_version(item.experiment_dir)
    code_dir = Path(version.code_dir)
    assert (code_dir / "helper.py").is_file() and (code_dir / "train.py").is_file()
    assert not (code_dir / "runs").exists()
    assert "latest.ckpt" not in Path(version.patch_path).read_text(errors="replace")


def test_a_checkpoint_root_at_the_project_root_still_copies_the_code(git_project, tmp_path):
    commands = SlurmCommands(env=_fake_sbatch_path(tmp_path, "echo 9"))
    launcher = SLURMLauncher(
        project_root=git_project, experiments_dir=tmp_path / "e", commands=commands
    )
    experiment = ExperimentConfig(experiment_name="x", checkpoint={"root_dir": "."})

    item = launcher.submit_single_experiment(experiment, git_project / "train.py")

    assert (Path(read_code_version(item.experiment_dir).code_dir) / "train.py").is_file()


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_template_that_fails_to_render_writes_nothing(git_project, tmp_path, dry_run):
    """Rendering fails only once the values are known ({{LAUNCH}} inside a line): before any
    experiment directory, and before the code snapshot that a submission copies."""
    experiments_dir = tmp_path / "experiments"
    template = "#!/bin/bash\n#SBATCH --job-name={{JOB_NAME}}\necho {{LAUNCH}}\n"
    launcher = SLURMLauncher(template, git_project, experiments_dir)

    with pytest.raises(TemplateError, match="must stand alone"):
        launcher.submit_experiment_batch(
            [{"experiment_name": "a"}], git_project / "train.py", dry_run=dry_run
        )

    assert not experiments_dir.exists()
