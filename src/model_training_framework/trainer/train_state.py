"""The training loop's counters: where a run is, saved with every checkpoint.

``TrainState`` is the one home of the loop's progress. The trainer's public ``global_step``,
``current_epoch`` and ``skipped_nonfinite`` read it, hooks see it through them, and a
checkpoint stores its fields as the ``"train_state"`` entry of the state registry
(``state/payload.py``); files of format version 1, which kept them in a ``"trainer"`` dict,
are upgraded when read (``state/layout.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["TrainState"]

# Absent from checkpoints written before early stops (or validations cut short) were recorded:
# those did not stop early and owe no validation.
_OPTIONAL = {"stopped_early_under": None, "pending_validation": None}


@dataclass
class TrainState:
    """The loop's progress; ``state_dict()`` is exactly these fields.

    Attributes:
        epoch: completed epochs (the epoch being trained, 0-based).
        global_step: optimizer steps taken, over all resumes.
        epoch_fresh: the current epoch has not begun (its ``on_epoch_start`` is still due).
        skipped_nonfinite: windows dropped by ``on_nonfinite_loss="skip"``.
        last_metrics: the last logged value of every metric key.
        stopped_early_under: the limits (``max_epochs``, ``max_steps``) under which the run
            stopped early, so that a rerun with the same limits returns at once; None when it
            did not stop early.
        pending_validation: ``"step"`` or ``"epoch"`` when a stop request cut short the
            validation of this step boundary or epoch end: a resumed run redoes it first (see
            NOTE [validation cut short] in loop.py); None otherwise.
    """

    epoch: int = 0
    global_step: int = 0
    epoch_fresh: bool = True
    skipped_nonfinite: int = 0
    last_metrics: dict[str, float] = field(default_factory=dict)
    stopped_early_under: dict[str, int | None] | None = None
    pending_validation: str | None = None

    def state_dict(self) -> dict[str, Any]:
        """The fields, as plain values (copies: later steps do not change a saved state)."""
        return asdict(self)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the fields from ``state`` (keys of other parts of the payload are ignored).

        Raises:
            KeyError: a field other than ``stopped_early_under`` or ``pending_validation``
                is missing.
        """
        values = {}
        for item in fields(self):
            if item.name in state:
                value = state[item.name]
            elif item.name in _OPTIONAL:
                value = _OPTIONAL[item.name]
            else:
                raise KeyError(item.name)
            values[item.name] = dict(value) if isinstance(value, Mapping) else value
        for name, value in values.items():  # all or nothing
            setattr(self, name, value)
