"""Hook classes imported by dotted path in tests/trainer/test_hooks.py (via ``hook_fixtures.X``)."""

from __future__ import annotations

from model_training_framework.trainer.hooks import TrainerHooks


class ScaledCounter(TrainerHooks):
    """Counts epoch ends, in steps of ``step``; its count is its checkpointed state."""

    def __init__(self, step: int = 1, *, label: str = "counter") -> None:
        self.step = step
        self.label = label
        self.count = 0

    def on_epoch_end(self, trainer, epoch, metrics):
        self.count += self.step

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


class Container:
    """Holds a nested hook class, to check paths like ``module.Outer.Inner``."""

    class NestedHook(TrainerHooks):
        pass


NOT_A_CLASS = 42


class NotAHook:
    pass
