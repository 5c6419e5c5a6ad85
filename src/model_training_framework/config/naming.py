"""PURE: experiment names for sweeps (standard library only).

# NOTE [experiment names]: an experiment's name is also its run directory
# (``<checkpoint.root_dir>/<name>/``), so auto-resume after a requeue finds the right checkpoint
# only if the *same swept values always give the same name* and *different values never share
# one*. Every name therefore
#   - uses only ``[A-Za-z0-9._-]`` and has at most :data:`MAX_NAME_LENGTH` characters;
#   - is a function of (base name, {key: value}) alone: no counters, no dependence on the order in
#     which the grid was built (keys are written sorted) -- except TIMESTAMP_BASED, by design;
#   - encodes values losslessly (:func:`encode_value` is injective: ``10.0`` / ``100.0``,
#     ``0.0`` / ``0``, ``True`` / ``"True"`` all differ);
#   - is parseable back into its (key, value) tokens: parameters are separated by ``_``, neither
#     key abbreviations nor encoded values contain ``_``, and abbreviations contain no ``-``, so
#     ``<abbrev>-<value>`` splits at its first ``-``. With abbreviations that are unique over the
#     sweep's keys (:func:`abbreviate_keys`) this makes PARAMETER_BASED names injective.
# A readable name of 120 characters or more is cut and gets ``_<12 hex sha256>`` of the full
# assignment, which makes it exactly 120 long; readable names that fit are at most 119 long, so
# the two kinds can never coincide. A clash that is left (a hash collision, or two grids giving
# the very same values) is an error from :func:`name_experiments`, never an overwrite. So are two
# names that differ only in case (``k-True`` for the string, ``k-true`` for the bool, or
# ``act-ReLU`` / ``act-relu``): a case-insensitive filesystem (macOS, Windows) makes them one
# directory. Encoding case away instead would rename every existing experiment with a capital.

Example:
    >>> make_experiment_name("base", {"optimizer.lr": 0.001, "data.batch_size": 32})
    'base_bs-32_lr-0.001'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from model_training_framework.config.enums import AnyCaseEnum
from model_training_framework.errors import ConfigError

__all__ = [
    "MAX_NAME_LENGTH",
    "NAME_PATTERN",
    "NamingStrategy",
    "abbreviate_keys",
    "assignment_hash",
    "canonical_text",
    "encode_value",
    "make_experiment_name",
    "name_experiments",
    "sanitize_base_name",
]

MAX_NAME_LENGTH = 120
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
_HASH_LENGTH = 12
_SIMPLE_STRING = re.compile(r"^[A-Za-z][A-Za-z0-9.-]*$")
_RESERVED_WORDS = frozenset({"none", "true", "false", "nan", "inf"})
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
_KNOWN_ABBREVIATIONS = {
    "learning_rate": "lr",
    "batch_size": "bs",
    "weight_decay": "wd",
    "max_epochs": "ep",
    "epochs": "ep",
    "max_steps": "steps",
    "dropout": "do",
    "momentum": "mom",
    "gradient_accumulation_steps": "gas",
    "num_layers": "nl",
    "hidden_size": "hs",
    "hidden": "hid",
    "seed": "seed",
}


class NamingStrategy(AnyCaseEnum):
    """How experiment names are built from the base name and the swept values.

    ``PARAMETER_BASED``: readable, ``<base>_<abbrev>-<value>_...`` (keys sorted).
    ``HASH_BASED``: ``<base>_<12 hex sha256 of the swept values>``.
    ``TIMESTAMP_BASED``: ``<base>_<YYYYmmdd-HHMMSS>_<index>``; the only strategy whose names
    change between sweeps, so a requeued experiment cannot find its checkpoint by name.
    Strings are accepted in any case (``"hash_based"``, ``"HASH_BASED"``).
    """

    PARAMETER_BASED = "parameter_based"
    HASH_BASED = "hash_based"
    TIMESTAMP_BASED = "timestamp_based"

    @classmethod
    def parse(cls, value: NamingStrategy | str) -> NamingStrategy:
        """Return the strategy for an enum member or its name/value in any case.

        Raises:
            ConfigError: ``value`` names no strategy; the message lists the valid ones.
        """
        try:
            return cls(value)
        except ValueError as err:
            valid = ", ".join(member.value for member in cls)
            raise ConfigError(f"naming strategy {value!r} is unknown; use one of: {valid}") from err


def canonical_text(value: Any) -> str:
    """Return a deterministic text that identifies ``value`` exactly (type included).

    Supports None, bool, int, float, str and lists, tuples and dicts of those.

    Raises:
        ConfigError: ``value`` (or something inside it) has another type; such values have no
            stable text form (their ``repr`` may contain memory addresses).
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(canonical_text(item) for item in value) + "]"
    if isinstance(value, tuple):
        return "(" + ",".join(canonical_text(item) for item in value) + ")"
    if isinstance(value, dict):
        items = sorted((canonical_text(k), canonical_text(v)) for k, v in value.items())
        return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
    raise ConfigError(
        f"sweep value {value!r} has type {type(value).__name__}; experiment names and manifests "
        "need plain values (None, bool, int, float, str, or lists/dicts of them)"
    )


def assignment_hash(parameters: Mapping[str, Any], length: int = _HASH_LENGTH) -> str:
    """Return the first ``length`` hex digits of the sha256 of the sorted (key, value) pairs."""
    text = ";".join(
        f"{canonical_text(k)}={canonical_text(parameters[k])}" for k in sorted(parameters)
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _escape_text(text: str) -> str:
    """Map any text injectively to ``[A-Za-z0-9.-]``: ASCII letters/digits stay, others -> -hex."""
    return "".join(char if char in _ALNUM else f"-{ord(char):x}." for char in text)


def encode_value(value: Any) -> str:
    """Encode a swept value for a name: lossless, safe characters only, never contains ``_``.

    None -> ``none``; bools -> ``true``/``false``; ints -> ``32``, ``-5``; floats -> shortest
    round-trip form (``0.001``, ``10.0``, ``1e-05``, ``1e16``, ``nan``, ``-inf``); strings that
    start with a letter, use only ``[A-Za-z0-9.-]`` and are not one of the words above stay as
    they are (``adamw``, ``True``); other strings become ``.`` + escaped text (``"a/b"`` ->
    ``.a-2f.b``); lists, tuples and dicts become ``..`` + escaped canonical text.

    Args:
        value: The value.

    Returns:
        The encoded text.

    Raises:
        ConfigError: ``value`` has an unsupported type (see :func:`canonical_text`).

    Example:
        >>> [encode_value(v) for v in (10.0, 100.0, 0, 0.0, True, "True", "a b")]
        ['10.0', '100.0', '0', '0.0', 'true', 'True', '.a-20.b']
    """
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value).replace("e+", "e")
    if isinstance(value, str):
        if _SIMPLE_STRING.match(value) and value not in _RESERVED_WORDS:
            return value
        return "." + _escape_text(value)
    return ".." + _escape_text(canonical_text(value))


def _abbreviate_component(component: str) -> str:
    if component in _KNOWN_ABBREVIATIONS:
        return _KNOWN_ABBREVIATIONS[component]
    words = [word for word in component.split("_") if word]
    short = "".join(word[0] for word in words) if len(words) > 1 else component
    return "".join(char for char in short if char in _ALNUM)


def _key_candidate(key: str, level: int) -> str | None:
    """Abbreviation of ``key`` from its last ``level`` components; None when not usable."""
    components = key.split(".")
    if level > len(components):
        return None
    parts = [_abbreviate_component(component) for component in components[-level:]]
    return ".".join(parts) if all(parts) else None


def _fallback_abbreviation(key: str) -> str:
    """Injective abbreviation of the whole key over ``[A-Za-z0-9.]`` (no ``-``/``_``)."""
    return "".join(char if char in _ALNUM else f".{ord(char):x}." for char in key)


def abbreviate_keys(keys: Iterable[str]) -> dict[str, str]:
    """Give every key a short abbreviation, unique among ``keys``, without ``_`` or ``-``.

    Start from the last path component (``optimizer.lr`` -> ``lr``, ``data.batch_size`` ->
    ``bs``, ``model.num_heads`` -> ``nh``); keys whose abbreviations clash take one more
    component (``model.lr`` / ``optimizer.lr`` -> ``model.lr`` / ``optimizer.lr``), and keys
    that still clash use an escaped form of the whole key. The result depends only on the set of
    keys, not on their order.

    Args:
        keys: Dotted config keys.

    Returns:
        Key -> abbreviation.
    """
    unique_keys = sorted(set(keys))
    levels = dict.fromkeys(unique_keys, 1)
    result: dict[str, str] = {}
    for _ in range(1000):  # each round moves at least one clashing key on; far more than needed
        result = {key: _abbreviation_at(key, levels[key]) for key in unique_keys}
        clashing = _clashing_keys(result)
        if not clashing:
            return result
        for key in clashing:
            levels[key] = _next_level(key, levels[key])
    raise AssertionError(f"abbreviations did not converge for keys {unique_keys}")


def _abbreviation_at(key: str, level: int) -> str:
    candidate = _key_candidate(key, level) if level > 0 else None
    return candidate if candidate is not None else _fallback_abbreviation(key)


def _next_level(key: str, level: int) -> int:
    """Next level for a clashing key; 0 means the (injective) whole-key fallback."""
    if level == 0:
        raise AssertionError(f"two keys share the injective fallback abbreviation of {key!r}")
    next_level = level + 1
    return next_level if _key_candidate(key, next_level) is not None else 0


def _clashing_keys(abbreviations: Mapping[str, str]) -> list[str]:
    owners: dict[str, list[str]] = {}
    for key, short in abbreviations.items():
        owners.setdefault(short, []).append(key)
    return [key for group in owners.values() if len(group) > 1 for key in group]


def sanitize_base_name(base_name: str) -> str:
    """Return ``base_name`` if it uses only ``[A-Za-z0-9._-]``, else an escaped form of it.

    Raises:
        ConfigError: ``base_name`` is empty.
    """
    if not base_name:
        raise ConfigError(
            "the base experiment name is empty; set experiment_name in the base config"
        )
    return base_name if NAME_PATTERN.match(base_name) else _escape_text(base_name)


def _fit_length(readable: str, parameters: Mapping[str, Any]) -> str:
    if len(readable) < MAX_NAME_LENGTH:
        return readable
    suffix = "_" + assignment_hash(parameters)
    return readable[: MAX_NAME_LENGTH - len(suffix)] + suffix


def _parameter_name(
    base: str, parameters: Mapping[str, Any], abbreviations: Mapping[str, str]
) -> str:
    tokens = [f"{abbreviations[key]}-{encode_value(parameters[key])}" for key in sorted(parameters)]
    return _fit_length("_".join([base, *tokens]), parameters)


def _truncate_base(base: str, tail: str) -> str:
    return base[: MAX_NAME_LENGTH - len(tail)] + tail


def make_experiment_name(
    base_name: str,
    parameters: Mapping[str, Any],
    strategy: NamingStrategy | str = NamingStrategy.PARAMETER_BASED,
    *,
    abbreviations: Mapping[str, str] | None = None,
    timestamp: datetime | None = None,
    index: int = 0,
) -> str:
    """Build one experiment name (see NOTE [experiment names]).

    Args:
        base_name: The base config's ``experiment_name``.
        parameters: Swept key -> value for this experiment.
        strategy: A :class:`NamingStrategy` or its name.
        abbreviations: Key -> abbreviation for the whole sweep (from :func:`abbreviate_keys` over
            every swept key); default: computed from ``parameters`` alone.
        timestamp: Sweep time for TIMESTAMP_BASED (required there).
        index: Position in the sweep for TIMESTAMP_BASED.

    Returns:
        The name: ``[A-Za-z0-9._-]``, at most :data:`MAX_NAME_LENGTH` characters.

    Raises:
        ConfigError: Unknown strategy, empty base name, a value of unsupported type, a key
            missing from ``abbreviations``, or TIMESTAMP_BASED without ``timestamp``.
    """
    chosen = NamingStrategy.parse(strategy)
    base = sanitize_base_name(base_name)
    if chosen is NamingStrategy.HASH_BASED:
        return _truncate_base(base, "_" + assignment_hash(parameters))
    if chosen is NamingStrategy.TIMESTAMP_BASED:
        if timestamp is None:
            raise ConfigError("TIMESTAMP_BASED naming needs a timestamp; pass timestamp=datetime")
        return _truncate_base(base, f"_{timestamp.strftime(_TIMESTAMP_FORMAT)}_{index:04d}")
    shorts = abbreviations if abbreviations is not None else abbreviate_keys(parameters)
    missing = sorted(set(parameters) - set(shorts))
    if missing:
        raise ConfigError(
            f"no abbreviation for swept keys {missing}; build them with abbreviate_keys"
        )
    return _parameter_name(base, parameters, shorts)


def name_experiments(
    base_name: str,
    assignments: Sequence[Mapping[str, Any]],
    strategy: NamingStrategy | str = NamingStrategy.PARAMETER_BASED,
    *,
    clock: Callable[[], datetime] | None = None,
) -> list[str]:
    """Name every experiment of a sweep and check that the names are unique.

    Args:
        base_name: The base config's ``experiment_name``.
        assignments: One mapping of swept key -> value per experiment, in sweep order.
        strategy: A :class:`NamingStrategy` or its name.
        clock: Returns the sweep time for TIMESTAMP_BASED (read once); default ``datetime.now``.

    Returns:
        One name per assignment, in the same order.

    Raises:
        ConfigError: Two experiments get the same name (same values given twice, or a hash
            collision), or names that differ only in case; the message shows both assignments.
    """
    chosen = NamingStrategy.parse(strategy)
    abbreviations = abbreviate_keys(key for assignment in assignments for key in assignment)
    timestamp = (clock or datetime.now)() if chosen is NamingStrategy.TIMESTAMP_BASED else None
    names: list[str] = []
    owners: dict[str, int] = {}  # lower-case name -> index (see NOTE [experiment names])
    for index, assignment in enumerate(assignments):
        name = make_experiment_name(
            base_name,
            assignment,
            chosen,
            abbreviations=abbreviations,
            timestamp=timestamp,
            index=index,
        )
        if name.lower() in owners:
            _raise_clash(owners[name.lower()], index, names, name, assignments)
        owners[name.lower()] = index
        names.append(name)
    return names


def _raise_clash(
    first_idx: int,
    second_idx: int,
    names: Sequence[str],
    name: str,
    assignments: Sequence[Mapping[str, Any]],
) -> None:
    first, second = dict(assignments[first_idx]), dict(assignments[second_idx])
    if names[first_idx] == name:
        raise ConfigError(
            f"experiments {first_idx} and {second_idx} of the sweep are both named {name!r} "
            f"(values {first!r} and {second!r}); remove the duplicate values from the grids or "
            "add a parameter that tells them apart"
        )
    raise ConfigError(
        f"experiments {first_idx} and {second_idx} of the sweep are named "
        f"{names[first_idx]!r} and {name!r} (values {first!r} and {second!r}), which differ "
        "only in case: on a case-insensitive filesystem (macOS, Windows) they are one run "
        "directory; sweep one of the values in a sweep with another base experiment_name"
    )
