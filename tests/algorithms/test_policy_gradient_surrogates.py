"""CISPO, GMPO and the rollout correction through the compiled step (tests/learner helpers)."""

import dataclasses

import jax
import numpy as np
import pytest

from r1jax import config as config_lib
from r1jax import learner, objectives
from r1jax.learner import from_config as learner_setup
from r1jax.models import init_params
from r1jax.sampling import sampler as sampler_lib
from r1jax.sampling.rollout import PromptBatch
from tests.learner.test_step import MODEL, B, T, make_batch, make_config, run_step


@pytest.fixture(scope="module")
def params():
    return init_params(MODEL, jax.random.key(0))


@pytest.mark.parametrize("algorithm", ["cispo", "gmpo"])
def test_the_preset_trains_through_the_step_with_the_objective_loss(params, algorithm):
    config = make_config(algorithm, "objective.kl_coef=0")
    assert config.algorithm.surrogate == algorithm and not config.uses_reference
    batch = make_batch()
    state, metrics = run_step(params, config, batch)
    assert int(state.step) == 1 and float(metrics["skipped_updates"]) == 0
    logprobs = learner.reference_logprobs(params, batch, config)  # π_θ before the update
    prepared, _ = config.algorithm.prepare(batch, config)
    algorithm_config = config.algorithm
    expected, _ = objectives.policy_gradient_loss(
        logprobs,
        batch.old_logprobs,
        None,
        prepared["advantages"],
        prepared["loss_mask"],
        surrogate=algorithm,
        eps_low=algorithm_config.clip_eps_low,
        eps_high=algorithm_config.clip_eps_high,
        aggregation_mode=algorithm_config.aggregation,
    )
    assert float(metrics["loss"]) == pytest.approx(float(expected), rel=1e-4, abs=1e-6)
    assert float(metrics["grad_norm"]) > 0


def corrected(config, **fields):
    correction = dataclasses.replace(config.algorithm.rollout_correction, enabled=True, **fields)
    return dataclasses.replace(
        config, algorithm=dataclasses.replace(config.algorithm, rollout_correction=correction)
    )


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("action", ["truncate", "mask"])
def test_identical_sampler_and_learner_logprobs_change_nothing(params, level, action):
    config = make_config("grpo", "objective.kl_coef=0")
    batch = make_batch()
    batch = batch.replace(old_logprobs=learner.reference_logprobs(params, batch, config))
    off_state, _ = run_step(params, config, batch)
    on = corrected(config, level=level, action=action, clip_min=0.5)
    on_state, metrics = run_step(params, on, batch.replace(learner_logprobs=batch.old_logprobs))
    for a, b in zip(jax.tree.leaves(off_state.policy), jax.tree.leaves(on_state.policy)):
        np.testing.assert_array_equal(a, b)
    assert float(metrics["rollout_correction/log_ratio_max"]) == 0.0
    assert float(metrics[f"rollout_correction/{action}d_fraction"]) == 0.0


def test_a_planted_mismatch_gives_the_formula_weights(params):
    config = corrected(make_config("grpo", "objective.kl_coef=0"), clip_max=2.0)
    batch = make_batch()
    learner_logprobs = learner.reference_logprobs(params, batch, config)
    planted = np.zeros((B, T), np.float32)
    planted[0, 0], planted[1, 0] = np.log(3.0), np.log(0.5)  # π_old / μ = 3 (capped) and 0.5
    batch = batch.replace(old_logprobs=learner_logprobs - planted)  # μ
    prepared, metrics = config.algorithm.prepare(
        batch.replace(learner_logprobs=learner_logprobs), config
    )
    mask = np.asarray(batch.completion_mask)
    expected = np.where(mask, np.minimum(np.exp(planted), 2.0), 0.0)
    np.testing.assert_allclose(prepared["rollout_weights"], expected, rtol=1e-5)
    assert float(metrics["rollout_correction/log_ratio_max"]) == pytest.approx(np.log(3.0))
    assert float(metrics["rollout_correction/truncated_fraction"]) == pytest.approx(1 / mask.sum())
    # The step computes the learner's log-probs itself (once, before the update) and agrees.
    _, step_metrics = run_step(params, config, batch)
    assert float(step_metrics["rollout_correction/log_ratio_max"]) == pytest.approx(
        np.log(3.0), rel=1e-4
    )


def test_auto_is_on_exactly_when_the_sampler_dtype_differs():
    def resolve(*overrides):
        config = config_lib.load_config("", ["model.dtype=float32", *overrides])
        return learner_setup.algorithm_config(config).rollout_correction.enabled

    assert not resolve()
    assert resolve("sampling.dtype=bfloat16")
    assert not resolve("sampling.dtype=bfloat16", "objective.rollout_correction.mode=off")
    assert resolve("objective.rollout_correction.mode=on")
    with pytest.raises(ValueError, match=r"rollout_correction\.mode"):
        resolve("objective.rollout_correction.mode=sometimes")


@pytest.mark.parametrize("sampler_dtype, tolerance", [("float32", 1e-5), ("bfloat16", None)])
def test_float32_sampler_and_learner_agree_so_auto_stays_off(sampler_dtype, tolerance):
    model = dataclasses.replace(MODEL, dtype="float32")
    params = init_params(model, jax.random.key(1))
    prompts = PromptBatch(
        tokens=np.array([[0, 5, 6, 7], [9, 10, 11, 12]], np.int32),
        lengths=np.array([3, 4], np.int32),
        prompt_ids=np.array([0, 1], np.int32),
    )
    sampling = sampler_lib.SamplingParams(
        max_new_tokens=8, temperature=1.0, num_samples_per_prompt=2, pad_id=0
    )
    rollout = sampler_lib.sample(
        params,
        dataclasses.replace(model, dtype=sampler_dtype),
        prompts,
        jax.random.key(2),
        sampling,
    )
    batch = learner.Batch.from_rollout(rollout)
    config = dataclasses.replace(make_config("grpo"), model=model, max_new_tokens=8)
    learner_logprobs = learner.reference_logprobs(params, batch, config)
    mask = np.asarray(batch.completion_mask)
    gap = np.max(np.abs(np.asarray(learner_logprobs) - np.asarray(batch.old_logprobs))[mask])
    if tolerance is not None:
        assert gap <= tolerance
    else:  # a bfloat16 sampler is what the correction is for
        assert gap > 1e-3
