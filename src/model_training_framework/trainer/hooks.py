"""User hooks: the ``TrainerHooks`` base class, the dispatcher the trainer calls, and loading
hooks from dotted class paths (``HooksConfig``)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from model_training_framework.config.imports import import_configured
from model_training_framework.errors import CheckpointError, ConfigError, HookError
from model_training_framework.trainer.legacy_hooks import bind_hook_method

if TYPE_CHECKING:
    from model_training_framework.trainer.config import HooksConfig

__all__ = [
    "HOOK_METHODS",
    "HookDispatcher",
    "TrainerHooks",
    "load_hooks",
]

logger = logging.getLogger(__name__)


class TrainerHooks:
    """Base class for user hooks; every method is a no-op, override the ones you need.

    Where each method fires in ``GenericTrainer.fit`` (pseudocode)::

        on_train_start(trainer)                         # after setup and resume
        try:
            for epoch in epochs:
                on_epoch_start(trainer, epoch)
                for batch in schedule:                  # every micro-batch
                    on_train_batch_start(trainer, batch, batch_idx, dataloader_idx, name)
                    outputs = training_step(...)        # forward
                    on_before_backward(trainer, loss)   # loss as it is back-propagated
                    loss.backward()
                    on_after_backward(trainer)
                    on_train_batch_end(trainer, batch, batch_idx, dataloader_idx, name, outputs)
                    if the accumulation window closes:
                        # with performance.clip_grad_norm, after clipping:
                        on_gradient_clip(trainer, optimizer_idx, total_norm)
                        on_before_optimizer_step(trainer, optimizer_idx)   # grads unscaled, clipped
                        optimizer.step()
                        on_after_optimizer_step(trainer, optimizer_idx)
                    if validation is due:
                        on_validation_start(trainer)
                        for val batch:
                            outputs = validation_step(...)
                            on_validation_batch_end(trainer, batch, batch_idx,
                                                    dataloader_idx, name, outputs)
                        on_validation_end(trainer, metrics)
                    if a checkpoint is due:
                        on_checkpoint_save(trainer, payload)   # may add entries
                on_epoch_end(trainer, epoch, metrics)
        except BaseException as exception:
            on_exception(trainer, exception)            # then re-raised
        on_train_end(trainer, fit_result)

        # when resuming:  on_checkpoint_load(trainer, payload) before on_train_start

    Hooks written for the reference framework's signatures of ``on_train_batch_start``,
    ``on_train_end`` and ``on_validation_start`` still work, with a ``DeprecationWarning`` when
    they are added (see :mod:`.legacy_hooks`).

    State: a hook with state that must survive a restart returns it from :meth:`state_dict`
    and restores it in :meth:`load_state_dict`; the trainer saves it in every checkpoint.

    Example:
        >>> class CountSteps(TrainerHooks):
        ...     def __init__(self):
        ...         self.num_steps = 0
        ...     def on_after_optimizer_step(self, trainer, optimizer_idx):
        ...         self.num_steps += 1
        ...     def state_dict(self):
        ...         return {"num_steps": self.num_steps}
        ...     def load_state_dict(self, state):
        ...         self.num_steps = state["num_steps"]
    """

    def on_train_start(self, trainer: Any) -> None:
        """Once per ``fit``, after setup (and resume), before the first batch."""

    def on_train_end(self, trainer: Any, result: Any) -> None:
        """Once per ``fit`` with the ``FitResult``, after the final checkpoint."""

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        """At the start of every epoch (0-based ``epoch``)."""

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict) -> None:
        """At the end of every epoch, with the metrics logged for it."""

    def on_train_batch_start(
        self, trainer: Any, batch: Any, batch_idx: int, dataloader_idx: int, dataloader_name: str
    ) -> None:
        """Before the training step of every micro-batch."""

    def on_train_batch_end(
        self,
        trainer: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
        dataloader_name: str,
        outputs: dict,
    ) -> None:
        """After the training step (and backward) of every micro-batch, with its outputs."""

    def on_validation_start(self, trainer: Any) -> None:
        """Before a validation pass (the model is already in eval mode)."""

    def on_validation_end(self, trainer: Any, metrics: dict) -> None:
        """After a validation pass, with its aggregated metrics."""

    def on_validation_batch_end(
        self,
        trainer: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
        dataloader_name: str,
        outputs: dict,
    ) -> None:
        """After the validation step of every validation batch, with its outputs."""

    def on_before_backward(self, trainer: Any, loss: Any) -> None:
        """Before backward of every micro-batch, with the loss tensor that is back-propagated
        (already multiplied by the loader's loss weight and divided by the accumulation steps).
        """

    def on_after_backward(self, trainer: Any) -> None:
        """After backward of every micro-batch (gradients of the window so far are in .grad)."""

    def on_gradient_clip(self, trainer: Any, optimizer_idx: int, total_norm: Any) -> None:
        """After ``performance.clip_grad_norm`` clipped the gradients of optimizer
        ``optimizer_idx``; ``total_norm`` is their norm before clipping, a 0-d tensor on the
        device (reading it with ``float()`` synchronises the GPU)."""

    def on_before_optimizer_step(self, trainer: Any, optimizer_idx: int) -> None:
        """Gradients are final (unscaled, clipped); the optimizer is about to step."""

    def on_after_optimizer_step(self, trainer: Any, optimizer_idx: int) -> None:
        """Right after the optimizer ``optimizer_idx`` stepped."""

    def on_checkpoint_save(self, trainer: Any, checkpoint: dict) -> None:
        """Before a checkpoint is written; may add entries to the ``checkpoint`` payload."""

    def on_checkpoint_load(self, trainer: Any, checkpoint: dict) -> None:
        """After a checkpoint was loaded, with its payload."""

    def on_exception(self, trainer: Any, exception: BaseException) -> None:
        """``fit`` is failing with ``exception``; it is re-raised afterwards."""

    def configure(self, config: Any) -> None:
        """Called once when the hook is registered, with the trainer's ``GenericTrainerConfig``,
        before ``fit`` builds anything from it. Built-in hooks switch on trainer features here
        (``EarlyStoppingHook`` sets the ``early_stopping_*`` fields); most hooks need nothing.
        """

    def state_dict(self) -> dict:
        """State to save in checkpoints (empty by default)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""


HOOK_METHODS: tuple[str, ...] = tuple(
    name
    for name in vars(TrainerHooks)
    if name.startswith("on_") and callable(vars(TrainerHooks)[name])
)

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
                adapted; see :mod:`.legacy_hooks`).
        """
        _check_is_hook_instance(hook)
        key = _state_key(hook, self._hooks)
        label = type(hook).__qualname__ if key.endswith("#0") else key
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

    def has(self, method_name: str) -> bool:
        """Whether any registered hook overrides ``method_name``."""
        return bool(self._calls_for(method_name))

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
        state would be lost) and is only logged when it is empty (a stateless hook was
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
            try:
                hook.load_state_dict(dict(state[key]))
            except Exception as err:
                raise HookError(
                    f"hook {key}.load_state_dict raised {type(err).__name__}: {err}"
                ) from err

    def _check_saved_keys_have_hooks(self, state: Mapping[str, Mapping]) -> None:
        orphans = [key for key in state if key not in self._keys]
        lost = [key for key in orphans if state[key]]
        if lost:
            raise CheckpointError(
                f"the checkpoint holds state for hook(s) {lost} but no such hook is registered "
                f"now (registered: {self._keys}); register the same hooks as the run that wrote "
                f"it (hooks.hook_classes or trainer.add_hook) before resuming"
            )
        for key in orphans:
            logger.warning("checkpoint mentions hook %s (no state) which is not registered", key)


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


def _overrides(hook: TrainerHooks, method_name: str) -> bool:
    """Whether ``hook`` replaces the no-op base method (in its class or on the instance)."""
    base_method = getattr(TrainerHooks, method_name)
    return getattr(type(hook), method_name) is not base_method or method_name in vars(hook)


def _state_key(hook: TrainerHooks, registered: Sequence[TrainerHooks]) -> str:
    qualname = type(hook).__qualname__
    index = sum(type(other).__qualname__ == qualname for other in registered)
    return f"{qualname}#{index}"


def load_hooks(config: HooksConfig) -> list[TrainerHooks]:
    """Instantiate the hook classes named in ``config.hook_classes``.

    Each entry is a dotted path ``package.module.ClassName``; its constructor kwargs come from
    ``config.hook_configs[path]`` (none when absent).

    Args:
        config: the ``hooks`` section (``hook_classes``, ``hook_configs``).

    Returns:
        One hook instance per entry, in order.

    Raises:
        ConfigError: a module or attribute cannot be found, the object is not a
            ``TrainerHooks`` subclass, or the kwargs do not fit its constructor. (The config
            itself checks that paths are dotted and that ``hook_configs`` keys are listed.)
    """
    hooks = []
    for index, path in enumerate(config.hook_classes):
        field = f"hooks.hook_classes[{index}]"
        cls = _hook_class(path, field)
        kwargs = dict(config.hook_configs.get(path, {}))
        _check_kwargs_fit(cls, kwargs, path)
        hooks.append(cls(**kwargs))
    return hooks


def _hook_class(path: str, field: str) -> type[TrainerHooks]:
    obj = import_configured(path, field)
    if not (isinstance(obj, type) and issubclass(obj, TrainerHooks)):
        raise ConfigError(
            f"{field}: {path!r} is {obj!r}, not a TrainerHooks subclass; point it at a class "
            f"that subclasses model_training_framework.trainer.TrainerHooks"
        )
    return obj


def _check_kwargs_fit(cls: type, kwargs: dict, path: str) -> None:
    signature = inspect.signature(cls)
    try:
        signature.bind(**kwargs)
    except TypeError as err:
        raise ConfigError(
            f"hooks.hook_configs[{path!r}] = {kwargs} does not fit "
            f"{cls.__qualname__}{_plain_signature(signature)}: {err}"
        ) from err


def _plain_signature(signature: inspect.Signature) -> inspect.Signature:
    """``signature`` without annotations, which read as quoted strings under postponed
    evaluation: ``(step=1, *, label='counter')``."""
    parameters = [p.replace(annotation=p.empty) for p in signature.parameters.values()]
    return signature.replace(parameters=parameters, return_annotation=signature.empty)
