"""PRIME (`r1jax.algorithms.prime`) through the generic step: the accuracy filter, the
implicit rewards against the reference and the PRM's online update."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import learner
from r1jax.models import init_params
from r1jax.objectives import prime as prime_objectives
from tests.learner.helpers import learner_config
from tests.learner.test_step import MODEL, B, T, make_batch


@pytest.fixture(scope="module")
def params():
    return init_params(MODEL, jax.random.key(0))


def make_config(*overrides, **fields):
    overrides = ("objective.algorithm=prime", "prm.lr=1e-2", *overrides)
    return learner_config(MODEL, *overrides, max_new_tokens=T, group_size=4, **fields)


def test_groups_outside_the_accuracy_band_get_no_loss():
    config = make_config()
    # Groups of 4: [1, 0, 0, 1] (0.5, kept) and [1, 1, 1, 1] (1.0, dropped).
    batch = make_batch(
        is_correct=jnp.array([1, 0, 0, 1, 1, 1, 1, 1], bool),
        reference_logprobs=jnp.full((B, T), -4.0),
    )
    prm_logprobs = jnp.asarray(np.random.default_rng(0).normal(-4, 0.1, (B, T)), jnp.float32)
    prepared, metrics = config.algorithm.prepare(
        batch, config, auxiliary={"prm_logprobs": prm_logprobs}
    )
    assert prepared["kept"].tolist() == [True] * 4 + [False] * 4
    assert not np.asarray(prepared["loss_mask"])[4:].any()
    assert float(metrics["prime/kept_group_fraction"]) == 0.5
    process = prime_objectives.implicit_process_rewards(
        prm_logprobs, batch.reference_logprobs, batch.completion_mask, beta=0.05
    )
    expected, _ = prime_objectives.prime_advantages(
        process[:4],
        batch.is_correct[:4].astype(jnp.float32),
        batch.completion_mask[:4],
        group_size=4,
    )
    np.testing.assert_allclose(prepared["advantages"][:4], expected, rtol=1e-5, atol=1e-6)


def test_a_step_trains_policy_and_prm_and_starts_from_zero_process_rewards(params):
    config = make_config("reference.mode=frozen")
    state = learner.init_train_state(jax.tree.map(jnp.copy, params), config)
    assert set(state.aux) == {"prm"} and state.reference is not None
    before = jax.tree.map(np.asarray, (state.policy, state.aux["prm"]["params"]))
    state, metrics = learner.train_step(state, make_batch(), config=config)
    # The PRM starts as the reference: every implicit reward is 0 before its first update.
    assert float(metrics["prime/process_reward"]) == pytest.approx(0.0, abs=1e-6)
    assert float(metrics["prm/loss"]) == pytest.approx(np.log(2.0), rel=1e-5)
    after = (state.policy, state.aux["prm"]["params"])
    for old, new in zip(before, after):
        assert any(
            not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new))
        )
    # The update raises the implicit reward of correct responses over wrong ones.
    prm_lp = learner.reference_logprobs(state.aux["prm"]["params"], make_batch(), config)
    ref_lp = learner.reference_logprobs(state.reference, make_batch(), config)
    batch = make_batch()
    z = np.sum(np.where(batch.completion_mask, np.asarray(prm_lp - ref_lp), 0.0), axis=-1)
    correct = np.asarray(batch.is_correct)
    assert z[correct].mean() > z[~correct].mean()


def test_prime_needs_a_reference():
    from r1jax import config as config_lib
    from r1jax.learner import from_config

    config = config_lib.load_config("", ["objective.algorithm=prime", "reference.mode=none"])
    with pytest.raises(config_lib.ConfigError, match=r"reference\.mode"):
        from_config.algorithm_config(config)
