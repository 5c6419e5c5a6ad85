"""SLURM launcher: sbatch templates, job-array submission, code snapshots and job monitoring."""

from model_training_framework.slurm.commands import SlurmCommands
from model_training_framework.slurm.launcher import (
    CLI_TRAIN_COMMAND,
    DEFAULT_COMMAND,
    BatchSubmissionResult,
    ExperimentSubmission,
    SLURMLauncher,
)
from model_training_framework.slurm.monitor import JobWaitTimeout, SLURMJobMonitor
from model_training_framework.slurm.parsing import JobInfo, JobState
from model_training_framework.slurm.snapshot import CodeVersion, read_code_version
from model_training_framework.slurm.template import (
    Directives,
    SBATCHTemplateEngine,
    ShellCommand,
    TemplateError,
)

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
