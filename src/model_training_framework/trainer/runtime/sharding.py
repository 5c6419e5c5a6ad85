"""How the model is spread over the processes: replicated (DDP) or sharded (FSDP2).

The trainer picks one strategy from ``distributed.strategy`` (:func:`build_strategy`) and then
always calls the same methods; nothing else in the trainer asks which one it has. A strategy
owns four things: preparing the module (sharding it, at construction), wrapping it for ``fit``,
gradient synchronisation inside an accumulation window, and the model/optimizer state that
checkpoints hold (together with the checkpoint format that stores it).

NOTE [FSDP2 and optimizers]: ``fully_shard`` replaces every parameter of the module with a
sharded ``DTensor`` parameter. Optimizers are built by the user before the trainer, over the
original parameters, so :meth:`FullyShardedStrategy.prepare` points each optimizer's parameter
groups at the sharded parameters with the same names (the optimizers must not have state yet).

NOTE [FSDP2 partial windows]: inside an accumulation window FSDP2 keeps the gradients of the
micro-batches unsharded and unreduced (``set_requires_gradient_sync(False)``); they are
reduce-scattered by the backward of the window's last micro-batch. An epoch that ends in the
middle of a window has no such backward, so :meth:`FullyShardedStrategy.finish_partial_window`
gathers the parameters, averages the accumulated gradients over the ranks and hands each rank
its shard, as the reduce-scatter would have.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch

from model_training_framework.errors import CheckpointError, ConfigError
from model_training_framework.trainer.state.format import SingleFileFormat

__all__ = [
    "FullyShardedStrategy",
    "ReplicatedStrategy",
    "ShardingStrategy",
    "build_strategy",
    "needs_process_group",
]

# Reused for every micro-step that needs no context (a nullcontext can be entered repeatedly).
_NO_CONTEXT = contextlib.nullcontext()


class ShardingStrategy(Protocol):
    """What the trainer needs from a way of spreading the model over processes."""

    checkpoint_format: Any

    def prepare(self, module: torch.nn.Module, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Get ``module`` ready at construction (FSDP2 shards it here)."""

    def wrap(self, module: torch.nn.Module, *, num_loaders: int) -> torch.nn.Module:
        """The module that step functions call during ``fit``."""

    def gradient_sync(
        self, model: torch.nn.Module, *, closes_window: bool
    ) -> contextlib.AbstractContextManager[Any]:
        """Context for one micro-batch: gradients synchronise only when it closes the window."""

    def finish_partial_window(self, module: torch.nn.Module) -> None:
        """Synchronise gradients of a window that ended before its last micro-batch."""

    def model_state_dict(self, module: torch.nn.Module) -> dict[str, Any]:
        """The model's state as the checkpoint format stores it."""

    def load_model_state_dict(self, module: torch.nn.Module, state: dict[str, Any]) -> None:
        """Load what :meth:`model_state_dict` returned (possibly from another world size)."""

    def optimizer_state_dicts(
        self, module: torch.nn.Module, optimizers: Sequence[torch.optim.Optimizer]
    ) -> list[dict[str, Any]]:
        """Every optimizer's state as the checkpoint format stores it."""

    def load_optimizer_state_dicts(
        self,
        module: torch.nn.Module,
        optimizers: Sequence[torch.optim.Optimizer],
        states: Sequence[dict[str, Any]],
    ) -> None:
        """Load what :meth:`optimizer_state_dicts` returned (possibly from another world size)."""

    def release(self, dist: Any) -> None:
        """End of ``fit``: give back what only the fit needed."""


class ReplicatedStrategy:
    """DistributedDataParallel (or the plain module in one process); single-file checkpoints.

    Args:
        find_unused_parameters: DDP's flag; None: true when there are several train loaders.
        dist: the ``DistributedContext``.
        device: the process's device.
    """

    def __init__(self, find_unused_parameters: bool | None, dist: Any, device: torch.device):
        self._find_unused = find_unused_parameters
        self._dist = dist
        self._device = device
        self.checkpoint_format = SingleFileFormat()

    def prepare(self, module: torch.nn.Module, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Nothing to do: every rank holds the whole module."""

    def wrap(self, module: torch.nn.Module, *, num_loaders: int) -> torch.nn.Module:
        if not self._dist.is_distributed:
            return module
        unused = self._find_unused
        if unused is None:  # several loaders usually means per-loader heads
            unused = num_loaders > 1
        ids = [self._device.index] if self._device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(
            module, device_ids=ids, find_unused_parameters=unused
        )

    def gradient_sync(
        self, model: torch.nn.Module, *, closes_window: bool
    ) -> contextlib.AbstractContextManager[Any]:
        # NOTE [no_sync]: under DDP only the window's last micro-batch all-reduces gradients.
        if closes_window or not self._dist.is_distributed:
            return _NO_CONTEXT
        return model.no_sync()

    def finish_partial_window(self, module: torch.nn.Module) -> None:
        self._dist.all_reduce_mean_([p.grad for p in module.parameters() if p.grad is not None])

    def model_state_dict(self, module: torch.nn.Module) -> dict[str, Any]:
        return module.state_dict()

    def load_model_state_dict(self, module: torch.nn.Module, state: dict[str, Any]) -> None:
        try:
            module.load_state_dict(state)
        except RuntimeError as err:
            raise CheckpointError(
                f"checkpoint does not fit this model (different shape or keys): {err}"
            ) from err

    def optimizer_state_dicts(
        self, module: torch.nn.Module, optimizers: Sequence[torch.optim.Optimizer]
    ) -> list[dict[str, Any]]:
        return [optimizer.state_dict() for optimizer in optimizers]

    def load_optimizer_state_dicts(
        self,
        module: torch.nn.Module,
        optimizers: Sequence[torch.optim.Optimizer],
        states: Sequence[dict[str, Any]],
    ) -> None:
        _load_optimizers(optimizers, states, load_one=_plain_optimizer_load)

    def release(self, dist: Any) -> None:
        dist.teardown()


class FullyShardedStrategy:
    """FSDP2 (``fully_shard``): parameters, gradients and optimizer state sharded over ranks.

    Args:
        wrap_class_names: class names of the submodules sharded as units (``fsdp_wrap``).
        reshard_after_forward: ``fsdp_reshard_after_forward``.
        dist: the ``DistributedContext`` (its process group exists, also with one process).
        device: the process's device.
    """

    def __init__(
        self,
        wrap_class_names: Sequence[str],
        reshard_after_forward: bool,
        dist: Any,
        device: torch.device,
    ) -> None:
        from model_training_framework.trainer.state.dcp import DcpDirectoryFormat

        self._wrap_names = list(wrap_class_names)
        self._reshard_after_forward = reshard_after_forward
        self._dist = dist
        self._device = device
        self._is_syncing = True
        self.checkpoint_format = DcpDirectoryFormat()

    def prepare(self, module: torch.nn.Module, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Shard ``module`` in place and point ``optimizers`` at the sharded parameters.

        Raises:
            ConfigError: a class name in ``fsdp_wrap`` matches no submodule.
            ValueError: an optimizer already has state, or holds a parameter of another module.
        """
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        names_by_param = {id(param): name for name, param in module.named_parameters()}
        _check_optimizers_fresh(optimizers, names_by_param)
        units = _modules_to_wrap(module, self._wrap_names)
        mesh = init_device_mesh(self._device.type, (self._dist.world_size,))
        for unit in units:
            fully_shard(unit, mesh=mesh, reshard_after_forward=self._reshard_after_forward)
        fully_shard(module, mesh=mesh, reshard_after_forward=self._reshard_after_forward)
        sharded = dict(module.named_parameters())
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                group["params"] = [sharded[names_by_param[id(p)]] for p in group["params"]]

    def wrap(self, module: torch.nn.Module, *, num_loaders: int) -> torch.nn.Module:
        return module  # fully_shard changed the module itself

    def gradient_sync(
        self, model: torch.nn.Module, *, closes_window: bool
    ) -> contextlib.AbstractContextManager[Any]:
        if closes_window != self._is_syncing:  # the setter walks every submodule: only on change
            _fsdp_root(model).set_requires_gradient_sync(closes_window)
            self._is_syncing = closes_window
        return _NO_CONTEXT

    def finish_partial_window(self, module: torch.nn.Module) -> None:
        """See NOTE [FSDP2 partial windows]."""
        from torch.distributed.fsdp import FSDPModule
        from torch.distributed.tensor import DTensor

        units = [m for m in module.modules() if isinstance(m, FSDPModule)]
        for unit in units:
            unit.unshard()
        full_grads = {}
        for name, param in module.named_parameters():
            full_grads[name], param.grad = param.grad, None
        self._dist.all_reduce_mean_([g for g in full_grads.values() if g is not None])
        for unit in units:
            unit.reshard()
        rank, world_size = self._dist.rank, self._dist.world_size
        for name, param in module.named_parameters():
            grad = full_grads[name]
            if grad is None:
                continue
            chunks = grad.chunk(world_size)
            local = chunks[rank] if rank < len(chunks) else grad.new_empty((0, *grad.shape[1:]))
            param.grad = DTensor.from_local(
                local.contiguous(),
                param.device_mesh,
                param.placements,
                shape=param.shape,
                stride=param.stride(),
            )

    def model_state_dict(self, module: torch.nn.Module) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(module)

    def load_model_state_dict(self, module: torch.nn.Module, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        set_model_state_dict(module, state)

    def optimizer_state_dicts(
        self, module: torch.nn.Module, optimizers: Sequence[torch.optim.Optimizer]
    ) -> list[dict[str, Any]]:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        options = _flat_optimizer_options()
        return [
            get_optimizer_state_dict(module, optimizer, options=options) for optimizer in optimizers
        ]

    def load_optimizer_state_dicts(
        self,
        module: torch.nn.Module,
        optimizers: Sequence[torch.optim.Optimizer],
        states: Sequence[dict[str, Any]],
    ) -> None:
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        options = _flat_optimizer_options()

        def load_one(optimizer: torch.optim.Optimizer, state: Any) -> None:
            set_optimizer_state_dict(module, optimizer, state, options=options)
            # Unflattening gives every parameter an entry, an empty one where the checkpoint
            # had none; drop those so the optimizer is as it was when saved.
            for param in [p for p, entry in optimizer.state.items() if not entry]:
                del optimizer.state[param]

        _load_optimizers(optimizers, states, load_one=load_one)

    def release(self, dist: Any) -> None:
        """Keep the process group: the sharded parameters live on it after ``fit`` too."""


def needs_process_group(strategy_name: str) -> bool:
    """Whether the strategy needs a process group even in a single process (FSDP2 does)."""
    return strategy_name == "fsdp"


def build_strategy(config: Any, dist: Any, device: torch.device) -> ShardingStrategy:
    """The strategy ``config`` (the ``distributed`` section) asks for."""
    if config.strategy == "fsdp":
        return FullyShardedStrategy(
            config.fsdp_wrap, config.fsdp_reshard_after_forward, dist, device
        )
    return ReplicatedStrategy(config.find_unused_parameters, dist, device)


# ---------------------------------------------------------------------------- helpers


def _flat_optimizer_options() -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # Flat keys ("state.<param>.<name>") let DCP load only the keys a checkpoint has: an
    # optimizer whose loader never stepped before the save has no state for its parameters.
    return StateDictOptions(flatten_optimizer_state_dict=True)


def _fsdp_root(model: torch.nn.Module) -> Any:
    # torch.compile wraps the module; the FSDP root is the original one.
    return getattr(model, "_orig_mod", model)


def _modules_to_wrap(module: torch.nn.Module, class_names: Sequence[str]) -> list[torch.nn.Module]:
    found = {type(sub).__name__ for sub in module.modules()}
    missing = [name for name in class_names if name not in found]
    if missing:
        raise ConfigError(
            f"distributed.fsdp_wrap: no submodule of class {missing} in the model; classes in "
            f"the model: {sorted(found)}"
        )
    wanted = set(class_names)
    return [
        sub for sub in _post_order(module) if sub is not module and type(sub).__name__ in wanted
    ]


def _post_order(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    # Inner units are sharded before the units that contain them, as fully_shard requires.
    for child in module.children():
        yield from _post_order(child)
    yield module


def _check_optimizers_fresh(
    optimizers: Sequence[torch.optim.Optimizer], names_by_param: dict[int, str]
) -> None:
    for idx, optimizer in enumerate(optimizers):
        if optimizer.state:
            raise ValueError(
                f"optimizers[{idx}] already has state; with distributed.strategy 'fsdp' the "
                "trainer shards the model and moves the optimizers to the sharded parameters, "
                "which needs optimizers that have not stepped yet (resume through a checkpoint "
                "instead)"
            )
        for group in optimizer.param_groups:
            if any(id(p) not in names_by_param for p in group["params"]):
                raise ValueError(
                    f"optimizers[{idx}] holds a parameter that is not in the model; with "
                    "distributed.strategy 'fsdp' every optimized parameter must belong to it"
                )


def _plain_optimizer_load(optimizer: torch.optim.Optimizer, state: Any) -> None:
    optimizer.load_state_dict(state)


def _load_optimizers(optimizers: Sequence[torch.optim.Optimizer], states: Any, *, load_one) -> None:
    if len(states) != len(optimizers):
        raise CheckpointError(
            f"checkpoint holds {len(states)} optimizer(s); this run has {len(optimizers)}: "
            "resume with the same optimizers as the run that wrote it"
        )
    for optimizer, state in zip(optimizers, states, strict=True):
        load_one(optimizer, state)
