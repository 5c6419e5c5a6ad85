"""Reuse the real-Slurm fixture of tests/slurm (it starts only under ``-m slurm``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_slurm_fixtures", Path(__file__).resolve().parents[1] / "slurm" / "conftest.py"
)
_slurm_fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _slurm_fixtures  # dataclasses look their module up
_spec.loader.exec_module(_slurm_fixtures)
slurm_cluster = _slurm_fixtures.slurm_cluster
