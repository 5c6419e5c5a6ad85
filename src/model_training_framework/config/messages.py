"""Config error messages: pydantic's ``ValidationError`` as ``ConfigError`` lines that read
``<field path>: <what was wrong> (got <value>)``, with close matches (or the new name of a
renamed key) suggested for unknown keys.

:class:`~model_training_framework.config.loading.ConfigModel` raises these on construction and on
assignment; :class:`FieldIssues` keeps the (path, message) pairs so that an enclosing config can
prefix the paths of a nested section that failed.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from model_training_framework.config.legacy import (
    LegacyRule,
    renamed_key_hint,
)
from model_training_framework.errors import ConfigError

__all__ = [
    "FieldIssues",
    "field_issues_from",
    "format_validation_error",
    "join_field_path",
    "register_legacy_root",
    "renamed_section_key_hint",
    "validation_issues",
]

_MAX_SHOWN_INPUT = 80


class FieldIssues(ConfigError):
    """A ``ConfigError`` that carries its problems as ``(field path, message)`` pairs.

    ``str(err)`` is one line ``<field path>: <message>`` per problem. Keeping the pairs lets an
    enclosing config prefix the paths when a nested section fails inside its validation.

    Args:
        issues: ``(field path, message)`` pairs.
        unknown_keys: for issues about unknown keys, their path -> location relative to the
            model that raised, so an enclosing config can redo the suggestion with the full
            path (renamed-key hints depend on it).
    """

    def __init__(
        self,
        issues: Sequence[tuple[str, str]],
        unknown_keys: Mapping[str, tuple[str | int, ...]] | None = None,
    ) -> None:
        self.issues = list(issues)
        self.unknown_keys = dict(unknown_keys or {})
        super().__init__("\n".join(_issue_line(path, message) for path, message in self.issues))


def _issue_line(path: str, message: str) -> str:
    return f"{path}: {message}" if path else message


def join_field_path(prefix: str, part: str | int) -> str:
    """``prefix`` and ``part`` as one field path: ``a.b``, ``a[0]`` (an int part), or either alone."""
    if isinstance(part, int):
        return f"{prefix}[{part}]"
    if not prefix:
        return part
    if not part:
        return prefix
    return f"{prefix}{part}" if part.startswith("[") else f"{prefix}.{part}"


def _path_of(prefix: str, loc: Sequence[str | int]) -> str:
    path = prefix
    for part in loc:
        path = join_field_path(path, part)
    return path


def _model_class_of(annotation: Any) -> type[BaseModel] | None:
    """Return the pydantic model class inside ``annotation`` (unwrapping Optional/Union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_class_of(arg)
        if found is not None:
            return found
    return None


def _model_class_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    cls: type[BaseModel] | None = root
    for part in loc:
        if cls is None or not isinstance(part, str) or part not in cls.model_fields:
            return None
        cls = _model_class_of(cls.model_fields[part].annotation)
    return cls


# Top-level config classes with renamed keys (``_legacy_rules``), registered when defined.
_LEGACY_ROOTS: list[type[BaseModel]] = []


def register_legacy_root(cls: type[BaseModel]) -> None:
    """Make the renamed keys of top-level config ``cls`` known to its sections' messages."""
    _LEGACY_ROOTS.append(cls)


def renamed_section_key_hint(owner: type[BaseModel], key: str) -> str | None:
    """Say where an old key of section class ``owner`` went, wherever the section is used.

    The renamed keys are listed by dotted path from a top-level config (``checkpoint.
    checkpoint_dir``); this finds the rule when the section is built or assigned on its own
    (``CheckpointConfig(checkpoint_dir=...)``, ``config.checkpoint.checkpoint_dir = ...``).

    Returns:
        A hint such as ``"'checkpoint.checkpoint_dir' was renamed to 'checkpoint.root_dir'
        (...)"`` or None.
    """
    for root in _LEGACY_ROOTS:
        for rule in getattr(root, "_legacy_rules", ()):
            if rule.old_path[-1] == key and _model_class_at(root, rule.old_path[:-1]) is owner:
                return renamed_key_hint(rule.old_path, (rule,))
    return None


def _subclass_section_hint(owner: type[BaseModel], key: str) -> str | None:
    """``data:`` in a trainer config file: a section of a config class built on ``owner``."""
    subclass = getattr(owner, "_sections_of_subclasses", {}).get(key)
    if subclass is None:
        return None
    return (
        f"'{key}' is a section of {subclass}, not of {owner.__name__}: read the file with "
        f"{subclass}.from_yaml (as mtf train does), or remove the section"
    )


def _unknown_key_message(root: type[BaseModel], loc: Sequence[str | int]) -> str:
    key = str(loc[-1])
    owner = _model_class_at(root, loc[:-1])
    valid = sorted(owner.model_fields) if owner is not None else []
    rules: Sequence[LegacyRule] = getattr(root, "_legacy_rules", ())
    hint = renamed_key_hint(loc, rules)
    if hint is None and owner is not None:
        hint = renamed_section_key_hint(owner, key) or _subclass_section_hint(owner, key)
    if hint is not None:
        return f"unknown key; {hint}"
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    if close:
        return "unknown key; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    return "unknown key; valid keys here: " + ", ".join(valid)


def _shown_input(value: Any) -> str:
    if isinstance(value, (BaseModel, Mapping)):
        return ""
    text = repr(value)
    if len(text) > _MAX_SHOWN_INPUT:
        text = text[: _MAX_SHOWN_INPUT - 3] + "..."
    return f" (got {text})"


_Issue = tuple[str, str, tuple[str | int, ...] | None]  # path, message, unknown-key location


def _issues_of(err: Mapping[str, Any], root: type[BaseModel], prefix: str) -> list[_Issue]:
    loc = tuple(err["loc"])
    path = _path_of(prefix, loc)
    if err["type"] in ("extra_forbidden", "no_such_attribute"):  # a key, or an attribute set
        return [(path, _unknown_key_message(root, loc), loc)]
    cause = err.get("ctx", {}).get("error")
    if isinstance(cause, FieldIssues):  # a nested section or a cross-field rule
        issues: list[_Issue] = []
        for sub, message in cause.issues:
            sub_loc = cause.unknown_keys.get(sub)
            if sub_loc is None:
                issues.append((join_field_path(path, sub), message, None))
            else:
                full_loc = (*loc, *sub_loc)
                issues.append(
                    (join_field_path(path, sub), _unknown_key_message(root, full_loc), full_loc)
                )
        return issues
    if isinstance(cause, Exception):  # our field validators raise ValueError(message)
        return [(path or root.__name__, str(cause), None)]
    return [(path or root.__name__, f"{err['msg']}{_shown_input(err.get('input'))}", None)]


def _all_issues(error: ValidationError, root: type[BaseModel], prefix: str) -> list[_Issue]:
    return [issue for err in error.errors() for issue in _issues_of(err, root, prefix)]


def validation_issues(
    error: ValidationError, root: type[BaseModel], prefix: str = ""
) -> list[tuple[str, str]]:
    """Turn a pydantic ``ValidationError`` into ``(field path, message)`` pairs.

    Args:
        error: the error raised while validating ``root``.
        root: the model class that was validated (used to suggest keys).
        prefix: field path of ``root`` inside an enclosing config (``""`` at top level).

    Returns:
        One pair per problem, e.g. ``("performance.gradient_accumulation_steps",
        "Input should be greater than or equal to 1 (got 0)")``.
    """
    return [(path, message) for path, message, _ in _all_issues(error, root, prefix)]


def field_issues_from(
    error: ValidationError, root: type[BaseModel], prefix: str = ""
) -> FieldIssues:
    """Build the :class:`FieldIssues` exception that replaces a pydantic ``ValidationError``.

    Args:
        error: the error raised while validating ``root``.
        root: the model class that was validated.
        prefix: field path of ``root`` inside an enclosing config.

    Returns:
        The exception (to be raised ``from error``).
    """
    issues = _all_issues(error, root, prefix)
    unknown = {path: loc for path, _, loc in issues if loc is not None}
    return FieldIssues([(path, message) for path, message, _ in issues], unknown)


def format_validation_error(error: ValidationError, root: type[BaseModel], prefix: str = "") -> str:
    """Return :func:`validation_issues` as lines ``<field path>: <message>``."""
    return "\n".join(_issue_line(p, m) for p, m in validation_issues(error, root, prefix))
