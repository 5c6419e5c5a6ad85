"""LocalLauncher: the SLURMLauncher interface for machines without Slurm.

Experiments run as local processes, at most ``max_concurrent`` at a time, each with the same
experiment directory as under Slurm (``config.yaml``, ``code_version.json``, ``logs/``). The
command is the same (``PYTHON SCRIPT_PATH --config CONFIG_PATH``) and runs in ``project_root``
on the live tree (the commit and dirty flag are still recorded). Output is appended to
``logs/local.out`` and ``logs/local.err``. Calls block until their processes have finished.

The launchers otherwise start every subprocess through launch/slurm/commands.py, so that
timeouts, output capture and error messages are handled in one place. This launcher is the one
exception: ``run_command`` runs a command to completion and captures its output, whereas
this launcher must start several long-lived processes, stream their output into log files and
poll them, which needs ``subprocess.Popen`` directly.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from model_training_framework.launch.slurm.experiments import (
    ExperimentPaths,
    ExperimentSpec,
    prepare_experiment_dirs,
    to_experiment_specs,
)
from model_training_framework.launch.slurm.launcher import (
    DEFAULT_COMMAND,
    BatchSubmissionResult,
    ExperimentSubmission,
)
from model_training_framework.launch.slurm.snapshot import (
    CODE_VERSION_ENV,
    take_snapshot,
    write_code_version,
)

__all__ = ["LocalLauncher"]

logger = logging.getLogger(__name__)

_POLL_INTERVAL_S = 0.05


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    result: ExperimentSubmission
    logs: tuple[IO[bytes], IO[bytes]]


class LocalLauncher:
    """Run experiments as local subprocesses, N at a time.

    Args:
        project_root: working directory of the processes; its commit is recorded.
        experiments_dir: parent of the experiment directories (default
            ``<project_root>/experiments``).
        python: interpreter (default ``sys.executable``).
        command: see :class:`~model_training_framework.slurm.SLURMLauncher`.
        env: extra environment variables for the processes.
        max_concurrent: default number of processes at once.

    Example:
        >>> result = LocalLauncher(".").submit_experiment_batch(configs, "train.py", 2)  # doctest: +SKIP
        >>> result.success_count                                                       # doctest: +SKIP
    """

    def __init__(
        self,
        project_root: str | Path = ".",
        experiments_dir: str | Path | None = None,
        *,
        python: str = sys.executable,
        command: Sequence[str] = DEFAULT_COMMAND,
        env: Mapping[str, str] | None = None,
        max_concurrent: int = 1,
    ) -> None:
        self.project_root = Path(project_root).resolve()
        self.experiments_dir = (
            Path(experiments_dir).resolve()
            if experiments_dir is not None
            else self.project_root / "experiments"
        )
        self.python = python
        self.command = tuple(command)
        self.env = dict(env or {})
        self.max_concurrent = _check_max_concurrent(max_concurrent)

    def submit_single_experiment(
        self, experiment: object, script_path: str | Path | None, dry_run: bool = False
    ) -> ExperimentSubmission:
        """Prepare one experiment and run it to completion (see :meth:`submit_experiment_batch`)."""
        return self.submit_experiment_batch([experiment], script_path, 1, dry_run).results[0]

    def submit_experiment_batch(
        self,
        experiments: Sequence[object],
        script_path: str | Path | None,
        max_concurrent: int | None = None,
        dry_run: bool = False,
    ) -> BatchSubmissionResult:
        """Prepare every experiment directory, then run the experiments N at a time.

        Args:
            experiments: ExperimentConfig objects or dicts with ``experiment_name``.
            script_path: the Python training script (receives ``--config PATH``).
            max_concurrent: processes at once (default: the constructor's value).
            dry_run: prepare directories only.

        Returns:
            A :class:`BatchSubmissionResult`; ``job_ids`` are ``local-<pid>``; an experiment whose
            process exits non-zero is in ``failed`` with its exit code.

        Raises:
            ValueError: invalid experiments or ``max_concurrent``.
        """
        limit = _check_max_concurrent(
            self.max_concurrent if max_concurrent is None else max_concurrent
        )
        specs = to_experiment_specs(experiments)
        paths = [ExperimentPaths.under(self.experiments_dir, spec.name) for spec in specs]
        commands = [
            self._command(spec, path, script_path) for spec, path in zip(specs, paths, strict=True)
        ]
        code = take_snapshot(
            self.project_root, self.experiments_dir, copy_code=False, exclude=[self.experiments_dir]
        )
        prepare_experiment_dirs(specs, paths)
        results = []
        for path, spec in zip(paths, specs, strict=True):
            write_code_version(path.experiment_dir, code)
            results.append(ExperimentSubmission(spec.name, path.experiment_dir, path.config_path))
        if not dry_run:
            self._run_all(list(zip(results, paths, commands, strict=True)), limit)
        return BatchSubmissionResult(results, is_dry_run=dry_run)

    def _command(
        self, spec: ExperimentSpec, paths: ExperimentPaths, script_path: str | Path | None
    ) -> list[str]:
        if script_path is None and any("{SCRIPT_PATH}" in word for word in self.command):
            raise ValueError(
                "script_path is None but the command uses {SCRIPT_PATH}; pass the training script path"
            )
        words = {
            "PYTHON": self.python,
            "SCRIPT_PATH": str(Path(script_path).resolve()) if script_path is not None else "",
            "CONFIG_PATH": str(paths.config_path),
            "EXPERIMENT_DIR": str(paths.experiment_dir),
            "EXPERIMENT_NAME": spec.name,
        }
        return [word.format_map(words) for word in self.command]

    def _start(
        self, result: ExperimentSubmission, paths: ExperimentPaths, command: list[str]
    ) -> _Running:
        env = {
            **os.environ,
            **self.env,
            "MTF_EXPERIMENT_NAME": result.experiment_name,
            "MTF_EXPERIMENT_DIR": str(paths.experiment_dir),
            CODE_VERSION_ENV: str(paths.code_version_path),
        }
        out = (paths.log_dir / "local.out").open("ab")
        err = (paths.log_dir / "local.err").open("ab")
        try:
            process = subprocess.Popen(
                command, cwd=self.project_root, env=env, stdout=out, stderr=err
            )
        except BaseException:  # e.g. the interpreter is missing: do not leak the log handles
            out.close()
            err.close()
            raise
        result.job_id = f"local-{process.pid}"
        logger.info("started %s as %s", result.experiment_name, result.job_id)
        return _Running(process, result, (out, err))

    def _run_all(
        self, queue: list[tuple[ExperimentSubmission, ExperimentPaths, list[str]]], limit: int
    ) -> None:
        running: list[_Running] = []
        try:
            while queue or running:
                while queue and len(running) < limit:
                    running.append(self._start(*queue.pop(0)))
                still_running = []
                for item in running:
                    if item.process.poll() is None:
                        still_running.append(item)
                    else:
                        _finish(item)
                if len(still_running) == len(running):
                    time.sleep(_POLL_INTERVAL_S)
                running = still_running
        finally:
            for item in running:  # interrupted (e.g. Ctrl-C): do not leave orphans behind
                item.process.terminate()
                item.process.wait()
                _finish(item)


def _finish(item: _Running) -> None:
    for log in item.logs:
        log.close()
    code = item.process.returncode
    item.result.exit_code = code
    if code != 0:
        item.result.error = (
            f"process exited with status {code}; see {item.result.experiment_dir / 'logs'}"
        )
        logger.error("%s failed: %s", item.result.experiment_name, item.result.error)


def _check_max_concurrent(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_concurrent must be a positive int, got {value!r}")
    return value
