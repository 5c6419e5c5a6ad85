"""Per-loader timing of data loading, forward, backward and optimizer work.

Timings are host wall-clock (``time.perf_counter``) without device synchronisation, so on a GPU
they show where the host waits; ``performance.sync_cuda_for_profiling`` adds synchronisations
for exact GPU timings. Means are reported per loader over the steps since the last report.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["NullProfiler", "StepProfiler", "TraceWindow", "build_profiler"]

logger = logging.getLogger(__name__)

_TRAIN_PARTS = ("time_data_ms", "time_forward_ms", "time_backward_ms", "time_optimizer_ms")
_VAL_PARTS = ("time_data_ms", "time_forward_ms")


class NullProfiler:
    """Profiling switched off: every method is a no-op."""

    def record_train(
        self, loader_idx: int, data_s: float, forward_s: float, backward_s: float
    ) -> None:
        """Record one training micro-step."""

    def record_optimizer(self, loader_idx: int, seconds: float) -> None:
        """Record one optimizer step attributed to ``loader_idx``."""

    def record_val(self, loader_idx: int, data_s: float, forward_s: float) -> None:
        """Record one validation batch."""

    @property
    def syncs(self) -> bool:
        """Whether ``sync`` synchronises the device (else the step need not call it)."""
        return False

    def sync(self) -> None:
        """Synchronise the device when exact GPU timings are requested."""

    def pop_train_means(self) -> dict[str, float]:
        """Mean training timings since the last call."""
        return {}

    def pop_val_means(self) -> dict[str, float]:
        """Mean validation timings of the last validation pass."""
        return {}

    def summary(self) -> str:
        """A table of where the time went over the whole fit."""
        return ""


class StepProfiler(NullProfiler):
    """Accumulates per-loader timings; reports means since the last report."""

    def __init__(self, names: Sequence[str], val_names: Sequence[str], *, sync_cuda: bool) -> None:
        self._names = list(names)
        self._val_names = list(val_names)
        self._sync_cuda = sync_cuda and torch.cuda.is_available()
        n = len(names)
        # per loader: seconds of the four parts since the last report, and how many micro-steps
        # (data, forward, backward) and optimizer steps they cover
        self._train = [[0.0] * len(_TRAIN_PARTS) for _ in range(n)]
        self._micro_steps = [0] * n
        self._optimizer_steps = [0] * n
        self._totals = [[0.0] * len(_TRAIN_PARTS) for _ in range(n)]
        # metric keys made once (a report with many loaders would otherwise format them all)
        self._train_keys = [
            [f"profile/train/dl_{name}/{key}" for key in _TRAIN_PARTS] for name in names
        ]
        self._total_steps = [0] * n
        self._val = [[0.0, 0.0] for _ in val_names]
        self._val_counts = [0] * len(val_names)

    def record_train(
        self, loader_idx: int, data_s: float, forward_s: float, backward_s: float
    ) -> None:
        sums = self._train[loader_idx]
        sums[0] += data_s
        sums[1] += forward_s
        sums[2] += backward_s
        self._micro_steps[loader_idx] += 1

    def record_optimizer(self, loader_idx: int, seconds: float) -> None:
        self._train[loader_idx][3] += seconds
        self._optimizer_steps[loader_idx] += 1

    def record_val(self, loader_idx: int, data_s: float, forward_s: float) -> None:
        self._val[loader_idx][0] += data_s
        self._val[loader_idx][1] += forward_s
        self._val_counts[loader_idx] += 1

    @property
    def syncs(self) -> bool:
        return self._sync_cuda

    def sync(self) -> None:
        if self._sync_cuda:
            torch.cuda.synchronize()

    def pop_train_means(self) -> dict[str, float]:
        means: dict[str, float] = {}
        micro_steps, optimizer_steps, train = self._micro_steps, self._optimizer_steps, self._train
        for idx, num_micro in enumerate(micro_steps):
            num_optimizer = optimizer_steps[idx]
            if not (num_micro or num_optimizer):  # nothing recorded since the last report
                continue
            data_s, forward_s, backward_s, optimizer_s = train[idx]
            data_key, forward_key, backward_key, optimizer_key = self._train_keys[idx]
            if num_micro:
                means[data_key] = 1000.0 * data_s / num_micro
                means[forward_key] = 1000.0 * forward_s / num_micro
                means[backward_key] = 1000.0 * backward_s / num_micro
            if num_optimizer:
                means[optimizer_key] = 1000.0 * optimizer_s / num_optimizer
            totals = self._totals[idx]
            totals[0] += data_s
            totals[1] += forward_s
            totals[2] += backward_s
            totals[3] += optimizer_s
            train[idx] = [0.0, 0.0, 0.0, 0.0]
            self._total_steps[idx] += num_micro
            micro_steps[idx] = optimizer_steps[idx] = 0
        return means

    def pop_val_means(self) -> dict[str, float]:
        means: dict[str, float] = {}
        for idx, name in enumerate(self._val_names):
            count = self._val_counts[idx]
            if count:
                for part, key in enumerate(_VAL_PARTS):
                    means[f"profile/val/dl_{name}/{key}"] = 1000.0 * self._val[idx][part] / count
            self._val[idx] = [0.0, 0.0]
            self._val_counts[idx] = 0
        return means

    def summary(self) -> str:
        self.pop_train_means()  # fold pending sums into the totals
        header = f"{'loader':<16}{'steps':>8}" + "".join(f"{k[5:-3]:>12}" for k in _TRAIN_PARTS)
        lines = ["time per loader (total seconds):", header]
        for idx, name in enumerate(self._names):
            cells = "".join(f"{t:>12.2f}" for t in self._totals[idx])
            lines.append(f"{name:<16}{self._total_steps[idx]:>8}{cells}")
        return "\n".join(lines)


def build_profiler(
    enabled: bool, names: Sequence[str], val_names: Sequence[str], *, sync_cuda: bool
) -> NullProfiler:
    """``StepProfiler`` when profiling is on, else ``NullProfiler``."""
    return StepProfiler(names, val_names, sync_cuda=sync_cuda) if enabled else NullProfiler()


class TraceWindow:
    """A ``torch.profiler`` trace over a chosen range of optimizer steps, exported as Chrome JSON.

    Args:
        start_step: the trace starts after this global step; None disables tracing.
        num_steps: optimizer steps covered.
        out_dir: where ``trace_steps_<a>-<b>_rank<r>.json`` is written (open it in
            chrome://tracing or Perfetto).
        rank: this process's rank (each rank writes its own file).
    """

    def __init__(self, start_step: int | None, num_steps: int, out_dir: Path, rank: int) -> None:
        self._start = start_step
        self._stop = None if start_step is None else start_step + num_steps
        self._out_dir = out_dir
        self._rank = rank
        self._profiler: torch.profiler.profile | None = None
        self._started_at = 0

    @property
    def is_enabled(self) -> bool:
        """Whether a trace is configured (else ``at_step`` does nothing)."""
        return self._start is not None

    def at_step(self, global_step: int) -> None:
        """Call after every optimizer step: starts or finishes the trace at its boundaries."""
        if self._start is None:
            return
        if self._profiler is None and global_step == self._start:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self._profiler = torch.profiler.profile(activities=activities)
            self._profiler.__enter__()
            self._started_at = global_step
        elif self._profiler is not None and global_step >= (self._stop or 0):
            self.close(global_step)

    def close(self, global_step: int) -> Path | None:
        """Stop an active trace (also at the end of fit) and export it."""
        if self._profiler is None:
            return None
        profiler, self._profiler = self._profiler, None
        profiler.__exit__(None, None, None)
        self._out_dir.mkdir(parents=True, exist_ok=True)
        path = self._out_dir / f"trace_steps_{self._started_at}-{global_step}_rank{self._rank}.json"
        profiler.export_chrome_trace(str(path))
        logger.info(
            "torch.profiler trace of steps %d-%d written to %s", self._started_at, global_step, path
        )
        return path
