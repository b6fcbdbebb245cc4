"""Tests for r1jax/bench/longtail.py: drawn lengths and the partial-rollout calls."""

import argparse

import numpy as np
import pytest

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


def test_scheduled_decode_steps_match_the_continuous_sampler():
    """The floor's step count replays the sampler's schedule: same decode steps as a real
    `ContinuousSampler` call on the same per-row lengths (6 groups of 2 on 4 slots)."""
    import jax

    from r1jax.models import ModelConfig, init_params
    from r1jax.sampling import continuous
    from r1jax.sampling.rollout import PromptBatch
    from r1jax.sampling.sampler import SamplingParams

    config = ModelConfig.preset("tiny", dtype="float32")
    params = init_params(config, jax.random.key(0))
    lengths = longtail.draw_lengths(12, 24, seed=4)
    prompts = PromptBatch.from_token_lists([[5, 6, 7]] * 6, prompt_ids=range(6))
    sampling_params = SamplingParams(max_new_tokens=24, num_samples_per_prompt=2)
    sampler = continuous.ContinuousSampler(params, config, sampling_params, 4, prompt_length=3)
    sampler.submit(prompts, jax.random.key(1), max_new_tokens_per_row=lengths)
    sampler.generate()
    steps = sampler.last_call_stats.decode_steps
    assert steps == longtail.scheduled_decode_steps(lengths, group=2, slots=4)
    assert longtail.scheduled_decode_steps(lengths, group=2, slots=12) == lengths.max() - 1


def test_floor_reports_every_slot_count(capsys):
    workload = ["--model", "tiny", "--prompts", "4", "--samples", "2", "--new-tokens", "16"]
    args = parse(["--workload", "longtail", "--mode", "_floor", *workload])
    floor = sample_bench.run(args)
    assert sorted(int(s) for s in floor["slots"]) == [32, 64, 128, 256]
    for row in floor["slots"].values():
        assert row["floor_seconds"] > 0 and 0 < row["utilization"] <= 1
        assert row["ideal_floor_seconds"] <= row["floor_seconds"]
        assert row["attention_floor_seconds"] == pytest.approx(
            row["decode_steps"]
            * (row["matmul_seconds_per_step"] + row["attention_seconds_per_step"])
        )


def test_continuous_mode_attends_in_the_bands_given():
    """``--attention-tiers`` reaches the sampler: bands of 8 and 16 columns on 72-column rings,
    every row still stops at its drawn length (the mode checks it)."""
    workload = ["--model", "tiny", "--prompts", "2", "--samples", "2", "--new-tokens", "64"]
    args = parse(
        ["--workload", "longtail", "--mode", "_continuous", "--slots", "4", "--prompt-length",
         "8", "--attention-tiers", "8,16", *workload]
    )  # fmt: skip
    results = sample_bench.run(args)
    assert results["attention_bands"] == [8, 16]
    assert results["useful_tokens"] == int(longtail.draw_lengths(4, 64, seed=0).sum())
    assert longtail.attention_tiers("none") == ()
    with pytest.raises(ValueError, match="attention-tiers"):
        longtail.attention_tiers("256;512")
