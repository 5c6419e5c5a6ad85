"""GenericTrainer.fit's inputs: clear errors before any step or write; limits; iterable, subclassed and torchdata loaders."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from model_training_framework.errors import ConfigError
from model_training_framework.trainer import (
    EpochLengthPolicy,
    GenericTrainer,
    GenericTrainerConfig,
)

from .fit_helpers import (
    make_config,
    make_data,
    make_loader,
    make_trainer,
    mse_step,
)


# ------------------------------------------- bad input: clear errors before any step or file write
def test_a_missing_train_loader_config_reads_the_same_at_construction_and_at_fit(tmp_path):
    expected = (
        "train_loader_config: MultiDataLoaderConfig not provided; it is required, even for one "
        "loader: GenericTrainerConfig(train_loader_config="
        "MultiDataLoaderConfig(dataloader_names=['main']))"
    )
    model = torch.nn.Linear(3, 1)
    with pytest.raises(ConfigError) as at_construction:
        GenericTrainer(GenericTrainerConfig(), model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    assert str(at_construction.value) == expected

    cfg = make_config(tmp_path)
    trainer = make_trainer(cfg)
    cfg.train_loader_config = None  # removed after construction: fit says the same
    with pytest.raises(ConfigError) as at_fit:
        trainer.fit([make_loader()])
    assert str(at_fit.value) == expected
    assert not (tmp_path / "t").exists()


def test_input_errors_before_any_step(tmp_path):
    cfg = make_config(tmp_path, loader={"dataloader_names": ["a", "b"]})
    trainer = make_trainer(cfg)
    with pytest.raises(ValueError, match="dataloader_names"):
        trainer.fit([make_loader()])
    cfg2 = make_config(tmp_path, per_loader_optimizer_id=[0, 1])
    with pytest.raises(ValueError, match="per_loader_optimizer_id"):
        make_trainer(cfg2).fit([make_loader()])
    cfg3 = make_config(tmp_path, per_loader_optimizer_id=[3])
    with pytest.raises(ValueError, match="optimizer 3"):
        make_trainer(cfg3).fit([make_loader()])
    with pytest.raises(ValueError, match="loss_weights_per_loader"):
        make_trainer(make_config(tmp_path, loss_weights_per_loader=[1.0, 2.0])).fit([make_loader()])
    with pytest.raises(ValueError, match="empty"):
        make_trainer(make_config(tmp_path)).fit(
            [DataLoader(make_data(2, 0), batch_size=4, drop_last=True)]
        )
    with pytest.raises(ValueError, match="empty list"):
        make_trainer(make_config(tmp_path)).fit([])
    model = torch.nn.Linear(3, 1)
    bare = GenericTrainer(
        make_config(tmp_path), model, [torch.optim.SGD(model.parameters(), lr=0.1)]
    )
    with pytest.raises(ValueError, match="set_training_step"):
        bare.fit([make_loader()])
    assert not (tmp_path / "t").exists(), "nothing may be written before the checks pass"


@pytest.mark.parametrize(
    "limits",
    [{"max_epochs": None, "max_steps": 3}, {"max_epochs": 1.5}, {"max_steps": "10"}],
)
def test_limits_that_are_not_whole_numbers_are_a_clear_error(tmp_path, limits):
    # max_epochs=None (as in Lightning, to train by max_steps alone) used to fail with
    # "'<' not supported between instances of 'NoneType' and 'int'".
    with pytest.raises(TypeError, match=r"max_epochs must be an int >= 1.*max_steps"):
        make_trainer(make_config(tmp_path)).fit([make_loader()], **limits)
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize(
    "returned, match",
    [
        (lambda loss: loss, "dict"),
        (lambda loss: {"loss": 1.0}, "loss"),
        (lambda loss: {"loss": loss.detach()}, "require grad"),
    ],
)
def test_bad_training_step_results(tmp_path, returned, match):
    def step(trainer, batch, *args):
        return returned(mse_step(trainer, batch, *args)["loss"])

    with pytest.raises(TypeError, match=match):
        make_trainer(make_config(tmp_path), step=step).fit([make_loader()])


@pytest.mark.parametrize(
    ("keywords", "hint"),
    [
        ({"epochs": 2}, r"'epochs'.*use max_epochs="),
        ({"num_epochs": 2}, r"'num_epochs'.*use max_epochs="),
        ({"train_loader": None}, r"'train_loader'.*train_loaders=\[\.\.\.\]"),
        ({"val_loader": None}, r"'val_loader'.*val_loaders=\[\.\.\.\]"),
    ],
)
def test_old_fit_keywords_say_the_new_name(tmp_path, keywords, hint):
    # fit(epochs=3) got Python's bare "unexpected keyword argument 'epochs'"
    trainer = make_trainer(make_config(tmp_path))
    with pytest.raises(TypeError, match=r"fit\(\) got an unexpected keyword argument " + hint):
        trainer.fit(**{"train_loaders": [make_loader()], **keywords})
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize(
    ("keyword", "hint"),
    [("optimizer", "pass optimizers=[...] as a list"), ("scheduler", "schedulers=[...]")],
)
def test_old_constructor_keywords_say_the_new_name(tmp_path, keyword, hint):
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    arguments = {"optimizers": [optimizer], keyword: optimizer}
    with pytest.raises(TypeError, match=rf"'{keyword}'.*{re.escape(hint)}"):
        GenericTrainer(make_config(tmp_path), model, **arguments)


def test_other_unknown_keywords_keep_pythons_message(tmp_path):
    trainer = make_trainer(make_config(tmp_path))
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'epoch_count'$"):
        trainer.fit([make_loader()], epoch_count=2)


@pytest.mark.parametrize("returned", [lambda loss: loss, lambda loss: [loss], lambda loss: 1.0])
def test_a_validation_step_that_returns_no_dict_is_a_clear_error(tmp_path, returned):
    # A bare loss tensor (as Lightning's validation_step returns) used to fail inside the
    # metric code with "'Tensor' object has no attribute 'items'".
    def step(trainer, batch, *args):
        return returned(mse_step(trainer, batch, *args)["loss"])

    trainer = make_trainer(make_config(tmp_path))
    trainer.set_validation_step(step)
    with pytest.raises(TypeError, match=r"validation_step must return a dict of metrics.*"):
        trainer.fit([make_loader()], [make_loader()])


class _Stream(IterableDataset):
    def __init__(self, n=20):
        self.n, self.position = n, 0

    def __iter__(self):
        while self.position < self.n:
            i = self.position
            self.position += 1
            yield torch.full((3,), float(i)), torch.zeros(1)

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = state["position"]


class _PlainStream(_Stream):
    state_dict = None  # type: ignore[assignment]
    load_state_dict = None  # type: ignore[assignment]


def test_iterable_loader_needs_a_fixed_epoch_length(tmp_path):
    with pytest.raises(ValueError, match="FIXED_NUM_STEPS"):
        make_trainer(make_config(tmp_path)).fit([DataLoader(_Stream(), batch_size=2)])


class _SevensLoader(DataLoader):
    """A user's DataLoader subclass whose own __iter__ changes the batches."""

    def __iter__(self):
        for x, y in super().__iter__():
            yield torch.full_like(x, 7.0), y


class _NamedLoader(DataLoader):
    """A subclass that only adds an attribute: its batches are the DataLoader's."""

    def __init__(self, *args, name="main", **kwargs):
        super().__init__(*args, **kwargs)
        self.name = name


def test_a_train_loader_subclass_with_its_own_iter_is_refused(tmp_path):
    # Its __iter__ was silently bypassed (the trainer reads the dataset through its own
    # DataLoader), so the steps trained on other batches than the loader yields.
    seen = []

    def step(trainer, batch, *args):
        seen.append(float(batch[0].mean()))
        return mse_step(trainer, batch, *args)

    with pytest.raises(TypeError, match=r"train_loaders\[0\] is a _SevensLoader.*__iter__"):
        make_trainer(make_config(tmp_path), step=step).fit(
            [_SevensLoader(make_data(8, 0), batch_size=4)]
        )
    assert seen == []
    assert not (tmp_path / "t").exists()
    result = make_trainer(make_config(tmp_path)).fit([_NamedLoader(make_data(8, 0), batch_size=4)])
    assert result.global_step == 2


def test_iterable_validation_loader_is_refused_before_any_training_step(tmp_path):
    # It was refused at the first validation, after a whole epoch of training, by a message
    # that did not say it was about a validation loader.
    trained = []

    def step(trainer, batch, *args):
        trained.append(1)
        return mse_step(trainer, batch, *args)

    trainer = make_trainer(make_config(tmp_path), step=step)
    with pytest.raises(ValueError, match=r"val_loader_config: .*no length.*FIXED_NUM_STEPS"):
        trainer.fit([make_loader()], [DataLoader(_Stream(), batch_size=2)])
    assert trained == []


def test_iterable_validation_loaders_run_dry_under_a_fixed_epoch_length(tmp_path):
    seen = []

    def count(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        seen.append((dataloader_idx, len(batch[0])))
        return mse_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name)

    config = make_config(
        tmp_path,
        val_loader_config={
            "epoch_length_policy": "fixed_num_steps",
            "steps_per_epoch": 100,
            "cycle_short_loaders": False,
        },
    )
    trainer = make_trainer(config)
    trainer.set_validation_step(count)
    val = [DataLoader(_Stream(5), batch_size=2), DataLoader(_Stream(3), batch_size=2)]
    trainer.fit([make_loader()], val, max_epochs=1)
    assert seen == [(0, 2), (0, 2), (0, 1), (1, 2), (1, 1)]  # each sample once


def test_iterable_without_resume_protocol_is_refused_unless_allowed(tmp_path):
    loader_cfg = {"epoch_length_policy": EpochLengthPolicy.FIXED_NUM_STEPS, "steps_per_epoch": 3}
    with pytest.raises(ValueError, match="require_resumable_iterables"):
        make_trainer(make_config(tmp_path, loader=loader_cfg)).fit(
            [DataLoader(_PlainStream(), batch_size=2)]
        )
    cfg = make_config(
        tmp_path,
        name="ok",
        loader=loader_cfg,
        fault_tolerance={"require_resumable_iterables": False},
    )
    assert make_trainer(cfg).fit([DataLoader(_PlainStream(), batch_size=2)]).global_step == 3


def test_stateful_iterable_resumes_where_it_stopped(tmp_path):
    loader_cfg = {"epoch_length_policy": EpochLengthPolicy.FIXED_NUM_STEPS, "steps_per_epoch": 4}
    seen = []

    def step(trainer, batch, *args):
        seen.append(int(batch[0][0, 0]))
        return mse_step(trainer, batch, *args)

    make_trainer(make_config(tmp_path, loader=loader_cfg), step=step).fit(
        [DataLoader(_Stream(), batch_size=2)], max_epochs=2, max_steps=3
    )
    make_trainer(make_config(tmp_path, loader=loader_cfg), step=step).fit(
        [DataLoader(_Stream(), batch_size=2)], max_epochs=2
    )
    assert seen == [0, 2, 4, 6, 8, 10, 12, 14]


def test_max_steps_stops_mid_epoch(tmp_path):
    result = make_trainer(make_config(tmp_path)).fit([make_loader(40)], max_epochs=5, max_steps=7)
    assert result.global_step == 7 and result.epoch == 0 and result.status.value == "completed"
    assert math.isfinite(result.metrics["train/loss"])


def test_torchdata_stateful_dataloader_is_accepted_as_is(tmp_path):
    stateful = pytest.importorskip("torchdata.stateful_dataloader")

    class Plain(IterableDataset):
        def __iter__(self):
            for i in range(40):
                yield torch.full((3,), float(i)), torch.zeros(1)

    loader_cfg = {"epoch_length_policy": EpochLengthPolicy.FIXED_NUM_STEPS, "steps_per_epoch": 5}

    def run(name, max_steps, seen):
        def step(trainer, batch, *args):
            seen.append(int(batch[0][0, 0]))
            return mse_step(trainer, batch, *args)

        torch.manual_seed(0)
        loaders = [
            stateful.StatefulDataLoader(Plain(), batch_size=2),
            stateful.StatefulDataLoader(make_data(10, 1), batch_size=2, shuffle=True),
        ]
        make_trainer(make_config(tmp_path, name=name, loader=loader_cfg), step=step).fit(
            loaders, max_epochs=3, max_steps=max_steps
        )

    full, split = [], []
    run("full", None, full)
    run("split", 6, split)
    run("split", None, split)
    assert split == full and len(full) == 15
