"""PPO with a critic (`r1jax.algorithms.ppo`) through the generic step, against hand-computed
values and an independent NumPy GAE."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import learner
from r1jax.algorithms import ppo
from r1jax.models import init_params
from tests.learner.helpers import learner_config
from tests.learner.test_step import MODEL, B, T, make_batch


@pytest.fixture(scope="module")
def params():
    return init_params(MODEL, jax.random.key(0))


def make_config(*overrides, **fields):
    overrides = (
        "objective.algorithm=ppo",
        "critic.lr=1e-2",
        "critic.lr_warmup_steps=0",
        "optim.warmup_steps=0",
        *overrides,
    )
    return learner_config(MODEL, *overrides, max_new_tokens=T, group_size=4, **fields)


def numpy_gae(rewards, values, mask, gamma, lam):
    """GAE over each row's valid tokens, written with a Python loop."""
    advantages = np.zeros_like(rewards)
    for i in range(rewards.shape[0]):
        valid = np.flatnonzero(mask[i])
        running, next_value = 0.0, 0.0
        for t in reversed(valid):
            delta = rewards[i, t] + gamma * next_value - values[i, t]
            running = delta + gamma * lam * running
            advantages[i, t] = running
            next_value = values[i, t]
    return advantages, np.where(mask, advantages + values, 0.0)


def test_hand_computed_advantages_with_gamma_and_lambda_one():
    """One terminal reward R and no KL: Â_t = R − V_t, returns R (GAE with γ = λ = 1, as ORZ runs it)."""
    algorithm = ppo.PPO(whiten_advantages=False)
    config = dataclasses.replace(make_config(), algorithm=algorithm)
    batch = make_batch(completion_mask=jnp.ones((B, T), bool))
    values = jnp.tile(jnp.linspace(0.0, 0.5, T)[None], (B, 1))
    prepared, metrics = algorithm.prepare(batch, config, auxiliary={"values": values})
    reward = batch.is_correct.astype(jnp.float32)[:, None]
    np.testing.assert_allclose(prepared["advantages"], reward - values, atol=1e-6)
    np.testing.assert_allclose(prepared["returns"], jnp.broadcast_to(reward, (B, T)), atol=1e-6)
    assert float(metrics["critic/value_error"]) == pytest.approx(
        float(jnp.mean(jnp.abs(reward - values))), rel=1e-5
    )


def test_advantages_match_numpy_gae_with_kl_in_the_reward():
    gamma, lam, beta = 0.9, 0.8, 0.05
    algorithm = ppo.PPO(gamma=gamma, gae_lambda=lam, kl_coef=beta, kl_placement="reward")
    config = dataclasses.replace(make_config(), algorithm=algorithm)
    rng = np.random.default_rng(3)
    batch = make_batch(reference_logprobs=jnp.asarray(rng.normal(-4, 0.2, (B, T)), jnp.float32))
    values = jnp.asarray(rng.normal(0, 0.3, (B, T)), jnp.float32)
    prepared, _ = algorithm.prepare(batch, config, auxiliary={"values": values})
    mask = np.asarray(batch.completion_mask)
    rewards = np.zeros((B, T))
    for i in range(B):
        rewards[i, np.flatnonzero(mask[i])[-1]] = float(batch.is_correct[i])
    k1 = np.asarray(batch.old_logprobs) - np.asarray(batch.reference_logprobs)
    rewards = rewards - beta * np.where(mask, k1, 0.0)
    advantages, returns = numpy_gae(rewards, np.asarray(values), mask, gamma, lam)
    flat = advantages[mask]
    whitened = np.where(mask, (advantages - flat.mean()) / np.sqrt(flat.var(ddof=1) + 1e-8), 0)
    np.testing.assert_allclose(prepared["returns"], returns, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(prepared["advantages"], whitened, rtol=1e-4, atol=1e-5)


def test_value_loss_is_the_token_mean_of_half_the_squared_error(params):
    config = make_config("critic.value_clip=0")
    critic = learner.auxiliary.init_params(
        config.algorithm.critic, params, MODEL, jax.random.key(1)
    )
    batch = make_batch()
    values = learner.auxiliary.completion_values(critic, batch, config)
    mask = batch.completion_mask
    returns = jnp.ones((B, T))
    prepared = {"old_values": values, "returns": returns, "value_mask": mask}
    denominator = config.algorithm.auxiliary_denominator("critic", prepared, config)
    loss, sums = config.algorithm.auxiliary_loss(
        "critic", critic, batch, prepared, denominator, config
    )
    expected = np.sum(np.where(mask, 0.5 * (np.asarray(values) - 1.0) ** 2, 0)) / np.sum(mask)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(config.algorithm.auxiliary_summarize("critic", sums)["value_loss"]) == (
        pytest.approx(expected, rel=1e-5)
    )


def test_critic_warm_up_freezes_the_policy_then_both_train(params):
    config = make_config("critic.warmup_steps=1")
    state = learner.init_train_state(jax.tree.map(jnp.copy, params), config)
    assert set(state.aux) == {"critic"} and "lm_head" not in state.aux["critic"]["params"]
    before = jax.tree.map(np.asarray, state)
    state, metrics = learner.train_step(state, make_batch(0), config=config)
    for a, b in zip(jax.tree.leaves(before.policy), jax.tree.leaves(state.policy)):
        np.testing.assert_array_equal(a, b)
    head = "value_head"
    assert not np.array_equal(
        before.aux["critic"]["params"][head]["kernel"],
        state.aux["critic"]["params"][head]["kernel"],
    )
    assert float(metrics["learning_rate"]) == 0.0 or float(metrics["loss"]) == 0.0
    assert np.isfinite(float(metrics["critic/value_loss"]))
    for name in ("critic/explained_variance", "critic/value_error", "critic/grad_norm"):
        assert name in metrics
    policy = jax.tree.map(np.asarray, state.policy)
    state, metrics = learner.train_step(state, make_batch(1), config=config)
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(policy), jax.tree.leaves(state.policy))
    ]
    assert any(changed) and float(metrics["learning_rate"]) == pytest.approx(1e-3)


def test_critic_gradients_do_not_depend_on_the_micro_batch_split(params):
    results = []
    for micro in (0, 2):
        config = make_config(micro_batch_size=micro)
        state = learner.init_train_state(jax.tree.map(jnp.copy, params), config)
        state, metrics = learner.train_step(state, make_batch(), config=config)
        results.append((state.aux["critic"]["params"]["value_head"]["kernel"], metrics))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        results[0][1]["critic/value_loss"], results[1][1]["critic/value_loss"], rtol=1e-5
    )


def test_presets_follow_orz_and_tinyzero():
    orz, tiny = ppo.PRESETS["ppo"], ppo.PRESETS["ppo_tinyzero"]
    assert (orz["objective.gamma"], orz["objective.gae_lambda"], orz["objective.kl_coef"]) == (
        1.0,
        1.0,
        0.0,
    )
    assert (orz["critic.lr"], orz["optim.lr"], orz["critic.value_clip"]) == (5e-6, 1e-6, 0.0)
    assert (tiny["objective.kl_placement"], tiny["critic.value_clip"]) == ("reward", 0.5)
