"""Tests for ``python -m r1jax.bench step`` on a reduced workload."""

import json
import sys

import pytest

from r1jax.bench import step, trl_step
from r1jax.bench.__main__ import main

SMALL_WORKLOAD = [
    "step",
    "--model",
    "tiny",
    "--prompts",
    "2",
    "--samples",
    "2",
    "--new-tokens",
    "8",
    "--prompt-length",
    "8",
    "--repeats",
    "1",
    "--workers",
    "1",
]


def _printed_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_step_bench_reports_phase_times_and_memory(capsys):
    results = main([*SMALL_WORKLOAD, "--json"])
    printed = _printed_json(capsys)
    for name in (
        "sample_seconds",
        "verify_seconds",
        "update_seconds",
        "total_seconds",
        "peak_memory_gib",
        "update_matmuls_seconds",
        "update_matmuls_share_of_update",
    ):
        assert results[name] > 0, name
        assert name in printed
    assert results["total_seconds"] >= results["update_seconds"]
    assert results["dtype"] == "float32"
    assert "speedup_vs_trl" not in results


def test_bfloat16_step_runs_and_names_its_dtype(capsys):
    results = main([*SMALL_WORKLOAD, "--dtype", "bfloat16"])
    header = capsys.readouterr().out.splitlines()[0]
    assert results["dtype"] == "bfloat16"
    assert results["total_seconds"] > 0
    assert "bfloat16" in header


def test_vs_trl_without_trl_falls_back_to_recorded_figures(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "trl", None)  # `import trl` now raises ImportError
    assert trl_step.trl_version() is None
    results = main([*SMALL_WORKLOAD, "--vs-trl"])
    captured = capsys.readouterr()
    assert "TRL is not installed" in captured.err
    assert "pip install trl" in captured.err
    assert "(recorded" in captured.out
    assert results["trl_source"] == "recorded"
    assert results["trl_seconds"] == step.TRL_SECONDS_PER_STEP["tiny"]
    assert results["speedup_vs_trl"] == pytest.approx(
        results["trl_seconds"] / results["total_seconds"]
    )


@pytest.mark.slow
def test_vs_trl_measures_trl_on_the_same_workload(capsys):
    pytest.importorskip("trl")
    results = main([*SMALL_WORKLOAD, "--vs-trl", "--json"])
    printed = _printed_json(capsys)
    assert printed["trl_source"] == results["trl_source"] == "measured"
    assert results["trl_completions_per_step"] == [4]  # P * G rows in every step
    assert results["trl_completion_lengths"] == [8]  # exactly T tokens, none stopped early
    assert 0 < results["trl_generate_seconds"] <= results["trl_seconds"]
    assert results["trl_peak_memory_gib"] > 0
    assert results["speedup_vs_trl"] == pytest.approx(
        results["trl_seconds"] / results["total_seconds"]
    )


def test_longtail_lengths_time_the_padded_and_the_length_grouped_update(capsys):
    args = ["--lengths", "longtail", "--micro-batch-tokens", "48", "--new-tokens", "16"]
    results = main([*SMALL_WORKLOAD, *args])
    out = capsys.readouterr().out
    assert results["update_seconds"] > 0 and results["update_grouped_seconds"] > 0
    assert results["update_speedup"] > 0
    assert results["completion_tokens"] < results["padded_completion_tokens"] == 4 * 16
    assert results["length_buckets"] == (2, 4, 8, 16)
    assert "length-grouped" in out and "long-tailed lengths" in out
