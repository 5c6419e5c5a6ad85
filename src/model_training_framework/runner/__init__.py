"""Run experiments without Slurm: :class:`LocalLauncher`."""

from model_training_framework.runner.local import LocalLauncher

__all__ = ["LocalLauncher"]
