"""launch/experiments.py: the launcher's view of an experiment."""

from __future__ import annotations

import subprocess
import sys

from model_training_framework.experiment.config import SlurmConfig
from model_training_framework.launch.experiments import SLURM_DEFAULTS


def test_slurm_defaults_match_the_slurm_config_section():
    # dict experiments and ExperimentConfig experiments must get the same resources
    assert SlurmConfig().model_dump() == SLURM_DEFAULTS


def test_the_launchers_import_without_torch():
    """SLURM_DEFAULTS comes from SlurmConfig, yet a login node's launcher does not load torch."""
    probe = (
        "import sys, model_training_framework.launch.local, model_training_framework.launch.slurm; "
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
