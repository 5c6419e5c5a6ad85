"""Kill matrix: real training processes SIGKILLed at chosen moments across the configurations
users run, each resumed by rerunning the same command until it completes, must end as the
uninterrupted run does: the same weights, optimizer and scheduler state, data fingerprint and
metrics.jsonl records, each step logged once.

Every case is killed four times in one sequence, each kill once (``kill_matrix_script.py``):
mid accumulation window, inside a validation pass, just after a checkpoint is published, and
in the middle of a checkpoint write. The cases cover the four sampling strategies, gradient
accumulation 1 to 3, a stateful IterableDataset next to a map-style loader, step-based and
per-epoch validation, a per-step LR scheduler, dropout, loader workers, asynchronous saves,
bursts, loaders that are not cycled, bf16 autocast with clipping, and the default checkpoint
settings (a checkpoint per epoch only), the ones most runs use.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from .resume_utils import assert_states_equal

SCRIPT = Path(__file__).parent / "scripts" / "kill_matrix_script.py"
pytestmark = pytest.mark.slow

# Keys whose values measure time, not training: they differ between any two runs.
_TIMING_PREFIXES = ("profile/", "train/samples_per_sec")

CASES: dict[str, dict[str, Any]] = {
    # Everything as a script gets it without asking: round robin, checkpoints at epoch ends
    # only (a kill mid-epoch redoes the epoch), default logging interval.
    "defaults": {"strategy": "round_robin", "gas": 1, "checkpoint": {}, "log_every": None},
    # The same with validation loaders and the default frequency: once per epoch, at its end.
    "defaults-val-per-epoch": {
        "strategy": "round_robin",
        "gas": 1,
        "val_every": "epoch",
        "checkpoint": {},
        "log_every": None,
    },
    "weighted-gas2-iterable-burst2-nocycle-bf16-clip": {
        "strategy": "weighted",
        "gas": 2,
        "iterable": True,
        "val_every": 2,
        "scheduler": True,
        "loader": {"burst_size": 2, "cycle_short_loaders": False},
        "performance": {"use_amp": True, "amp_dtype": "bfloat16", "clip_grad_norm": 0.5},
        "checkpoint": {"save_every_n_steps": 2},
    },
    "sequential-gas3-iterable-val-sched": {
        "strategy": "sequential",
        "gas": 3,
        "iterable": True,
        "val_every": 2,
        "scheduler": True,
        "checkpoint": {},
    },
    "weighted-gas2-val-sched-every2": {
        "strategy": "weighted",
        "gas": 2,
        "val_every": 3,
        "scheduler": True,
        "checkpoint": {"save_every_n_steps": 2},
    },
    "alternating-gas2-iterable-val-sched-every3-keep1": {
        "strategy": "alternating",
        "gas": 2,
        "iterable": True,
        "val_every": 2,
        "scheduler": True,
        "checkpoint": {"save_every_n_steps": 3, "max_checkpoints": 1},
    },
    "round_robin-gas2-iterable-val-sched": {
        "strategy": "round_robin",
        "gas": 2,
        "iterable": True,
        "val_every": 3,
        "scheduler": True,
        "checkpoint": {},
    },
    "weighted-gas3-iterable": {
        "strategy": "weighted",
        "gas": 3,
        "iterable": True,
        "checkpoint": {},
    },
    "alternating-gas1-val-every2-async": {
        "strategy": "alternating",
        "gas": 1,
        "val_every": 2,
        "scheduler": True,
        "checkpoint": {"save_every_n_steps": 2, "async_save": True},
    },
    "sequential-gas2-workers-val-sched-every3": {
        "strategy": "sequential",
        "gas": 2,
        "workers": 2,
        "val_every": 3,
        "scheduler": True,
        "checkpoint": {"save_every_n_steps": 3},
    },
}


def _kills(case: dict[str, Any]) -> list[str]:
    kills = ["window@3", "validation@4", "after_save@6", "mid_write@9"]
    return [k for k in kills if case.get("val_every") or not k.startswith("validation")]


def _run(root: Path, name: str, case: dict[str, Any], kills: list[str]) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-u", str(SCRIPT), str(root), name, json.dumps(case), *kills],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode, done.stdout


def _records(run_dir: Path) -> list[dict[str, Any]]:
    """metrics.jsonl without timings and text records (a resume adds its 'resumed from')."""
    records = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = {
            key: value
            for key, value in json.loads(line).items()
            if not key.startswith(_TIMING_PREFIXES) and not key.startswith("text/")
        }
        if set(record) != {"step"}:
            records.append(record)
    return records


def _assert_each_step_logged_once(records: list[dict[str, Any]]) -> None:
    steps_by_key: dict[str, list[int]] = {}
    for record in records:
        for key in record:
            steps_by_key.setdefault(key, []).append(record["step"])
    for key, steps in steps_by_key.items():
        assert steps == sorted(set(steps)), f"{key} logged at steps {steps}"


@pytest.mark.parametrize("case_name", sorted(CASES))
def test_sigkill_anywhere_resumes_bit_identically(tmp_path, case_name):
    case = CASES[case_name]
    code, out = _run(tmp_path, "reference", case, [])
    assert code == 0, out
    kills = _kills(case)
    outputs = []
    for _attempt in range(len(kills) + 1):
        code, out = _run(tmp_path, "killed", case, kills)
        outputs.append(out)
        if code == 0:
            break
        assert code == -signal.SIGKILL, out
    else:
        pytest.fail("run never completed:\n" + "\n".join(outputs))
    fired = sorted(p.read_text() for p in tmp_path.glob("killed.killed.*"))
    assert len(fired) == len(kills), (fired, outputs)  # every kill happened, once

    reference = torch.load(tmp_path / "reference" / "final.pt", weights_only=False)
    resumed = torch.load(tmp_path / "killed" / "final.pt", weights_only=False)
    assert_states_equal(reference, resumed, "final")
    reference_records = _records(tmp_path / "reference")
    resumed_records = _records(tmp_path / "killed")
    _assert_each_step_logged_once(resumed_records)
    assert resumed_records == reference_records
    leftovers = [p.name for p in (tmp_path / "killed").iterdir() if ".tmp" in p.name]
    assert leftovers == [], leftovers
