"""The configured ``device``, checked against this machine before anything moves to it.

A config is written on one machine and run on another (a sweep generated on a login node runs
on GPU nodes), so a device is checked only when the trainer is built, on the machine that runs
it: a type torch does not know, or an accelerator (or index) this machine lacks, is a
``ConfigError`` that names the setting and the devices there are, instead of torch's error from
deep inside the first move to the device.
"""

from __future__ import annotations

import torch

from model_training_framework.errors import ConfigError

__all__ = ["available_devices", "checked_device"]

# Accelerator types with a torch.<type> module that answers is_available() and device_count().
_ACCELERATORS = ("cuda", "xpu", "mps", "mtia")
_FIX = "set device: 'auto' (CUDA when this machine has it, else the CPU) or 'cpu'"


def available_devices() -> list[str]:
    """The devices this machine offers: ``'cpu'``, then ``'<type>:<index>'`` per accelerator."""
    found = ["cpu"]
    for kind in _ACCELERATORS:
        module = getattr(torch, kind, None)
        if module is not None and module.is_available():
            found.extend(f"{kind}:{index}" for index in range(module.device_count()))
    return found


def checked_device(requested: str, device_name: str | None = None) -> torch.device:
    """``requested`` (``GenericTrainerConfig.device``, not ``"auto"``) as a torch device that
    this machine has.

    Args:
        requested: the configured value, named in errors.
        device_name: the device this rank uses instead of ``requested`` (``cuda:<local_rank>``
            for ``"cuda"``), if it differs.

    Raises:
        ConfigError: torch knows no such device type, or this machine lacks the device.
    """
    try:
        device = torch.device(device_name or requested)
    except RuntimeError:
        raise ConfigError(
            f"device: {requested!r} is not a torch device type; use 'auto', 'cpu', 'cuda', "
            f"'cuda:<index>', 'mps', ... (available on this machine: {_listed()})"
        ) from None
    module = getattr(torch, device.type, None) if device.type in _ACCELERATORS else None
    if module is None:
        return device  # the CPU, or a type torch cannot be asked about (meta, ...)
    if not module.is_available():
        raise _unavailable(requested, _missing_accelerator(device.type))
    count = module.device_count()
    if device.index is not None and device.index >= count:
        why = f"it has {count} {device.type.upper()} device(s)"
        if device_name:  # "cuda" on a rank whose local rank has no device of its own
            why += f" and this process's local rank asks for {device}: start at most {count} "
            why += "processes per node"
        raise _unavailable(requested, why)
    return device


def _missing_accelerator(kind: str) -> str:
    if kind == "cuda" and torch.version.cuda is None and torch.version.hip is None:
        return f"this torch ({torch.__version__}) is built without CUDA; install a CUDA build"
    visible = " (check nvidia-smi and CUDA_VISIBLE_DEVICES)" if kind == "cuda" else ""
    return f"torch.{kind}.is_available() is False: no such device is visible{visible}"


def _unavailable(requested: str, why: str) -> ConfigError:
    return ConfigError(
        f"device: {requested!r} is not available on this machine: {why}. Devices "
        f"available: {_listed()}; {_FIX}"
    )


def _listed() -> str:
    return ", ".join(repr(name) for name in available_devices())
