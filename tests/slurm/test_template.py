"""SBATCHTemplateEngine: placeholders, quoting, directive handling, golden scripts.

Golden files live in tests/slurm/golden/. After an intended change to the default template,
accept the new output with ``UPDATE_GOLDEN=1 pytest tests/slurm/test_template.py`` and review
the diff in git.
"""

from __future__ import annotations

import ast
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from model_training_framework.launch.slurm import parsing as parsing_module
from model_training_framework.launch.slurm import template as template_module
from model_training_framework.launch.slurm.launch import launch_lines
from model_training_framework.launch.slurm.template import (
    Directives,
    SBATCHTemplateEngine,
    ShellCommand,
    TemplateError,
    default_template_text,
    sbatch_directives,
)
from model_training_framework.slurm_env import current_slurm_job_id

GOLDEN_DIR = Path(__file__).parent / "golden"


def _context(**overrides: object) -> dict[str, object]:
    context: dict[str, object] = {
        "JOB_NAME": "exp1",
        "EXPERIMENT_NAME": "exp1",
        "EXPERIMENT_DIR": "/runs/exp1",
        "CONFIG_PATH": "/runs/exp1/config.yaml",
        "SCRIPT_PATH": "/code/train.py",
        "PYTHON": "/usr/bin/python3",
        "PROJECT_ROOT": "/project",
        "CODE_DIR": "/runs/.mtf_code/abc/code",
        "CODE_VERSION_FILE": "/runs/exp1/code_version.json",
        "LOG_DIR": "/runs/exp1/logs",
        "ACCOUNT": "",
        "PARTITION": "",
        "NODES": 1,
        "NTASKS_PER_NODE": 1,
        "GPUS_PER_NODE": "",
        "CPUS_PER_TASK": 2,
        "MEM": "4G",
        "TIME": "01:00:00",
        "CONSTRAINT": "",
        "QOS": "",
        "SIGNAL_GRACE_S": 120,
        "EXTRA_DIRECTIVES": Directives([]),
        "COMMAND": ShellCommand(
            ["/usr/bin/python3", "/code/train.py", "--config", "/runs/exp1/config.yaml"]
        ),
    }
    context.update(overrides)
    num_tasks = int(context["NODES"]) * int(context["NTASKS_PER_NODE"])  # type: ignore[call-overload]
    context.setdefault("LAUNCH", launch_lines(context["COMMAND"], num_tasks))  # type: ignore[arg-type]
    return context


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN_DIR / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; create it with UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} changed; accept with UPDATE_GOLDEN=1 if intended"
    )


def _bash_syntax_ok(script: str) -> None:
    result = subprocess.run(
        ["bash", "-n"], input=script, text=True, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_default_template_renders_minimal_resources_like_golden():
    script = SBATCHTemplateEngine(default_template_text()).render(_context())
    _check_golden("default_minimal.sbatch.sh", script)
    _bash_syntax_ok(script)


def test_default_template_renders_all_resources_like_golden():
    context = _context(
        ACCOUNT="proj-42",
        PARTITION="gpu",
        GPUS_PER_NODE=4,
        CONSTRAINT="a100&ib",
        QOS="high",
        NODES=2,
        NTASKS_PER_NODE=4,
        EXTRA_DIRECTIVES=Directives(["--exclusive", "#SBATCH --mail-type=END"]),
    )
    script = SBATCHTemplateEngine(default_template_text()).render(context)
    _check_golden("default_full.sbatch.sh", script)
    _bash_syntax_ok(script)
    assert "--exclusive" in sbatch_directives(script)
    assert "--mail-type=END" in sbatch_directives(script)


JOB_ENVIRONMENTS = [
    {},
    {"SLURM_JOB_ID": "4242"},
    # the array task that carries the array's own id, and one with an id of its own
    {"SLURM_JOB_ID": "4242", "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "1"},
    {"SLURM_JOB_ID": "4243", "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "0"},
    {"SLURM_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "1"},
    {"SLURM_JOB_ID": "", "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "1"},
]


@pytest.mark.parametrize("slurm_env", JOB_ENVIRONMENTS)
def test_log_line_names_the_job_as_current_slurm_job_id_does(tmp_path, slurm_env):
    # An array task's own SLURM_JOB_ID is not what squeue, sacct, scancel and submission.json
    # call it: the log line prints <array>_<task>, the same rule as the trainer's requeue.
    context = _context(CODE_DIR=tmp_path, COMMAND=ShellCommand(["true"]))
    script = SBATCHTemplateEngine(default_template_text()).render(context)
    env = {"PATH": os.environ["PATH"], **slurm_env}
    ran = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert ran.returncode == 0, ran.stderr
    expected = current_slurm_job_id(slurm_env) or "none"
    assert f" job {expected} restart 0 " in ran.stdout, ran.stdout


def test_empty_optional_directives_are_dropped():
    directives = sbatch_directives(SBATCHTemplateEngine(default_template_text()).render(_context()))
    names = {d.split("=", 1)[0] for d in directives}
    assert not names & {"--account", "--partition", "--qos", "--constraint", "--gpus-per-node"}
    assert {"--signal", "--requeue", "--open-mode"} <= names
    assert "--signal=B:USR1@120" in directives


def test_shell_variables_and_substitutions_pass_through():
    text = 'echo $HOME ${SLURM_JOB_ID:-none} $(hostname) "$X" {{NAME}}\n'
    assert (
        SBATCHTemplateEngine(text).render({"NAME": "v"})
        == 'echo $HOME ${SLURM_JOB_ID:-none} $(hostname) "$X" v\n'
    )


def test_unknown_placeholder_error_lists_known_names():
    engine = SBATCHTemplateEngine("echo {{NOPE}} {{JOB_NAME}}\n")
    with pytest.raises(TemplateError) as info:
        engine.render({"JOB_NAME": "a", "EXPERIMENT_DIR": "/x"})
    message = str(info.value)
    assert "{{NOPE}}" in message and "EXPERIMENT_DIR" in message and "JOB_NAME" in message


def test_render_errors_name_the_template_its_line_and_the_placeholder(tmp_path):
    path = tmp_path / "t.sh"
    path.write_text("#!/bin/bash\necho {{A}}\n#SBATCH --x={{CMD}}\necho {{NOPE}} {{ALSO}}\n")
    engine = SBATCHTemplateEngine(path)
    with pytest.raises(TemplateError) as unknown:
        engine.render({"A": "a", "CMD": ShellCommand(["x"])})
    with pytest.raises(TemplateError) as misplaced:
        engine.render({"A": "a", "CMD": ShellCommand(["x"]), "NOPE": 1, "ALSO": 2})

    assert str(unknown.value).startswith(
        f"sbatch template {path} line 4: unknown placeholder {{{{NOPE}}}} (also {{{{ALSO}}}})"
    )
    assert str(misplaced.value).startswith(f"sbatch template {path} line 3: {{{{CMD}}}} ")


def test_a_template_given_as_text_can_be_named():
    engine = SBATCHTemplateEngine("echo {{V}}\n#SBATCH --x={{V}}\n", name="the built-in x.sh")
    with pytest.raises(TemplateError, match=r"^sbatch template the built-in x.sh line 2: "):
        engine.render({"V": "a\nb"})


@pytest.mark.parametrize("bad", ["{{ NAME }}", "{{name}}", "{{Name }}"])
def test_malformed_placeholder_is_rejected_with_its_line(bad):
    with pytest.raises(TemplateError, match="line 2"):
        SBATCHTemplateEngine(f"#!/bin/bash\necho {bad}\n")


@pytest.mark.parametrize("quoted", ['cd "{{DIR}}"', "echo '{{DIR}}'", 'echo "x {{DIR}} y"'])
def test_placeholder_inside_quotes_is_rejected(quoted):
    with pytest.raises(TemplateError, match="inside"):
        SBATCHTemplateEngine(quoted + "\n")


def test_hostile_value_in_command_line_is_one_shell_word(hostile_name):
    script = SBATCHTemplateEngine("printf '%s\\n' {{DIR}}\n").render({"DIR": hostile_name})
    assert shlex.split(script)[2] == hostile_name
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout == hostile_name + "\n"


def test_hostile_value_in_directive_is_quoted_for_sbatch(hostile_name):
    line = SBATCHTemplateEngine("#SBATCH --output={{DIR}}/x.out\n").render({"DIR": hostile_name})
    assert line.startswith("#SBATCH --output=") and line.count("\n") == 1


@pytest.mark.parametrize("line", ["#SBATCH --job-name={{V}}\n", "# comment {{V}}\n"])
def test_newline_in_directive_or_comment_value_is_rejected(line):
    with pytest.raises(TemplateError, match="newline"):
        SBATCHTemplateEngine(line).render({"V": "a\n#SBATCH --uid=0"})


def test_newline_in_command_value_stays_inside_quotes():
    script = SBATCHTemplateEngine("printf %s {{V}}\n").render({"V": "a\nrm -rf /"})
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout == "a\nrm -rf /"


def test_extra_directive_with_newline_is_rejected():
    with pytest.raises(TemplateError, match="newline"):
        Directives(["--exclusive\n--uid=0"])


def test_directives_must_stand_alone():
    with pytest.raises(TemplateError, match="stand alone"):
        SBATCHTemplateEngine("echo {{EXTRA}}\n").render({"EXTRA": Directives(["--exclusive"])})


def test_template_from_path(tmp_path):
    path = tmp_path / "t.sh"
    path.write_text("#SBATCH --job-name={{JOB_NAME}}\n")
    assert SBATCHTemplateEngine(path).placeholders == {"JOB_NAME"}
    assert SBATCHTemplateEngine(str(path)).render({"JOB_NAME": "j"}) == "#SBATCH --job-name=j\n"


def test_missing_template_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a file"):
        SBATCHTemplateEngine(str(tmp_path / "nope.sh"))


@pytest.mark.parametrize("module", [template_module, parsing_module])
def test_pure_modules_import_only_the_standard_library(module):
    tree = ast.parse(Path(module.__file__).read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not imported & {"torch", "numpy", "subprocess", "yaml", "pydantic"}
