"""``python -m r1jax.bench async``: three 2-step smoke runs (sync, async overlap off / on)."""

import argparse

import pytest

from r1jax.bench import async_steps

pytestmark = [pytest.mark.slow, pytest.mark.multidevice]


def test_reports_the_three_runs(capsys):
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    async_steps.add_arguments(parser)
    args = parser.parse_args(
        ["--steps", "2", "--set", "data.prompts_per_step=4", "--set", "sampling.group_size=2"]
    )
    results = async_steps.run(args)
    runs = results["runs"]
    assert list(runs) == ["sync", "async, overlap off", "async, overlap on"]
    assert runs["sync"]["version_lag"] == 0.0
    assert (
        runs["async, overlap off"]["version_lag"] == runs["async, overlap on"]["version_lag"] == 1.0
    )
    assert all(figures["step_seconds"] > 0 for figures in runs.values())
    assert "overlap on vs off" in capsys.readouterr().out
