"""The experiment runner's building blocks: optimizers, schedulers, loaders, loader names."""

from __future__ import annotations

import sys
import uuid

import pytest
import torch
from torch.utils.data import DataLoader

from model_training_framework.errors import ConfigError
from model_training_framework.experiment.config import ExperimentConfig, OptimizerConfig
from model_training_framework.experiment.entry import (
    build_loaders,
    build_model,
    build_optimizer,
    build_scheduler,
    main,
)
from model_training_framework.trainer import PerformanceConfig

DATA_MODULE = """
import torch
from torch.utils.data import TensorDataset

def data(num_samples=10, seed=0):
    return TensorDataset(torch.arange(float(num_samples)).unsqueeze(1))

def model(width=3):
    return torch.nn.Linear(1, width)

def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    return {"loss": trainer.model(batch[0]).sum()}
"""


@pytest.fixture
def module(tmp_path, monkeypatch):
    name = f"runner_data_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(DATA_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_optimizer_names_match_torch_optim_classes_in_any_case():
    model = torch.nn.Linear(2, 1)
    optimizer = build_optimizer(
        OptimizerConfig(name="SGD", lr=0.5, kwargs={"momentum": 0.9}), model
    )
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["lr"] == 0.5 and optimizer.param_groups[0]["momentum"] == 0.9
    assert isinstance(
        build_optimizer(OptimizerConfig(name="torch.optim.Adam"), model), torch.optim.Adam
    )


def test_optimizer_rejecting_an_argument_names_it():
    with pytest.raises(ConfigError, match="rejected"):
        build_optimizer(OptimizerConfig(name="sgd", kwargs={"bogus": 1}), torch.nn.Linear(2, 1))


def test_scheduler_is_built_with_its_interval():
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
    built = build_scheduler({"name": "steplr", "step_size": 2, "interval": "epoch"}, optimizer)
    assert isinstance(built["scheduler"], torch.optim.lr_scheduler.StepLR)
    assert built["interval"] == "epoch"
    assert build_scheduler(None, optimizer) is None


def test_datasets_are_wrapped_with_entry_and_performance_settings(module):
    section = {
        "train": [
            {
                "name": "a",
                "factory": f"{module}.data",
                "batch_size": 4,
                "num_samples": 10,
                "drop_last": True,
            }
        ],
        "val": [{"name": "v", "factory": f"{module}.data", "batch_size": 5}],
    }
    performance = PerformanceConfig(pin_memory=True)

    names, loaders = build_loaders(section, "train", performance)
    val_names, val_loaders = build_loaders(section, "val", performance)

    assert names == ["a"] and val_names == ["v"]
    (loader,) = loaders
    assert isinstance(loader, DataLoader)
    assert (loader.batch_size, loader.drop_last, loader.pin_memory, len(loader)) == (
        4,
        True,
        True,
        2,
    )
    assert isinstance(loader.sampler, torch.utils.data.RandomSampler)  # train shuffles by default
    assert isinstance(val_loaders[0].sampler, torch.utils.data.SequentialSampler)


def test_model_factory_gets_the_other_model_keys(module):
    model = build_model({"factory": f"{module}.model", "width": 5, "training_step": "x.y"})
    assert model.out_features == 5


def test_loader_names_fill_the_loader_configs_and_mismatches_are_errors(
    module, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    config = ExperimentConfig.from_dict(
        {
            "model": {"factory": f"{module}.model", "training_step": f"{module}.step"},
            "data": {"train": [{"name": "only", "factory": f"{module}.data"}]},
            "train_loader_config": {"dataloader_names": ["other"]},
        }
    )
    path = tmp_path / "c.yaml"
    config.to_yaml(path)

    assert main(["--config", str(path)]) == 2
    assert (
        "dataloader_names is ['other'] but the data section names the loaders ['only']"
        in capsys.readouterr().err
    )


def test_a_run_whose_fit_raises_is_recorded_as_failed(module, tmp_path, monkeypatch):
    from model_training_framework.experiment.entry import read_status, run_experiment

    monkeypatch.chdir(tmp_path)
    (tmp_path / f"{module}_boom.py").write_text(
        "def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):\n"
        "    raise RuntimeError('boom in step')\n",
        encoding="utf-8",
    )
    config = ExperimentConfig.from_dict(
        {
            "experiment_name": "crashes",
            "model": {"factory": f"{module}.model", "training_step": f"{module}_boom.step"},
            "data": {"train": [{"name": "only", "factory": f"{module}.data"}]},
            "checkpoint": {"root_dir": str(tmp_path / "runs")},
        }
    )
    with pytest.raises(RuntimeError, match="boom in step"):
        run_experiment(config)
    record = read_status(tmp_path / "runs" / "crashes")
    assert record["status"] == "failed" and "boom in step" in record["error"]


@pytest.mark.parametrize(("rank", "expected"), [("0", 1), ("1", 0)])
def test_the_closing_line_is_printed_by_rank_zero_only(
    tmp_path, monkeypatch, caplog, rank, expected
):
    """docs/distributed.md's `torchrun --nproc_per_node=2 -m ...entry --config experiment.yaml`
    ended with 'spirals: completed at step 96' twice, once per rank; only rank 0 logs (SPEC 5),
    so the runner's closing line is rank 0's too."""
    from model_training_framework.experiment import entry
    from model_training_framework.trainer import FitResult, FitStatus

    config_path = tmp_path / "experiment.yaml"
    ExperimentConfig.from_dict({"experiment_name": "spirals"}).to_yaml(config_path)
    finished = FitResult(status=FitStatus.COMPLETED, global_step=96, epoch=3)
    monkeypatch.setattr(entry, "run_experiment", lambda *args, **kwargs: finished)
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with caplog.at_level("INFO", logger=entry.__name__):
        assert entry.main(["--config", str(config_path)]) == 0
    closing = [r for r in caplog.records if "spirals: completed at step 96" in r.getMessage()]
    assert len(closing) == expected
