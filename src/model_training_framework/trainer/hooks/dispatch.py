"""``HookDispatcher``: the trainer's one way to call hooks. It checks (and adapts) each hook's
signatures once when the hook is added, calls the methods a hook overrides in registration order,
turns a hook's error into a ``HookError`` (or logs it), and saves and restores the hooks' state
under stable keys (``"MyHook#0"``).
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import logging
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from model_training_framework.errors import CheckpointError, HookError
from model_training_framework.trainer.hooks.base import HOOK_METHODS, TrainerHooks
from model_training_framework.trainer.hooks.loading import load_hooks
from model_training_framework.trainer.legacy_hooks import bind_hook_method

if TYPE_CHECKING:
    from model_training_framework.trainer.config import HooksConfig

__all__ = ["HookDispatcher"]

logger = logging.getLogger(__name__)

# Positional arguments the trainer passes to each hook method (after self).
_NUM_ARGS: dict[str, int] = {
    name: len(inspect.signature(getattr(TrainerHooks, name)).parameters) - 1
    for name in HOOK_METHODS
}

_Call = tuple[str, Callable[..., None]]  # (hook label for messages, bound method)


class HookDispatcher:
    """Calls hook methods in registration order, only on hooks that override them.

    The per-method list of overriding hooks is computed when a hook is added, so calling a
    method that no hook overrides costs one dictionary lookup; :meth:`has` lets the trainer
    skip building arguments altogether.

    Args:
        hooks: initial hooks, called in this order.
        continue_on_error: when false (default) a hook that raises stops training with a
            :class:`HookError` naming the hook and method; when true the error is logged with
            its traceback and the remaining hooks still run.

    Example:
        >>> dispatcher = HookDispatcher([CountSteps()])           # doctest: +SKIP
        >>> dispatcher.call("on_after_optimizer_step", trainer, 0)  # doctest: +SKIP
    """

    def __init__(
        self, hooks: Sequence[TrainerHooks] = (), *, continue_on_error: bool = False
    ) -> None:
        self._hooks: list[TrainerHooks] = []
        self._keys: list[str] = []
        self._calls: dict[str, tuple[_Call, ...]] = {name: () for name in HOOK_METHODS}
        self._continue_on_error = continue_on_error
        self._listeners: list[weakref.WeakMethod] = []
        # Saved state of hooks not registered yet, while hooks may still be added (see
        # claiming_saved_state); None: such state is an error at once.
        self._unclaimed: dict[str, dict] | None = None
        for hook in hooks:
            self.add(hook)

    @classmethod
    def from_config(cls, config: HooksConfig) -> HookDispatcher:
        """A dispatcher with the hooks of ``config`` (see :func:`load_hooks`) and its
        ``continue_on_hook_error`` setting."""
        return cls(load_hooks(config), continue_on_error=config.continue_on_hook_error)

    @property
    def hooks(self) -> tuple[TrainerHooks, ...]:
        """The registered hooks, in call order."""
        return tuple(self._hooks)

    def add(self, hook: TrainerHooks) -> None:
        """Register ``hook``; it is called after the hooks already registered.

        Raises:
            TypeError: ``hook`` is not a :class:`TrainerHooks` instance, or one of its methods
                takes arguments the trainer does not pass.

        Warns:
            DeprecationWarning: a method has the reference framework's signature (it is
                adapted; see :mod:`~model_training_framework.trainer.legacy_hooks`).
        """
        _check_is_hook_instance(hook)
        key = _state_key(hook, self._hooks)
        label = type(hook).__qualname__ if key.endswith("#0") else key
        _warn_uncalled_methods(hook, label)
        # Signatures are checked (and old ones adapted) once here, never per call.
        bound = [
            (name, bind_hook_method(label, name, getattr(hook, name), _NUM_ARGS[name]))
            for name in HOOK_METHODS
            if _overrides(hook, name)
        ]
        self._hooks.append(hook)
        self._keys.append(key)
        for name, method in bound:
            self._calls[name] = (*self._calls[name], (label, method))
        if self._unclaimed and key in self._unclaimed:
            self._load_hook_state(key, hook, self._unclaimed.pop(key))
        self._notify_listeners()

    @contextlib.contextmanager
    def claiming_saved_state(self) -> Iterator[None]:
        """Within the block, saved state of a hook that is not registered yet waits for a hook
        of that key to be added (from ``on_train_start``, say) instead of failing the load.

        Raises:
            CheckpointError: on leaving the block, saved state that no hook claimed.
        """
        self._unclaimed = {}
        try:
            yield
        except BaseException:
            self._unclaimed = None
            raise
        unclaimed, self._unclaimed = self._unclaimed, None
        if unclaimed:
            raise _unclaimed_state_error(list(unclaimed), self._keys)

    def on_change(self, listener: Callable[[], object]) -> None:
        """Call ``listener`` (a bound method, held weakly) whenever a hook is added.

        For callers that resolve :meth:`has` once: a hook added while ``fit`` runs (from
        another hook) must still get every call from then on.
        """
        self._listeners.append(weakref.WeakMethod(listener))

    def _notify_listeners(self) -> None:
        alive = [ref for ref in self._listeners if ref() is not None]
        self._listeners = alive
        for ref in alive:
            listener = ref()
            if listener is not None:
                listener()

    def has(self, method_name: str) -> bool:
        """Whether any registered hook overrides ``method_name``."""
        return bool(self._calls_for(method_name))

    def calls_of(self, method_name: str) -> tuple[tuple[str, Callable[..., None]], ...]:
        """``(label, bound method)`` of each hook overriding ``method_name``, in call order.

        For a caller on the hot path that calls them itself, as :meth:`call` does (each call
        in a ``try``, an error passed to :meth:`handle_error` inside the ``except`` block), and
        reads them again when :meth:`on_change` says a hook was added.
        """
        return self._calls_for(method_name)

    def handle_error(self, label: str, method_name: str, err: Exception) -> None:
        """What :meth:`call` does when hook ``label``'s ``method_name`` raised ``err``: raise a
        :class:`HookError`, or log it and return with ``continue_on_error``. Call it inside the
        ``except`` block (the log attaches the traceback)."""
        self._handle_error(label, method_name, err)

    def call(self, method_name: str, *args: Any) -> None:
        """Call ``method_name(*args)`` on every hook that overrides it, in order.

        Raises:
            HookError: a hook raised and ``continue_on_error`` is false (chained to the error).
            ValueError: ``method_name`` is not a :class:`TrainerHooks` method.
        """
        calls = self._calls.get(method_name)  # inlined _calls_for: called several times a step
        if calls is None:
            calls = self._calls_for(method_name)  # raises: an error naming the known methods
        for label, method in calls:
            try:
                method(*args)
            except Exception as err:
                self._handle_error(label, method_name, err)

    def _calls_for(self, method_name: str) -> tuple[_Call, ...]:
        calls = self._calls.get(method_name)
        if calls is None:
            raise ValueError(
                f"{method_name!r} is not a TrainerHooks method; known: {', '.join(HOOK_METHODS)}"
            )
        return calls

    def _handle_error(self, label: str, method_name: str, err: Exception) -> None:
        message = f"hook {label}.{method_name} raised {type(err).__name__}: {err}"
        if not self._continue_on_error:
            raise HookError(
                f"{message} (set hooks.continue_on_hook_error=true to log and continue)"
            ) from err
        # Called inside the `except` block of `call`, so the traceback is attached.
        logger.exception("%s; continuing because hooks.continue_on_hook_error is true", message)

    def state_dict(self) -> dict[str, dict]:
        """``{hook key: hook.state_dict()}``; a key is the hook's class qualname and its index
        among registered hooks of that class (``"MyHook#0"``).

        Raises:
            HookError: a hook's ``state_dict`` raised or returned something other than a dict.
        """
        state: dict[str, dict] = {}
        for key, hook in zip(self._keys, self._hooks, strict=True):
            try:
                hook_state = hook.state_dict()
            except Exception as err:
                raise HookError(
                    f"hook {key}.state_dict raised {type(err).__name__}: {err}"
                ) from err
            if not isinstance(hook_state, Mapping):
                raise HookError(
                    f"hook {key}.state_dict must return a dict; got {type(hook_state).__name__}"
                )
            state[key] = dict(hook_state)
        return state

    def load_state_dict(self, state: Mapping[str, Mapping]) -> None:
        """Give each hook its saved state.

        A saved key without a registered hook is an error when its state is non-empty (that
        state would be lost; within :meth:`claiming_saved_state`, only if no hook of that key
        is added by the block's end) and is only logged when it is empty (a stateless hook was
        removed). A registered hook without saved state keeps its fresh state, with a warning when it has
        state to lose (a stateless hook added since is fine).

        Raises:
            CheckpointError: saved non-empty state has no matching hook, or ``state`` is not a
                mapping.
            HookError: a hook's ``load_state_dict`` raised.
        """
        if not isinstance(state, Mapping):
            raise CheckpointError(
                f"hook state in the checkpoint must be a mapping; got {type(state).__name__}"
            )
        self._check_saved_keys_have_hooks(state)
        for key, hook in zip(self._keys, self._hooks, strict=True):
            if key not in state:
                if hook.state_dict():  # a stateless hook added since loses nothing: no warning
                    logger.warning(
                        "hook %s has no saved state in the checkpoint (added since it was "
                        "written); it starts fresh",
                        key,
                    )
                continue
            self._load_hook_state(key, hook, state[key])

    @staticmethod
    def _load_hook_state(key: str, hook: TrainerHooks, state: Mapping) -> None:
        try:
            hook.load_state_dict(dict(state))
        except Exception as err:
            raise HookError(
                f"hook {key}.load_state_dict raised {type(err).__name__}: {err}"
            ) from err

    def _check_saved_keys_have_hooks(self, state: Mapping[str, Mapping]) -> None:
        orphans = [key for key in state if key not in self._keys]
        lost = [key for key in orphans if state[key]]
        if lost and self._unclaimed is not None:
            self._unclaimed.update({key: dict(state[key]) for key in lost})
        elif lost:
            raise _unclaimed_state_error(lost, self._keys)
        for key in orphans:
            if not state[key]:
                logger.warning(
                    "checkpoint mentions hook %s (no state) which is not registered", key
                )


def _unclaimed_state_error(keys: list[str], registered: list[str]) -> CheckpointError:
    return CheckpointError(
        f"the checkpoint holds state for hook(s) {keys} but no such hook is registered now "
        f"(registered: {registered}); register the same hooks as the run that wrote it "
        f"(hooks.hook_classes, or trainer.add_hook before fit or in on_train_start)"
    )


def _check_is_hook_instance(hook: object) -> None:
    if isinstance(hook, TrainerHooks):
        return
    if isinstance(hook, type) and issubclass(hook, TrainerHooks):
        raise TypeError(
            f"expected a TrainerHooks instance; got the class {hook.__qualname__}: "
            f"pass an instance, e.g. {hook.__qualname__}()"
        )
    raise TypeError(
        f"expected a TrainerHooks instance; got {type(hook).__qualname__}: subclass "
        f"model_training_framework.trainer.TrainerHooks and override the methods you need"
    )


def _warn_uncalled_methods(hook: TrainerHooks, label: str) -> None:
    """Name the ``on_*`` methods of ``hook`` that are no hook (a misspelt name, or one from
    another framework such as ``on_validation_batch_start``): the trainer never calls them."""
    unknown = sorted(
        name
        for name in dir(type(hook))
        if name.startswith("on_") and name not in HOOK_METHODS and callable(getattr(hook, name))
    )
    if not unknown:
        return
    described = []
    for name in unknown:
        close = difflib.get_close_matches(name, HOOK_METHODS, n=1, cutoff=0.6)
        described.append(f"{label}.{name}" + (f" (did you mean {close[0]}?)" if close else ""))
    logger.warning(
        "the trainer never calls %s: they are no TrainerHooks methods (hooks: %s)",
        ", ".join(described),
        ", ".join(HOOK_METHODS),
    )


def _overrides(hook: TrainerHooks, method_name: str) -> bool:
    """Whether ``hook`` replaces the no-op base method (in its class or on the instance)."""
    base_method = getattr(TrainerHooks, method_name)
    return getattr(type(hook), method_name) is not base_method or method_name in vars(hook)


def _state_key(hook: TrainerHooks, registered: Sequence[TrainerHooks]) -> str:
    qualname = type(hook).__qualname__
    index = sum(type(other).__qualname__ == qualname for other in registered)
    return f"{qualname}#{index}"
