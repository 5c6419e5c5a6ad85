"""What a checkpoint payload may hold: values that load with ``torch.load(weights_only=True)``.

:func:`check_payload_types` walks a payload before it is written and names the first value that
would not load with torch's restricted unpickler; :data:`MAPPING_TYPES` and
:data:`SEQUENCE_TYPES` are the containers it walks (the CPU snapshot walks the same ones).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any

import torch

from model_training_framework.errors import CheckpointError

__all__ = ["MAPPING_TYPES", "SEQUENCE_TYPES", "check_payload_types"]

# Exact types (not isinstance): a str-Enum member is a str but does not load with weights_only.
_PLAIN_LEAF_TYPES = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    torch.dtype,
    torch.device,
    torch.Size,
)
_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)
MAPPING_TYPES = (dict, collections.OrderedDict)
SEQUENCE_TYPES = (list, tuple, set)


def check_payload_types(payload: Mapping[str, Any]) -> None:
    """Check that ``payload`` holds only values that load with ``weights_only=True``.

    Allowed: tensors, ``None``, bool, int, float, complex, str, bytes, ``torch.dtype``,
    ``torch.device``, ``torch.Size``, and dict/OrderedDict/list/tuple/set of these.

    Args:
        payload: The checkpoint payload.

    Raises:
        CheckpointError: Names the first offending entry by its key path and type.
    """
    stack: list[tuple[str, Any]] = [("payload", payload)]
    while stack:
        where, value = stack.pop()
        kind = type(value)
        if kind in _TENSOR_TYPES or kind in _PLAIN_LEAF_TYPES:
            continue
        if kind in MAPPING_TYPES:
            for key, item in value.items():
                if type(key) not in _PLAIN_LEAF_TYPES:
                    raise _type_error(f"{where} key {key!r}", key)
                stack.append((f"{where}[{key!r}]", item))
        elif kind in SEQUENCE_TYPES:
            stack.extend((f"{where}[{idx}]", item) for idx, item in enumerate(value))
        else:
            raise _type_error(where, value)


def _type_error(where: str, value: Any) -> CheckpointError:
    kind = type(value)
    return CheckpointError(
        f"{where} is a {kind.__module__}.{kind.__qualname__}, which checkpoints do not store "
        "(they must load with torch.load(weights_only=True)); make the state_dict() that "
        "produced it return tensors, None, bool, int, float, str or bytes, or lists, tuples "
        "and dicts of these (e.g. float(x) for a NumPy scalar, torch.from_numpy(a) for an "
        "array, member.value for an Enum)"
    )
