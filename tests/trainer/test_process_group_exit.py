"""A process group the trainer created is destroyed before the interpreter shuts down.

FSDP keeps its group after ``fit`` (the sharded parameters live on it) and a trainer that never
fits keeps it too. Left to interpreter finalization, Gloo's worker threads can still hold work
whose tensors need the GIL, and the process aborts at exit ("terminate called without an active
exception", SIGABRT) now and then: a finished run reported as a crash. Each script registers its
own ``atexit`` check before the trainer exists, so it runs after the trainer's (LIFO) and sees
what the interpreter's finalization would see.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import atexit, sys
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader, TensorDataset
    from model_training_framework.trainer import (
        GenericTrainer, GenericTrainerConfig, MultiDataLoaderConfig,
    )

    atexit.register(lambda: print("group up at exit:", dist.is_initialized(), flush=True))
    strategy, action = sys.argv[1], sys.argv[2]
    if action == "own-group":
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    config = GenericTrainerConfig(
        experiment_name="exit",
        seed=0,
        train_loader_config=MultiDataLoaderConfig(),
        checkpoint={"root_dir": sys.argv[3]},
        distributed={"strategy": strategy},
    )
    model = torch.nn.Sequential(torch.nn.Linear(3, 1))
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])

    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        x, y = batch
        return {"loss": torch.nn.functional.mse_loss(trainer.model(x), y)}

    trainer.set_training_step(step)
    if action != "construct-only":
        data = TensorDataset(torch.randn(8, 3), torch.randn(8, 1))
        trainer.fit([DataLoader(data, batch_size=4)], max_epochs=1)
    print("group up after fit:", dist.is_initialized(), flush=True)
    """
)


def _run(tmp_path, strategy: str, action: str) -> str:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), strategy, action, str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("action", ["fit", "construct-only"])
def test_the_fsdp_group_outlives_fit_and_is_destroyed_at_exit(tmp_path, action):
    out = _run(tmp_path, "fsdp", action)
    assert "group up after fit: True" in out
    assert "group up at exit: False" in out


def test_a_group_the_user_created_is_left_to_the_user(tmp_path):
    out = _run(tmp_path, "fsdp", "own-group")
    assert "group up at exit: True" in out
