"""Machinery shared by every config model: error messages, dict/YAML conversion, dotted paths.

* :class:`ConfigModel` is the base of every config section. It turns pydantic's
  ``ValidationError`` into :class:`~model_training_framework.errors.ConfigError` whose lines read
  ``<field path>: <what was wrong> (got <value>)``, on construction *and* on assignment, and
  suggests close matches for unknown keys (the messages are built in :mod:`.messages`, whose
  names are re-exported here). Cross-field checks live in ``_cross_field_issues()``;
  they run at construction and in ``validate_for_fit()``, never on a single assignment.
* :class:`SerializableConfig` adds ``from_dict``/``from_yaml``/``to_dict``/``to_yaml`` for the
  top-level configs (renamed keys are migrated by :mod:`.legacy` first).
* :func:`import_object` / :func:`dotted_path_of` (from :mod:`.imports`) convert between objects
  and ``"pkg.mod.name"``; they are re-exported here.

Example:
    >>> from model_training_framework.trainer import GenericTrainerConfig
    >>> cfg = GenericTrainerConfig.from_dict({"seed": 3})
    >>> GenericTrainerConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, model_validator
from typing_extensions import Self

from model_training_framework.config.imports import dotted_path_of, import_object, is_dotted_path
from model_training_framework.config.legacy import (
    LegacyRule,
    migrate_legacy_keys,
)
from model_training_framework.config.messages import (
    FieldIssues,
    field_issues_from,
    format_validation_error,
    join_field_path,
    register_legacy_root,
    renamed_section_key_hint,
    validation_issues,
)
from model_training_framework.errors import ConfigError
from model_training_framework.io_utils import atomic_write_text

__all__ = [
    "ConfigDumper",
    "ConfigLoader",
    "ConfigModel",
    "FieldIssues",
    "SerializableConfig",
    "dotted_path_of",
    "field_issues_from",
    "format_validation_error",
    "import_object",
    "is_dotted_path",
    "to_plain",
    "validation_issues",
]


# ----------------------------------------------------------------------------- plain data


def to_plain(value: Any, path: str = "") -> Any:
    """Convert a ``model_dump()`` result into YAML-safe plain Python types.

    Enums become their values, tuples become lists, paths become strings and callables become
    their dotted path.

    Args:
        value: the value to convert.
        path: field path used in error messages.

    Returns:
        The converted value (dicts, lists, str, int, float, bool and None only).

    Raises:
        ConfigError: when a value has no plain representation (the message names its path).
    """
    if isinstance(value, enum.Enum):
        return to_plain(value.value, path)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): to_plain(v, join_field_path(path, str(k))) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Path):
        return str(value)
    if callable(value):
        try:
            return dotted_path_of(value)
        except ValueError as err:
            raise ConfigError(f"{path}: {err}") from err
    raise ConfigError(
        f"{path}: a {type(value).__name__} cannot be written to a config file; "
        "use plain values (numbers, strings, lists, mappings)"
    )


# ----------------------------------------------------------------------------- base models


class ConfigModel(BaseModel):
    """Base of every config section: validated on construction and on assignment.

    Subclasses list cross-field problems in :meth:`_cross_field_issues`; they are checked when
    the model is built and by :meth:`validate_for_fit`, never on a single assignment, so that
    dependent fields can be set one after the other.
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    # Where this section sits inside an enclosing config, for error messages; "" at top level.
    _field_path: str = PrivateAttr(default="")

    def __init__(self, /, **data: Any) -> None:
        # pydantic also calls this __init__ for nested sections: FieldIssues keeps the paths
        # structured so that the enclosing config can prefix them.
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise field_issues_from(err, type(self)) from err

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as err:
            raise field_issues_from(err, type(self), self._field_path) from err
        if name in type(self).model_fields:
            child = getattr(self, name)
            if isinstance(child, ConfigModel):
                child._set_field_path(join_field_path(self._field_path, name))

    if not TYPE_CHECKING:  # pydantic's __getattr__ (private attributes) is runtime-only too

        def __getattr__(self, name: str) -> Any:
            try:
                return super().__getattr__(name)
            except AttributeError as err:
                # `config.multi`, as the reference guide writes the renames: name the new key.
                hint = None if name.startswith("_") else renamed_section_key_hint(type(self), name)
                if hint is None:
                    raise
                raise AttributeError(f"{err}; {hint}") from None

    @model_validator(mode="before")
    @classmethod
    def _null_sections_are_defaults(cls, data: Any) -> Any:
        # A section written as `slurm:` (nothing under it) or `slurm: null` means its defaults;
        # so does a list or mapping that is empty by default (`hook_classes:` with every entry
        # commented out means no hooks).
        if not isinstance(data, Mapping):
            return data
        nulls = [name for name in _null_means_default(cls) if name in data and data[name] is None]
        return {k: v for k, v in data.items() if k not in nulls} if nulls else data

    def __eq__(self, other: object) -> bool:
        # Field values only: the private field path must not make equal configs differ.
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in type(self).model_fields)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def model_post_init(self, context: Any, /) -> None:
        """Record child field paths and run the cross-field checks (construction only)."""
        self._set_field_path(self._field_path)
        issues = self._cross_field_issues()
        if issues:
            raise FieldIssues(issues)

    def _set_field_path(self, path: str) -> None:
        self._field_path = path
        for name in type(self).model_fields:
            child = getattr(self, name)
            if isinstance(child, ConfigModel):
                child._set_field_path(join_field_path(path, name))

    def _cross_field_issues(self) -> list[tuple[str, str]]:
        """Return ``(field, message)`` pairs for rules that involve several fields."""
        return []

    def validate_for_fit(self) -> None:
        """Re-run every per-field and cross-field check on the current values.

        Use it after a series of assignments (or in-place edits of lists) to confirm that the
        whole config is consistent.

        Raises:
            ConfigError: listing every problem with its field path.
        """
        try:
            type(self).model_validate(self.model_dump())
        except ValidationError as err:
            raise field_issues_from(err, type(self), self._field_path) from err


@functools.cache
def _null_means_default(cls: type[ConfigModel]) -> tuple[str, ...]:
    """Fields of ``cls`` for which None (YAML ``key:`` with nothing under it) means the
    default: a section (a ``ConfigModel``, not optional) with a default, and a list or mapping
    (not optional) that is empty by default."""
    return tuple(
        name
        for name, info in cls.model_fields.items()
        if (
            isinstance(info.annotation, type)
            and issubclass(info.annotation, ConfigModel)
            and not info.is_required()
        )
        or (info.default_factory in (list, dict) and type(None) not in get_args(info.annotation))
    )


class SerializableConfig(ConfigModel):
    """A top-level config that converts to and from plain dicts and YAML files."""

    _legacy_rules: ClassVar[tuple[LegacyRule, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "_legacy_rules" in cls.__dict__:  # its sections' messages name the renamed keys
            register_legacy_root(cls)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build a config from a plain mapping (e.g. parsed YAML).

        Renamed keys are migrated first (with a ``DeprecationWarning``).

        Args:
            data: nested mapping of field names to values; enums may be given as strings.

        Returns:
            The validated config.

        Raises:
            ConfigError: for unknown keys (with close matches), invalid values or conflicting
                old/new keys; each line names the field path.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
        migrated = migrate_legacy_keys(data, cls._legacy_rules)
        try:
            return cls.model_validate(migrated)
        except ValidationError as err:
            raise field_issues_from(err, cls) from err

    @classmethod
    def from_yaml(cls, path: str | Path) -> Self:
        """Read a config from a YAML file (plain YAML only; no Python tags).

        Args:
            path: the YAML file. An empty file gives the defaults.

        Returns:
            The validated config.

        Raises:
            FileNotFoundError: when ``path`` does not exist.
            ConfigError: for YAML syntax errors or invalid contents; the message names the file.
        """
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        try:
            data = yaml.load(text, Loader=ConfigLoader)  # a SafeLoader subclass: no Python tags
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: invalid YAML: {err}") from err
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {data!r}")
        try:
            return cls.from_dict(data)
        except ConfigError as err:
            raise ConfigError(f"{path}:\n{err}") from err

    def to_dict(self) -> dict[str, Any]:
        """Return the config as plain Python types (enums as their string values).

        Returns:
            A nested dict that ``yaml.safe_dump`` can write and ``from_dict`` reads back equal.

        Raises:
            ConfigError: when a value cannot be represented (e.g. a lambda as aggregation_fn).
        """
        return to_plain(self.model_dump(), self._field_path)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """Write the config as plain YAML (a ``yaml.SafeDumper``: no Python tags); return the text.

        Args:
            path: file to write (parent directories are created); None only returns the text.

        Returns:
            The YAML text.

        Raises:
            ConfigError: when a value cannot be represented in YAML.
        """
        text = yaml.dump(self.to_dict(), Dumper=ConfigDumper, sort_keys=False, allow_unicode=True)
        if path is not None:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(target, text)
        return text


# NOTE [YAML numbers]: PyYAML follows YAML 1.1, where `1e-3` is a string and `1:30` is the
# sexagesimal int 90. ML configs expect YAML 1.2 numbers, so our loader reads `1e-3` as a float
# and `1:30` as a string. Our dumper quotes every string that *either* rule set would read as a
# number, so the files we write read back the same with our loader and with yaml.safe_load.
_FLOAT_12 = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.VERBOSE,
)
_INT_NO_SEXAGESIMAL = re.compile(
    r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"
)
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_NUMBER_START = list("-+0123456789.")


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 numbers (see NOTE [YAML numbers]): no Python tags.

    Example:
        >>> yaml.load("{lr: 1e-3, time: 1:30}", Loader=ConfigLoader)
        {'lr': 0.001, 'time': '1:30'}
    """


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag not in _NUMBER_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver(_NUMBER_TAGS[0], _INT_NO_SEXAGESIMAL, _NUMBER_START)
ConfigLoader.add_implicit_resolver(_NUMBER_TAGS[1], _FLOAT_12, _NUMBER_START)


class ConfigDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that also quotes strings :class:`ConfigLoader` would read as numbers.

    Example:
        >>> yaml.dump({"act": "1e-3"}, Dumper=ConfigDumper).strip()
        "act: '1e-3'"
    """


ConfigDumper.add_implicit_resolver(_NUMBER_TAGS[1], _FLOAT_12, _NUMBER_START)
