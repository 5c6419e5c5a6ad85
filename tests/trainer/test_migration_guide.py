"""Every example of the reference migration guide runs against our package (our own test code)."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    SamplingStrategy,
    TrainerHooks,
)


class MyModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 1)

    def forward(self, x):
        return self.linear(x)


def compute_loss(model, batch):
    x, y = batch
    return torch.nn.functional.mse_loss(model(x), y)


def _loader(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return DataLoader(
        TensorDataset(torch.randn(n, 3, generator=g), torch.randn(n, 1, generator=g)), batch_size=4
    )


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _guide_config(train_name="main"):
    return GenericTrainerConfig(
        train_loader_config=MultiDataLoaderConfig(
            sampling_strategy=SamplingStrategy.SEQUENTIAL,
            dataloader_names=[train_name],
        ),
        val_loader_config=MultiDataLoaderConfig(
            sampling_strategy=SamplingStrategy.SEQUENTIAL,
            dataloader_names=["validation"],
        ),
    )


def test_new_pattern_with_validation_runs():
    model, seen = MyModel(), []
    optimizer = torch.optim.Adam(model.parameters())
    trainer = GenericTrainer(config=_guide_config(), model=model, optimizers=[optimizer])

    def training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        seen.append((dataloader_idx, dataloader_name))
        return {"loss": compute_loss(trainer.model, batch)}

    def validation_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        return {"loss": compute_loss(trainer.model, batch)}

    trainer.set_training_step(training_step)
    trainer.set_validation_step(validation_step)
    result = trainer.fit(train_loaders=[_loader()], val_loaders=[_loader(8, 1)], max_epochs=10)
    assert result.status.value == "completed" and result.epoch == 10
    assert set(seen) == {(0, "main")}
    assert "val/dl_validation/loss" in result.metrics and "val/loss" in result.metrics


def test_simple_training_script_example():
    model = MyModel()
    optimizer = torch.optim.Adam(model.parameters())
    trainer = GenericTrainer(config=_guide_config("train"), model=model, optimizers=[optimizer])

    def training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        loss = compute_loss(trainer.model, batch)
        return {"loss": loss}

    trainer.set_training_step(training_step)
    before = model.linear.weight.clone()
    trainer.fit(train_loaders=[_loader()], max_epochs=3)
    assert not torch.equal(before, model.linear.weight)


def test_custom_training_loop_example_positional_constructor():
    model = MyModel()
    optimizer = torch.optim.Adam(model.parameters())
    trainer = GenericTrainer(_guide_config(), model, [optimizer])

    def training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        loss = compute_loss(trainer.model, batch)
        return {"loss": loss}

    trainer.set_training_step(training_step)
    result = trainer.fit(train_loaders=[_loader()], max_epochs=2)
    assert result.global_step == 2 * 3


def test_more_loaders_and_weighted_sampling_by_assignment():
    config = _guide_config()
    config.train_loader_config.dataloader_names = None
    config.val_loader_config.dataloader_names = None
    config.train_loader_config.sampling_strategy = SamplingStrategy.WEIGHTED
    config.train_loader_config.dataloader_weights = [0.5, 0.3, 0.2]
    model = MyModel()
    trainer = GenericTrainer(
        config=config, model=model, optimizers=[torch.optim.Adam(model.parameters())]
    )
    counts = [0, 0, 0]

    def training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        counts[dataloader_idx] += 1
        return {"loss": compute_loss(trainer.model, batch)}

    trainer.set_training_step(training_step)
    trainer.set_validation_step(lambda t, b, i, d, n: {"loss": compute_loss(t.model, b)})
    loader1, loader2, loader3 = _loader(40, 1), _loader(40, 2), _loader(40, 3)
    val1, val2, val3 = _loader(4, 4), _loader(8, 5), _loader(4, 6)
    result = trainer.fit(train_loaders=[loader1, loader2, loader3], val_loaders=[val1, val2, val3])
    assert counts == [15, 9, 6]  # Hamilton quotas of 30 batches by 0.5/0.3/0.2
    assert {"val/dl_dl0/loss", "val/dl_dl1/loss", "val/dl_dl2/loss"} <= set(result.metrics)


def test_multi_task_with_two_optimizers():
    model = MyModel()
    optimizer1 = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer2 = torch.optim.SGD(model.parameters(), lr=0.01)
    config = _guide_config()
    config.train_loader_config.dataloader_names = ["a", "b"]
    config.per_loader_optimizer_id = [0, 1]
    trainer = GenericTrainer(config=config, model=model, optimizers=[optimizer1, optimizer2])
    trainer.set_training_step(lambda t, b, i, d, n: {"loss": compute_loss(t.model, b)})
    stepped = []

    class RecordOptimizer(TrainerHooks):
        def on_before_optimizer_step(self, trainer, optimizer_idx):
            stepped.append(optimizer_idx)

    trainer.add_hook(RecordOptimizer())
    result = trainer.fit(train_loaders=[_loader(), _loader(8, 1)], max_epochs=1)
    assert result.global_step == 5
    assert stepped == [0, 0, 0, 1, 1]  # sequential: loader a (3 batches), then b (2)


def test_troubleshooting_errors():
    model = MyModel()
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(TypeError, match="Expected list, got Adam"):
        GenericTrainer(config=_guide_config(), model=model, optimizers=optimizer)
    trainer = GenericTrainer(config=_guide_config(), model=model, optimizers=[optimizer])

    def old_step(batch):
        return {"loss": compute_loss(model, batch)}

    with pytest.raises(TypeError, match="training_step"):
        trainer.set_training_step(old_step)
    trainer.set_training_step(lambda t, b, i, d, n: {"loss": compute_loss(t.model, b)})
    with pytest.raises(TypeError, match="Expected list, got DataLoader"):
        trainer.fit(_loader(), max_epochs=1)
    with pytest.raises(ValueError, match="MultiDataLoaderConfig"):
        GenericTrainer(config=GenericTrainerConfig(), model=model, optimizers=[optimizer])


def test_the_old_fit_call_names_both_loaders_to_wrap():
    # fit(train_loader, val_loader) used to complain about val_loaders only.
    model = MyModel()
    trainer = GenericTrainer(_guide_config(), model, [torch.optim.Adam(model.parameters())])
    trainer.set_training_step(lambda t, b, i, d, n: {"loss": compute_loss(t.model, b)})
    trainer.set_validation_step(lambda t, b, i, d, n: {"loss": compute_loss(t.model, b)})
    with pytest.raises(
        TypeError,
        match=r"^Expected list, got DataLoader for train_loaders and val_loaders; .*"
        r"train_loaders=\[train_loader\], val_loaders=\[val_loader\]",
    ):
        trainer.fit(_loader(), _loader())
    with pytest.raises(TypeError, match=r"^Expected list, got DataLoader for train_loaders;"):
        trainer.fit(_loader(), [_loader()])


def test_an_empty_validation_list_says_how_to_train_without_validation():
    model = MyModel()
    trainer = GenericTrainer(_guide_config(), model, [torch.optim.Adam(model.parameters())])
    trainer.set_training_step(lambda t, b, i, d, n: {"loss": compute_loss(t.model, b)})
    with pytest.raises(ValueError, match=r"val_loaders is an empty list; .*val_loaders=None"):
        trainer.fit(train_loaders=[_loader()], val_loaders=[])


def test_an_optimizer_that_no_loader_uses_is_named_in_a_warning(caplog):
    # The guide's multi-task example passes [optimizer1, optimizer2]; without
    # per_loader_optimizer_id every loader uses optimizer 0 and optimizer2 never steps.
    model = MyModel()
    optimizer1 = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer2 = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = GenericTrainer(
        config=_guide_config(), model=model, optimizers=[optimizer1, optimizer2]
    )
    trainer.set_training_step(lambda t, b, i, d, n: {"loss": compute_loss(t.model, b)})
    with caplog.at_level(logging.WARNING, logger="model_training_framework"):
        trainer.fit(train_loaders=[_loader()], max_epochs=1)
    warned = [r.getMessage() for r in caplog.records if "optimizers[1]" in r.getMessage()]
    assert len(warned) == 1
    assert "no train loader uses it" in warned[0] and "per_loader_optimizer_id" in warned[0]
    caplog.clear()
    config = _guide_config()
    config.experiment_name = "mapped"
    config.train_loader_config.dataloader_names = ["a", "b"]
    config.per_loader_optimizer_id = [0, 1]
    trainer = GenericTrainer(config, model, [optimizer1, optimizer2])
    trainer.set_training_step(lambda t, b, i, d, n: {"loss": compute_loss(t.model, b)})
    with caplog.at_level(logging.WARNING, logger="model_training_framework"):
        trainer.fit(train_loaders=[_loader(), _loader(8, 1)], max_epochs=1)
    assert not [r for r in caplog.records if "optimizers[" in r.getMessage()]


@pytest.mark.parametrize("config", [{"train_loader_config": {"dataloader_names": ["main"]}}, None])
def test_a_config_that_is_not_a_trainer_config_says_how_to_build_one(config):
    model = MyModel()
    with pytest.raises(TypeError, match=r"GenericTrainerConfig\.from_dict.*from_yaml"):
        GenericTrainer(config, model, [torch.optim.Adam(model.parameters())])


def _profile_keys(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {key for row in rows for key in row if key.startswith("profile/")}


def test_profiling_is_on_by_default_with_the_guides_metric_names(tmp_path):
    config = _guide_config()
    config.logging.log_scalars_every_n_steps = 2
    model = MyModel()
    trainer = GenericTrainer(config, model, [torch.optim.Adam(model.parameters())])
    trainer.set_training_step(lambda t, b, i, d, n: {"loss": compute_loss(t.model, b)})
    trainer.set_validation_step(lambda t, b, i, d, n: {"loss": compute_loss(t.model, b)})
    trainer.fit(train_loaders=[_loader()], val_loaders=[_loader(8, 1)], max_epochs=2)
    keys = _profile_keys(tmp_path / "runs" / "experiment")
    for name in ("time_data_ms", "time_forward_ms", "time_backward_ms"):
        assert f"profile/train/dl_main/{name}" in keys
    assert {"profile/val/dl_validation/time_data_ms"} <= keys


def test_profile_training_false_in_yaml_switches_profiling_off(tmp_path):
    # The guide's "In your config.yaml: profile_training: false".
    (tmp_path / "config.yaml").write_text(
        "profile_training: false\n"
        "train_loader_config: {sampling_strategy: SEQUENTIAL, dataloader_names: [main]}\n"
        "logging: {log_scalars_every_n_steps: 1}\n"
    )
    config = GenericTrainerConfig.from_yaml(tmp_path / "config.yaml")
    assert config.profile_training is False
    assert GenericTrainerConfig(profile_training=False).profile_training is False  # as written
    model = MyModel()
    trainer = GenericTrainer(config, model, [torch.optim.Adam(model.parameters())])
    trainer.set_training_step(lambda t, b, i, d, n: {"loss": compute_loss(t.model, b)})
    trainer.fit(train_loaders=[_loader()], max_epochs=1)
    assert _profile_keys(tmp_path / "runs" / "experiment") == set()
