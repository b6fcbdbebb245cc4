"""Tests for bench/device.sh: its CPU dry run (the tiny model, a few tokens) runs end to end."""

import json
import os
import pathlib
import subprocess

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "bench" / "device.sh"


def dry_run(tmp_path, steps):
    env = {**os.environ, "OUT": str(tmp_path), "STEPS": steps}
    env.pop("XLA_FLAGS", None)  # one CPU device, as on a lent machine's host
    done = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in steps.split()}


def test_dry_run_runs_the_long_tail_step(tmp_path):
    results = dry_run(tmp_path, "longtail")
    longtail = results["longtail"]
    assert longtail["workload"] == "longtail"
    for mode in ("static", "continuous"):
        assert longtail[mode]["useful_tokens"] == longtail["rows"] * longtail["drawn_length_mean"]
        assert longtail[mode]["tokens_per_second"] > 0
    assert "ok in" in (tmp_path / "device.log").read_text()


@pytest.mark.slow
def test_dry_run_runs_every_step(tmp_path):
    results = dry_run(tmp_path, "longtail qwen05b qwen15b step")
    assert results["qwen05b"]["speedup_vs_transformers"] > 0
    assert results["qwen15b"]["tokens_per_second"] > 0
    assert set(results) == {"longtail", "qwen05b", "qwen15b", "step"}
