"""plot_run: PNG from metrics.jsonl."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest

from model_training_framework.plotting import plot_run, read_metric_series

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _write_run(run_dir, records):
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(record) for record in records]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _training_records():
    records = []
    for step in range(10, 201, 10):
        records.append(
            {
                "step": step,
                "epoch": step // 100,
                "train/loss": 1.0 / step,
                "train/dl_a/loss": 1.2 / step,
                "train/dl_b/loss": 0.8 / step,
                "train/lr/opt_0": 0.001,
                "train/samples_per_sec": 800.0 + step,
                "profile/train/dl_a/time_data_ms": 1.0,
            }
        )
        if step % 100 == 0:
            records.append({"step": step, "val/loss": 2.0 / step, "val/acc": step / 200})
    records.append({"step": 200, "text/note": "done", "image/sample": "media/sample_step_200.png"})
    return records


def test_default_output_is_a_png_in_the_run_plots_folder(tmp_path):
    _write_run(tmp_path, _training_records())
    output = plot_run(tmp_path)
    assert output == tmp_path / "plots" / "metrics.png"
    width, height = _png_size(output)
    assert width > 0 and height > 0
    assert output.stat().st_size > 10_000  # five panels of drawn lines, not a blank canvas


def test_explicit_output_path_is_used_and_parents_created(tmp_path):
    _write_run(tmp_path / "run", _training_records())
    target = tmp_path / "out" / "nested" / "curves.png"
    assert plot_run(str(tmp_path / "run"), output=str(target)) == target
    assert _png_size(target)[0] > 0


def test_fewer_panels_make_a_smaller_figure(tmp_path):
    _write_run(tmp_path / "full", _training_records())
    _write_run(
        tmp_path / "loss_only", [{"step": 1, "train/loss": 1.0}, {"step": 2, "train/loss": 0.5}]
    )
    full_height = _png_size(plot_run(tmp_path / "full"))[1]
    loss_only_height = _png_size(plot_run(tmp_path / "loss_only"))[1]
    assert loss_only_height < full_height


def test_series_keep_last_value_per_step_sorted_and_skip_non_numbers(tmp_path):
    _write_run(
        tmp_path,
        [
            {"step": 20, "train/loss": 2.0},
            {"step": 10, "train/loss": 1.0, "text/note": "hi", "flag": True},
            {"step": 20, "train/loss": 1.5},  # re-logged after a resume
        ],
    )
    series = read_metric_series(tmp_path / "metrics.jsonl")
    assert series == {"train/loss": ([10, 20], [1.0, 1.5])}


def test_line_cut_short_by_a_kill_is_skipped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "train/loss": 1.0}\n{"step": 2, "train/lo\n', encoding="utf-8")
    assert read_metric_series(path) == {"train/loss": ([1], [1.0])}
    assert "skipped 1 unreadable line" in caplog.text


def test_missing_metrics_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no metrics\.jsonl in .*run directory"):
        plot_run(tmp_path)


def test_empty_metrics_file_is_a_clear_error(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="no plottable metrics"):
        plot_run(tmp_path)


def test_metrics_without_plottable_keys_name_what_was_found(tmp_path):
    _write_run(tmp_path, [{"step": 1, "profile/train/dl_a/time_data_ms": 1.0}])
    with pytest.raises(ValueError, match="profile/train/dl_a/time_data_ms"):
        plot_run(tmp_path)
    assert not (tmp_path / "plots").exists()


def test_missing_matplotlib_names_the_plot_extra(tmp_path, monkeypatch):
    _write_run(tmp_path, _training_records())
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"model-training-framework\[plot\]"):
        plot_run(tmp_path)


def test_importing_plotting_does_not_import_matplotlib():
    code = "import sys, model_training_framework.plotting\nassert 'matplotlib' not in sys.modules\n"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pyplot_backend_of_the_caller_is_left_alone(tmp_path):
    _write_run(tmp_path, _training_records())
    code = (
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "from model_training_framework.plotting import plot_run\n"
        f"plot_run({str(tmp_path)!r})\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
