"""Renamed configuration keys: every compatibility branch of the config system lives here.

``from_dict``/``from_yaml`` pass the raw mapping through :func:`migrate_legacy_keys` before
validation. Each rule moves an old key to its new place and emits a ``DeprecationWarning`` that
names the new key. When the old and the new key are both present with different values, the
config is ambiguous and a :class:`~model_training_framework.errors.ConfigError` is raised.

Note on ``multi``: older configs had a single top-level ``multi`` section for the loaders. A
top-level ``multi`` becomes ``train_loader_config``; the validation loaders keep their own
defaults (sequential, no cycling) unless ``val_loader_config`` is given explicitly.

Example:
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     migrate_legacy_keys({"checkpoint": {"checkpoint_dir": "out"}}, TRAINER_RULES)
    {'checkpoint': {'root_dir': 'out'}}
"""

from __future__ import annotations

import copy
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from model_training_framework.errors import ConfigError

__all__ = [
    "EXPERIMENT_RULES",
    "TRAINER_RULES",
    "AlwaysOnRule",
    "LegacyRule",
    "MixedPrecisionRule",
    "RenameRule",
    "UseWandbRule",
    "migrate_legacy_keys",
    "renamed_key_hint",
    "warn_deprecated",
]

_MISSING = object()
_PACKAGE = "model_training_framework"


class LegacyRule:
    """One migration from an old key layout to the current one."""

    old_path: tuple[str, ...]

    def hint(self) -> str:
        """What became of the old key, for errors about keys given to a constructor."""
        raise NotImplementedError

    def apply(self, data: dict[str, Any]) -> None:
        """Migrate ``data`` in place when it holds the old key.

        Args:
            data: a mutable copy of the user's configuration mapping.

        Raises:
            ConfigError: when the old and the new key disagree, or the old value is invalid.
        """
        raise NotImplementedError


def _dotted(path: Sequence[str]) -> str:
    return ".".join(path)


def _parent(data: dict[str, Any], path: Sequence[str]) -> dict[str, Any] | None:
    """Return the mapping that holds ``path[-1]``, or None when an intermediate key is absent."""
    node: Any = data
    for key in path[:-1]:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, dict) else None


def _ensure_parent(data: dict[str, Any], path: Sequence[str]) -> dict[str, Any]:
    node = data
    for key in path[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{_dotted(path[:-1])}: expected a mapping, got {child!r}")
        node = child
    return node


def _in_package(module: str) -> bool:
    return module == _PACKAGE or module.startswith(f"{_PACKAGE}.")


def _users_stacklevel() -> int:
    """``stacklevel`` for a ``warnings.warn`` in the caller: the first frame outside the package.

    Python's default filters show a DeprecationWarning only when it is attributed to
    ``__main__``; the user's call is a different number of frames away through ``from_dict``,
    ``from_yaml``, ``mtf train`` or a sweep, so it is found, not counted.
    """
    frame = sys._getframe(2)  # the caller's caller: level 2 of the caller's warnings.warn
    level = 2
    while frame is not None and _in_package(frame.f_globals.get("__name__", "")):
        frame = frame.f_back
        level += 1
    return level


def warn_deprecated(message: str) -> None:
    """Emit a ``DeprecationWarning`` attributed to the user's code that led here.

    The warning names the first calling frame outside this package (the user's ``from_yaml``,
    ``add_hook`` or ``GenericTrainer(...)`` line), so that Python's default filters, which
    show a DeprecationWarning only when it is attributed to ``__main__``, show it.

    Args:
        message: what is deprecated and what to write instead.
    """
    warnings.warn(message, DeprecationWarning, stacklevel=_users_stacklevel())


def _warn(old: str, new: str, detail: str = "") -> None:
    message = f"config key '{old}' is deprecated; use '{new}' instead{detail}"
    warnings.warn(message, DeprecationWarning, stacklevel=_users_stacklevel())


def _store(data: dict[str, Any], path: Sequence[str], value: Any, old: str) -> None:
    """Set ``path`` to ``value`` unless it already holds a different value (then raise)."""
    parent = _ensure_parent(data, path)
    existing = parent.get(path[-1], _MISSING)
    if existing is not _MISSING and existing != value:
        raise ConfigError(
            f"{_dotted(path)}: conflicts with the deprecated key '{old}' "
            f"({existing!r} vs {value!r}); remove '{old}' and keep '{_dotted(path)}'"
        )
    parent[path[-1]] = value


@dataclass(frozen=True)
class RenameRule(LegacyRule):
    """``old_path`` was renamed to ``new_path``; the value is kept as is."""

    old_path: tuple[str, ...]
    new_path: tuple[str, ...]

    def apply(self, data: dict[str, Any]) -> None:
        parent = _parent(data, self.old_path)
        if parent is None or self.old_path[-1] not in parent:
            return
        old, new = _dotted(self.old_path), _dotted(self.new_path)
        _warn(old, new)
        value = parent.pop(self.old_path[-1])
        _store(data, self.new_path, value, old)

    def hint(self) -> str:
        return f"was renamed to '{_dotted(self.new_path)}'"


@dataclass(frozen=True)
class AlwaysOnRule(LegacyRule):
    """``old_path`` switched something on or off that is now always on: the key is dropped.

    The value is accepted either way (exact resume needs what it switched), and the warning
    says what is saved instead of being silent about it.
    """

    old_path: tuple[str, ...]
    what: str

    def apply(self, data: dict[str, Any]) -> None:
        parent = _parent(data, self.old_path)
        if parent is None or self.old_path[-1] not in parent:
            return
        value = parent.pop(self.old_path[-1])
        warnings.warn(
            f"config key '{_dotted(self.old_path)}' is deprecated and ignored (got {value!r}): "
            f"{self._always_saved()}; remove the key",
            DeprecationWarning,
            stacklevel=_users_stacklevel(),
        )

    def hint(self) -> str:
        return f"is no longer needed: {self._always_saved()}; remove it"

    def _always_saved(self) -> str:
        return f"{self.what} always saved in checkpoints (exact resume needs it)"


@dataclass(frozen=True)
class UseWandbRule(LegacyRule):
    """``logging.use_wandb: true`` became ``logging.logger_type: wandb`` (or, next to another
    backend, ``composite`` with ``composite_loggers`` listing every logger the config named:
    ``logger_type``, the old ``composite_loggers`` and ``wandb``)."""

    old_path: tuple[str, ...] = ("logging", "use_wandb")

    def apply(self, data: dict[str, Any]) -> None:
        parent = _parent(data, self.old_path)
        if parent is None or self.old_path[-1] not in parent:
            return
        old = _dotted(self.old_path)
        use_wandb = parent.pop(self.old_path[-1])
        if not isinstance(use_wandb, bool):
            raise ConfigError(f"{old}: expected true or false, got {use_wandb!r}")
        logger_type = parent.get("logger_type")
        if not use_wandb:
            _warn(old, "logging.logger_type", " (false: leave logger_type without 'wandb')")
            if logger_type == "wandb":
                raise ConfigError(
                    f"logging.logger_type: 'wandb' conflicts with the deprecated key '{old}' "
                    f"(false); remove '{old}' and keep 'logging.logger_type'"
                )
            return
        listed = parent.get("composite_loggers")
        if logger_type in (None, "wandb") and listed is None:
            _warn(old, "logging.logger_type: wandb")
            parent["logger_type"] = "wandb"
            return
        # Every logger the user named is kept: logger_type, composite_loggers and wandb.
        named = [] if logger_type in (None, "composite") else [logger_type]
        loggers = [*named, *(listed or []), "wandb"]
        _warn(old, "logging.logger_type: composite", " with 'wandb' in logging.composite_loggers")
        parent["logger_type"] = "composite"
        parent["composite_loggers"] = list(dict.fromkeys(loggers))

    def hint(self) -> str:
        return "was replaced by 'logging.logger_type: wandb' (or 'composite' with 'wandb')"


# Lightning-style precision strings -> (use_amp, amp_dtype or None to leave it unset).
_PRECISIONS: dict[Any, tuple[bool, str | None]] = {
    "16-mixed": (True, "float16"),
    "16": (True, "float16"),
    16: (True, "float16"),
    "bf16-mixed": (True, "bfloat16"),
    "bf16": (True, "bfloat16"),
    "32": (False, None),
    "32-true": (False, None),
    32: (False, None),
    None: (False, None),
}


@dataclass(frozen=True)
class MixedPrecisionRule(LegacyRule):
    """``performance.mixed_precision`` became ``performance.use_amp`` + ``performance.amp_dtype``."""

    old_path: tuple[str, ...] = ("performance", "mixed_precision")

    def apply(self, data: dict[str, Any]) -> None:
        parent = _parent(data, self.old_path)
        if parent is None or self.old_path[-1] not in parent:
            return
        old = _dotted(self.old_path)
        value = parent.pop(self.old_path[-1])
        key = value.lower() if isinstance(value, str) else value
        if key not in _PRECISIONS:
            choices = ", ".join(repr(k) for k in _PRECISIONS if isinstance(k, str))
            raise ConfigError(
                f"{old}: unknown precision {value!r}; expected one of {choices} or null "
                "(better: set performance.use_amp and performance.amp_dtype)"
            )
        use_amp, amp_dtype = _PRECISIONS[key]
        prefix = self.old_path[:-1]
        _warn(old, _dotted((*prefix, "use_amp")), " (with performance.amp_dtype)")
        _store(data, (*prefix, "use_amp"), use_amp, old)
        if amp_dtype is not None:
            _store(data, (*prefix, "amp_dtype"), amp_dtype, old)

    def hint(self) -> str:
        return "was renamed to 'performance.use_amp' (with performance.amp_dtype)"


TRAINER_RULES: tuple[LegacyRule, ...] = (
    RenameRule(("multi",), ("train_loader_config",)),
    MixedPrecisionRule(),
    RenameRule(("checkpoint", "checkpoint_dir"), ("checkpoint", "root_dir")),
    AlwaysOnRule(("checkpoint", "save_rng"), "the RNG states of Python, NumPy and torch are"),
    AlwaysOnRule(("checkpoint", "save_optimizer"), "optimizer state is"),
    AlwaysOnRule(("checkpoint", "save_scheduler"), "scheduler state is"),
    UseWandbRule(),
)
"""Renamed keys that apply to ``GenericTrainerConfig``."""

EXPERIMENT_RULES: tuple[LegacyRule, ...] = (
    *TRAINER_RULES,
    RenameRule(("data", "num_workers"), ("performance", "dataloader_num_workers")),
    RenameRule(("training", "epochs"), ("training", "max_epochs")),
    RenameRule(
        ("training", "gradient_accumulation_steps"),
        ("performance", "gradient_accumulation_steps"),
    ),
    RenameRule(("optimizer", "learning_rate"), ("optimizer", "lr")),
    RenameRule(("optimizer", "type"), ("optimizer", "name")),
)
"""Renamed keys that apply to ``ExperimentConfig`` (a superset of :data:`TRAINER_RULES`)."""


def migrate_legacy_keys(data: Mapping[str, Any], rules: Sequence[LegacyRule]) -> dict[str, Any]:
    """Return a deep copy of ``data`` with every old key moved to its new place.

    Args:
        data: the user's configuration mapping (left unchanged).
        rules: the rules for the target config class, e.g. :data:`TRAINER_RULES`.

    Returns:
        The migrated mapping.

    Raises:
        ConfigError: when an old key and its new key are both set to different values.

    Warns:
        DeprecationWarning: once per old key found, naming the new key.
    """
    migrated = copy.deepcopy(dict(data))
    for rule in rules:
        rule.apply(migrated)
    return migrated


def renamed_key_hint(path: Sequence[str | int], rules: Sequence[LegacyRule]) -> str | None:
    """Say where an old key went, for error messages about keys given to a constructor.

    Args:
        path: location of the unknown key, e.g. ``("performance", "mixed_precision")``.
        rules: the rules of the config class that rejected the key.

    Returns:
        A hint such as ``"'multi' was renamed to 'train_loader_config'"`` or None.
    """
    key = tuple(str(part) for part in path)
    for rule in rules:
        if rule.old_path == key:
            return f"'{_dotted(key)}' {rule.hint()} (from_dict/from_yaml migrate it)"
    return None
