"""SLURM launcher: sbatch templates, job-array submission, code snapshots and job monitoring."""

from model_training_framework.launch.slurm.commands import SlurmCommands
from model_training_framework.launch.slurm.launcher import (
    CLI_TRAIN_COMMAND,
    DEFAULT_COMMAND,
    BatchSubmissionResult,
    ExperimentSubmission,
    SLURMLauncher,
)
from model_training_framework.launch.slurm.monitor import JobWaitTimeout, SLURMJobMonitor
from model_training_framework.launch.slurm.parsing import JobInfo, JobState
from model_training_framework.launch.slurm.template import (
    Directives,
    SBATCHTemplateEngine,
    ShellCommand,
    TemplateError,
)
from model_training_framework.launch.snapshot import CodeVersion, read_code_version

__all__ = [
    "CLI_TRAIN_COMMAND",
    "DEFAULT_COMMAND",
    "BatchSubmissionResult",
    "CodeVersion",
    "Directives",
    "ExperimentSubmission",
    "JobInfo",
    "JobState",
    "JobWaitTimeout",
    "SBATCHTemplateEngine",
    "SLURMJobMonitor",
    "SLURMLauncher",
    "ShellCommand",
    "SlurmCommands",
    "TemplateError",
    "read_code_version",
]
