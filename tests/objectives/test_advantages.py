"""Tests for r1jax.objectives.advantages: hand values, NumPy references, edge cases."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.objectives import advantages as adv


def np_group_relative(rewards, group_size, *, scale_by_std=True, unbiased_std=True, eps=1e-6):
    rewards = np.asarray(rewards, np.float64)
    out = np.empty_like(rewards)
    for start in range(0, len(rewards), group_size):
        group = rewards[start : start + group_size]
        if group_size == 1:
            mean, std = 0.0, 1.0
        else:
            mean = group.mean()
            std = group.std(ddof=1 if unbiased_std else 0)
        centred = group - mean
        out[start : start + group_size] = centred / (std + eps) if scale_by_std else centred
    return out


def np_rloo(rewards, group_size):
    rewards = np.asarray(rewards, np.float64)
    out = np.empty_like(rewards)
    for i in range(len(rewards)):
        start = (i // group_size) * group_size
        others = [rewards[j] for j in range(start, start + group_size) if j != i]
        out[i] = rewards[i] - (np.mean(others) if others else 0.0)
    return out


def np_masked_whiten(values, mask, eps=1e-8):
    values = np.asarray(values, np.float64)
    mask = np.asarray(mask, bool)
    picked = values[mask]
    if picked.size == 0:
        return np.zeros_like(values)
    mean = picked.mean()
    var = picked.var(ddof=1) if picked.size > 1 else 0.0
    return np.where(mask, (values - mean) / np.sqrt(var + eps), 0.0)


def np_returns(token_rewards, mask, gamma):
    token_rewards = np.asarray(token_rewards, np.float64)
    mask = np.asarray(mask, np.float64)
    out = np.zeros_like(token_rewards)
    running = np.zeros(token_rewards.shape[0])
    for t in reversed(range(token_rewards.shape[1])):
        running = token_rewards[:, t] + gamma * running
        out[:, t] = running
        running = running * mask[:, t]
    return out * mask


def np_gae(rewards, values, mask, gamma, lam):
    rewards, values, mask = (np.asarray(x, np.float64) for x in (rewards, values, mask))
    batch, length = rewards.shape
    out = np.zeros_like(rewards)
    next_value = np.zeros(batch)
    last = np.zeros(batch)
    for t in reversed(range(length)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        current = delta + gamma * lam * last
        next_value = values[:, t] * mask[:, t] + (1 - mask[:, t]) * next_value
        last = current * mask[:, t] + (1 - mask[:, t]) * last
        out[:, t] = current
    return out * mask, (out + values) * mask


def random_mask(rng, batch, length, *, empty_rows=()):
    lengths = rng.integers(1, length + 1, size=batch)
    mask = np.arange(length)[None, :] < lengths[:, None]
    for row in empty_rows:
        mask[row] = False
    return mask


@pytest.mark.parametrize(
    ("prompts", "group_size", "scale_by_std", "unbiased_std"),
    [(1, 1, True, True), (3, 2, True, False), (2, 4, True, True), (5, 8, False, True)],
)
def test_group_relative_matches_numpy(prompts, group_size, scale_by_std, unbiased_std):
    rng = np.random.default_rng(prompts * 10 + group_size)
    rewards = rng.normal(size=prompts * group_size).astype(np.float32)
    fn = jax.jit(
        functools.partial(
            adv.group_relative_advantages,
            group_size=group_size,
            scale_by_std=scale_by_std,
            unbiased_std=unbiased_std,
        )
    )
    got = fn(rewards)
    assert got.shape == (prompts * group_size,)
    want = np_group_relative(
        rewards, group_size, scale_by_std=scale_by_std, unbiased_std=unbiased_std
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_group_relative_hand_values():
    got = adv.group_relative_advantages(jnp.array([1.0, 0.0, 2.0, 4.0]), group_size=2)
    std = np.sqrt(0.5)
    np.testing.assert_allclose(
        got,
        [0.5 / (std + 1e-6), -0.5 / (std + 1e-6), -1 / (2 * std + 1e-6), 1 / (2 * std + 1e-6)],
        rtol=1e-6,
    )
    population = adv.group_relative_advantages(
        jnp.array([1.0, 0.0]), group_size=2, unbiased_std=False
    )
    np.testing.assert_allclose(population, [0.5 / (0.5 + 1e-6), -0.5 / (0.5 + 1e-6)], rtol=1e-6)


def test_equal_rewards_give_exactly_zero_advantage():
    rewards = jnp.array([3.0, 3.0, 3.0, 0.0, 0.0, 0.0])
    for fn in (
        functools.partial(adv.group_relative_advantages, group_size=3),
        functools.partial(adv.dr_grpo_advantages, group_size=3),
        functools.partial(adv.rloo_advantages, group_size=3),
    ):
        got = jax.jit(fn)(rewards)
        assert np.all(np.asarray(got) == 0.0)


def test_group_size_one_uses_mean_zero_std_one():
    rewards = jnp.array([1.0, -2.0, 0.5])
    got = adv.group_relative_advantages(rewards, group_size=1)
    np.testing.assert_allclose(got, np.array([1.0, -2.0, 0.5]) / (1 + 1e-6), rtol=1e-6)
    np.testing.assert_allclose(adv.rloo_advantages(rewards, group_size=1), rewards)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_advantages_accept_float32_and_bfloat16(dtype):
    rewards = jnp.array([1.0, 0.0, 0.0, 1.0, 1.0, 1.0], dtype)
    got = adv.group_relative_advantages(rewards, group_size=3)
    assert got.dtype == jnp.float32
    want = np_group_relative(np.asarray(rewards, np.float32), 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert adv.rloo_advantages(rewards, group_size=3).dtype == jnp.float32


def test_bad_batch_size_is_a_clear_error():
    with pytest.raises(ValueError, match="groups of 4"):
        adv.group_relative_advantages(jnp.zeros(6), group_size=4)
    with pytest.raises(ValueError, match="shape"):
        adv.group_relative_advantages(jnp.zeros((2, 2)), group_size=2)


def test_dr_grpo_is_mean_centring():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=12).astype(np.float32)
    got = jax.jit(functools.partial(adv.dr_grpo_advantages, group_size=4))(rewards)
    np.testing.assert_allclose(got, np_group_relative(rewards, 4, scale_by_std=False), atol=1e-6)


@pytest.mark.parametrize("group_size", [2, 5])
def test_rloo_matches_numpy_and_scaled_centring(group_size):
    rng = np.random.default_rng(group_size)
    rewards = rng.normal(size=3 * group_size).astype(np.float32)
    got = jax.jit(functools.partial(adv.rloo_advantages, group_size=group_size))(rewards)
    np.testing.assert_allclose(got, np_rloo(rewards, group_size), rtol=1e-5, atol=1e-6)
    centred = np_group_relative(rewards, group_size, scale_by_std=False)
    np.testing.assert_allclose(got, centred * group_size / (group_size - 1), rtol=1e-5, atol=1e-6)


def test_broadcast_over_tokens_zeroes_padding():
    mask = jnp.array([[1, 1, 0], [0, 0, 0]])
    got = jax.jit(adv.broadcast_over_tokens)(jnp.array([2.0, 5.0]), mask)
    np.testing.assert_array_equal(got, [[2.0, 2.0, 0.0], [0.0, 0.0, 0.0]])


@pytest.mark.parametrize(("batch", "length"), [(1, 1), (4, 7), (6, 16)])
def test_masked_whiten_matches_numpy(batch, length):
    rng = np.random.default_rng(batch + length)
    values = rng.normal(size=(batch, length)).astype(np.float32) * 3 + 1
    mask = random_mask(rng, batch, length)
    got = jax.jit(adv.masked_whiten)(values, mask)
    np.testing.assert_allclose(got, np_masked_whiten(values, mask), rtol=1e-4, atol=1e-5)


def test_masked_whiten_empty_and_single_token_are_finite():
    empty = adv.masked_whiten(jnp.ones((2, 3)), jnp.zeros((2, 3)))
    np.testing.assert_array_equal(empty, np.zeros((2, 3)))
    single = adv.masked_whiten(jnp.array([[5.0, 1.0]]), jnp.array([[1, 0]]))
    np.testing.assert_array_equal(single, [[0.0, 0.0]])


def test_terminal_rewards_sit_on_last_valid_token():
    mask = jnp.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    got = jax.jit(adv.terminal_rewards)(jnp.array([1.0, 2.0, 3.0, 4.0]), mask)
    want = np.zeros((4, 4))
    want[0, 2], want[1, 0], want[3, 3] = 1.0, 2.0, 4.0
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_discounted_returns_match_numpy_and_reset_after_eos(gamma):
    rng = np.random.default_rng(3)
    rewards = rng.normal(size=(5, 9)).astype(np.float32)
    mask = random_mask(rng, 5, 9, empty_rows=(2,))
    got = jax.jit(functools.partial(adv.discounted_returns, gamma=gamma))(rewards, mask)
    np.testing.assert_allclose(got, np_returns(rewards, mask, gamma), rtol=1e-5, atol=1e-5)
    # Rewards after EOS never reach a valid token.
    poisoned = np.where(mask, rewards, 1e6).astype(np.float32)
    got_poisoned = adv.discounted_returns(poisoned, mask, gamma=gamma)
    np.testing.assert_allclose(got_poisoned, got, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("group_size", [None, 2])
def test_reinforce_pp_matches_numpy(group_size):
    rng = np.random.default_rng(11)
    batch, length = 6, 8
    scores = rng.integers(0, 2, size=batch).astype(np.float32)
    kl = rng.normal(size=(batch, length)).astype(np.float32) * 0.1
    mask = random_mask(rng, batch, length)
    fn = jax.jit(
        functools.partial(
            adv.reinforce_pp_advantages, kl_coef=0.05, gamma=0.95, group_size=group_size
        )
    )
    got_adv, got_ret = fn(scores, mask, kl=kl)
    base = scores if group_size is None else np_group_relative(scores, 2, scale_by_std=False)
    lengths = mask.sum(-1)
    token_rewards = np.zeros((batch, length))
    token_rewards[np.arange(batch), lengths - 1] = base
    token_rewards = token_rewards - 0.05 * kl * mask
    want_ret = np_returns(token_rewards, mask, 0.95)
    np.testing.assert_allclose(got_ret, want_ret, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_adv, np_masked_whiten(want_ret, mask), rtol=1e-4, atol=1e-5)


def test_reinforce_pp_accepts_token_rewards_and_empty_batch():
    mask = jnp.array([[1, 1, 0]])
    token = jnp.array([[0.5, 1.0, 7.0]])
    _, got_ret = adv.reinforce_pp_advantages(token, mask)
    np.testing.assert_allclose(got_ret, [[1.5, 1.0, 0.0]])
    empty_adv, empty_ret = adv.reinforce_pp_advantages(jnp.ones(2), jnp.zeros((2, 3)))
    assert np.all(np.isfinite(empty_adv)) and np.all(np.asarray(empty_adv) == 0)
    assert np.all(np.asarray(empty_ret) == 0)


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 1.0), (0.99, 0.95)])
def test_gae_matches_numpy(gamma, lam):
    rng = np.random.default_rng(5)
    rewards = rng.normal(size=(4, 10)).astype(np.float32)
    values = rng.normal(size=(4, 10)).astype(np.float32)
    mask = random_mask(rng, 4, 10, empty_rows=(1,))
    mask[3, 2] = False  # a hole in the middle is skipped, not treated as an episode end
    fn = jax.jit(functools.partial(adv.gae_advantages, gamma=gamma, lam=lam))
    got_adv, got_ret = fn(rewards, values, mask)
    want_adv, want_ret = np_gae(rewards, values, mask, gamma, lam)
    np.testing.assert_allclose(got_adv, want_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_ret, want_ret, rtol=1e-5, atol=1e-5)


def test_gae_with_terminal_reward_and_unit_lambda_is_return_minus_value():
    mask = jnp.array([[1, 1, 1, 0]])
    rewards = adv.terminal_rewards(jnp.array([1.0]), mask)
    values = jnp.array([[0.2, 0.4, 0.6, 9.0]])
    got_adv, got_ret = adv.gae_advantages(rewards, values, mask)
    np.testing.assert_allclose(got_adv, [[0.8, 0.6, 0.4, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(got_ret, [[1.0, 1.0, 1.0, 0.0]], rtol=1e-6)
