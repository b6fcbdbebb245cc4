"""Tests for r1jax.plot: PNG panels from a synthetic metrics file, absent metrics skipped."""

import math
import os
import subprocess
import sys

import pytest

from r1jax import metrics, plot


def _write_metrics(workdir, with_eval=True, with_reflection=True):
    writer = metrics.JsonlWriter(str(workdir))
    for step in range(1, 21):
        scalars = {
            "reward/mean": step / 20,
            "reward/std": 0.1,
            "accuracy": step / 40,
            "response_length/mean": 100 + 5 * step,
            "loss": float("nan") if step == 3 else 1.0 / step,
        }
        if with_reflection:
            scalars.update(reflect_rate=0.01 * step, ssr_rate=0.5)
        writer.write_scalars(step, scalars)
        if with_eval and step % 10 == 0:
            writer.write_scalars(step, {"eval/pass@1": step / 30, "eval/maj@4": step / 25})
    writer.close()


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def _png_width(path):
    with open(path, "rb") as f:
        return int.from_bytes(f.read(24)[16:20], "big")  # IHDR's width


def test_plot_writes_a_png_per_present_panel(tmp_path):
    _write_metrics(tmp_path)
    paths = plot.plot_metrics(str(tmp_path), str(tmp_path / "out"))
    names = sorted(os.path.basename(p) for p in paths)
    assert names == [
        "accuracy.png",
        "eval.png",
        "reflection.png",
        "response_length.png",
        "reward.png",
    ]
    assert all(_is_png(p) and os.path.getsize(p) > 1000 for p in paths)


def test_absent_metrics_are_skipped(tmp_path):
    _write_metrics(tmp_path, with_eval=False, with_reflection=False)
    paths = plot.plot_metrics(str(tmp_path))
    assert sorted(os.path.basename(p) for p in paths) == [
        "accuracy.png",
        "response_length.png",
        "reward.png",
    ]
    assert all(p.startswith(str(tmp_path / "plots")) for p in paths)


def test_series_reads_nonfinite_and_skips_text():
    got = plot.series([{"step": 1, "a": 1, "b": "nan", "c": "grpo"}, {"step": 2, "a": 2.5}])
    assert got["a"] == ([1, 2], [1.0, 2.5])
    assert math.isnan(got["b"][1][0])
    assert "c" not in got


def test_missing_metrics_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no metrics\.jsonl"):
        plot.plot_metrics(str(tmp_path))


def test_command_line(tmp_path):
    _write_metrics(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "r1jax.plot", str(tmp_path), "--out", str(tmp_path / "figs")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "reward.png" in result.stdout
    assert os.path.exists(tmp_path / "figs" / "eval.png")
    missing = subprocess.run(
        [sys.executable, "-m", "r1jax.plot", str(tmp_path / "absent")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1 and "no metrics.jsonl" in missing.stderr


def test_several_runs_share_each_panel_labelled_by_run(tmp_path):
    for seed in ("seed0", "seed1"):
        _write_metrics(tmp_path / seed, with_eval=seed == "seed0")
    paths = plot.plot_metrics([str(tmp_path / "seed0"), str(tmp_path / "seed1")], str(tmp_path))
    assert sorted(os.path.basename(p) for p in paths) == [
        "accuracy.png",
        "eval.png",  # one run's evaluations are enough for the panel
        "reflection.png",
        "response_length.png",
        "reward.png",
    ]
    assert plot.run_labels(["a/run", "b/run", "c/other/"]) == ["a/run", "b/run", "other"]


def test_a_crowded_panel_puts_its_legend_beside_the_axes(tmp_path):
    runs = [str(tmp_path / f"seed{seed}") for seed in range(4)]
    for run in runs:
        _write_metrics(run)
    paths = {os.path.basename(p): p for p in plot.plot_metrics(runs, str(tmp_path / "out"))}
    assert _png_width(paths["eval.png"]) == 1000  # 8 lines: widened for the legend
    assert _png_width(paths["accuracy.png"]) == 700  # 4 lines: legend inside


def test_several_runs_need_an_output_directory(tmp_path):
    _write_metrics(tmp_path / "a")
    _write_metrics(tmp_path / "b")
    with pytest.raises(ValueError, match="--out"):
        plot.plot_metrics([str(tmp_path / "a"), str(tmp_path / "b")])
    with pytest.raises(ValueError, match="smooth=0"):
        plot.plot_metrics(str(tmp_path / "a"), smooth=0)


def test_smoothing_is_a_trailing_mean_that_skips_nonfinite_points():
    assert plot.trailing_mean([2.0, 4.0, 6.0, 8.0], 3) == [2.0, 3.0, 4.0, 6.0]
    assert plot.trailing_mean([1.0, float("nan"), 3.0], 1)[2] == 3.0
    assert math.isnan(plot.trailing_mean([float("nan")], 4)[0])


def test_command_line_takes_several_runs_and_smoothing(tmp_path):
    _write_metrics(tmp_path / "a")
    _write_metrics(tmp_path / "b")
    command = [sys.executable, "-m", "r1jax.plot", str(tmp_path / "a"), str(tmp_path / "b")]
    result = subprocess.run(
        [*command, "--out", str(tmp_path / "figs"), "--smooth", "3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert os.path.exists(tmp_path / "figs" / "response_length.png")
    without_out = subprocess.run(command, capture_output=True, text=True, check=False)
    assert without_out.returncode == 1 and "--out" in without_out.stderr
