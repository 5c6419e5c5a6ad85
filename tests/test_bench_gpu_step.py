"""bench/gpu_step.py runs (its timings are only meaningful on a GPU; here a CPU smoke run)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_step.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_gpu_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_cpu_smoke_run_measures_every_contender(capsys):
    assert _load().main(["--device", "cpu", "--tiny", "--no-lightning"]) == 0
    out = capsys.readouterr().out
    for workload in ("launch-bound", "compute-bound"):
        for contender in ("careful", "item", "framework"):
            assert f"{workload:<15}{contender:<11}" in out
    assert "async checkpoint" in out


def test_without_cuda_it_says_so_and_exits_cleanly(capsys):
    if torch.cuda.is_available():
        return  # on a GPU machine the default run measures for real
    assert _load().main([]) == 0
    assert "CUDA is not available" in capsys.readouterr().out
