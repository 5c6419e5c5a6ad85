"""Load and save experiment config files (YAML or JSON by extension) with ``${ENV}`` expansion.

String values may refer to environment variables: ``${DATA_ROOT}`` is replaced by the
variable's value and ``${DATA_ROOT:-/tmp/data}`` falls back to the default when the variable is
unset or empty; ``$${X}`` stays as the literal text ``${X}``. Substituted values stay strings
(typed config fields convert them, e.g. ``lr: "${LR:-0.001}"`` becomes a float). An unset
variable without a default is a :class:`~model_training_framework.errors.ConfigError` that names
the variable and where it was used. YAML is read like experiment configs are (``1e-3`` is a
float, as in YAML 1.2).

Example:
    >>> substitute_env_vars({"root": "${HOME_X:-/data}/runs"}, environ={})
    {'root': '/data/runs'}
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from model_training_framework.config.loading import ConfigDumper, ConfigLoader
from model_training_framework.errors import ConfigError
from model_training_framework.io_utils import atomic_write_text

if TYPE_CHECKING:
    from model_training_framework.experiment.config import ExperimentConfig

__all__ = [
    "CONFIG_SUFFIXES",
    "ConfigurationManager",
    "dump_config_text",
    "read_config_file",
    "substitute_env_vars",
    "write_config_file",
]

logger = logging.getLogger(__name__)

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
_ENV_REFERENCE = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        raise ConfigError(
            f"{path}: unsupported config file extension {suffix!r}; use one of {list(CONFIG_SUFFIXES)}"
        )
    return "json" if suffix == ".json" else "yaml"


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON file (chosen by extension) whose top level is a mapping.

    Args:
        path: File path ending in ``.yaml``, ``.yml`` or ``.json``.

    Returns:
        The parsed mapping (empty for an empty YAML file).

    Raises:
        ConfigError: Missing file, unsupported extension, invalid syntax, or a top level that
            is not a mapping.
    """
    file_path = Path(path)
    kind = _format_of(file_path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(f"config file {file_path} does not exist") from err
    try:
        data = json.loads(text) if kind == "json" else yaml.load(text, Loader=ConfigLoader)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{file_path}: invalid {kind.upper()}: {err}") from err
    if data is None and kind == "yaml":
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{file_path}: the top level must be a mapping of keys, got {type(data).__name__}"
        )
    return data


def dump_config_text(data: Mapping[str, Any], kind: str) -> str:
    """Render ``data`` as plain YAML (no Python tags, key order kept) or indented JSON.

    Raises:
        ConfigError: A value cannot be represented in plain YAML/JSON (e.g. a function).
    """
    try:
        if kind == "json":
            return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=True) + "\n"
        # ConfigDumper quotes strings our loader would read as numbers ("1e-3" stays a string).
        return yaml.dump(dict(data), Dumper=ConfigDumper, sort_keys=False, allow_unicode=True)
    except (TypeError, ValueError, yaml.representer.RepresenterError) as err:
        raise ConfigError(
            f"cannot write config as {kind.upper()}: {err}; only plain values (numbers, strings, "
            "booleans, None, lists, mappings) can be saved"
        ) from err


def write_config_file(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` atomically as YAML or JSON (by extension), creating parent directories.

    Returns:
        The written path.

    Raises:
        ConfigError: Unsupported extension or a value that plain YAML/JSON cannot hold.
    """
    file_path = Path(path)
    text = dump_config_text(data, _format_of(file_path))
    file_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(file_path, text)
    return file_path


def _substitute_text(text: str, environ: Mapping[str, str], where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        escaped, name, default = match.groups()
        if escaped:
            return match.group(0)[1:]
        value = environ.get(name)
        if default is not None:
            return value or default  # ':-' semantics: unset or empty takes the default
        if value is not None:
            return value
        raise ConfigError(
            f"{where}: environment variable {name} is not set; export {name}=... or write "
            f"${{{name}:-default}} in the config"
        )

    return _ENV_REFERENCE.sub(replace, text)


def substitute_env_vars(
    data: Any, environ: Mapping[str, str] | None = None, *, where: str = "config"
) -> Any:
    """Return ``data`` with ``${VAR}`` / ``${VAR:-default}`` replaced in every string value.

    Keys are left alone; lists and mappings are walked recursively; the input is not changed.

    Args:
        data: Parsed config (mapping, list or scalar).
        environ: Variables to use (default ``os.environ``).
        where: Prefix for error messages (file name or field path).

    Returns:
        A new structure with substituted strings.

    Raises:
        ConfigError: A variable is unset and has no default; the message names it and the field.
    """
    env = os.environ if environ is None else environ
    if isinstance(data, str):
        return _substitute_text(data, env, where)
    if isinstance(data, Mapping):
        return {k: substitute_env_vars(v, env, where=f"{where}.{k}") for k, v in data.items()}
    if isinstance(data, list):
        return [substitute_env_vars(v, env, where=f"{where}[{i}]") for i, v in enumerate(data)]
    return data


class ConfigurationManager:
    """Finds, loads and saves experiment configs of a project.

    Relative paths are looked up in ``config_dir`` first, then in ``project_root``; a bare name
    without extension tries ``.yaml``, ``.yml`` and ``.json``.

    Args:
        project_root: The project directory.
        config_dir: Where configs live (default ``<project_root>/configs``; relative paths are
            taken under ``project_root``).
        environ: Environment for ``${VAR}`` substitution (default ``os.environ``; tests pass a
            dict).

    Example:
        >>> manager = ConfigurationManager(".")
        >>> manager.config_dir.name
        'configs'
    """

    def __init__(
        self,
        project_root: str | Path,
        config_dir: str | Path | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.project_root = Path(project_root).resolve()
        chosen = Path(config_dir) if config_dir is not None else Path("configs")
        self.config_dir = chosen if chosen.is_absolute() else self.project_root / chosen
        self._environ = environ

    def resolve_path(self, name_or_path: str | Path) -> Path:
        """Return the existing file ``name_or_path`` refers to.

        Raises:
            ConfigError: Nothing matches; the message lists the places searched.
        """
        given = Path(name_or_path)
        candidates = (
            [given] if given.is_absolute() else [self.config_dir / given, self.project_root / given]
        )
        if not given.suffix:
            candidates = [c.with_name(c.name + s) for c in candidates for s in CONFIG_SUFFIXES]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        searched = ", ".join(str(c) for c in candidates)
        raise ConfigError(f"config {str(name_or_path)!r} not found; looked for: {searched}")

    def load_config_dict(self, name_or_path: str | Path) -> dict[str, Any]:
        """Read a config file and substitute environment variables; no validation.

        Raises:
            ConfigError: File not found or unreadable, or an unset variable without default.
        """
        path = self.resolve_path(name_or_path)
        return substitute_env_vars(read_config_file(path), self._environ, where=str(path))

    def load_config(self, name_or_path: str | Path) -> ExperimentConfig:
        """Load, substitute and validate an :class:`ExperimentConfig`.

        Raises:
            ConfigError: As :meth:`load_config_dict`, or the content is invalid (the message
                starts with the file path and names each bad field).
        """
        from model_training_framework.experiment.config import ExperimentConfig

        path = self.resolve_path(name_or_path)
        data = substitute_env_vars(read_config_file(path), self._environ, where=str(path))
        try:
            return ExperimentConfig.from_dict(data)
        except ValueError as err:  # ConfigError and pydantic's ValidationError are ValueErrors
            raise ConfigError(f"{path}: invalid experiment config:\n{err}") from err

    def save_config(self, config: ExperimentConfig | Mapping[str, Any], path: str | Path) -> Path:
        """Write a config (``ExperimentConfig`` or mapping) as YAML/JSON by extension.

        Relative paths are written under ``config_dir``. Returns the written path.

        Raises:
            ConfigError: Unsupported extension or unserialisable values.
        """
        target = Path(path)
        target = target if target.is_absolute() else self.config_dir / target
        data = config if isinstance(config, Mapping) else config.to_dict()
        written = write_config_file(target, data)
        logger.info("saved config to %s", written)
        return written

    def list_configs(self) -> list[Path]:
        """Return the config files directly in ``config_dir``, sorted by name."""
        if not self.config_dir.is_dir():
            return []
        return sorted(p for p in self.config_dir.iterdir() if p.suffix.lower() in CONFIG_SUFFIXES)
