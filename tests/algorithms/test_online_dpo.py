"""Online DPO: pair rules, the loss against NumPy, the micro-batch rule, two trainer steps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import config as config_lib
from r1jax import learner, metrics, train
from r1jax.algorithms import online_dpo
from r1jax.models import init_params
from tests.learner.test_step import MODEL, make_batch, make_config, run_step
from tests.test_train import DEFAULT


def test_max_min_pairs_best_with_worst_and_skips_equal_groups():
    pairs = online_dpo.preference_pairs(
        jnp.array([0.0, 2.0, 0.5, 2.0, 1.0, 1.0, 1.0, 1.0]), group_size=4, pairing="max_min"
    )
    expected = np.zeros((8, 4))
    expected[1, 0] = 1  # row 1 (first max) over row 0 (min)
    np.testing.assert_array_equal(pairs, expected)


def test_all_pairs_every_higher_over_lower():
    pairs = online_dpo.preference_pairs(jnp.array([0.0, 2.0, 0.5]), group_size=3, pairing="all")
    np.testing.assert_array_equal(pairs, [[0, 0, 0], [1, 0, 1], [1, 0, 0]])


def numpy_dpo(policy, reference, pairs, beta, alpha):
    total = count = 0.0
    group = pairs.shape[1]
    for i in range(len(policy)):
        start = i - i % group
        for j in range(group):
            if pairs[i, j]:
                h = (policy[i] - reference[i]) - (policy[start + j] - reference[start + j])
                sig = 1 / (1 + np.exp(-beta * h))
                total += -(1 - alpha) * np.log(sig) - alpha * np.log(1 - sig)
                count += 1
    return total / max(count, 1)


@pytest.mark.parametrize("pairing", ["max_min", "all"])
def test_loss_matches_numpy(pairing):
    params = init_params(MODEL, jax.random.key(0))
    config = make_config("online_dpo", f"objective.pairing={pairing}")
    batch = make_batch()
    # A reference that differs from the policy, so the margins are not zero.
    reference = learner.reference_logprobs(params, batch, config) + jnp.asarray(
        np.random.default_rng(1).normal(0, 0.5, batch.completion_tokens.shape), jnp.float32
    )
    batch = batch.replace(reference_logprobs=reference)
    _, step_metrics = run_step(params, config, batch)
    mask = np.asarray(batch.completion_mask)
    policy = np.sum(np.asarray(learner.reference_logprobs(params, batch, config)) * mask, -1)
    ref = np.sum(np.asarray(reference) * mask, -1)
    prepared, _ = config.algorithm.prepare(batch, config)
    pairs = np.asarray(prepared["pairs"])
    expected = numpy_dpo(policy, ref, pairs, 0.1, 0.1)
    assert pairs.sum() > 0
    assert float(step_metrics["loss"]) == pytest.approx(expected, rel=1e-5)
    assert float(step_metrics["dpo/pairs_per_prompt"]) == pytest.approx(pairs.sum() / 2)


def test_micro_batches_must_hold_whole_groups():
    params = init_params(MODEL, jax.random.key(0))
    config = make_config("online_dpo", micro_batch_size=2)  # group_size 4
    with pytest.raises(ValueError, match=r"multiple of sampling\.group_size=4"):
        run_step(params, config, make_batch())
    whole = make_config("online_dpo", micro_batch_size=4)
    _, split = run_step(params, whole, make_batch())
    _, full = run_step(params, make_config("online_dpo"), make_batch())
    np.testing.assert_allclose(split["loss"], full["loss"], rtol=1e-5)


def test_the_iterative_preset_resets_the_reference():
    config = config_lib.load_config("", ["objective.algorithm=iterative_dpo"])
    assert config.reference.mode == "reset_every" and config.reference.reset_every > 0
    assert config.objective.dpo_label_smoothing == 0.1


@pytest.mark.slow
def test_two_steps_through_the_trainer(tmp_path):
    config = config_lib.load_config(
        f"{DEFAULT}:smoke",
        ["objective.algorithm=online_dpo", "reference.mode=frozen", "eval.num_problems=0"],
    )
    summary = train.run(config, str(tmp_path), devices=jax.devices()[:1])
    assert summary["final_step"] == 4
    records = [r for r in metrics.read_metrics(str(tmp_path)) if "dpo/pairs_per_prompt" in r]
    assert len(records) == 2 and all(r["skipped_updates"] == 0 for r in records)
    assert all("dpo/prompts_without_pair" in r for r in records)
