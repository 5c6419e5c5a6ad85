"""User hooks: the ``TrainerHooks`` base class (base.py), the dispatcher the trainer calls
(dispatch.py), and loading hooks from dotted class paths in ``HooksConfig`` (loading.py)."""

from model_training_framework.trainer.hooks.base import HOOK_METHODS, TrainerHooks
from model_training_framework.trainer.hooks.dispatch import HookDispatcher
from model_training_framework.trainer.hooks.loading import load_hooks

__all__ = [
    "HOOK_METHODS",
    "HookDispatcher",
    "TrainerHooks",
    "load_hooks",
]
