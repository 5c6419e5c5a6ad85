"""Resuming with a changed configuration: compare the checkpoint's run with this one before
anything is written.

A rerun under the same name resumes the run's checkpoint. If the rerun was started with a
different model width, other loaders, another learning rate ..., the checkpoint and the new
configuration disagree: :func:`check_resume` compares their signatures (see
:mod:`~model_training_framework.trainer.state.config_diff` for what a signature holds and how each
difference is judged) and raises for differences the checkpoint cannot continue with (and for
schedule changes unless ``fault_tolerance.allow_schedule_changes_on_resume``), listing every
differing key, or warns, listing them.

The trainer config is recorded as it was when ``fit`` started (not as hooks changed it later,
e.g. ``update_loader_weights``), and so are the optimizers' hyperparameters
(:func:`optimizer_hyperparameters`), so that a rerun of the same script compares equal.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model_training_framework.errors import CheckpointError
from model_training_framework.trainer.data.schedule import LENGTHS
from model_training_framework.trainer.state import layout
from model_training_framework.trainer.state.config_diff import (
    ResumeDiff,
    compare_signatures,
    describe_changes,
    flatten,
)
from model_training_framework.trainer.state.format import MODEL_KEY

__all__ = [
    "WEIGHTS_KEY",
    "RunFacts",
    "check_resume",
    "optimizer_hyperparameters",
]

logger = logging.getLogger(__name__)

# A format that reshards (FSDP2) resumes at another world size, where the loaders' lengths
# (batches per rank) change with it: those differences are not compared then.
_RESHARDABLE_KEYS = ("world_size", "train_loaders.lengths")
WEIGHTS_KEY = "train_loader_config.dataloader_weights"
_SWITCH = "fault_tolerance.allow_schedule_changes_on_resume"
_UNSERIALISABLE = "repr"  # the key of a config stored as its repr (see trainer._plain_config)


def optimizer_hyperparameters(optimizers: Sequence[torch.optim.Optimizer]) -> list[list[dict]]:
    """Every optimizer's param-group settings (all but ``params``) as plain Python values.

    Call it before a checkpoint is loaded: loading replaces them with the checkpoint's.
    """
    return [
        [{k: _plain(v) for k, v in group.items() if k != "params"} for group in opt.param_groups]
        for opt in optimizers
    ]


@dataclass
class RunFacts:
    """What a run's signature is made of (see :mod:`config_diff`).

    Attributes:
        config: The trainer config as a plain dict (``GenericTrainerConfig.to_dict()``).
        model_state: The model's ``state_dict()``; only tensor shapes are compared.
        optimizer_layout: Per optimizer, the number of parameters in each param group.
        optimizer_hparams: :func:`optimizer_hyperparameters`, or None when not recorded.
        world_size: Number of processes.
        loader_names: The train loaders' names.
        loader_lengths: The train loaders' lengths in batches (None: no length).
    """

    config: Mapping[str, Any]
    model_state: Mapping[str, Any]
    optimizer_layout: list[list[int]]
    optimizer_hparams: list[list[dict]] | None
    world_size: int
    loader_names: list[str]
    loader_lengths: list[int | None]

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> RunFacts:
        """The facts of the run that wrote ``payload`` (a loaded checkpoint).

        Raises:
            CheckpointError: the payload lacks a key (a corrupt or foreign checkpoint).
        """
        try:
            run = payload[layout.RUN_KEY]
            return cls(
                config=run[layout.CONFIG],
                model_state=payload[MODEL_KEY],
                optimizer_layout=[list(groups) for groups in run[layout.OPTIMIZER_LAYOUT]],
                optimizer_hparams=run[layout.OPTIMIZER_HPARAMS],  # None: not recorded
                world_size=run[layout.WORLD_SIZE],
                loader_names=list(run[layout.LOADER_NAMES]),
                loader_lengths=list(payload[layout.DATA_KEY][layout.SCHEDULE][LENGTHS]),
            )
        except KeyError as err:
            raise CheckpointError(
                f"checkpoint lacks {err}: it is damaged or was not written by this framework"
            ) from err

    def signature(self, *, with_config: bool, with_hparams: bool) -> dict[str, Any]:
        """The flat signature (config keys, then the facts under their own keys)."""
        signature = flatten(self.config) if with_config else {}
        for key, value in self.model_state.items():
            if isinstance(value, torch.Tensor):
                signature[f"model.{key}"] = list(value.shape)
        signature["optimizers.count"] = len(self.optimizer_layout)
        for opt_idx, groups in enumerate(self.optimizer_layout):
            for group_idx, num_params in enumerate(groups):
                signature[f"{_group_key(opt_idx, group_idx)}.num_params"] = num_params
        for opt_idx, groups in enumerate(self.optimizer_hparams if with_hparams else []):
            for group_idx, settings in enumerate(groups):
                for name, value in settings.items():
                    signature[f"{_group_key(opt_idx, group_idx)}.{name}"] = value
        signature["world_size"] = self.world_size
        signature["train_loaders.names"] = list(self.loader_names)
        signature["train_loaders.lengths"] = list(self.loader_lengths)
        return signature


def check_resume(
    path: Path,
    saved: RunFacts,
    current: RunFacts,
    *,
    allow_schedule_changes: bool,
    reshards: bool = False,
) -> ResumeDiff:
    """Compare the checkpoint's run with this one; raise or warn (see the module docstring).

    Args:
        path: The checkpoint (for messages).
        saved: :meth:`RunFacts.from_payload` of the checkpoint.
        current: This run's facts, taken before the checkpoint is loaded.
        allow_schedule_changes: ``fault_tolerance.allow_schedule_changes_on_resume``.
        reshards: the checkpoint format loads at another world size (world size and loader
            lengths are then not compared).

    Returns:
        The differences (empty when the runs match).

    Raises:
        CheckpointError: differences the checkpoint cannot continue with, or schedule
            changes that are not allowed; every differing key is listed.
    """
    with_config = _UNSERIALISABLE not in saved.config and _UNSERIALISABLE not in current.config
    if not with_config:
        logger.warning(
            "resuming %s: the trainer configs are not compared (one is stored as its repr, "
            "because a value in it is not serialisable)",
            path,
        )
    with_hparams = saved.optimizer_hparams is not None and current.optimizer_hparams is not None
    signatures = [
        facts.signature(with_config=with_config, with_hparams=with_hparams)
        for facts in (saved, current)
    ]
    if reshards:
        for signature in signatures:
            for key in _RESHARDABLE_KEYS:
                signature.pop(key, None)
    diff = compare_signatures(*signatures)
    _raise_if_refused(path, diff, allow_schedule_changes)
    _warn(path, diff, allow_schedule_changes)
    return diff


def _raise_if_refused(path: Path, diff: ResumeDiff, allow_schedule_changes: bool) -> None:
    parts = []
    if diff.incompatible:
        parts.append(
            "it was written by a run with another model, optimizer layout, train loaders or "
            "world size, which it cannot continue:\n" + describe_changes(diff.incompatible)
        )
    if diff.schedule and not allow_schedule_changes:
        parts.append(
            "the data schedule settings differ (the batches the run trains on would no longer "
            "follow the checkpoint's schedule):\n" + describe_changes(diff.schedule)
        )
    if not parts:
        return
    fixes = []
    if diff.incompatible:
        fixes.append(
            "resume with the same model, optimizers, train loaders (names, lengths, sampling) "
            "and world size, or train a new run under another experiment_name (a warm start, "
            "warm_start or set_warm_start_loader, can take the weights)"
        )
    if diff.schedule and not allow_schedule_changes:
        fixes.append(
            f"resume with the checkpoint's values, or set {_SWITCH}: true to continue with the "
            "new ones from the resumed step"
        )
    raise CheckpointError(
        f"checkpoint {path} does not fit this run; nothing was written. "
        + "\nand ".join(parts)
        + "\nFix: "
        + "; or ".join(fixes)
    )


def _warn(path: Path, diff: ResumeDiff, allow_schedule_changes: bool) -> None:
    if diff.schedule and allow_schedule_changes:
        logger.warning(
            "resuming %s with changed schedule settings (%s is true); the new values apply "
            "from the resumed step:\n%s",
            path,
            _SWITCH,
            describe_changes(diff.schedule),
        )
    if not diff.other:
        return
    restored = [c for c in diff.other if _is_hparam(c.key)]
    note = ""
    if restored:
        note = (
            "\nThe optimizer settings above do not take effect: the checkpoint's optimizer "
            "state restores its own values (change them after the resume, e.g. in an "
            "on_train_start hook, to apply them)."
        )
    logger.warning(
        "resuming %s with a configuration that differs from the run that wrote it:\n%s%s",
        path,
        describe_changes(diff.other),
        note,
    )


def _group_key(opt_idx: int, group_idx: int) -> str:
    return f"optimizers[{opt_idx}].param_groups[{group_idx}]"


def _is_hparam(key: str) -> bool:
    return key.startswith("optimizers[") and not key.endswith(".num_params")


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
