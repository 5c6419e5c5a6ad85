"""Field types and per-field validators shared by the trainer config sections.

Each helper checks one value and raises ``ValueError`` with what was wrong and the fix;
pydantic turns that into a :class:`~model_training_framework.errors.ConfigError` line that
starts with the field path (see ``config/loading.py``). The sections themselves live in
:mod:`model_training_framework.trainer.config`, which re-exports these names.

Example:
    >>> check_signal_name("usr1")
    'SIGUSR1'
"""

from __future__ import annotations

import difflib
import enum
import os
import re
import signal
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from model_training_framework.config.imports import is_dotted_path

__all__ = [
    "NAME_PATTERN",
    "Choice",
    "DottedPath",
    "Name",
    "PathText",
    "PositiveFiniteFloat",
    "PositiveInt",
    "canonical_signal_name",
    "check_aggregation_fn",
    "check_device",
    "check_dotted_path",
    "check_experiment_name",
    "check_filename_template",
    "check_signal_name",
    "check_unique",
    "enum_field",
    "path_text",
]

NAME_PATTERN = r"^[A-Za-z0-9._-]+$"


def _enum_coercer(enum_cls: type[enum.Enum]) -> Callable[[Any], Any]:
    """Return a before-validator mapping a value or name string (any case) to the member."""

    def coerce(value: Any) -> Any:
        if isinstance(value, enum_cls) or not isinstance(value, str):
            return value
        key = value.strip().lower()
        for member in enum_cls:
            if key in (str(member.value).lower(), member.name.lower()):
                return member
        choices = [str(m.value) for m in enum_cls]
        close = _close_matches(key, choices)
        raise ValueError(
            f"{value!r} is not a valid {enum_cls.__name__}; expected one of "
            f"{', '.join(choices)} (value or name, any case){close}"
        )

    return coerce


def _close_matches(key: str, choices: list[str]) -> str:
    found = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    return f"; did you mean '{found[0]}'?" if found else ""


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def path_text(value: Any) -> Any:
    """Store any path-like object (``pathlib.Path``, ...) as its string, so configs stay plain.

    A leading ``~`` is the home directory, as in a shell: ``~/runs`` would otherwise be a
    directory named ``~`` in the working directory.

    Example:
        >>> from pathlib import PurePosixPath
        >>> path_text(PurePosixPath("runs/a"))
        'runs/a'
    """
    text = os.fsdecode(value) if isinstance(value, os.PathLike) else value
    return os.path.expanduser(text) if isinstance(text, str) and text.startswith("~") else text


def check_unique(values: list[str] | None) -> list[str] | None:
    """Pass ``values`` through unchanged when no name repeats.

    Raises:
        ValueError: a name occurs more than once (the repeated names are listed).
    """
    if values is not None:
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(f"names must be unique; repeated: {', '.join(duplicates)}")
    return values


def check_dotted_path(value: str) -> str:
    """Pass ``value`` through when it looks like ``"package.module.Name"``.

    Raises:
        ValueError: ``value`` is not a dotted import path.
    """
    if not is_dotted_path(value):
        raise ValueError(f"{value!r} is not a dotted import path; expected 'package.module.Name'")
    return value


# SIGINT means "interrupt" (its own status); SIGKILL and SIGSTOP cannot be caught at all.
_NOT_PREEMPTION_SIGNALS = ("SIGINT", "SIGKILL", "SIGSTOP")


def check_signal_name(value: Any) -> str:
    """Accept ``"SIGUSR1"``, ``"usr1"`` or a signal number; return the canonical name.

    Raises:
        ValueError: no such signal on this system (close matches are suggested), or a signal
            that cannot serve as the preemption warning (SIGINT, SIGKILL, SIGSTOP).
    """
    name = canonical_signal_name(value)
    if name in _NOT_PREEMPTION_SIGNALS:
        raise ValueError(
            f"{name} cannot be the preemption signal (SIGINT already means interrupt; SIGKILL and "
            "SIGSTOP cannot be caught); use SIGUSR1 (the default), SIGUSR2 or SIGTERM"
        )
    return name


def canonical_signal_name(value: Any) -> str:
    """The canonical name (``"SIGUSR1"``) of a signal given by name in any spelling or number.

    Raises:
        ValueError: no such signal on this system (close matches are suggested).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return signal.Signals(value).name
        except ValueError as err:
            raise ValueError(f"{value} is not a signal number on this system") from err
    if not isinstance(value, str):
        raise ValueError(f"expected a signal name such as 'SIGUSR1', got {value!r}")
    name = value.strip().upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name not in signal.Signals.__members__:
        known = sorted(signal.Signals.__members__)
        raise ValueError(
            f"{value!r} is not a signal on this system{_close_matches(name, known)} "
            "(e.g. SIGUSR1, SIGUSR2, SIGTERM)"
        )
    return name


MAX_DIRECTORY_NAME_BYTES = 255  # NAME_MAX of Linux, macOS and Windows filesystems


def check_experiment_name(value: str) -> str:
    """Refuse names that cannot be one directory name: only dots (``"."``, ``".."``), or longer
    than :data:`MAX_DIRECTORY_NAME_BYTES` (the pattern allows ASCII only, one byte each).

    Raises:
        ValueError: ``value`` consists of dots only or is too long.
    """
    if set(value) <= {"."}:
        raise ValueError(f"{value!r} cannot be used as a directory name; use letters or digits")
    if len(value.encode("utf-8")) > MAX_DIRECTORY_NAME_BYTES:
        raise ValueError(
            f"{value[:40]!r}... has {len(value)} characters, but it names the run directory and "
            f"a directory name holds at most {MAX_DIRECTORY_NAME_BYTES}; use a shorter name"
        )
    return value


def check_device(value: str) -> str:
    """Accept ``"auto"`` or a torch device string such as ``"cpu"``, ``"cuda:1"``.

    Raises:
        ValueError: ``value`` is not of that form.
    """
    if not re.fullmatch(r"auto|[a-z][a-z_]*(:\d+)?", value):
        raise ValueError(
            f"{value!r} is not a device; expected 'auto', 'cpu', 'cuda', 'cuda:<index>', 'mps', ..."
        )
    return value


def check_filename_template(value: str) -> str:
    """Accept a checkpoint file name template with ``{step}`` (and optionally ``{epoch}``).

    Raises:
        ValueError: no ``{step}``, a directory part, or an unknown placeholder.
    """
    if "{step}" not in value:
        raise ValueError(f"{value!r} must contain '{{step}}' so that file names are unique")
    if "/" in value or "\\" in value:
        raise ValueError(f"{value!r} must be a file name without directories")
    try:
        value.format(epoch=0, step=0)
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(
            f"{value!r} may only use the placeholders {{epoch}} and {{step}} ({err!r})"
        ) from err
    return value


def check_aggregation_fn(value: Any) -> Any:
    """Accept None, a callable, or the dotted path of one.

    Raises:
        ValueError: anything else.
    """
    if value is None or callable(value):
        return value
    if isinstance(value, str):
        return check_dotted_path(value)
    raise ValueError(
        f"expected a callable or its dotted path 'package.module.function', got {value!r}"
    )


Name = Annotated[str, Field(pattern=NAME_PATTERN)]
PositiveInt = Annotated[int, Field(ge=1)]
PositiveFiniteFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
DottedPath = Annotated[str, AfterValidator(check_dotted_path)]
PathText = Annotated[str, BeforeValidator(path_text)]
"""A file or directory path: a ``str`` or any ``os.PathLike``, stored as ``str``."""
Choice = BeforeValidator(_lower)


def enum_field(enum_cls: type[enum.Enum]) -> BeforeValidator:
    """Return a pydantic before-validator that accepts a member, its value or its name (any case).

    Example:
        >>> from pydantic import TypeAdapter
        >>> class Color(str, enum.Enum):
        ...     RED = "red"
        >>> TypeAdapter(Annotated[Color, enum_field(Color)]).validate_python("RED")
        <Color.RED: 'red'>
    """
    return BeforeValidator(_enum_coercer(enum_cls))
