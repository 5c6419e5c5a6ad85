"""The one dotted-path import: ``"package.module.Name"`` in a config becomes the object it names.

* :func:`import_object` imports a path and raises ``ImportError`` whose message names the path
  and what is wrong (no such module, no such attribute, a dependency of the module missing).
* :func:`dotted_path_of` is the inverse: the path under which a function or class imports again.
* :func:`import_configured` / :func:`import_callable` do the same for a config field and raise
  :class:`~model_training_framework.errors.ConfigError` prefixed with the field's path, which is
  what every config reader (hooks, validation aggregation, warm start, ``mtf train``) reports.

Example:
    >>> import_object("os.path.join").__name__
    'join'
    >>> import_callable("json.decoder", "model.factory")
    Traceback (most recent call last):
    ...
    model_training_framework.errors.ConfigError: model.factory: 'json.decoder' is a module, not a callable
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from model_training_framework.errors import ConfigError

__all__ = [
    "dotted_path_of",
    "import_callable",
    "import_configured",
    "import_object",
    "is_dotted_path",
]

_DOTTED_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_MAX_LISTED_NAMES = 30


def is_dotted_path(value: str) -> bool:
    """Return True when ``value`` looks like ``"package.module.name"`` (at least one dot)."""
    return bool(_DOTTED_PATH.match(value))


def import_object(path: str) -> Any:
    """Import the object named by a dotted path such as ``"pkg.mod.Class.method"``.

    The longest importable module prefix is imported, the rest is looked up with ``getattr``
    (so nested classes and methods work).

    Args:
        path: dotted path of a module-level object (function, class, attribute).

    Returns:
        The object.

    Raises:
        ImportError: ``path`` is no dotted path, no prefix of it is a module, or an attribute
            is missing; the message names the path and the fix.
        ModuleNotFoundError: the module exists but one of *its* imports is missing (the
            message names both the module and the missing dependency).
    """
    if not is_dotted_path(path):
        raise ImportError(f"{path!r} is not a dotted path like 'package.module.name'")
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if not _is_prefix_module(err.name, module_name):
                raise ModuleNotFoundError(
                    f"cannot import {path!r}: importing module {module_name!r} failed: {err}",
                    name=err.name,
                ) from err
            continue
        return _resolve_attributes(module, parts[split:], path)
    raise ImportError(
        f"cannot import {path!r}: there is no module {parts[0]!r}; check the spelling and that "
        "the package is importable (installed, or on the Python path: run from the project "
        "directory or set PYTHONPATH)"
    )


def dotted_path_of(obj: Any) -> str:
    """Return the dotted path ``"module.qualname"`` under which ``obj`` can be imported again.

    Args:
        obj: a module-level function or class (or a method of one).

    Returns:
        The dotted path.

    Raises:
        ValueError: for lambdas, local (nested) functions, partials and other objects that
            cannot be found again by importing their path.
    """
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname:
        raise ValueError(
            f"{obj!r} has no importable name; use a module-level function or class "
            "(or give its dotted path as a string)"
        )
    if "<lambda>" in qualname or "<locals>" in qualname:
        kind = "a lambda" if "<lambda>" in qualname else "a local function"
        raise ValueError(
            f"{module}.{qualname} is {kind} and cannot be saved to a config file; "
            "define it at module level (or give its dotted path as a string)"
        )
    path = f"{module}.{qualname}"
    try:
        found = import_object(path)
    except ImportError as err:
        raise ValueError(f"{path} cannot be imported again: {err}") from err
    if found is not obj:
        raise ValueError(f"{path} does not import back to {obj!r}; use a module-level object")
    return path


def import_configured(path: object, field: str) -> Any:
    """Import the object that the config field ``field`` names by dotted path.

    Args:
        path: the field's value; must be a dotted path string.
        field: the field's path in the config (``"hooks.hook_classes[0]"``), used in errors.

    Returns:
        The object.

    Raises:
        ConfigError: ``field: <what is wrong>`` when ``path`` is no dotted path or cannot be
            imported (including a missing dependency of the named module).
    """
    if not isinstance(path, str) or not is_dotted_path(path):
        raise ConfigError(
            f"{field}: expected a dotted path such as 'my_project.module.name', got {path!r}"
        )
    try:
        return import_object(path)
    except ImportError as err:
        raise ConfigError(f"{field}: {err}") from err


def import_callable(path: object, field: str) -> Callable[..., Any]:
    """Like :func:`import_configured`, and the object must be callable.

    Raises:
        ConfigError: as :func:`import_configured`, or ``field: 'x.y' is a T, not a callable``.
    """
    found = import_configured(path, field)
    if not callable(found):
        raise ConfigError(f"{field}: {path!r} is a {type(found).__name__}, not a callable")
    return found


def _is_prefix_module(missing: str | None, module_name: str) -> bool:
    """Whether the missing module is ``module_name`` itself or one of its parents (so a shorter
    prefix may still be the module), rather than something that module imports."""
    return missing is not None and (module_name == missing or module_name.startswith(missing + "."))


def _resolve_attributes(module: Any, names: Sequence[str], path: str) -> Any:
    obj = module
    for depth, name in enumerate(names):
        try:
            obj = getattr(obj, name)
        except AttributeError as err:
            owner = ".".join([module.__name__, *names[:depth]])
            raise ImportError(
                f"cannot import {path!r}: {owner!r} has no attribute {name!r}; "
                f"available: {_public_names(obj)}"
            ) from err
    return obj


def _public_names(obj: Any) -> str:
    public = sorted(name for name in dir(obj) if not name.startswith("_"))
    if len(public) > _MAX_LISTED_NAMES:
        return f"{public[:_MAX_LISTED_NAMES]} and {len(public) - _MAX_LISTED_NAMES} more"
    return str(public)
