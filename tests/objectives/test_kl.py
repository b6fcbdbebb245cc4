"""Tests for r1jax.objectives.kl: estimators, guards, straight-through k3+, chunked exact KL."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.objectives import kl


def np_estimate(logprobs, ref_logprobs, estimator):
    delta = np.asarray(logprobs, np.float64) - np.asarray(ref_logprobs, np.float64)
    if estimator == "k1":
        return delta
    if estimator == "k2":
        return 0.5 * delta**2
    if estimator == "abs":
        return np.abs(delta)
    neg = np.clip(-delta, -20, 20)
    return np.clip(np.exp(neg) - 1 - neg, -10, 10)


def np_softmax_stats(logits, ref_logits):
    logits = np.asarray(logits, np.float64)
    ref_logits = np.asarray(ref_logits, np.float64)
    log_p = (
        logits
        - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
        - logits.max(-1, keepdims=True)
    )
    log_q = (
        ref_logits
        - np.log(np.exp(ref_logits - ref_logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
        - ref_logits.max(-1, keepdims=True)
    )
    p = np.exp(log_p)
    return (p * (log_p - log_q)).sum(-1), -(p * log_p).sum(-1)


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3", "k3+", "abs"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7)])
def test_estimators_match_numpy(estimator, shape):
    rng = np.random.default_rng(len(estimator) + shape[1])
    logprobs = -rng.exponential(size=shape).astype(np.float32)
    ref_logprobs = -rng.exponential(size=shape).astype(np.float32)
    got = jax.jit(functools.partial(kl.kl_penalty, estimator=estimator))(logprobs, ref_logprobs)
    assert got.shape == shape
    want = np_estimate(logprobs, ref_logprobs, estimator.rstrip("+"))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_hand_values():
    lp, ref = jnp.array([-1.0]), jnp.array([-1.0 - np.log(2.0)])
    assert float(kl.kl_k1(lp, ref)[0]) == pytest.approx(np.log(2.0))
    assert float(kl.kl_k2(lp, ref)[0]) == pytest.approx(0.5 * np.log(2.0) ** 2)
    assert float(kl.kl_k3(lp, ref)[0]) == pytest.approx(0.5 - 1 + np.log(2.0), rel=1e-6)


def test_k3_is_non_negative_and_guarded():
    delta = jnp.array([-100.0, -21.0, -5.0, 0.0, 5.0, 100.0])
    got = kl.kl_k3(delta, jnp.zeros_like(delta))
    assert np.all(np.isfinite(got)) and np.all(np.asarray(got) >= 0)
    assert float(got[0]) == 10.0  # exp(20) − 1 − 20 is clamped to 10
    assert float(got[-1]) == 10.0  # exp(−20) − 1 + 20 ≈ 19, clamped to 10
    assert float(got[-2]) == pytest.approx(np.exp(-5.0) - 1 + 5.0, rel=1e-6)
    grad = jax.grad(lambda x: kl.kl_k3(x, jnp.zeros_like(x)).sum())(delta)
    assert np.all(np.isfinite(grad))


def test_k3_plus_has_k3_value_and_k2_gradient():
    rng = np.random.default_rng(0)
    lp = jnp.asarray(-rng.exponential(size=(2, 5)), jnp.float32)
    ref = jnp.asarray(-rng.exponential(size=(2, 5)), jnp.float32)
    np.testing.assert_allclose(
        kl.kl_penalty(lp, ref, estimator="k3+"), kl.kl_k3(lp, ref), rtol=1e-6
    )
    grad_plus = jax.grad(lambda x: kl.kl_penalty(x, ref, estimator="k3+").sum())(lp)
    grad_k2 = jax.grad(lambda x: kl.kl_k2(x, ref).sum())(lp)
    np.testing.assert_allclose(grad_plus, grad_k2, rtol=1e-6)
    np.testing.assert_allclose(grad_k2, lp - ref, rtol=1e-5)


def test_k3_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        lp = jnp.array([-0.3, -1.2, -2.0], jnp.float64)
        ref = jnp.array([-0.5, -0.9, -2.0], jnp.float64)
        grad = jax.grad(lambda x: kl.kl_k3(x, ref).sum())(lp)
        step = 1e-6
        numeric = [
            (kl.kl_k3(lp.at[i].add(step), ref).sum() - kl.kl_k3(lp.at[i].add(-step), ref).sum())
            / (2 * step)
            for i in range(3)
        ]
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(grad, 1 - np.exp(ref - lp), rtol=1e-9)


def test_unknown_estimator_is_an_error():
    with pytest.raises(ValueError, match="unknown KL estimator"):
        kl.kl_penalty(jnp.zeros(1), jnp.zeros(1), estimator="k4")


@pytest.mark.parametrize(
    ("shape", "chunk_size"), [((2, 5, 7), 2), ((1, 4, 3), 4), ((3, 6, 11), 128)]
)
def test_full_kl_and_entropy_match_numpy(shape, chunk_size):
    rng = np.random.default_rng(shape[1])
    logits = rng.normal(size=shape).astype(np.float32) * 2
    ref_logits = rng.normal(size=shape).astype(np.float32) * 2
    got_kl = jax.jit(functools.partial(kl.full_kl_from_logits, chunk_size=chunk_size))(
        logits, ref_logits
    )
    got_entropy = jax.jit(functools.partial(kl.entropy_from_logits, chunk_size=chunk_size))(logits)
    want_kl, want_entropy = np_softmax_stats(logits, ref_logits)
    assert got_kl.shape == shape[:2] and got_entropy.shape == shape[:2]
    np.testing.assert_allclose(got_kl, want_kl, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_entropy, want_entropy, rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(got_kl) >= -1e-6)


def test_full_kl_of_identical_policies_is_zero_and_bfloat16_works():
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(2, 3, 5)), jnp.bfloat16)
    got = kl.full_kl_from_logits(logits, logits, chunk_size=2)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, 0.0, atol=1e-6)
    entropy = kl.entropy_from_logits(logits)
    _, want = np_softmax_stats(np.asarray(logits, np.float32), np.asarray(logits, np.float32))
    np.testing.assert_allclose(entropy, want, rtol=1e-4, atol=1e-5)


def test_chunked_kl_gradient_matches_unchunked():
    rng = np.random.default_rng(2)
    logits = jnp.asarray(rng.normal(size=(2, 5, 4)), jnp.float32)
    ref_logits = jnp.asarray(rng.normal(size=(2, 5, 4)), jnp.float32)

    def dense(x):
        log_p = jax.nn.log_softmax(x)
        log_q = jax.nn.log_softmax(ref_logits)
        return jnp.sum(jnp.exp(log_p) * (log_p - log_q))

    chunked = jax.grad(lambda x: kl.full_kl_from_logits(x, ref_logits, chunk_size=2).sum())(logits)
    np.testing.assert_allclose(chunked, jax.grad(dense)(logits), rtol=1e-5, atol=1e-6)
    entropy_grad = jax.grad(lambda x: kl.entropy_from_logits(x, chunk_size=3).sum())(logits)
    assert np.all(np.isfinite(entropy_grad))


def test_mismatched_logits_are_an_error():
    with pytest.raises(ValueError, match="differ"):
        kl.full_kl_from_logits(jnp.zeros((1, 2, 3)), jnp.zeros((1, 2, 4)))
