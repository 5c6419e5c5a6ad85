"""``mtf plot``: draw a run's ``metrics.jsonl`` into one PNG (optional extra ``plot``).

Panels, each drawn only when the run logged at least one of its keys:

- training loss: ``train/loss`` and per loader ``train/dl_<name>/loss``;
- validation loss: ``val/loss`` and ``val/dl_<name>/loss``;
- validation metrics: every other ``val/...`` key;
- learning rate: ``train/lr/opt_<i>``;
- throughput: ``train/samples_per_sec``.

matplotlib is imported inside the functions that draw, and the figure is rendered with the Agg
canvas directly, so the global pyplot backend of the calling process is left alone.
"""

from __future__ import annotations

import difflib
import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["DEFAULT_PLOT_PATH", "METRICS_FILENAME", "plot_run", "read_metric_series"]

METRICS_FILENAME = "metrics.jsonl"
DEFAULT_PLOT_PATH = Path("plots") / "metrics.png"
_STEP_KEY = "step"
_COLUMNS = 2

_log = logging.getLogger(__name__)

Series = tuple[list[int], list[float]]


@dataclass(frozen=True)
class _Panel:
    title: str
    ylabel: str
    selects: Callable[[str], bool]


def _is_loss(key: str, split: str) -> bool:
    parts = key.split("/")
    return (
        parts[0] == split
        and parts[-1] == "loss"
        and (len(parts) == 2 or parts[1].startswith("dl_"))
    )


_PANELS = (
    _Panel("training loss", "loss", lambda key: _is_loss(key, "train")),
    _Panel("validation loss", "loss", lambda key: _is_loss(key, "val")),
    _Panel(
        "validation metrics",
        "value",
        lambda key: key.startswith("val/") and not _is_loss(key, "val"),
    ),
    _Panel("learning rate", "lr", lambda key: key.startswith("train/lr/")),
    _Panel("throughput", "samples/s", lambda key: key == "train/samples_per_sec"),
)


def read_metric_series(metrics_path: Path) -> dict[str, Series]:
    """Read numeric series from a ``metrics.jsonl`` file.

    Non-numeric values (text, media references) are ignored. When a step appears more than once
    (a resumed run re-logs the steps after its last checkpoint) the last value wins. A line that
    is not valid JSON (cut short by a kill) is skipped with a warning.

    Args:
        metrics_path: Path of a ``metrics.jsonl`` file.

    Returns:
        ``{key: (steps, values)}`` with steps ascending.

    Raises:
        FileNotFoundError: The file does not exist.
    """
    by_key: dict[str, dict[int, float]] = {}
    num_bad_lines = 0
    with Path(metrics_path).open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                num_bad_lines += 1
                continue
            _add_record(record, by_key)
    if num_bad_lines:
        _log.warning("skipped %d unreadable line(s) in %s", num_bad_lines, metrics_path)
    return {key: _sorted_series(points) for key, points in by_key.items()}


def _missing_metrics_reason(run_dir: Path) -> str:
    """Why ``run_dir`` has no metrics file, naming the run directories the user may have meant:
    those inside it (a folder of runs was given) or a close sibling (a misspelt name)."""
    if not run_dir.exists():
        siblings = [p.parent.name for p in run_dir.parent.glob(f"*/{METRICS_FILENAME}")]
        close = difflib.get_close_matches(run_dir.name, sorted(siblings), n=1)
        hint = f" (did you mean {run_dir.parent / close[0]}?)" if close else ""
        return f"{run_dir} does not exist{hint}"
    runs = sorted(p.parent for p in run_dir.glob(f"*/{METRICS_FILENAME}"))
    if runs:
        return f"{run_dir} holds run directories: {', '.join(map(str, runs))}"
    return f"no {METRICS_FILENAME} in {run_dir}"


def plot_run(run_dir: Path | str, output: Path | str | None = None) -> Path:
    """Draw the run's losses, validation metrics, learning rates and throughput into a PNG.

    Args:
        run_dir: The run directory (holds ``metrics.jsonl``).
        output: PNG path; default ``<run_dir>/plots/metrics.png``. Parent folders are created.

    Returns:
        The path of the written PNG.

    Raises:
        FileNotFoundError: ``<run_dir>/metrics.jsonl`` does not exist.
        ValueError: The file holds no metric any panel draws.
        ImportError: matplotlib is missing (install ``model-training-framework[plot]``).

    Example:
        >>> plot_run("runs/demo")          # doctest: +SKIP
        PosixPath('runs/demo/plots/metrics.png')
    """
    run_dir = Path(run_dir)
    metrics_path = run_dir / METRICS_FILENAME
    if not metrics_path.is_file():
        raise FileNotFoundError(
            f"{_missing_metrics_reason(run_dir)}; pass the run directory the trainer wrote "
            f"(<checkpoint.root_dir>/<experiment_name>)"
        )
    series = read_metric_series(metrics_path)
    panels = [(panel, _matching(series, panel)) for panel in _PANELS]
    panels = [(panel, chosen) for panel, chosen in panels if chosen]
    if not panels:
        raise ValueError(
            f"{metrics_path} holds no plottable metrics (found keys: "
            f"{sorted(series) or 'none'}); expected train/loss, train/dl_<name>/loss, val/..., "
            f"train/lr/opt_<i> or train/samples_per_sec"
        )
    output_path = Path(output) if output is not None else run_dir / DEFAULT_PLOT_PATH
    output_path.parent.mkdir(parents=True, exist_ok=True)
    _draw(panels, title=run_dir.resolve().name, output_path=output_path)
    return output_path


def _add_record(record: Any, by_key: dict[str, dict[int, float]]) -> None:
    if not isinstance(record, dict) or not isinstance(record.get(_STEP_KEY), int):
        return
    step = record[_STEP_KEY]
    for key, value in record.items():
        if key != _STEP_KEY and isinstance(value, (int, float)) and not isinstance(value, bool):
            by_key.setdefault(key, {})[step] = float(value)


def _sorted_series(points: dict[int, float]) -> Series:
    steps = sorted(points)
    return steps, [points[step] for step in steps]


def _matching(series: dict[str, Series], panel: _Panel) -> dict[str, Series]:
    return {key: series[key] for key in sorted(series) if panel.selects(key)}


def _draw(panels: list[tuple[_Panel, dict[str, Series]]], title: str, output_path: Path) -> None:
    figure_module = _import_matplotlib("matplotlib.figure")
    agg = _import_matplotlib("matplotlib.backends.backend_agg")
    num_rows = -(-len(panels) // _COLUMNS)
    figure = figure_module.Figure(figsize=(6.0 * _COLUMNS, 3.6 * num_rows), layout="constrained")
    agg.FigureCanvasAgg(figure)
    axes = figure.subplots(num_rows, _COLUMNS, squeeze=False).ravel()
    for ax, (panel, chosen) in zip(axes, panels, strict=False):
        _draw_panel(ax, panel, chosen)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle(title)
    figure.savefig(output_path, format="png", dpi=100)


def _draw_panel(ax: Any, panel: _Panel, chosen: dict[str, Series]) -> None:
    for key, (steps, values) in chosen.items():
        # Sparse series (validation once per epoch) need markers to be visible at all.
        marker = "o" if len(steps) <= 50 else None
        # Aggregates (train/loss, val/loss) are drawn thicker than the per-loader lines.
        linewidth = 2.0 if key.count("/") == 1 else 1.2
        ax.plot(steps, values, marker=marker, markersize=3, linewidth=linewidth, label=key)
    ax.set_title(panel.title)
    ax.set_xlabel("step")
    ax.set_ylabel(panel.ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def _import_matplotlib(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(
            f"plotting needs matplotlib ({err}); install it with: "
            f"pip install 'model-training-framework[plot]'"
        ) from err
