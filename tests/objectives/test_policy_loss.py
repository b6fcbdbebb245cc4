"""Tests for r1jax.objectives.policy_loss: clipped surrogate, dual clip, GSPO."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.objectives import aggregation as agg
from r1jax.objectives import policy_loss as pl


def np_clipped(logprobs, old_logprobs, advantages, eps_low, eps_high, dual_clip):
    log_ratio = np.clip(np.asarray(logprobs, np.float64) - old_logprobs, -20, 20)
    ratio = np.exp(log_ratio)
    adv = np.broadcast_to(
        advantages[:, None] if np.ndim(advantages) == 1 else advantages, ratio.shape
    ).astype(np.float64)
    loss = np.maximum(-adv * ratio, -adv * np.clip(ratio, 1 - eps_low, 1 + eps_high))
    low = (adv < 0) & (ratio < 1 - eps_low)
    high = (adv > 0) & (ratio > 1 + eps_high)
    dual = np.zeros_like(low)
    if dual_clip is not None:
        dual = (adv < 0) & (loss > -adv * dual_clip)
        loss = np.where(dual, -adv * dual_clip, loss)
    return loss, ratio, low, high, dual


def random_inputs(seed, batch=4, length=6, spread=0.5):
    rng = np.random.default_rng(seed)
    old = -rng.exponential(size=(batch, length)).astype(np.float32)
    logprobs = (old + rng.normal(scale=spread, size=(batch, length))).astype(np.float32)
    advantages = rng.normal(size=batch).astype(np.float32)
    return logprobs, old, advantages


@pytest.mark.parametrize(
    ("eps_low", "eps_high", "dual_clip"), [(0.2, None, None), (0.2, 0.28, None), (0.2, 0.28, 3.0)]
)
@pytest.mark.parametrize("seed", [0, 1])
def test_clipped_surrogate_matches_numpy(eps_low, eps_high, dual_clip, seed):
    logprobs, old, advantages = random_inputs(seed, spread=1.0)
    advantages[0] = -abs(advantages[0]) - 0.1
    logprobs[0, 0] = old[0, 0] + 2.0  # ρ = e² > 3 with a negative advantage: dual clip
    fn = jax.jit(
        functools.partial(
            pl.clipped_surrogate_loss, eps_low=eps_low, eps_high=eps_high, dual_clip=dual_clip
        )
    )
    terms = fn(logprobs, old, advantages)
    want = np_clipped(
        logprobs, old, advantages, eps_low, eps_low if eps_high is None else eps_high, dual_clip
    )
    for got, expected in zip(terms, want):
        assert got.shape == logprobs.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    if dual_clip is not None:
        assert np.asarray(terms.clipped_dual).any()


def test_hand_values_and_indicators():
    ratio = jnp.array([[1.5, 0.5, 1.1, 5.0]])
    advantages = jnp.array([[1.0, -1.0, 2.0, -1.0]])
    terms = pl.clipped_surrogate_loss(
        jnp.log(ratio), jnp.zeros_like(ratio), advantages, eps_high=0.28, dual_clip=3.0
    )
    np.testing.assert_allclose(terms.loss, [[-1.28, 0.8, -2.2, 3.0]], rtol=1e-6)
    np.testing.assert_array_equal(terms.clipped_high, [[1, 0, 0, 0]])
    np.testing.assert_array_equal(terms.clipped_low, [[0, 1, 0, 0]])
    np.testing.assert_array_equal(terms.clipped_dual, [[0, 0, 0, 1]])


def test_sequence_and_token_advantages_agree():
    logprobs, old, advantages = random_inputs(2)
    by_sequence = pl.clipped_surrogate_loss(logprobs, old, advantages)
    by_token = pl.clipped_surrogate_loss(
        logprobs, old, np.repeat(advantages[:, None], logprobs.shape[1], axis=1)
    )
    np.testing.assert_array_equal(by_sequence.loss, by_token.loss)


def test_gradient_is_exactly_zero_where_clipping_is_active():
    logprobs, old, advantages = random_inputs(3, batch=8, length=8, spread=1.0)

    def total(lp):
        return jnp.sum(pl.clipped_surrogate_loss(lp, old, advantages, dual_clip=3.0).loss)

    grad = np.asarray(jax.jit(jax.grad(total))(logprobs))
    terms = pl.clipped_surrogate_loss(logprobs, old, advantages, dual_clip=3.0)
    active = (
        np.asarray(terms.clipped_low)
        + np.asarray(terms.clipped_high)
        + np.asarray(terms.clipped_dual)
    ) > 0
    assert active.any() and (~active).any()
    assert np.all(grad[active] == 0.0)
    ratio = np.asarray(terms.ratio)
    adv = np.broadcast_to(advantages[:, None], ratio.shape)
    np.testing.assert_allclose(grad[~active], (-adv * ratio)[~active], rtol=1e-5)


def test_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        rng = np.random.default_rng(4)
        old = jnp.asarray(-rng.exponential(size=(3, 4)))
        logprobs = old + jnp.asarray(rng.normal(scale=0.3, size=(3, 4)))
        advantages = jnp.asarray(rng.normal(size=3))
        mask = jnp.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])

        def loss(lp):
            terms = pl.clipped_surrogate_loss(lp, old, advantages, eps_high=0.28, dual_clip=3.0)
            return agg.aggregate_value(agg.seq_mean_token_mean(terms.loss, mask))

        _assert_grad_matches_fd(loss, logprobs)


def _assert_grad_matches_fd(fn, x, step=1e-6):
    fn = jax.jit(fn)
    grad = np.asarray(jax.jit(jax.grad(fn))(x))
    flat = np.asarray(x).reshape(-1)
    numeric = np.zeros_like(flat)
    for i in range(flat.size):
        plus, minus = flat.copy(), flat.copy()
        plus[i] += step
        minus[i] -= step
        numeric[i] = (
            fn(jnp.asarray(plus.reshape(x.shape))) - fn(jnp.asarray(minus.reshape(x.shape)))
        ) / (2 * step)
    np.testing.assert_allclose(grad.reshape(-1), numeric, rtol=1e-5, atol=1e-8)


def test_log_ratio_is_clamped_before_exp():
    terms = pl.clipped_surrogate_loss(
        jnp.array([[0.0, -200.0]]), jnp.array([[-200.0, 0.0]]), jnp.array([-1.0])
    )
    np.testing.assert_allclose(terms.ratio, [[np.exp(20.0), np.exp(-20.0)]], rtol=1e-5)
    assert np.all(np.isfinite(terms.loss))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_low_precision_inputs(dtype):
    logprobs, old, advantages = random_inputs(5)
    terms = pl.clipped_surrogate_loss(
        jnp.asarray(logprobs, dtype), jnp.asarray(old, dtype), advantages
    )
    assert terms.loss.dtype == jnp.float32
    want = np_clipped(
        np.asarray(jnp.asarray(logprobs, dtype), np.float32),
        np.asarray(jnp.asarray(old, dtype), np.float32),
        advantages,
        0.2,
        0.2,
        None,
    )[0]
    np.testing.assert_allclose(terms.loss, want, rtol=1e-5, atol=1e-6)


def test_bad_dual_clip_is_an_error():
    with pytest.raises(ValueError, match="dual_clip"):
        pl.clipped_surrogate_loss(jnp.zeros((1, 1)), jnp.zeros((1, 1)), jnp.ones(1), dual_clip=1.0)


def np_gspo_objective(logprobs, old, advantages, mask, eps_low, eps_high):
    """The sequence-level GSPO loss written directly: mean_i max(−A s_i, −A clip(s_i))."""
    mask = np.asarray(mask, np.float64)
    lengths = np.maximum(mask.sum(-1), 1)
    seq = np.exp(((logprobs - old) * mask).sum(-1) / lengths)
    loss = np.maximum(-advantages * seq, -advantages * np.clip(seq, 1 - eps_low, 1 + eps_high))
    return seq, loss


def test_gspo_ratio_and_loss_match_sequence_level_numpy():
    logprobs, old, advantages = random_inputs(6, spread=0.01)
    mask = np.arange(6)[None, :] < np.array([[6], [3], [1], [4]])
    fn = jax.jit(functools.partial(pl.gspo_surrogate_loss, eps_low=3e-4, eps_high=4e-4))
    terms = fn(logprobs, old, advantages, mask)
    seq, seq_loss = np_gspo_objective(logprobs, old, advantages, mask, 3e-4, 4e-4)
    np.testing.assert_allclose(terms.ratio, np.repeat(seq[:, None], 6, axis=1), rtol=1e-5)
    np.testing.assert_allclose(terms.loss[:, 0], seq_loss, rtol=1e-5, atol=1e-7)


def test_gspo_token_gradient_equals_sequence_objective_gradient():
    with jax.enable_x64(True):
        rng = np.random.default_rng(7)
        old = jnp.asarray(-rng.exponential(size=(4, 5)))
        logprobs = old + jnp.asarray(rng.normal(scale=0.01, size=(4, 5)))
        advantages = jnp.asarray([1.0, -1.0, 0.5, -2.0])
        mask = jnp.asarray(np.arange(5)[None, :] < np.array([[5], [2], [4], [1]]))

        def token_form(lp):
            terms = pl.gspo_surrogate_loss(lp, old, advantages, mask, eps_low=0.2, eps_high=0.2)
            return agg.aggregate_value(agg.seq_mean_token_mean(terms.loss, mask))

        def sequence_form(lp):
            lengths = jnp.sum(mask, -1)
            seq = jnp.exp(jnp.sum(jnp.where(mask, lp - old, 0.0), -1) / lengths)
            clipped = jnp.clip(seq, 0.8, 1.2)
            return jnp.mean(jnp.maximum(-advantages * seq, -advantages * clipped))

        token_grad = jax.jit(jax.value_and_grad(token_form))(logprobs)
        sequence_grad = jax.jit(jax.value_and_grad(sequence_form))(logprobs)
        np.testing.assert_allclose(token_grad[0], sequence_grad[0], rtol=1e-12)
        np.testing.assert_allclose(token_grad[1], sequence_grad[1], rtol=1e-9, atol=1e-12)
        _assert_grad_matches_fd(token_form, logprobs)


def test_gspo_gradient_is_zero_when_the_sequence_ratio_is_clipped():
    old = jnp.zeros((2, 3))
    logprobs = jnp.full((2, 3), 0.01)  # s = e^0.01 > 1 + 4e-4
    advantages = jnp.array([1.0, -1.0])
    mask = jnp.ones((2, 3))
    grad = jax.grad(lambda lp: jnp.sum(pl.gspo_surrogate_loss(lp, old, advantages, mask).loss))(
        logprobs
    )
    terms = pl.gspo_surrogate_loss(logprobs, old, advantages, mask)
    np.testing.assert_array_equal(terms.clipped_high, [[1, 1, 1], [0, 0, 0]])
    assert np.all(np.asarray(grad[0]) == 0.0) and np.all(np.asarray(grad[1]) != 0.0)


def test_gspo_fully_masked_row_is_finite():
    terms = pl.gspo_surrogate_loss(
        jnp.zeros((1, 3)), jnp.zeros((1, 3)), jnp.ones(1), jnp.zeros((1, 3))
    )
    assert np.all(np.isfinite(terms.loss))
    np.testing.assert_array_equal(
        pl.sequence_log_ratio(jnp.ones((1, 2)), jnp.zeros((1, 2)), jnp.zeros((1, 2))), [0.0]
    )
