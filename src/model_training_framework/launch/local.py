"""LocalLauncher: the SLURMLauncher interface for machines without Slurm.

Experiments run as local processes, at most ``max_concurrent`` at a time, each with the same
experiment directory as under Slurm (``config.yaml``, ``code_version.json``, ``logs/``); the
shared flow is :class:`~model_training_framework.launch.base.Launcher`'s. The command is the
same (``PYTHON SCRIPT_PATH --config CONFIG_PATH``) and runs in ``project_root`` on the live tree
(the commit and dirty flag are still recorded). Output is appended to ``logs/local.out`` and
``logs/local.err``. Calls block until their processes have finished.

The launchers otherwise run every external program through ``process_utils.run_command``, so
that timeouts, output capture and error messages are handled in one place. This launcher is the
one exception: ``run_command`` runs a command to completion and captures its output, whereas
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

from model_training_framework.experiment.exit_codes import EXIT_INTERRUPTED, EXIT_PREEMPTED
from model_training_framework.launch.base import (
    DEFAULT_COMMAND,
    BatchSubmissionResult,
    ExperimentSubmission,
    Launcher,
    PreparedExperiment,
)
from model_training_framework.trainer.state.code_version import CODE_VERSION_FILE_ENV

__all__ = ["LocalLauncher"]

logger = logging.getLogger(__name__)

_POLL_INTERVAL_S = 0.05


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    result: ExperimentSubmission
    logs: tuple[IO[bytes], IO[bytes]]


class LocalLauncher(Launcher):
    """Run experiments as local subprocesses, N at a time.

    Args:
        project_root: working directory of the processes; its commit is recorded.
        experiments_dir: parent of the experiment directories (default
            ``<project_root>/experiments``).
        python: interpreter (default ``sys.executable``).
        command: see :class:`~model_training_framework.launch.base.Launcher`.
        env: extra environment variables for the processes.
        max_concurrent: default number of processes at once.

    ``submit_experiment_batch`` blocks until every process has ended; ``job_ids`` are
    ``local-<pid>``, and an experiment whose process exits non-zero is in ``failed`` with its
    exit code.

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
        super().__init__(project_root, experiments_dir, python=python, command=command)
        self.env = dict(env or {})
        self.max_concurrent = _check_max_concurrent(max_concurrent)

    def _launch(
        self,
        prepared: list[PreparedExperiment],
        outcome: BatchSubmissionResult,
        max_concurrent: int | None,
        dry_run: bool,
    ) -> None:
        if dry_run:
            return
        limit = self.max_concurrent if max_concurrent is None else max_concurrent
        self._run_all(list(zip(outcome.results, prepared, strict=True)), limit)

    def _start(self, result: ExperimentSubmission, item: PreparedExperiment) -> _Running:
        paths = item.paths
        env = {
            **os.environ,
            **self.env,
            "MTF_EXPERIMENT_NAME": result.experiment_name,
            "MTF_EXPERIMENT_DIR": str(paths.experiment_dir),
            CODE_VERSION_FILE_ENV: str(paths.code_version_path),
        }
        out = (paths.log_dir / "local.out").open("ab")
        err = (paths.log_dir / "local.err").open("ab")
        try:
            process = subprocess.Popen(
                list(item.command), cwd=self.project_root, env=env, stdout=out, stderr=err
            )
        except BaseException:  # e.g. the interpreter is missing: do not leak the log handles
            out.close()
            err.close()
            raise
        result.job_id = f"local-{process.pid}"
        logger.info("started %s as %s", result.experiment_name, result.job_id)
        return _Running(process, result, (out, err))

    def _run_all(
        self, queue: list[tuple[ExperimentSubmission, PreparedExperiment]], limit: int
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
    name, logs = item.result.experiment_name, item.result.experiment_dir / "logs"
    if code == 0:
        logger.info("%s: completed", name)
        return
    item.result.error = f"process exited with status {code}; see {logs}"
    stopped = _CHECKPOINTED_STOPS.get(code)
    if stopped is None:
        logger.error("%s failed: %s", name, item.result.error)
    else:  # the run saved a checkpoint and stopped: nothing is lost, a rerun continues it
        logger.warning(
            "%s: %s after a checkpoint (exit %d); run the sweep again to continue it",
            name,
            stopped,
            code,
        )


# exit codes of the experiment runner for a run that checkpointed before it stopped
_CHECKPOINTED_STOPS = {EXIT_PREEMPTED: "preempted", EXIT_INTERRUPTED: "interrupted"}


def _check_max_concurrent(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_concurrent must be a positive int, got {value!r}")
    return value
