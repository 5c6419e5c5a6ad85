"""Small helpers for user-facing text (PURE: standard library only)."""

from __future__ import annotations

__all__ = ["counted"]


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` followed by ``noun`` in the singular or the plural, as a user reads it.

    Args:
        count: How many.
        noun: The singular noun.
        plural: The plural when it is not ``noun + "s"``.

    Example:
        >>> counted(1, "epoch"), counted(3, "epoch"), counted(0, "entry", "entries")
        ('1 epoch', '3 epochs', '0 entries')
    """
    return f"{count} {noun if count == 1 else (plural or noun + 's')}"
