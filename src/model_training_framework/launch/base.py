"""Launcher: the submit flow that :class:`LocalLauncher` and :class:`SLURMLauncher` share.

``submit_experiment_batch(experiments, script_path, max_concurrent, dry_run)`` runs, for both:

1. check everything before any file is written (:meth:`Launcher.check_batch`): the experiments
   (unique names usable as directories, known ``slurm`` keys, no other run in their run
   directories), ``max_concurrent``, that a training script is given when the command needs
   one, and each job file rendered once against the live project (so a bad sbatch template
   fails here, before the code copy of step 2);
2. record the code version (a launcher that runs jobs from a copy also copies the code);
3. build each experiment's command (``{PYTHON} {SCRIPT_PATH} --config {CONFIG_PATH}`` by default)
   and the launcher's job file, if any (the Slurm launcher renders its sbatch script here);
4. write each experiment directory: ``config.yaml``, ``logs/``, ``code_version.json`` and the
   job file;
5. start the jobs (not on a dry run): a subclass's :meth:`Launcher._launch`.

A subclass says how jobs start (:meth:`Launcher._launch`), whether the code is copied
(:meth:`Launcher._copies_code`) and, optionally, what job file it writes
(:meth:`Launcher._job_file`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from model_training_framework.launch.experiments import (
    ExperimentPaths,
    ExperimentSpec,
    prepare_experiment_dirs,
    refuse_foreign_runs,
    run_roots_inside,
    to_experiment_specs,
    with_run_roots_under,
)
from model_training_framework.launch.snapshot import CodeVersion, take_snapshot, write_code_version

__all__ = [
    "CLI_TRAIN_COMMAND",
    "DEFAULT_COMMAND",
    "SNAPSHOTS_DIRNAME",
    "BatchSubmissionResult",
    "ExperimentSubmission",
    "Launcher",
    "PreparedExperiment",
]

DEFAULT_COMMAND = ("{PYTHON}", "{SCRIPT_PATH}", "--config", "{CONFIG_PATH}")
CLI_TRAIN_COMMAND = (
    "{PYTHON}",
    "-m",
    "model_training_framework.cli.main",
    "train",
    "{CONFIG_PATH}",
)
SNAPSHOTS_DIRNAME = ".mtf_code"


@dataclass
class ExperimentSubmission:
    """Outcome for one experiment.

    Attributes:
        experiment_name: the experiment's name (= its directory and run directory name).
        experiment_dir: ``<experiments_dir>/<name>``.
        script_path: the rendered sbatch script (local launcher: the experiment's config).
        job_id: ``"123"`` or ``"123_4"`` (array task); local launcher: ``"local-<pid>"``; None
            when not submitted (dry run or failure).
        error: why submission (or, locally, the run) failed; None on success.
        exit_code: local runs only: the process exit status.
        launch: how the job script starts the command: ``"exec"`` (one task in total) or
            ``"srun"`` (more); None for the local runner.
    """

    experiment_name: str
    experiment_dir: Path
    script_path: Path
    job_id: str | None = None
    error: str | None = None
    exit_code: int | None = None
    launch: str | None = None

    @property
    def is_success(self) -> bool:
        """True when submitted (dry run: prepared) without error."""
        return self.error is None


@dataclass
class BatchSubmissionResult:
    """Outcome of a batch, one :class:`ExperimentSubmission` per experiment, in input order."""

    results: list[ExperimentSubmission]
    array_job_ids: list[str] = field(default_factory=list)
    is_dry_run: bool = False

    @property
    def success_count(self) -> int:
        """Number of experiments submitted (or run, locally) without error."""
        return sum(result.is_success for result in self.results)

    @property
    def failed(self) -> list[ExperimentSubmission]:
        """Experiments that failed, with their ``error``."""
        return [result for result in self.results if not result.is_success]

    @property
    def job_ids(self) -> list[str]:
        """Job ids of the submitted experiments, in input order."""
        return [result.job_id for result in self.results if result.job_id is not None]


@dataclass(frozen=True)
class PreparedExperiment:
    """One experiment ready to start: its spec, directory, command and job file text."""

    spec: ExperimentSpec
    paths: ExperimentPaths
    command: tuple[str, ...]
    job_file: str | None = None


class Launcher:
    """Base of the launchers: experiments -> experiment directories -> jobs.

    Args:
        project_root: the user's project; its code version is recorded for every experiment.
        experiments_dir: parent of the experiment directories (default
            ``<project_root>/experiments``).
        python: interpreter of the jobs (``{PYTHON}``); default ``sys.executable``.
        command: the job's command, one item per argument, with ``{PYTHON}``, ``{SCRIPT_PATH}``,
            ``{CONFIG_PATH}``, ``{EXPERIMENT_DIR}`` and ``{EXPERIMENT_NAME}`` filled in.
    """

    def __init__(
        self,
        project_root: str | Path = ".",
        experiments_dir: str | Path | None = None,
        *,
        python: str = sys.executable,
        command: Sequence[str] = DEFAULT_COMMAND,
    ) -> None:
        self.project_root = Path(project_root).resolve()
        self.experiments_dir = (
            Path(experiments_dir).resolve()
            if experiments_dir is not None
            else self.project_root / "experiments"
        )
        self.python = python
        self.command = tuple(command)

    # ------------------------------------------------------------------ public API
    def submit_single_experiment(
        self, experiment: object, script_path: str | Path | None, dry_run: bool = False
    ) -> ExperimentSubmission:
        """Prepare and start one experiment (see :meth:`submit_experiment_batch`)."""
        return self.submit_experiment_batch([experiment], script_path, None, dry_run).results[0]

    def submit_experiment_batch(
        self,
        experiments: Sequence[object],
        script_path: str | Path | None,
        max_concurrent: int | None = None,
        dry_run: bool = False,
    ) -> BatchSubmissionResult:
        """Prepare every experiment directory, then start the experiments (the module's flow).

        Args:
            experiments: ``ExperimentConfig`` objects (or objects with ``experiment_name``,
                ``slurm`` and ``to_yaml(path)``) or dicts with ``experiment_name``; names must
                be unique.
            script_path: the Python training script (receives ``--config PATH``); None when
                the command does not use ``{SCRIPT_PATH}``.
            max_concurrent: at most this many experiments run at once (None: the launcher's
                default).
            dry_run: write the experiment directories (and job files) but start nothing.

        Returns:
            A :class:`BatchSubmissionResult`, one entry per experiment in input order.

        Raises:
            ValueError: empty batch, bad ``max_concurrent``, invalid or duplicate names, or no
                ``script_path`` for a command that needs one (before any file is written).
        """
        if max_concurrent is not None and (
            isinstance(max_concurrent, bool)
            or not isinstance(max_concurrent, int)
            or max_concurrent < 1
        ):
            raise ValueError(
                f"max_concurrent must be a positive int or None, got {max_concurrent!r}"
            )
        prepared = self._prepare(experiments, script_path, dry_run)
        outcome = BatchSubmissionResult(
            [self._submission(item) for item in prepared], is_dry_run=dry_run
        )
        self._launch(prepared, outcome, max_concurrent, dry_run)
        return outcome

    def check_batch(self, experiments: Sequence[object], script_path: str | Path | None) -> None:
        """Run every check of :meth:`submit_experiment_batch` that precedes its first write.

        Each job file is rendered against the live project (the code copy does not exist
        yet), so a template that fails to render fails here. Nothing is written.

        Raises:
            ValueError, TypeError, ConfigError: as :meth:`submit_experiment_batch`.
            TemplateError: the sbatch template cannot be rendered for an experiment.
        """
        self._checked_specs(experiments, script_path)

    # ------------------------------------------------------------------ the shared steps
    def _checked_specs(
        self, experiments: Sequence[object], script_path: str | Path | None
    ) -> list[ExperimentSpec]:
        specs = to_experiment_specs(experiments)  # validates names and slurm sections, no writes
        specs = with_run_roots_under(specs, self.project_root)
        refuse_foreign_runs(specs, self.experiments_dir)
        if script_path is None and self._uses_script_path():
            raise ValueError(
                "script_path is None but the job runs the training script ({SCRIPT_PATH} in the "
                "command, or SCRIPT_PATH in the sbatch template); pass the training script path"
            )
        live = CodeVersion(str(self.project_root), str(self.project_root), None, "", None, None, "")
        job_script = self._job_script_path(script_path, live)
        for spec in specs:
            self._prepared(spec, live, job_script)
        return specs

    def _prepare(
        self, experiments: Sequence[object], script_path: str | Path | None, dry_run: bool
    ) -> list[PreparedExperiment]:
        specs = self._checked_specs(experiments, script_path)
        code = take_snapshot(
            self.project_root,
            self.experiments_dir / SNAPSHOTS_DIRNAME,
            exclude=[self.experiments_dir, *run_roots_inside(specs, self.project_root)],
            copy_code=self._copies_code(dry_run),
        )
        job_script = self._job_script_path(script_path, code)
        prepared = [self._prepared(spec, code, job_script) for spec in specs]
        prepare_experiment_dirs(specs, [item.paths for item in prepared])
        for item in prepared:
            write_code_version(item.paths.experiment_dir, code)
            if item.job_file is not None:
                item.paths.script_path.write_text(item.job_file, encoding="utf-8")
                item.paths.script_path.chmod(0o755)
        return prepared

    def _prepared(
        self, spec: ExperimentSpec, code: CodeVersion, job_script: str
    ) -> PreparedExperiment:
        """The experiment's paths, command and rendered job file (nothing written)."""
        paths = ExperimentPaths.under(self.experiments_dir, spec.name)
        item = PreparedExperiment(spec, paths, self._command(spec, paths, job_script))
        return replace(item, job_file=self._job_file(item, code, job_script))

    def _job_script_path(self, script_path: str | Path | None, code: CodeVersion) -> str:
        """The training script as the job sees it: inside the code copy when it has one."""
        if script_path is None:
            return ""
        script = Path(script_path).resolve()
        try:
            return str(Path(code.code_dir) / script.relative_to(self.project_root))
        except ValueError:
            return str(script)  # outside the project: used as is, not copied

    def _command(
        self, spec: ExperimentSpec, paths: ExperimentPaths, job_script: str
    ) -> tuple[str, ...]:
        words = {
            "PYTHON": self.python,
            "SCRIPT_PATH": job_script,
            "CONFIG_PATH": str(paths.config_path),
            "EXPERIMENT_DIR": str(paths.experiment_dir),
            "EXPERIMENT_NAME": spec.name,
        }
        return tuple(word.format_map(words) for word in self.command)

    # ------------------------------------------------------------------ what subclasses say
    def _uses_script_path(self) -> bool:
        """Whether the job needs the training script (``{SCRIPT_PATH}``)."""
        return any("{SCRIPT_PATH}" in word for word in self.command)

    def _copies_code(self, dry_run: bool) -> bool:
        """Whether jobs run from a copy of the code (taken under ``.mtf_code/``)."""
        return False

    def _job_file(self, item: PreparedExperiment, code: CodeVersion, job_script: str) -> str | None:
        """Text of the experiment's job file (``paths.script_path``), or None for none."""
        return None

    def _submission(self, item: PreparedExperiment) -> ExperimentSubmission:
        """The (not yet started) outcome of one prepared experiment."""
        return ExperimentSubmission(
            item.spec.name, item.paths.experiment_dir, item.paths.config_path
        )

    def _launch(
        self,
        prepared: list[PreparedExperiment],
        outcome: BatchSubmissionResult,
        max_concurrent: int | None,
        dry_run: bool,
    ) -> None:
        """Start the prepared experiments, filling in ``outcome`` (job ids, errors)."""
        raise NotImplementedError(f"{type(self).__name__} must define _launch")
