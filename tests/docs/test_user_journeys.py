"""User journeys: every shell command the docs show runs as written, in a real git clone.

The documents are README.md, docs/*.md and examples/*/README.md; their commands are the lines
of their ```bash (also ```sh, ```shell, ```console) blocks, with ``\\`` continuations joined.
Every such command is either

- a :class:`Step` of one of the JOURNEYS below: the slow tests clone this repository (with its
  .gitignore) into a temporary folder and run the journey's steps in order, each verbatim with
  ``bash -c`` from the folder the doc names, checking its exit code, the files the doc promises
  and what it prints (the package, ``mtf`` and ``python`` come from this test's environment,
  with the clone's ``src/`` first on ``PYTHONPATH``; Slurm commands run against the test Slurm);
- or listed in ILLUSTRATIVE with the reason it cannot run here.

The cheap test of the default suite fails for a doc command that is neither (a new or edited
command), and for an entry here whose command no doc shows any more, so docs and journeys
cannot drift apart. Its message says exactly what to add.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
THIS_FILE = "tests/docs/test_user_journeys.py"
_SHELL_FENCE = re.compile(
    r"^```(?:bash|sh|shell|console)[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE
)
_COMMAND_TIMEOUT_S = 600


# ---------------------------------------------------------------- reading the docs
def documents(root: Path = ROOT) -> list[str]:
    """The documents whose commands must run, relative to ``root``."""
    paths = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    paths += sorted((root / "examples").glob("*/README.md"))
    return [str(p.relative_to(root)) for p in paths if p.is_file()]


def strip_comment(line: str) -> str:
    """``line`` without a trailing shell comment (a ``#`` after whitespace, outside quotes)."""
    quote = None
    for idx, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (idx == 0 or line[idx - 1] in " \t"):
            return line[:idx].rstrip()
    return line.rstrip()


def shell_commands(text: str) -> list[str]:
    """The commands of the shell blocks of a Markdown text, comments stripped, continuations
    joined, in order."""
    commands = []
    for block in _SHELL_FENCE.findall(text):
        pending = ""
        for raw in block.splitlines():
            line = strip_comment(raw.strip())
            if line.startswith("$ "):
                line = line[2:]
            if line.endswith("\\"):
                pending += line[:-1].rstrip() + " "
                continue
            command = " ".join((pending + line).split())
            pending = ""
            if command:
                commands.append(command)
    return commands


def doc_commands(root: Path = ROOT) -> dict[tuple[str, str], None]:
    """Every (document, command) pair, in document order."""
    found: dict[tuple[str, str], None] = {}
    for doc in documents(root):
        for command in shell_commands((root / doc).read_text(encoding="utf-8")):
            found[(doc, command)] = None
    return found


# ---------------------------------------------------------------- journeys
@dataclass(frozen=True)
class Step:
    """One doc command, run verbatim from ``folder`` of the clone.

    Attributes:
        command: the command exactly as the docs show it (comment stripped).
        docs: the documents that show it (a command shown twice runs once).
        folder: where the doc says to run it, relative to the clone's root.
        returncode: the exit code the doc promises.
        files: paths (relative to ``folder``) that must exist afterwards.
        output: texts that must appear in its stdout or stderr.
        prepare: what the doc assumes the reader did before (e.g. wrote a file); called with
            (clone root, folder).
        check: further checks, called with (folder, output, env).
        run_as: the command actually run instead, when running it verbatim would rebuild the
            environment (the reason is in ``why``).
    """

    command: str
    docs: tuple[str, ...]
    folder: str = "."
    returncode: int = 0
    files: tuple[str, ...] = ()
    output: tuple[str, ...] = ()
    prepare: Callable[[Path, Path], None] | None = None
    check: Callable[[Path, str, dict[str, str]], None] | None = None
    run_as: str | None = None
    why: str = ""


def _write_doc_files(doc: str) -> Callable[[Path, Path], None]:
    """Write the files a doc shows as a fenced block right after a line "`<name>`:"."""
    pattern = re.compile(r"^`([\w.]+)`:\s*\n\s*```\w*\n(.*?)^```", re.DOTALL | re.MULTILINE)

    def prepare(clone: Path, folder: Path) -> None:
        files = pattern.findall((clone / doc).read_text(encoding="utf-8"))
        assert files, f"{doc} shows no file as a block after a line '`<name>`:'"
        for name, body in files:
            (folder / name).write_text(body, encoding="utf-8")

    return prepare


def _copy_default_template(name: str) -> Callable[[Path, Path], None]:
    def prepare(clone: Path, folder: Path) -> None:
        from model_training_framework.launch.slurm.template import default_template_text

        (folder / name).write_text(default_template_text(), encoding="utf-8")

    return prepare


def _status_json(folder: Path, run: str) -> dict:
    return json.loads((folder / "runs" / run / "status.json").read_text(encoding="utf-8"))


def _training_points(run_dir: Path) -> list[int]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open(encoding="utf-8")]
    return [row["step"] for row in rows if "train/loss" in row]


def _check_plot_has_lines(run: str) -> Callable[[Path, str, dict[str, str]], None]:
    def check(folder: Path, output: str, env: dict[str, str]) -> None:
        points = _training_points(folder / "runs" / run)
        assert len(points) >= 2, f"training loss logged at {points} only: the plot shows a dot"

    return check


def _check_completed(run: str, epoch: int | None = None) -> Callable[[Path, str, dict], None]:
    def check(folder: Path, output: str, env: dict[str, str]) -> None:
        status = _status_json(folder, run)
        assert status["status"] == "completed", status
        if epoch is not None:
            assert status["epoch"] == epoch, status

    return check


def _check_trained_with_lr(lr: str) -> Callable[[Path, str, dict[str, str]], None]:
    """The override took effect: a run trained to completion with that learning rate (on the
    run the previous step finished, `--set optimizer.lr=...` alone only warns that the
    checkpoint's optimizer state keeps the old value, and trains nothing)."""

    def check(folder: Path, output: str, env: dict[str, str]) -> None:
        import yaml

        trained = []
        for record in sorted((folder / "runs").glob("*/experiment.yaml")):
            config = yaml.safe_load(record.read_text(encoding="utf-8"))
            if str(config["optimizer"]["lr"]) == lr:
                trained.append(record.parent.name)
        assert len(trained) == 1, f"no run trained with lr {lr}:\n{output[-2000:]}"
        assert _status_json(folder, trained[0])["status"] == "completed"
        assert "do not take effect" not in output, output[-2000:]

    return check


def _check_sweep_statuses(expected: str) -> Callable[[Path, str, dict[str, str]], None]:
    def check(folder: Path, output: str, env: dict[str, str]) -> None:
        names = sorted(
            p.parent.name for p in (folder / "experiments" / "grid").glob("*/config.yaml")
        )
        assert len(names) == 4, names
        for name in names:
            assert _status_json(folder, name)["status"] == expected, name

    return check


def _wait_for_slurm_jobs(experiments: str) -> Callable[[Path, str, dict[str, str]], None]:
    def check(folder: Path, output: str, env: dict[str, str]) -> None:
        from model_training_framework.slurm import SlurmCommands, SLURMJobMonitor

        records = sorted((folder / experiments).glob("*/submission.json"))
        job_ids = [json.loads(p.read_text())["job_id"] for p in records]
        assert len(job_ids) == 4, records
        SLURMJobMonitor(SlurmCommands(env=env)).wait_for_jobs(job_ids, timeout_s=400)
        for record in records:
            logs = sorted((record.parent / "logs").glob("slurm-*.err"))
            assert logs, f"no Slurm log in {record.parent / 'logs'}"
            status = _status_json(folder, record.parent.name)
            assert status["status"] == "completed", (status, logs[-1].read_text()[-2000:])

    return check


QUICKSTART_OVERRIDE = (
    "mtf train experiment.yaml --set optimizer.lr=0.01 --set experiment_name=lr_0.01"
)
PRODUCTION = "examples/production"
PRODUCTION_README = "examples/production/README.md"
SLURM_MD = "docs/slurm.md"
DISTRIBUTED_MD = "docs/distributed.md"
MAKE_DEMO_WHY = (
    "`make demo` first (re)builds .venv when pyproject.toml is newer than its stamp, which a fresh "
    "clone always is: the journey runs the same target with this test's environment as VENV and "
    "its stamp taken as up to date, so the Makefile's demo recipe itself runs"
)

JOURNEYS: dict[str, list[Step]] = {
    "readme_and_quickstart": [
        Step("mtf --help", ("docs/quickstart.md",), output=("demo", "train", "sweep")),
        Step(
            "make demo",
            ("README.md",),
            run_as="make demo VENV={venv} -o {venv}/.installed",
            why=MAKE_DEMO_WHY,
            files=("runs/demo/latest.ckpt", "runs/demo/metrics.jsonl"),
            output=("starting run in", "completed after 3 epochs", "mtf plot"),
        ),
        Step(
            "mtf demo",
            ("docs/quickstart.md",),
            output=("resuming run in", "completed after 3 epochs"),
        ),
        Step(
            "mtf plot runs/demo",
            ("docs/quickstart.md",),
            files=("runs/demo/plots/metrics.png",),
            check=_check_plot_has_lines("demo"),
        ),
        Step("mtf inspect runs/demo", ("docs/quickstart.md",), output=("step",)),
        Step(
            "mtf train experiment.yaml",
            ("docs/quickstart.md",),
            folder="quickstart",
            prepare=_write_doc_files("docs/quickstart.md"),
            files=("runs/my_first_experiment/latest.ckpt",),
            check=_check_completed("my_first_experiment", epoch=5),
        ),
        Step(
            QUICKSTART_OVERRIDE,
            ("docs/quickstart.md",),
            folder="quickstart",
            check=_check_trained_with_lr("0.01"),
        ),
        Step(
            "mtf plot runs/my_first_experiment",
            ("docs/quickstart.md",),
            folder="quickstart",
            files=("runs/my_first_experiment/plots/metrics.png",),
        ),
    ],
    "production_local_and_slurm": [
        Step(
            "mtf train experiment.yaml",
            (PRODUCTION_README,),
            folder=PRODUCTION,
            files=("runs/spirals/latest.ckpt", "runs/spirals/metrics.jsonl"),
            check=_check_completed("spirals", epoch=3),
        ),
        Step(
            "mtf train experiment.yaml",
            (PRODUCTION_README,),
            folder=PRODUCTION,
            output=("resumed from",),
            check=_check_completed("spirals", epoch=3),
        ),
        Step(
            "mtf train experiment.yaml --set training.max_epochs=5",
            (PRODUCTION_README,),
            folder=PRODUCTION,
            check=_check_completed("spirals", epoch=5),
        ),
        Step(
            "mtf plot runs/spirals",
            (PRODUCTION_README,),
            folder=PRODUCTION,
            files=("runs/spirals/plots/metrics.png",),
            check=_check_plot_has_lines("spirals"),
        ),
        Step("mtf inspect runs/spirals", (PRODUCTION_README,), folder=PRODUCTION),
        Step(
            "mtf sweep grid.yaml --dry-run",
            (PRODUCTION_README, SLURM_MD),
            folder=PRODUCTION,
            files=(
                "experiments/grid/manifest.yaml",
                "experiments/grid/spirals_hid-16_lr-0.01/config.yaml",
                "experiments/grid/spirals_hid-16_lr-0.01/job.sbatch.sh",
                "experiments/grid/spirals_hid-16_lr-0.01/code_version.json",
            ),
            output=("4 experiment(s):", "#SBATCH --signal=B:USR1@60", "#SBATCH --requeue"),
        ),
        Step(
            "mtf sweep grid.yaml --local --parallel 2",
            (PRODUCTION_README, SLURM_MD),
            folder=PRODUCTION,
            files=("experiments/grid/spirals_hid-16_lr-0.01/logs/local.out",),
            check=_check_sweep_statuses("completed"),
        ),
        Step(
            "mtf status experiments/grid",
            (PRODUCTION_README, SLURM_MD),
            folder=PRODUCTION,
            output=("spirals_hid-16_lr-0.01", "completed"),
        ),
        Step("mtf status runs", (SLURM_MD,), folder=PRODUCTION, output=("spirals",)),
        Step(
            "mtf resume spirals_hid-16_lr-0.01",
            (SLURM_MD,),
            folder=PRODUCTION,
            check=_check_completed("spirals_hid-16_lr-0.01"),
        ),
        Step(
            "mtf sweep grid.yaml --slurm",
            (PRODUCTION_README, SLURM_MD),
            folder=PRODUCTION,
            output=("4 experiment(s):", ": job "),
            check=_wait_for_slurm_jobs("experiments/grid"),
        ),
        Step(
            "mtf sweep grid.yaml --slurm --max-concurrent 8 --template my.sbatch.sh",
            (SLURM_MD,),
            folder=PRODUCTION,
            prepare=_copy_default_template("my.sbatch.sh"),  # "copy it and keep those parts"
            output=("4 experiment(s):",),
            check=_wait_for_slurm_jobs("experiments/grid"),
        ),
        # every job has finished: nothing to cancel (tests/cli/test_slurm_sweep_jobs.py cancels
        # running ones)
        Step(
            "mtf cancel experiments/grid spirals_hid-16_lr-0.01",
            (SLURM_MD,),
            folder=PRODUCTION,
            output=("no queued or running Slurm job",),
        ),
        Step(
            "mtf cancel experiments/grid",
            (SLURM_MD,),
            folder=PRODUCTION,
            output=("no queued or running Slurm job",),
        ),
    ],
    "distributed": [
        Step(
            "torchrun --standalone --nproc_per_node=2 -m model_training_framework.experiment.entry "
            "--config experiment.yaml",
            (DISTRIBUTED_MD,),
            folder=PRODUCTION,  # the doc's experiment.yaml: the runnable example's
            files=("runs/spirals/latest.ckpt",),
            output=("process group up: rank 0 of 2", "process group up: rank 1 of 2"),
            check=_check_completed("spirals", epoch=3),
        ),
    ],
}

# Commands that cannot run as written here, each with the reason.
ILLUSTRATIVE: dict[tuple[str, str], str] = {
    ("docs/distributed.md", "mtf consolidate runs/my_experiment/latest.ckpt model.pt"): (
        "needs the sharded checkpoint of an FSDP run; tests/trainer/test_checkpoint_dcp.py runs "
        "`mtf consolidate` on a sharded run directory and tests/ddp/test_fsdp_runs.py loads the "
        "consolidated file of a 2-process run into the plain model"
    ),
    ("README.md", "make test"): (
        "runs the whole suite, this module included (CI runs it); rebuilding .venv in a clone "
        "would take minutes"
    ),
    ("docs/quickstart.md", 'pip install -e ".[plot,data]"'): (
        "installs into the user's environment; the tests run in one made by `make setup` "
        "(extras `all`, a superset); test_quickstart_install_extras_exist checks the extras"
    ),
    (DISTRIBUTED_MD, "torchrun --standalone --nproc_per_node=2 train.py"): (
        "train.py stands for the reader's own script"
    ),
    (
        DISTRIBUTED_MD,
        "torchrun --nnodes=2 --nproc_per_node=4 --node_rank=$NODE_RANK --rdzv_backend=c10d "
        "--rdzv_endpoint=node0.example.org:29500 train.py",
    ): "needs two machines",
    (DISTRIBUTED_MD, "mtf sweep grid.yaml --dry-run"): (
        "shown for a grid whose experiments ask for 2 nodes x 4 GPUs (the doc's slurm section); "
        "the same command runs in the production journey, the srun launch line is checked by "
        "tests/slurm"
    ),
    (DISTRIBUTED_MD, "mtf sweep grid.yaml --slurm"): (
        "submits 2 nodes x 4 GPUs; the test Slurm is one CPU node (the production journey "
        "submits the same command for a one-task grid)"
    ),
}


def _covered() -> dict[tuple[str, str], str]:
    covered = {}
    for journey, steps in JOURNEYS.items():
        for step in steps:
            for doc in step.docs:
                covered[(doc, step.command)] = journey
    return covered


# ---------------------------------------------------------------- the cheap checks (default suite)
def test_shell_blocks_are_read_as_commands():
    text = (
        "```bash\nmtf train a.yaml   # trains\n# a comment\n\ntorchrun --a=1 \\\n"
        "         --b 'x # y' train.py\n```\n```python\nprint(1)\n```\n"
    )
    assert shell_commands(text) == ["mtf train a.yaml", "torchrun --a=1 --b 'x # y' train.py"]


def test_every_doc_command_is_run_by_a_journey_or_listed_as_illustrative():
    covered, found = _covered(), doc_commands()
    both = set(covered) & set(ILLUSTRATIVE)
    assert not both, f"listed both as run and as illustrative in {THIS_FILE}: {sorted(both)}"
    missing = [key for key in found if key not in covered and key not in ILLUSTRATIVE]
    assert not missing, "\n".join(
        [
            f"{len(missing)} shell command(s) of the docs are not run by any test. For each, "
            f"add a Step(command, (doc,), folder=..., files=..., output=...) to a journey in "
            f"JOURNEYS of {THIS_FILE} (the folder the doc says to run it from; what the doc "
            "promises), or, if it cannot run on a test machine, an ILLUSTRATIVE entry with the "
            "reason:"
        ]
        + [f"  {doc}: {command!r}" for doc, command in missing]
    )


def test_every_listed_command_is_still_in_its_doc():
    found = doc_commands()
    stale = [key for key in [*_covered(), *ILLUSTRATIVE] if key not in found]
    assert not stale, "\n".join(
        [
            f"{THIS_FILE} lists command(s) that their doc no longer shows (changed or removed). "
            "Update the Step or ILLUSTRATIVE entry to the doc's new text, or remove it:"
        ]
        + [f"  {doc}: {command!r}" for doc, command in stale]
    )


def test_quickstart_install_extras_exist():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert {"plot", "data"} <= set(extras), sorted(extras)


# ---------------------------------------------------------------- running a journey
@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A `git clone` of this repository's committed HEAD, as a new user gets it."""
    target = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(target)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (target / ".gitignore").is_file()
    return target


def _environment(clone: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, **(extra or {})}
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(clone / "src"), env.get("PYTHONPATH", "")) if p
    )
    env.pop("MTF_CODE_VERSION_FILE", None)
    return env


def _run_step(step: Step, clone: Path, env: dict[str, str]) -> None:
    for doc in step.docs:
        assert step.command in shell_commands((clone / doc).read_text(encoding="utf-8")), (
            f"{doc} of the clone does not show {step.command!r} (commit your doc edits)"
        )
    folder = clone / step.folder
    folder.mkdir(parents=True, exist_ok=True)
    if step.prepare is not None:
        step.prepare(clone, folder)
    venv = str(Path(sys.executable).parents[1])
    command = step.run_as.format(venv=venv) if step.run_as else step.command
    completed = subprocess.run(
        ["bash", "-c", command],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=_COMMAND_TIMEOUT_S,
    )
    output = completed.stdout + completed.stderr
    where = f"`{step.command}` (from {', '.join(step.docs)}, run in {step.folder})"
    assert completed.returncode == step.returncode, (
        f"{where} exited {completed.returncode}, the doc promises {step.returncode}:\n"
        f"{output[-4000:]}"
    )
    for name in step.files:
        assert (folder / name).exists(), f"{where} did not write {name}:\n{output[-2000:]}"
    for text in step.output:
        assert text in output, f"{where} did not print {text!r}:\n{output[-3000:]}"
    if step.check is not None:
        step.check(folder, output, env)


def _run_journey(name: str, clone: Path, env: dict[str, str]) -> None:
    imported = subprocess.run(
        [sys.executable, "-c", "import model_training_framework as m; print(m.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.startswith(str(clone)), imported.stdout
    for step in JOURNEYS[name]:
        _run_step(step, clone, env)


@pytest.mark.slow
def test_readme_and_quickstart_journey(clone):
    _run_journey("readme_and_quickstart", clone, _environment(clone))


@pytest.mark.slow
@pytest.mark.ddp
def test_distributed_journey(clone):
    _run_journey("distributed", clone, _environment(clone, {"OMP_NUM_THREADS": "1"}))


@pytest.mark.slow
@pytest.mark.slurm
def test_production_example_local_and_slurm_journey(clone, slurm_cluster):
    _run_journey("production_local_and_slurm", clone, _environment(clone, slurm_cluster.env))


PREEMPTION_COMMAND = "mtf train experiment.yaml --set training.max_epochs=50"


def _start_and_preempt(folder: Path, env: dict[str, str], *, after: str) -> tuple[int, str]:
    """Start the README's preemption command, send SIGUSR1 once ``after`` was printed."""
    process = subprocess.Popen(
        ["bash", "-c", f"exec {PREEMPTION_COMMAND}"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if after in line:
                process.send_signal(signal.SIGUSR1)  # `kill -USR1 <pid>` from another shell
                break
        lines.extend(process.stdout)
        return process.wait(timeout=_COMMAND_TIMEOUT_S), "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_production_readme_preemption_walkthrough(clone):
    """examples/production/README.md, "Try it locally": SIGUSR1 checkpoints and exits with
    code 3; the same command again continues from that step."""
    readme = (clone / PRODUCTION_README).read_text(encoding="utf-8")
    assert f"`{PREEMPTION_COMMAND}`" in readme and "`kill -USR1 <pid>`" in readme
    folder, env = clone / PRODUCTION, _environment(clone)

    code, output = _start_and_preempt(folder, env, after="saved checkpoint")
    assert code == 3, output[-3000:]
    stopped_at = _status_json(folder, "spirals")
    assert stopped_at["status"] == "preempted", stopped_at

    code, output = _start_and_preempt(folder, env, after="saved checkpoint")
    assert code == 3, output[-3000:]
    assert f"step {stopped_at['global_step']}" in output.split("saved checkpoint")[0], output[
        -3000:
    ]
    assert "resumed from" in output, output[-3000:]
    assert _status_json(folder, "spirals")["global_step"] > stopped_at["global_step"]
