"""CISPO and GMPO surrogates against hand-computed values and an independent NumPy version."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import objectives
from r1jax.objectives import policy_loss


def numpy_cispo(logprobs, old, adv, eps_low, eps_high):
    ratio = np.exp(np.clip(logprobs - old, -20, 20))
    weight = np.clip(ratio, 1 - eps_low, 1 + eps_high)
    return -weight * adv[:, None] * logprobs


def numpy_gmpo(logprobs, old, adv, mask, eps_low, eps_high):
    out = np.zeros(len(adv))
    for i in range(len(adv)):
        valid = mask[i].astype(bool)
        ell = (logprobs[i] - old[i])[valid]
        if adv[i] > 0:
            ell = np.minimum(ell, np.clip(ell, -eps_low, eps_high))
        else:
            ell = np.maximum(ell, np.clip(ell, -eps_low, eps_high))
        out[i] = -adv[i] * np.exp(ell.mean()) if valid.any() else 0.0
    return out


def test_cispo_hand_computed_weights_are_capped_but_keep_the_gradient():
    logprobs = jnp.log(jnp.array([[1.5, 0.5, 1.0]])) - 1.0  # ratio 1.5, 0.5, 1 against old = −1
    old = jnp.full((1, 3), -1.0)
    terms = policy_loss.cispo_surrogate_loss(logprobs, old, jnp.array([2.0]), eps_high=0.2)
    expected = -np.array([1.2, 0.5, 1.0]) * 2.0 * np.asarray(logprobs[0])
    np.testing.assert_allclose(terms.loss[0], expected, rtol=1e-6)
    np.testing.assert_array_equal(terms.clipped_high[0], [1.0, 0.0, 0.0])
    grad = jax.grad(lambda lp: jnp.sum(policy_loss.cispo_surrogate_loss(lp, old, 2.0).loss))(
        logprobs
    )
    # d/dlogπ of −sg(w)·A·logπ is −w·A: nonzero even where the weight is capped.
    np.testing.assert_allclose(grad[0], [-2.4, -1.0, -2.0], rtol=1e-6)


def test_cispo_matches_numpy():
    rng = np.random.default_rng(0)
    logprobs = rng.normal(-2, 0.5, (4, 5)).astype(np.float32)
    old = logprobs + rng.normal(0, 0.4, (4, 5)).astype(np.float32)
    adv = rng.normal(size=4).astype(np.float32)
    got = jax.jit(lambda *a: policy_loss.cispo_surrogate_loss(*a, eps_low=0.3, eps_high=0.2))(
        logprobs, old, adv
    )
    np.testing.assert_allclose(
        got.loss, numpy_cispo(logprobs, old, adv, 0.3, 0.2), rtol=1e-5, atol=1e-6
    )


def test_gmpo_hand_computed_sequence_loss():
    # ℓ = (0.1, 0.9 → clipped to 0.4) with A = 1 > 0: L = −exp(0.25); row 2: A = −1, ℓ = −0.9 →
    # −0.4, 0.2: L = exp((−0.4 + 0.2)/2) = exp(−0.1).
    logprobs = jnp.array([[0.1, 0.9, 7.0], [-0.9, 0.2, 0.0]])
    mask = jnp.array([[1, 1, 0], [1, 1, 0]])
    terms = policy_loss.gmpo_surrogate_loss(
        logprobs, jnp.zeros((2, 3)), jnp.array([1.0, -1.0]), mask
    )
    np.testing.assert_allclose(terms.loss[:, 0], [-np.exp(0.25), np.exp(-0.1)], rtol=1e-6)
    np.testing.assert_array_equal(terms.clipped_high * mask, [[0, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(terms.clipped_low * mask, [[0, 0, 0], [1, 0, 0]])


def test_gmpo_matches_numpy_and_its_loss_is_the_sequence_mean():
    rng = np.random.default_rng(1)
    logprobs = rng.normal(-2, 0.5, (6, 7)).astype(np.float32)
    old = logprobs + rng.normal(0, 0.5, (6, 7)).astype(np.float32)
    adv = rng.normal(size=6).astype(np.float32)
    mask = (np.arange(7)[None] < rng.integers(1, 8, (6, 1))).astype(np.int32)
    expected = numpy_gmpo(logprobs, old, adv, mask, 0.4, 0.4)
    terms = jax.jit(policy_loss.gmpo_surrogate_loss)(logprobs, old, adv, mask)
    np.testing.assert_allclose(terms.loss[:, 0], expected, rtol=1e-5)
    loss, _ = objectives.policy_gradient_loss(
        logprobs,
        old,
        None,
        adv,
        mask,
        surrogate="gmpo",
        eps_low=0.4,
        eps_high=0.4,
        aggregation_mode="seq-mean-token-mean",
    )
    assert float(loss) == pytest.approx(expected.mean(), rel=1e-5)


@pytest.mark.parametrize("surrogate", ["cispo", "gmpo"])
def test_policy_gradient_loss_routes_the_surrogate(surrogate):
    rng = np.random.default_rng(2)
    logprobs = rng.normal(-2, 0.5, (4, 5)).astype(np.float32)
    old = logprobs + rng.normal(0, 0.3, (4, 5)).astype(np.float32)
    adv = rng.normal(size=4).astype(np.float32)
    mask = np.ones((4, 5), np.int32)
    loss, metrics = objectives.policy_gradient_loss(
        logprobs,
        old,
        None,
        adv,
        mask,
        surrogate=surrogate,
        eps_low=0.4,
        eps_high=0.2,
        aggregation_mode="token-mean",
    )
    if surrogate == "cispo":
        expected = numpy_cispo(logprobs, old, adv, 0.4, 0.2).mean()
    else:
        expected = numpy_gmpo(logprobs, old, adv, mask, 0.4, 0.2).mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert 0.0 <= float(metrics["clip_frac"]) <= 1.0
    with pytest.raises(ValueError, match="dual_clip"):
        objectives.policy_gradient_loss(
            logprobs, old, None, adv, mask, surrogate=surrogate, dual_clip=3.0
        )


def test_rollout_weights_multiply_the_surrogate_loss():
    rng = np.random.default_rng(3)
    logprobs = rng.normal(-2, 0.5, (2, 3)).astype(np.float32)
    adv = np.array([1.0, -1.0], np.float32)
    mask = np.ones((2, 3), np.int32)
    weights = np.array([[1.0, 2.0, 0.0], [0.5, 1.0, 1.0]], np.float32)
    loss, _ = objectives.policy_gradient_loss(
        logprobs, logprobs, None, adv, mask, aggregation_mode="token-mean", rollout_weights=weights
    )
    expected = np.mean(-adv[:, None] * weights)  # ratio 1: L = −A
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
