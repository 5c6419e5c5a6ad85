"""Checkpoint file names: the periodic-checkpoint template, the latest pointer and best.ckpt.

``checkpoint.filename_template`` names the periodic checkpoints (``epoch_{epoch}_step_{step}.ckpt``
by default); :class:`FilenamePattern` formats it and recognises the names it produced, so a run
directory's checkpoints can be listed and ordered by step. ``latest.ckpt`` and ``best.ckpt`` are
reserved.
"""

from __future__ import annotations

import os
import re
import string
from pathlib import Path

__all__ = ["BEST_NAME", "LATEST_NAME", "FilenamePattern"]

LATEST_NAME = "latest.ckpt"
BEST_NAME = "best.ckpt"
_TEMPLATE_FIELDS = ("epoch", "step")


class FilenamePattern:
    """Formats ``filename_template`` and recognises (and parses) the names it produces.

    Args:
        template: ``checkpoint.filename_template``.

    Raises:
        ValueError: The template lacks ``{step}``, uses another field, or is not a plain name.
    """

    def __init__(self, template: str) -> None:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        unknown = sorted(set(fields) - set(_TEMPLATE_FIELDS))
        if unknown or "step" not in fields:
            raise ValueError(
                f"checkpoint.filename_template {template!r} must contain {{step}} and may "
                f"contain only {{epoch}} and {{step}} (found {fields}); "
                "e.g. 'epoch_{epoch}_step_{step}.ckpt'"
            )
        if "/" in template or os.sep in template or template.startswith("."):
            raise ValueError(
                f"checkpoint.filename_template {template!r} must be a plain file name "
                "(no directory separators, not starting with '.')"
            )
        self.template = template
        self._regex = re.compile(self._to_regex(template))

    @staticmethod
    def _to_regex(template: str) -> str:
        parts, seen = [], set()
        for literal, field, _, _ in string.Formatter().parse(template):
            parts.append(re.escape(literal))
            if field is not None:
                parts.append(r"-?\d+" if field in seen else rf"(?P<{field}>-?\d+)")
                seen.add(field)
        return "^" + "".join(parts) + "$"

    def format(self, *, epoch: int, step: int) -> str:
        name = self.template.format(epoch=epoch, step=step)
        if name in (LATEST_NAME, BEST_NAME):
            raise ValueError(f"checkpoint.filename_template produced the reserved name {name!r}")
        return name

    def sort_key(self, path: Path) -> tuple[int, int, str] | None:
        """(step, epoch, name) for a periodic checkpoint name, None for any other file."""
        match = self._regex.match(path.name)
        if match is None or path.name in (LATEST_NAME, BEST_NAME):
            return None
        groups = match.groupdict()
        return int(groups["step"]), int(groups.get("epoch") or 0), path.name
