"""When a run saves a checkpoint and how: triggers, the write (in the background with
``async_save``), the latest pointer, rotation and best; loading; the manager's own state.

The run directory's layout, and finding, choosing and rotating its checkpoints, are
:class:`~.run_files.RunCheckpoints`'s (``state/run_files.py``).

# NOTE [save order]: one save is: write the new file atomically (temp file in the run
# directory, fsync, rename, fsync the directory), then repoint ``latest.ckpt`` atomically
# (a temporary symlink renamed over it), then delete the oldest periodic files beyond
# ``max_checkpoints`` (never the file ``latest.ckpt`` names), then link ``best.ckpt``. A crash
# at any point leaves every earlier checkpoint intact and ``latest.ckpt`` naming a complete
# file; temporary files of an interrupted write are removed when the next manager starts.

Example:
    >>> manager = CheckpointManager(config.checkpoint, run_dir)          # doctest: +SKIP
    >>> if manager.should_save(step=step, epoch_end=False, epoch=epoch):  # doctest: +SKIP
    ...     manager.save(payload, epoch=epoch, step=step, metrics=metrics)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from model_training_framework.errors import CheckpointError
from model_training_framework.io_utils import (
    atomic_symlink,
    fsync_directory,
    remove_stale_temp_files,
)
from model_training_framework.trainer.state.best_metric import BestMetric
from model_training_framework.trainer.state.checks import describe_save_error
from model_training_framework.trainer.state.code_version import get_code_version
from model_training_framework.trainer.state.file_format import (
    FORMAT_VERSION,
    MANAGER_KEY,
    make_file_content,
)
from model_training_framework.trainer.state.file_names import (
    BEST_NAME,
    LATEST_NAME,
    FilenamePattern,
)
from model_training_framework.trainer.state.format import CheckpointFormat, SingleFileFormat
from model_training_framework.trainer.state.inspect import describe_checkpoint
from model_training_framework.trainer.state.run_files import RunCheckpoints

__all__ = [
    "BEST_NAME",
    "FORMAT_VERSION",
    "LATEST_NAME",
    "CheckpointManager",
    "describe_checkpoint",
]

logger = logging.getLogger(__name__)


class _CheckpointSettings(Protocol):
    """The CheckpointConfig fields the manager reads (see docs/design-config-fields.md)."""

    save_every_n_steps: int | None
    save_every_n_epochs: int | None
    save_every_n_minutes: float | None
    max_checkpoints: int
    filename_template: str
    monitor_metric: str | None
    monitor_mode: Any  # "min" | "max" (or an Enum whose value is one of these)
    async_save: bool


class CheckpointManager:
    """Owns the checkpoint files of one run directory (see the module docstring).

    Args:
        config: The ``checkpoint`` section (``CheckpointConfig``).
        run_dir: ``<root_dir>/<experiment_name>``; created on the first save.
        is_rank_zero: Only rank 0 writes metadata and pointers; other ranks take part in
            :meth:`save` only when the format is collective (sharded checkpoints).
        code_version: Recorded in every file; default: :func:`get_code_version` of
            ``code_directory`` on first save.
        code_directory: Where the code being run lives (a directory, or several tried in
            order); default: the running script's directory, else the working directory.
        clock: Seconds from a monotonic clock, for ``save_every_n_minutes`` (injectable).
        checkpoint_format: How one checkpoint is stored; default :class:`SingleFileFormat`
            (the sharding strategy chooses it).

    Raises:
        ValueError: ``config.filename_template`` is not a usable template.
    """

    def __init__(
        self,
        config: _CheckpointSettings,
        run_dir: str | Path,
        *,
        is_rank_zero: bool = True,
        code_version: Mapping[str, Any] | None = None,
        code_directory: str | Path | Sequence[str | Path] | None = None,
        clock: Callable[[], float] = time.monotonic,
        checkpoint_format: CheckpointFormat | None = None,
    ) -> None:
        self._config = config
        self.run_dir = Path(run_dir)
        self._is_rank_zero = is_rank_zero
        self._pattern = FilenamePattern(config.filename_template)
        self._code_version = dict(code_version) if code_version is not None else None
        self._code_directory = code_directory
        self._clock = clock
        self._last_save_s = clock()
        self._best = BestMetric(config.monitor_metric, config.monitor_mode)
        self._thread: threading.Thread | None = None
        self._thread_target: Path | None = None
        self._thread_error: BaseException | None = None
        self._files = RunCheckpoints(
            self.run_dir, self._pattern, checkpoint_format or SingleFileFormat()
        )
        self._best_before_save: float | None = None  # restored if a save fails
        if is_rank_zero:
            remove_stale_temp_files(self.run_dir)

    @property
    def checkpoint_format(self) -> CheckpointFormat:
        """How one checkpoint is stored (a file, or a sharded directory)."""
        return self._files.checkpoint_format

    # ------------------------------------------------------------------ triggers
    def should_save(
        self, *, step: int, epoch_end: bool, epoch: int, now_s: float | None = None
    ) -> bool:
        """Tell whether a periodic checkpoint is due.

        Call it at every optimizer-step boundary with ``epoch_end=False`` and once after each
        epoch with ``epoch_end=True``. Under DDP, broadcast rank 0's answer: wall clocks differ.

        Args:
            step: Optimizer steps taken so far (global step).
            epoch_end: True for the call after an epoch finished.
            epoch: 0-based index of the current epoch (the one that just ended if
                ``epoch_end``).
            now_s: Current time of the manager's clock; default: ``clock()``.

        Returns:
            True when ``save_every_n_steps`` divides ``step`` (step boundaries only),
            ``save_every_n_epochs`` divides ``epoch + 1`` (epoch ends only), or
            ``save_every_n_minutes`` have passed since the last save (or since this manager
            started or resumed).
        """
        cfg = self._config
        if epoch_end:
            if cfg.save_every_n_epochs and (epoch + 1) % cfg.save_every_n_epochs == 0:
                return True
        elif cfg.save_every_n_steps and step > 0 and step % cfg.save_every_n_steps == 0:
            return True
        if cfg.save_every_n_minutes:
            now = self._clock() if now_s is None else now_s
            return now - self._last_save_s >= cfg.save_every_n_minutes * 60.0
        return False

    # ------------------------------------------------------------------ saving
    def save(
        self,
        payload: Mapping[str, Any],
        *,
        epoch: int,
        step: int,
        metrics: Mapping[str, float] | None = None,
        now_s: float | None = None,
    ) -> Path | None:
        """Write a checkpoint (see NOTE [save order]); asynchronously if ``config.async_save``.

        With ``async_save`` the payload is copied to CPU memory before this returns, so the
        caller may keep changing its tensors; the write runs in one background thread. A
        save first waits for the previous one, and an error of a background write is raised
        by the next :meth:`save` or :meth:`wait`.

        Args:
            payload: Component states (tensors and plain Python values only).
            epoch: Epoch recorded in the file name and metadata.
            step: Global step recorded in the file name and metadata.
            metrics: Latest metrics; ``config.monitor_metric`` among them updates ``best.ckpt``.
            now_s: Time of this save on the manager's clock (restarts the minutes trigger).

        Returns:
            Path of the new file, or None on ranks other than 0.

        Raises:
            CheckpointError: The payload holds a type checkpoints do not store, or the previous
                background save failed, or (synchronous) the write failed.
            ValueError: The payload uses a reserved metadata key.
        """
        self._last_save_s = self._clock() if now_s is None else now_s
        fmt = self.checkpoint_format
        if not (self._is_rank_zero or fmt.is_collective):
            return None
        self.wait()
        path = self.run_dir / self._pattern.format(epoch=epoch, step=step)
        content, is_best = dict(payload), False
        if self._is_rank_zero:
            fmt.check_payload(payload)
            metrics = dict(metrics or {})
            self._best_before_save = self._best.value
            is_best = self._best.update(metrics)
            content = make_file_content(
                payload,
                epoch=epoch,
                global_step=step,
                metrics=metrics,
                code_version=self._get_code_version(),
                manager_state=self.state_dict(),
            )
            self._make_run_dir()
        asynchronous = self._config.async_save
        try:
            write = fmt.prepare_write(
                content, path, is_rank_zero=self._is_rank_zero, asynchronous=asynchronous
            )
            if asynchronous:
                self._start_background_write(write, path, is_best)
            else:
                self._write_and_publish(write, path, is_best)
        except BaseException as err:
            self._best.value = self._best_before_save
            if isinstance(err, (KeyboardInterrupt, CheckpointError)):
                raise  # a (second) Ctrl-C stops at once; the temporary file is already gone
            raise self._save_failed(path, err) from err
        return path if self._is_rank_zero else None

    def wait(self) -> None:
        """Block until the in-flight asynchronous save is done.

        Raises:
            CheckpointError: The background write failed (chained to the original error).
        """
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        error, self._thread_error = self._thread_error, None
        if error is not None:
            self._best.value = self._best_before_save
            raise self._save_failed(self._thread_target, error) from error

    # ------------------------------------------------------------------ finding files
    def latest_path(self) -> Path | None:
        """Return the file ``latest.ckpt`` names, or None when there is none or it is missing
        (see :meth:`RunCheckpoints.latest_path`)."""
        return self._files.latest_path()

    def best_path(self) -> Path | None:
        """Return ``<run_dir>/best.ckpt`` if it exists, else None."""
        return self._files.best_path()

    def checkpoint_paths(self) -> list[Path]:
        """Return the periodic checkpoints that exist, oldest (lowest step) first."""
        return self._files.checkpoint_paths()

    # ------------------------------------------------------------------ loading
    def load(
        self, path: str | Path, *, map_location: Any = "cpu", weights_only: bool = True
    ) -> dict[str, Any]:
        """Load one checkpoint file (waits for an in-flight save first).

        Args:
            path: The file.
            map_location: Passed to ``torch.load``.
            weights_only: See :func:`read_checkpoint`.

        Returns:
            Metadata keys plus the payload; :meth:`restore` takes this manager's own state
            from it.

        Raises:
            CheckpointError: Missing, truncated, corrupt, foreign or other format version.
        """
        self.wait()
        return self.checkpoint_format.read(
            Path(path), map_location=map_location, weights_only=weights_only
        )

    def load_latest_valid(self, *, map_location: Any = "cpu") -> tuple[Path, dict[str, Any]] | None:
        """Load the checkpoint to auto-resume from (waits for an in-flight save first).

        The newest periodic checkpoint that loads, else the file ``latest.ckpt`` names; see
        :meth:`RunCheckpoints.load_latest_valid`.

        Args:
            map_location: Passed to ``torch.load``.

        Returns:
            ``(path, content)``, or None when the run directory holds no checkpoint at all.

        Raises:
            CheckpointError: Checkpoints exist but none loads (listing each and why).
        """
        self.wait()
        return self._files.load_latest_valid(map_location=map_location)

    # ------------------------------------------------------------------ own state
    def state_dict(self) -> dict[str, Any]:
        """Return the manager's state: best monitored value and what it monitored."""
        return self._best.state_dict()

    def restore(self, content: Mapping[str, Any]) -> None:
        """Restore this manager's own state from a checkpoint's content (what :meth:`save`
        wrote there, see :meth:`load_state_dict`).

        Raises:
            CheckpointError: the content holds no manager state (corrupt or foreign).
        """
        if MANAGER_KEY not in content:
            raise CheckpointError(
                f"checkpoint holds no '{MANAGER_KEY}' state; it is corrupt or was not written "
                "by this framework"
            )
        self.load_state_dict(content[MANAGER_KEY])

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; restarts the ``save_every_n_minutes`` timer.

        The timer restarts (rather than resuming the saved time) because the file just resumed
        from is as fresh as a new save would be. A best value recorded for a different metric
        or mode is dropped, with a warning.

        Raises:
            CheckpointError: A key is missing (corrupt or foreign checkpoint).
        """
        self._best.load_state_dict(state)
        self._last_save_s = self._clock()

    # ------------------------------------------------------------------ internals
    def _get_code_version(self) -> dict[str, Any]:
        if self._code_version is None:
            self._code_version = get_code_version(self._code_directory)
        return self._code_version

    def _save_failed(self, path: Path | None, error: BaseException) -> CheckpointError:
        if isinstance(error, CheckpointError):
            return error
        kind = "asynchronous save" if self._config.async_save else "save"
        return CheckpointError(
            f"{kind} of {path} failed: {describe_save_error(error, path)}; earlier checkpoints "
            f"in {self.run_dir} are intact (check free disk space and permissions)"
        )

    def _start_background_write(self, write: Callable[[], None], path: Path, is_best: bool) -> None:
        def run() -> None:
            try:
                self._write_and_publish(write, path, is_best)
            except BaseException as err:  # handed to the caller by wait(), never dropped
                self._thread_error = err

        self._thread_target = path
        self._thread = threading.Thread(target=run, name=f"checkpoint-save-{path.name}")
        self._thread.start()

    def _make_run_dir(self) -> None:
        if not self.run_dir.is_dir():
            self.run_dir.mkdir(parents=True)
            fsync_directory(self.run_dir.parent)  # the new directory entry survives a crash too

    def _write_and_publish(self, write: Callable[[], None], path: Path, is_best: bool) -> None:
        """See NOTE [save order]; ``write`` completes the format's write of ``path``."""
        write()
        if not self._is_rank_zero:
            return
        atomic_symlink(self.run_dir / LATEST_NAME, path.name)
        self._files.rotate(keep=path, max_checkpoints=self._config.max_checkpoints)
        if is_best:
            self._link_best(path)
        logger.info("saved checkpoint %s%s", path, " (new best)" if is_best else "")

    def _link_best(self, path: Path) -> None:
        self.checkpoint_format.link_best(path, self.run_dir / BEST_NAME)
