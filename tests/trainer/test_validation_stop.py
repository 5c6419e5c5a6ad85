"""A stop request (preemption signal, Ctrl-C) during a long validation pass is acted on at once.

SPEC 4: the signal only sets a flag, and at the next optimizer-step boundary the run writes its
checkpoint within ``preemption.max_checkpoint_sec``; Slurm's warning signal comes a fixed grace
before the kill. A validation pass (minutes on a large set) must not stand between the two: it
stops at the next validation batch, the checkpoint is written, and the resumed run redoes that
validation from its start, so the resume stays exact.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from model_training_framework.trainer import (
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    TrainerHooks,
)
from model_training_framework.trainer.state.file_format import read_checkpoint

from .resume_utils import (
    RunSpec,
    _final_state,
    assert_states_equal,
    indexed_dataset,
    make_trainer,
    small_model,
)

_VAL_BATCHES = 12


class _ValidationLog(TrainerHooks):
    """Counts validation batches and passes; sends ``signum`` to this process at one batch."""

    def __init__(self, signal_at: tuple[int, int] | None = None, signum=signal.SIGUSR1) -> None:
        self.signal_at, self.signum = signal_at, signum  # (pass number, batch number), 1-based
        self.passes = 0
        self.batches = 0
        self.ended: list[int] = []  # global step of each on_validation_end

    def on_validation_start(self, trainer):
        self.passes += 1
        self.batches = 0

    def on_validation_batch_end(self, trainer, batch, batch_idx, dataloader_idx, name, outputs):
        self.batches += 1
        if self.signal_at == (self.passes, self.batches):
            os.kill(os.getpid(), self.signum)

    def on_validation_end(self, trainer, metrics):
        self.ended.append(trainer.global_step)


def _spec(root: Path, frequency: str) -> RunSpec:
    validation = (
        {"frequency": "every_n_steps", "every_n_steps": 3}
        if frequency == "steps"
        else {"frequency": "per_epoch"}
    )
    config = GenericTrainerConfig(
        experiment_name="run",
        seed=7,
        train_loader_config=MultiDataLoaderConfig(),
        checkpoint={"root_dir": str(root), "save_every_n_epochs": None},
        validation=validation,
        log_loss_every_n_steps=1,
    )
    model = small_model()  # with dropout: the resume must also restore the RNG exactly
    # a shuffled validation loader draws from torch's RNG when a pass starts
    val = DataLoader(indexed_dataset(4 * _VAL_BATCHES, seed=1), batch_size=4, shuffle=True)
    return RunSpec(
        config=config,
        model=model,
        optimizers=[torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)],
        train_loaders=[DataLoader(indexed_dataset(24), batch_size=4, shuffle=True)],
        val_loaders=[val],
        max_epochs=3,
    )


def _fit(spec: RunSpec, hook: TrainerHooks):
    trainer, recorder = make_trainer(spec)
    trainer.add_hook(hook)
    result = trainer.fit(spec.train_loaders, spec.val_loaders, max_epochs=spec.max_epochs)
    return trainer, recorder, result


def _logged_val(run_dir: Path) -> dict[int, float]:
    records = map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    return {r["step"]: r["val/loss"] for r in records if "val/loss" in r}


@pytest.mark.parametrize(("frequency", "signal_at", "stop_step"), [("steps", (2, 4), 6)])
def test_a_signal_during_validation_stops_it_at_the_next_batch(
    tmp_path, frequency, signal_at, stop_step
):
    log = _ValidationLog(signal_at=signal_at)
    _, _, result = _fit(_spec(tmp_path, frequency), log)
    assert result.status.value == "preempted" and result.global_step == stop_step
    assert log.batches == signal_at[1], "validation went on after the stop request"
    assert log.ended == [3], "a pass cut short has no on_validation_end"
    saved = read_checkpoint(result.checkpoint_path)
    assert saved["train_state"]["global_step"] == stop_step
    assert saved["train_state"]["pending_validation"] == "step"


@pytest.mark.parametrize(
    ("frequency", "signal_at", "signum"),
    [
        ("steps", (2, 4), signal.SIGUSR1),  # at step 6
        ("steps", (4, 1), signal.SIGINT),  # at step 12, the end of epoch 1 too
        ("epoch", (1, 6), signal.SIGTERM),  # at the end of epoch 0
        ("epoch", (2, 12), signal.SIGUSR1),  # the pass's last batch: the pass is complete
    ],
)
def test_a_run_stopped_during_validation_resumes_exactly_and_redoes_it(
    tmp_path, frequency, signal_at, signum
):
    full_log = _ValidationLog()
    full, full_rec, full_result = _fit(_spec(tmp_path / "full", frequency), full_log)

    stop_log = _ValidationLog(signal_at=signal_at, signum=signum)
    _, first_rec, first = _fit(_spec(tmp_path / "split", frequency), stop_log)
    assert first.status.value == ("interrupted" if signum == signal.SIGINT else "preempted")
    resume_log = _ValidationLog()
    second, second_rec, second_result = _fit(_spec(tmp_path / "split", frequency), resume_log)

    assert second_result.global_step == full_result.global_step
    assert first_rec.seen + second_rec.seen == full_rec.seen, "data order differs after resume"
    assert_states_equal(_final_state(full)[0], _final_state(second)[0], "model")
    assert_states_equal(_final_state(full)[1], _final_state(second)[1], "optimizers")
    # every validation of the uninterrupted run happened exactly once, with the same result
    assert stop_log.ended + resume_log.ended == full_log.ended
    assert _logged_val(tmp_path / "split" / "run") == _logged_val(tmp_path / "full" / "run")


def test_a_run_stopped_in_its_last_validation_finishes_it_once_and_stays_finished(tmp_path):
    _, _, first = _fit(_spec(tmp_path, "epoch"), _ValidationLog(signal_at=(3, 5)))
    assert first.status.value == "preempted" and first.global_step == 18  # the last step
    resume_log = _ValidationLog()
    _, _, second = _fit(_spec(tmp_path, "epoch"), resume_log)
    assert second.status.value == "completed" and resume_log.ended == [18]
    assert "val/loss" in second.metrics
    saved = read_checkpoint(tmp_path / "run" / "latest.ckpt")
    assert saved["train_state"]["pending_validation"] is None, "the final save owes nothing"
    rerun_log = _ValidationLog()
    _, _, rerun = _fit(_spec(tmp_path, "epoch"), rerun_log)
    assert rerun.status.value == "completed" and rerun_log.passes == 0


# ---- a real process, a real signal from outside -------------------------------------------

_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from model_training_framework.trainer import (
        GenericTrainer, GenericTrainerConfig, MultiDataLoaderConfig)

    root, marker = Path(sys.argv[1]), Path(sys.argv[2])
    config = GenericTrainerConfig(
        experiment_name="run", seed=0, train_loader_config=MultiDataLoaderConfig(),
        checkpoint={"root_dir": str(root)}, logging={"progress_bar": False})
    model = torch.nn.Linear(4, 1)
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    trainer.set_training_step(lambda t, b, i, d, n: {
        "loss": torch.nn.functional.mse_loss(t.model(b[0]), b[1])})

    def slow_validation(t, b, i, d, n):
        marker.touch()
        time.sleep(0.5)  # 200 batches: 100 s for the whole pass
        return {"loss": torch.nn.functional.mse_loss(t.model(b[0]), b[1])}

    trainer.set_validation_step(slow_validation)
    data = TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
    val = TensorDataset(torch.randn(200, 4), torch.randn(200, 1))
    result = trainer.fit([DataLoader(data, batch_size=4)], [DataLoader(val, batch_size=1)])
    print(result.status.value, result.global_step, flush=True)
    """
)


@pytest.mark.slow
def test_sigusr1_from_outside_during_a_long_validation_checkpoints_within_seconds(tmp_path):
    marker = tmp_path / "validating"
    child = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(tmp_path), str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        sent = time.monotonic()
        os.kill(child.pid, signal.SIGUSR1)
        out, err = child.communicate(timeout=60)
        stopped_after_s = time.monotonic() - sent
    finally:
        child.kill()
        child.wait()
    assert out.split() == ["preempted", "4"], err[-3000:]
    assert stopped_after_s < 10, f"took {stopped_after_s:.1f} s; the pass alone takes 100 s"
    saved = read_checkpoint(tmp_path / "run" / "latest.ckpt")
    assert saved["train_state"]["pending_validation"] == "epoch"
