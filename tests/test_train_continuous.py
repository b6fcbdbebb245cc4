"""Tests for ``sampling.mode = "continuous"`` in the trainer (r1jax/continuous_rollouts.py):
the same rollouts as static sampling, partial rollouts carried across steps, resume, and the
config checks."""

import re
from pathlib import Path

import jax
import numpy as np
import pytest

from r1jax import config as config_lib
from r1jax import continuous_rollouts, experience, metrics, train
from r1jax.models import ModelConfig, init_params
from r1jax.sampling import continuous
from r1jax.sampling.rollout import PromptBatch
from r1jax.sampling.sampler import SamplingParams

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = str(ROOT / "experiments" / "default.py")
# Two RL steps of the tiny model, 2 prompts x 2 samples, 16 new tokens.
SMALL = ("sft.mode=none", "eval.num_problems=0", "mesh.data=1", "verifier.workers=1")
# An untrained model earns no reward; an entropy bonus and the overlong term still move it.
MOVING = ("objective.entropy_coef=0.01", "rewards.overlong.enabled=true")
ROLLOUT_METRICS = experience.rollout_metrics


def small_config(*overrides):
    return config_lib.load_config(f"{DEFAULT}:smoke", [*SMALL, *overrides])


def recorded_run(monkeypatch, workdir, *overrides):
    """Trains on one device; returns each RL step's rollout (host arrays) and the metrics."""
    rollouts = []

    def recording(collected, **kwargs):
        batch = jax.device_get(collected.batch)
        rollouts.append(
            {
                "tokens": np.asarray(batch.completion_tokens),
                "mask": np.asarray(batch.completion_mask),
                "prompt_tokens": np.asarray(batch.prompt_tokens),
                "logprobs": np.asarray(batch.old_logprobs),
                "correct": np.asarray(batch.is_correct),
                "texts": list(collected.texts),
                "problem_ids": list(collected.problem_ids),
            }
        )
        return ROLLOUT_METRICS(collected, **kwargs)

    monkeypatch.setattr(experience, "rollout_metrics", recording)
    summary = train.run(small_config(*overrides), str(workdir), devices=jax.devices()[:1])
    return rollouts, metrics.read_metrics(str(workdir)), summary


@pytest.mark.parametrize(
    "tiers", [(), ("sampling.attention_tiers=(24, 48)",)], ids=["whole-rings", "bands"]
)
def test_continuous_mode_trains_on_the_static_rollouts(tmp_path, monkeypatch, tiers):
    """Without partial rollouts, 2 RL steps sample the same tokens as the static sampler
    (per-row determinism), so the rollouts, rewards and losses agree; also with the decode
    attention in bands (the default bounds exceed this run's 143-column rings)."""
    static, static_metrics, _ = recorded_run(monkeypatch, tmp_path / "static", "steps=2", *MOVING)
    slots, slot_metrics, _ = recorded_run(
        monkeypatch,
        tmp_path / "continuous",
        "steps=2",
        *MOVING,
        "sampling.mode=continuous",
        "sampling.slots=2",  # one group at a time: groups refill as others finish
        *tiers,
    )
    assert len(static) == len(slots) == 2
    for a, b in zip(static, slots):
        for name in ("tokens", "mask", "prompt_tokens", "correct"):
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        assert a["texts"] == b["texts"] and a["problem_ids"] == b["problem_ids"]
        np.testing.assert_allclose(a["logprobs"], b["logprobs"], atol=1e-5)
    for a, b in zip(static_metrics, slot_metrics):
        for name in ("accuracy", "reward/total", "response_length/mean", "tokens"):
            assert a[name] == b[name], name
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4) and a["grad_norm"] > 0
        assert 0.0 < b["sampling/slot_utilization"] <= 1.0
        assert "sampling/slot_utilization" not in a


def test_partial_rollouts_carry_rows_into_the_next_steps(tmp_path, monkeypatch):
    """Rows still decoding when a step's batch is full continue in the next step, with their
    age logged; calls of at most 2 decode steps; training runs without a skipped update. A
    tenth of the token ids stop a row, so the untrained model's rows end at staggered lengths."""
    rollouts, records, summary = recorded_run(
        monkeypatch,
        tmp_path,
        "steps=3",
        "sampling.mode=continuous",
        "sampling.partial_rollouts=true",
        "sampling.partial_step_budget=2",
        f"tokenizer.extra_stop_token_ids={tuple(range(100, 150))}",
    )
    assert summary["final_step"] == 3 and len(rollouts) == 3
    carried = [r["sampling/partial/carried_rows"] for r in records]
    assert carried[0] == 0 and max(carried[1:]) > 0
    ages = [r["sampling/partial/carried_age_max"] for r in records]
    assert max(ages) >= 1
    assert all(r["sampling/decode_steps"] <= 2 * r["sampling/calls"] for r in records)
    assert max(r["sampling/partial/stale_rows"] for r in records) > 0
    assert all(r.get("skipped_updates", 0) == 0 for r in records)
    for rollout in rollouts:  # fixed shapes: P * G rows of T tokens
        assert rollout["tokens"].shape == (4, 16)
        assert np.all(rollout["mask"].sum(axis=1) >= 1)


def test_a_run_with_partial_rollouts_resumes(tmp_path):
    """Rows in flight at a checkpoint are dropped on resume; the run goes on from there."""
    overrides = (
        "sampling.mode=continuous",
        "sampling.partial_rollouts=true",
        "sampling.partial_step_budget=2",
    )
    first = train.run(small_config("steps=1", *overrides), str(tmp_path), devices=jax.devices()[:1])
    assert first["final_step"] == 1
    again = train.run(small_config("steps=2", *overrides), str(tmp_path), devices=jax.devices()[:1])
    assert again["final_step"] == 2
    records = metrics.read_metrics(str(tmp_path))
    assert [r["step"] for r in records] == [1, 2]
    assert records[-1]["sampling/partial/carried_rows"] == 0  # nothing survives the restart


@pytest.mark.parametrize(
    "overrides, key",
    [
        (("sampling.mode=paged",), "sampling.mode"),
        (("sampling.slots=8",), "sampling.slots"),  # static mode
        (("sampling.partial_rollouts=true",), "sampling.partial_rollouts"),
        (("sampling.mode=continuous", "sampling.slots=3"), "sampling.slots"),  # G = 2
        (("sampling.mode=continuous", "sampling.slots=1"), "sampling.slots"),
        (("sampling.mode=continuous", "sampling.slots=-2"), "sampling.slots"),
        (("sampling.mode=continuous", "sampling.partial_step_budget=4"), "partial_step_budget"),
        (("sampling.attention_tiers=(64,)",), "sampling.attention_tiers"),  # static mode
        (("sampling.mode=continuous", "sampling.attention_tiers=(512, 256)"), "attention_tiers"),
        (("sampling.mode=continuous", "sampling.attention_tiers=(0,)"), "attention_tiers"),
        (
            (
                "sampling.mode=continuous",
                "sampling.partial_rollouts=true",
                "sampling.partial_step_budget=-1",
            ),
            "sampling.partial_step_budget",
        ),
    ],
)
def test_bad_sampling_settings_are_config_errors_naming_the_key(overrides, key):
    with pytest.raises(config_lib.ConfigError, match=re.escape(key)):
        continuous_rollouts.settings_from_config(small_config(*overrides))


def test_continuous_settings_and_the_slot_default():
    assert continuous_rollouts.settings_from_config(small_config()) is None
    settings = continuous_rollouts.settings_from_config(
        small_config("sampling.mode=continuous", "sampling.partial_rollouts=true")
    )
    assert settings == continuous_rollouts.ContinuousSettings(
        slots=4, partial_rollouts=True, step_budget=0, attention_tiers=(256,)
    )  # prompts_per_step * group_size
    assert tuple(small_config().sampling.attention_tiers) == continuous.ATTENTION_TIERS
    no_bands = small_config("sampling.mode=continuous", "sampling.attention_tiers=()")
    assert continuous_rollouts.settings_from_config(no_bands).attention_tiers == ()


def test_slots_must_split_over_the_data_parallel_axes(tmp_path):
    config = small_config("mesh.data=4", "sampling.mode=continuous", "sampling.slots=6")
    with pytest.raises(config_lib.ConfigError, match=r"sampling\.slots"):
        train.run(config, str(tmp_path), devices=jax.devices()[:4])


def test_each_rejected_group_is_replaced_by_one_more_until_the_batch_is_full():
    """Dynamic sampling in continuous mode: the step submits ``wanted`` groups, then one more
    for each group ``accept`` rejects (no whole extra rounds), drawing prompt batches as needed;
    the kept groups come back in submission order."""
    model = ModelConfig.preset("tiny", dtype="float32", param_dtype="float32")
    params = init_params(model, jax.random.key(0))
    settings = continuous_rollouts.ContinuousSettings(
        slots=4, partial_rollouts=False, step_budget=0
    )
    controls = SamplingParams(max_new_tokens=8, num_samples_per_prompt=2)
    drawn = []

    def next_prompts():  # batches of 3 prompts; problem i is accepted when i is odd
        first = 3 * len(drawn)
        ids = list(range(first, first + 3))
        batch = PromptBatch.from_token_lists(
            [[5, 6, i + 1] for i in ids], length_bucket=8, prompt_ids=ids
        )
        drawn.append(batch)
        return batch, [{"i": i} for i in ids], [f"p{i}" for i in ids]

    for max_rounds, kept, spare in ((10, ["p1", "p3", "p5"], 3), (1, ["p1"], 2)):
        drawn.clear()
        stream = continuous_rollouts.GroupStream(
            settings, model_config=model, prompt_length=8, mesh=None, rules=None
        )
        step = stream.collect(
            params,
            0,
            next_prompts,
            jax.random.key(1),
            controls,
            wanted=3,
            max_rounds=max_rounds,
            accept=lambda group: group.problem["i"] % 2 == 1,
        )
        assert [g.problem_id for g in step.kept] == kept
        assert len(step.spare) == spare and step.rounds == len(drawn)
        assert step.rounds == (2 if max_rounds == 10 else 1)  # 6 prompts: 3 + one per reject
        assert stream.sampler.num_pending == 0 and stream.sampler.num_in_flight == 0
        assert 0.0 < step.metrics["sampling/slot_utilization"] <= 1.0


def test_partial_rollouts_turn_rollout_correction_on_under_auto():
    """Carried rows hold an older policy's tokens: ``auto`` corrects them even in float32."""
    from r1jax.learner import from_config as learner_setup

    def correction(*overrides):
        config = small_config("sampling.mode=continuous", *overrides)
        return learner_setup.algorithm_config(config).rollout_correction.enabled

    assert not correction()
    assert correction("sampling.partial_rollouts=true")
    assert not correction("sampling.partial_rollouts=true", "objective.rollout_correction.mode=off")
