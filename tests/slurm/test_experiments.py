"""launch/experiments.py: the launcher's view of an experiment."""

from __future__ import annotations

from model_training_framework.experiment.config import SlurmConfig
from model_training_framework.launch.experiments import SLURM_DEFAULTS


def test_slurm_defaults_match_the_slurm_config_section():
    # SLURM_DEFAULTS is a copy (the launcher must not import torch via ExperimentConfig);
    # dict experiments and ExperimentConfig experiments must get the same resources.
    assert SlurmConfig().model_dump() == SLURM_DEFAULTS
