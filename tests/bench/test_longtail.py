"""Tests for r1jax/bench/longtail.py: drawn lengths and the partial-rollout calls."""

import argparse

import numpy as np

from r1jax.bench import longtail
from r1jax.bench import sample as sample_bench


def parse(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    sample_bench.add_arguments(parser)
    return parser.parse_args(argv)


def test_drawn_lengths_are_long_tailed_and_fixed_by_the_seed():
    lengths = longtail.draw_lengths(2048, 256, seed=3)
    assert lengths.min() >= 1 and lengths.max() == 256
    assert 28 <= np.median(lengths) <= 36  # T / 8
    assert 0.03 <= np.mean(lengths == 256) <= 0.07
    np.testing.assert_array_equal(lengths, longtail.draw_lengths(2048, 256, seed=3))


def test_partial_calls_carry_rows(capsys):
    workload = ["--model", "tiny", "--prompts", "2", "--samples", "2", "--new-tokens", "32"]
    args = parse(["--workload", "longtail", "--mode", "_partial", "--slots", "4", *workload])
    results = sample_bench.run(args)
    calls = results["calls"]
    assert [c["call"] for c in calls] == [0, 1, 2, 3]
    assert all(c["groups_returned"] == 2 for c in calls)
    assert calls[0]["carried_rows"] == 0
    assert all(0 < c["utilization"] <= 1 for c in calls)
