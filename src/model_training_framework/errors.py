"""Exception types raised by model_training_framework.

User mistakes raise ``ValueError``/``TypeError`` subclasses so that ordinary ``except ValueError``
handlers keep working; failures of the framework's own machinery raise the types below.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "HookError",
    "LauncherError",
    "MTFError",
    "RunDirectoryBusyError",
    "RunDirectoryLockError",
    "SchedulingError",
]


class MTFError(Exception):
    """Base class of every exception the framework raises on purpose."""


class ConfigError(MTFError, ValueError):
    """A configuration value or file is invalid; the message names the field path and the fix."""


class SchedulingError(MTFError, ValueError):
    """The loader schedule cannot be built from the given configuration and loaders."""


class CheckpointError(MTFError):
    """A checkpoint cannot be written, read, or does not fit the current run."""


class HookError(MTFError):
    """A user hook raised; the message names the hook and the method."""


class LauncherError(MTFError):
    """Submitting or monitoring a job failed (sbatch missing, refused, timed out, ...)."""


class RunDirectoryLockError(MTFError):
    """The run directory's lock file cannot be created or locked (see trainer/state/run_lock.py)."""


class RunDirectoryBusyError(RunDirectoryLockError):
    """Another live process owns the run directory; the message names the directory and owner."""
