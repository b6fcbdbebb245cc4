"""PRIME's implicit rewards, PRM loss and advantages (`r1jax.objectives.prime`) against
hand-computed values and an independent NumPy version of PRIME's ``compute_rloo_returns``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.objectives import prime


def numpy_prime(process, outcome, mask, group, gamma=1.0, form="rloo"):
    """PRIME's advantages written row by row in NumPy (loops, no shared helpers)."""
    rows, width = process.shape
    process = np.where(mask, process, 0.0)
    returns = np.zeros((rows, width))
    for i in range(rows):
        g = i // group
        members = range(g * group, (g + 1) * group)
        valid = np.flatnonzero(mask[i])
        if valid.size == 0:
            continue
        means = {j: process[j][mask[j]].mean() if mask[j].any() else 0.0 for j in members}
        others = [j for j in members if j != i]
        if form == "rloo":
            total = sum(means.values())
            token = np.zeros(width)
            for t in valid:
                token[t] = process[i, t] * group / (group - 1) - total / (group - 1)
            outcome_total = sum(outcome[j] for j in members)
            last = valid[-1]
            token[last] += outcome[i] * group / (group - 1) - outcome_total / (group - 1)
            running = 0.0
            for t in reversed(range(width)):
                if mask[i, t]:
                    running = token[t] + gamma * running
                    returns[i, t] = running
        else:
            baseline = np.mean([means[j] for j in others])
            outcome_loo = outcome[i] - np.mean([outcome[j] for j in others])
            running = 0.0
            for t in reversed(range(width)):
                if mask[i, t]:
                    running = process[i, t] - baseline + gamma * running
                    returns[i, t] = running + outcome_loo
    flat = returns[mask]
    mean, var = flat.mean(), flat.var(ddof=1)
    advantages = np.where(mask, (returns - mean) / np.sqrt(var + 1e-8), 0.0)
    return advantages, returns


@pytest.mark.parametrize("form", ["rloo", "paper"])
def test_advantages_match_an_independent_numpy_version(form):
    rng = np.random.default_rng(0)
    rows, width, group = 8, 6, 4
    mask = np.arange(width)[None] < rng.integers(1, width + 1, (rows, 1))
    process = rng.normal(size=(rows, width)) * 0.1
    outcome = rng.integers(0, 2, rows).astype(float)
    run = jax.jit(prime.prime_advantages, static_argnames=("group_size", "gamma", "form"))
    advantages, returns = run(process, outcome, mask, group_size=group, gamma=0.9, form=form)
    expected_adv, expected_ret = numpy_prime(process, outcome, mask, group, gamma=0.9, form=form)
    np.testing.assert_allclose(returns, expected_ret, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(advantages, expected_adv, rtol=1e-4, atol=1e-5)


def test_the_two_forms_agree_on_the_first_token_with_gamma_one():
    """The per-token baselines differ by (r̄_i − r_t)/(K−1), which sums to 0 over a row."""
    rng = np.random.default_rng(1)
    mask = np.ones((4, 5), bool)
    process = rng.normal(size=(4, 5))
    outcome = np.array([1.0, 0.0, 1.0, 1.0])
    _, rloo = prime.prime_advantages(process, outcome, mask, group_size=4, form="rloo")
    _, paper = prime.prime_advantages(process, outcome, mask, group_size=4, form="paper")
    np.testing.assert_allclose(rloo[:, 0], paper[:, 0], rtol=1e-5, atol=1e-6)


def test_hand_computed_leave_one_out_returns():
    # K = 2, no process reward: outcome 1 vs 0 gives returns +1 / −1 on every token.
    _, returns = prime.prime_advantages(
        jnp.zeros((2, 3)), jnp.array([1.0, 0.0]), jnp.array([[1, 1, 1], [1, 1, 0]]), group_size=2
    )
    np.testing.assert_allclose(returns, [[1.0, 1.0, 1.0], [-1.0, -1.0, 0.0]])
    # Process rewards only: row means 0.5 and 0 -> S = 0.5; r' = 2 r − 0.5.
    rewards = prime.leave_one_out_token_rewards(
        jnp.array([[1.0, 0.0], [0.0, 0.0]]), jnp.ones((2, 2)), group_size=2
    )
    np.testing.assert_allclose(rewards, [[1.5, -0.5], [-0.5, -0.5]])


def test_implicit_rewards_and_prm_loss():
    prm_lp = jnp.array([[-1.0, -2.0, -3.0]])
    ref_lp = jnp.array([[-2.0, -2.0, -1.0]])
    mask = jnp.array([[1, 1, 0]])
    rewards = prime.implicit_process_rewards(prm_lp, ref_lp, mask, beta=0.5)
    np.testing.assert_allclose(rewards, [[0.5, 0.0, 0.0]])
    z = 0.5
    for acc in (0.0, 1.0):
        expected = -(
            acc * np.log(1 / (1 + np.exp(-z))) + (1 - acc) * np.log(1 - 1 / (1 + np.exp(-z)))
        )
        loss = prime.implicit_prm_loss(prm_lp, ref_lp, mask, jnp.array([acc]), beta=0.5)
        np.testing.assert_allclose(loss, [expected], rtol=1e-6)
    grad = jax.grad(lambda lp: prime.implicit_prm_loss(lp, ref_lp, mask, jnp.ones(1), beta=0.5)[0])
    g = grad(prm_lp)
    assert float(g[0, 0]) < 0 and float(g[0, 2]) == 0.0  # raise the correct response's q
