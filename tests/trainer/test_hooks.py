"""Tests for trainer/hooks/: dispatch order and cost, errors, state, loading by dotted path."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from model_training_framework.errors import CheckpointError, ConfigError, HookError
from model_training_framework.trainer.config import HooksConfig
from model_training_framework.trainer.hooks import (
    HOOK_METHODS,
    HookDispatcher,
    TrainerHooks,
    load_hooks,
)

TRAINER = object()  # hooks receive the trainer as first argument; these tests never use it


class Recorder(TrainerHooks):
    """Appends (name, method, args) to a shared log."""

    def __init__(self, name: str, log: list) -> None:
        self.name = name
        self.log = log

    def on_epoch_end(self, trainer, epoch, metrics):
        self.log.append((self.name, "on_epoch_end", epoch, metrics))

    def on_train_batch_end(
        self, trainer, batch, batch_idx, dataloader_idx, dataloader_name, outputs
    ):
        self.log.append((self.name, "on_train_batch_end", batch_idx, dataloader_name))


class OnlyTrainStart(TrainerHooks):
    def __init__(self, log: list) -> None:
        self.log = log

    def on_train_start(self, trainer):
        self.log.append("train_start")


class Failing(TrainerHooks):
    def __init__(self, should_fail: bool = True) -> None:
        self.should_fail = should_fail

    def on_epoch_end(self, trainer, epoch, metrics):
        if self.should_fail:
            raise ValueError(f"bad epoch {epoch}")


class Counter(TrainerHooks):
    def __init__(self, count: int = 0) -> None:
        self.count = count

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def test_hooks_are_called_in_registration_order_with_the_arguments():
    log: list = []
    dispatcher = HookDispatcher([Recorder("first", log)])
    dispatcher.add(Recorder("second", log))

    dispatcher.call("on_epoch_end", TRAINER, 3, {"loss": 1.0})

    assert log == [
        ("first", "on_epoch_end", 3, {"loss": 1.0}),
        ("second", "on_epoch_end", 3, {"loss": 1.0}),
    ]


def test_only_hooks_overriding_a_method_are_called_for_it():
    log: list = []
    dispatcher = HookDispatcher([OnlyTrainStart(log), Recorder("rec", log)])

    dispatcher.call("on_train_start", TRAINER)
    dispatcher.call("on_epoch_end", TRAINER, 0, {})

    assert log == ["train_start", ("rec", "on_epoch_end", 0, {})]
    assert dispatcher.has("on_train_start")
    assert dispatcher.has("on_epoch_end")
    assert not dispatcher.has("on_train_batch_start")


def test_base_hook_overrides_nothing():
    dispatcher = HookDispatcher([TrainerHooks()])

    assert not any(dispatcher.has(name) for name in HOOK_METHODS)


def test_method_assigned_on_the_instance_is_called():
    log: list = []
    hook = TrainerHooks()
    hook.on_validation_start = lambda trainer: log.append("val_start")
    dispatcher = HookDispatcher([hook])

    dispatcher.call("on_validation_start", TRAINER)

    assert log == ["val_start"]


def test_hook_methods_cover_the_spec_list_and_the_reference_additions():
    assert set(HOOK_METHODS) == {
        "on_before_backward",
        "on_after_backward",
        "on_gradient_clip",
        "on_train_start",
        "on_train_end",
        "on_epoch_start",
        "on_epoch_end",
        "on_train_batch_start",
        "on_train_batch_end",
        "on_validation_start",
        "on_validation_end",
        "on_validation_batch_end",
        "on_before_optimizer_step",
        "on_after_optimizer_step",
        "on_checkpoint_save",
        "on_checkpoint_load",
        "on_exception",
    }


def test_unknown_method_name_is_an_error_listing_known_ones():
    with pytest.raises(ValueError, match="on_epoch_end"):
        HookDispatcher().call("on_epoch_finish", TRAINER)


def test_adding_a_non_hook_is_a_type_error():
    with pytest.raises(TypeError, match="TrainerHooks instance; got dict"):
        HookDispatcher().add({"on_epoch_end": print})


def test_adding_a_hook_class_instead_of_an_instance_suggests_calling_it():
    with pytest.raises(TypeError, match=r"pass an instance, e\.g\. Counter\(\)"):
        HookDispatcher().add(Counter)


def test_raising_hook_stops_with_hook_error_naming_hook_and_method():
    dispatcher = HookDispatcher([Failing()])

    with pytest.raises(
        HookError, match=r"hook Failing\.on_epoch_end raised ValueError: bad epoch 2"
    ) as info:
        dispatcher.call("on_epoch_end", TRAINER, 2, {})

    assert isinstance(info.value.__cause__, ValueError)


def test_second_hook_of_a_class_is_named_with_its_index():
    dispatcher = HookDispatcher([Failing(should_fail=False), Failing()])

    with pytest.raises(HookError, match=r"hook Failing#1\.on_epoch_end"):
        dispatcher.call("on_epoch_end", TRAINER, 0, {})


def test_continue_on_error_logs_with_hook_name_and_runs_the_rest(caplog):
    log: list = []
    dispatcher = HookDispatcher([Failing(), Recorder("after", log)], continue_on_error=True)

    with caplog.at_level(logging.ERROR, logger="model_training_framework.trainer.hooks"):
        dispatcher.call("on_epoch_end", TRAINER, 1, {})

    assert log == [("after", "on_epoch_end", 1, {})]
    [record] = caplog.records
    assert "hook Failing.on_epoch_end raised ValueError: bad epoch 1" in record.getMessage()
    assert record.exc_info is not None


def test_keyboard_interrupt_in_a_hook_is_not_wrapped():
    class Interrupting(TrainerHooks):
        def on_train_start(self, trainer):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        HookDispatcher([Interrupting()], continue_on_error=True).call("on_train_start", TRAINER)


def test_state_round_trips_into_fresh_hooks():
    saved = HookDispatcher([Counter(5), Counter(7), TrainerHooks()]).state_dict()
    fresh = [Counter(), Counter(), TrainerHooks()]

    HookDispatcher(fresh).load_state_dict(saved)

    assert saved == {"Counter#0": {"count": 5}, "Counter#1": {"count": 7}, "TrainerHooks#0": {}}
    assert [fresh[0].count, fresh[1].count] == [5, 7]


def test_saved_state_without_a_registered_hook_is_a_checkpoint_error():
    saved = HookDispatcher([Counter(5)]).state_dict()

    with pytest.raises(CheckpointError, match=r"\['Counter#0'\].*registered: \[\]"):
        HookDispatcher().load_state_dict(saved)


def test_saved_empty_state_without_a_hook_only_warns(caplog):
    saved = HookDispatcher([TrainerHooks()]).state_dict()

    with caplog.at_level(logging.WARNING):
        HookDispatcher().load_state_dict(saved)

    assert "TrainerHooks#0" in caplog.text


def test_hook_without_saved_state_warns_and_keeps_fresh_state(caplog):
    counter = Counter(3)

    with caplog.at_level(logging.WARNING):
        HookDispatcher([counter]).load_state_dict({})

    assert counter.count == 3
    assert "Counter#0" in caplog.text


def test_hook_state_dict_returning_non_dict_names_the_hook():
    class Broken(TrainerHooks):
        def state_dict(self):
            return [1]

    with pytest.raises(HookError, match=r"Broken#0\.state_dict must return a dict; got list"):
        HookDispatcher([Broken()]).state_dict()


def test_hook_load_state_dict_failure_names_the_hook():
    with pytest.raises(HookError, match=r"Counter#0\.load_state_dict raised KeyError"):
        HookDispatcher([Counter()]).load_state_dict({"Counter#0": {"other": 1}})


# ---- load_hooks -------------------------------------------------------------------------

FIXTURES = "hook_fixtures"


@pytest.fixture(autouse=True)
def _fixture_module_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


def _hooks_config(hook_classes, hook_configs=None, continue_on_hook_error=False):
    return HooksConfig(
        hook_classes=list(hook_classes),
        hook_configs=dict(hook_configs or {}),
        continue_on_hook_error=continue_on_hook_error,
    )


def test_load_hooks_builds_each_class_with_its_kwargs():
    path = f"{FIXTURES}.ScaledCounter"
    config = _hooks_config(
        [path, f"{FIXTURES}.Container.NestedHook"], {path: {"step": 3, "label": "x"}}
    )

    counter, nested = load_hooks(config)

    assert (type(counter).__name__, counter.step, counter.label) == ("ScaledCounter", 3, "x")
    assert type(nested).__qualname__ == "Container.NestedHook"


def test_dispatcher_from_config_calls_loaded_hooks_and_keeps_the_error_setting():
    path = f"{FIXTURES}.ScaledCounter"
    dispatcher = HookDispatcher.from_config(_hooks_config([path], {path: {"step": 2}}))

    dispatcher.call("on_epoch_end", TRAINER, 0, {})

    assert dispatcher.state_dict() == {"ScaledCounter#0": {"count": 2}}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "no_such_package_xyz.Hook",
            r"cannot import 'no_such_package_xyz\.Hook': there is no module 'no_such_package_xyz'",
        ),
        (
            f"{FIXTURES}.MissingHook",
            r"'hook_fixtures' has no attribute 'MissingHook'.*ScaledCounter",
        ),
        (f"{FIXTURES}.Container.Missing", r"'hook_fixtures\.Container' has no attribute 'Missing'"),
        (f"{FIXTURES}.NotAHook", "not a TrainerHooks subclass"),
        (f"{FIXTURES}.NOT_A_CLASS", "is 42, not a TrainerHooks subclass"),
    ],
)
def test_load_hooks_bad_paths_say_what_is_wrong(path, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_hooks(_hooks_config([path]))

    assert "hooks.hook_classes[0]" in str(info.value)


def test_load_hooks_reports_a_missing_import_inside_the_users_module(tmp_path, monkeypatch):
    (tmp_path / "broken_hooks_mod.py").write_text("import not_installed_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(ConfigError, match="not_installed_dependency_xyz"):
        load_hooks(_hooks_config(["broken_hooks_mod.Hook"]))


def test_load_hooks_bad_kwargs_show_the_signature():
    path = f"{FIXTURES}.ScaledCounter"

    with pytest.raises(
        ConfigError,
        match=r"ScaledCounter\(step=1, \*, label='counter'\): got an unexpected keyword argument 'stride'",
    ):
        load_hooks(_hooks_config([path], {path: {"stride": 2}}))


def test_a_stateless_hook_added_since_the_checkpoint_loads_without_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        HookDispatcher([OnlyTrainStart([])]).load_state_dict({})
    assert caplog.text == ""


def test_change_listeners_are_called_on_add_and_dropped_once_collected():
    class Listener:
        def __init__(self) -> None:
            self.count = 0

        def changed(self) -> None:
            self.count += 1

    dispatcher, kept, dropped = HookDispatcher(), Listener(), Listener()
    dispatcher.on_change(kept.changed)
    dispatcher.on_change(dropped.changed)
    dispatcher.add(Recorder("a", []))
    del dropped
    dispatcher.add(Recorder("b", []))
    assert kept.count == 2
    assert len(dispatcher._listeners) == 1


def test_saved_state_waits_for_a_hook_added_within_claiming_saved_state():
    saved = HookDispatcher([Counter(5), Counter(7)]).state_dict()
    dispatcher, late = HookDispatcher([Counter()]), Counter()
    with dispatcher.claiming_saved_state():
        dispatcher.load_state_dict(saved)
        dispatcher.add(late)
    assert [hook.count for hook in dispatcher.hooks] == [5, 7]

    unclaimed = HookDispatcher([Counter()])
    with pytest.raises(CheckpointError, match=r"\['Counter#1'\]"), unclaimed.claiming_saved_state():
        unclaimed.load_state_dict(saved)
