"""Tests for ``python -m r1jax.bench step`` on a reduced workload."""

import json

from r1jax.bench.__main__ import main


def test_step_bench_reports_phase_times_and_memory(capsys):
    results = main(
        [
            "step",
            "--model",
            "tiny",
            "--prompts",
            "2",
            "--samples",
            "2",
            "--new-tokens",
            "8",
            "--repeats",
            "1",
            "--workers",
            "1",
            "--vs-trl",
            "--json",
        ]
    )
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for name in (
        "sample_seconds",
        "verify_seconds",
        "update_seconds",
        "total_seconds",
        "peak_memory_gib",
        "speedup_vs_trl",
    ):
        assert results[name] > 0, name
        assert name in printed
    assert results["total_seconds"] >= results["update_seconds"]
