"""PURE: the base of the config enums, read from a member's value or name in any case.

Config fields already accept ``"weighted"`` or ``"WEIGHTED"``; the enums themselves do too, so
``SamplingStrategy(args.strategy)`` works for either spelling.

Example:
    >>> class Color(AnyCaseEnum):
    ...     DARK_RED = "dark_red"
    >>> Color("DARK_RED") is Color("Dark_Red") is Color.DARK_RED
    True
"""

from __future__ import annotations

from enum import Enum

__all__ = ["AnyCaseEnum"]


class AnyCaseEnum(str, Enum):
    """A str-valued enum whose constructor also takes a member's name, in any case."""

    @classmethod
    def _missing_(cls, value: object) -> AnyCaseEnum | None:
        if isinstance(value, str):
            wanted = value.strip().lower()
            for member in cls:
                if wanted in (member.value.lower(), member.name.lower()):
                    return member
        return None
