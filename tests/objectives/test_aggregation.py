"""Tests for r1jax.objectives.aggregation: modes vs NumPy, safe division, micro-batch exactness."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.objectives import aggregation as agg


def np_aggregate(values, mask, mode, max_length):
    values = np.asarray(values, np.float64)
    mask = np.asarray(mask, bool)
    masked = np.where(mask, values, 0.0)
    rows = mask.sum(-1)
    nonempty = rows > 0
    if mode == "token-mean":
        return masked.sum() / mask.sum() if mask.sum() else 0.0
    if mode == "constant":
        return masked.sum() / max_length
    if not nonempty.any():
        return 0.0
    if mode == "seq-mean-token-mean":
        per_seq = masked[nonempty].sum(-1) / rows[nonempty]
        return per_seq.mean()
    if mode == "seq-mean-token-sum":
        return masked[nonempty].sum(-1).mean()
    if mode == "seq-mean-token-sum-norm":
        return (masked[nonempty].sum(-1) / max_length).mean()
    raise AssertionError(mode)


def make_batch(seed, batch=6, length=5):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(batch, length)).astype(np.float32)
    lengths = rng.integers(0, length + 1, size=batch)
    lengths[0] = 0  # always one fully masked row
    lengths[1] = length
    mask = np.arange(length)[None, :] < lengths[:, None]
    return values, mask


@pytest.mark.parametrize("mode", agg.AGGREGATION_MODES)
@pytest.mark.parametrize("seed", [0, 1])
def test_modes_match_numpy(mode, seed):
    values, mask = make_batch(seed)
    fn = jax.jit(lambda v, m: agg.aggregate_value(agg.aggregate(v, m, mode=mode, max_length=7.0)))
    np.testing.assert_allclose(fn(values, mask), np_aggregate(values, mask, mode, 7.0), rtol=1e-5)


def test_hand_values():
    loss = jnp.array([[1.0, 3.0], [5.0, 7.0], [100.0, 100.0]])
    mask = jnp.array([[1, 1], [1, 0], [0, 0]])
    assert agg.token_mean(loss, mask) == (9.0, 3.0)
    assert agg.seq_mean_token_mean(loss, mask) == (7.0, 2.0)
    assert agg.seq_mean_token_sum(loss, mask) == (9.0, 2.0)
    assert agg.seq_mean_token_sum_norm(loss, mask, max_length=2) == (4.5, 2.0)
    assert agg.constant_normaliser(loss, mask, normaliser=2) == (9.0, 2.0)


@pytest.mark.parametrize("mode", agg.AGGREGATION_MODES)
def test_fully_masked_batch_gives_zero_not_nan(mode):
    values = jnp.full((3, 4), jnp.nan)
    mask = jnp.zeros((3, 4), bool)

    def value(v):
        return agg.aggregate_value(agg.aggregate(v, mask, mode=mode))

    assert float(jax.jit(value)(values)) == 0.0
    grad = jax.grad(value)(jnp.ones((3, 4)))
    assert np.all(np.asarray(grad) == 0.0)


def test_garbage_in_padding_does_not_leak():
    values = jnp.array([[1.0, jnp.nan], [jnp.inf, 2.0]])
    mask = jnp.array([[1, 0], [0, 1]])
    for mode in agg.AGGREGATION_MODES:
        assert np.isfinite(float(agg.aggregate_value(agg.aggregate(values, mask, mode=mode))))


def test_safe_divide_zero_denominator():
    got = agg.safe_divide(jnp.array([1.0, 2.0]), jnp.array([0.0, 4.0]))
    np.testing.assert_array_equal(got, [0.0, 0.5])
    grad = jax.grad(lambda n: agg.safe_divide(n, 0.0))(3.0)
    assert float(grad) == 0.0


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_low_precision_values_reduce_in_float32(dtype):
    values, mask = make_batch(3)
    got = agg.aggregate_value(agg.token_mean(jnp.asarray(values, dtype), mask))
    assert got.dtype == jnp.float32
    want = np_aggregate(np.asarray(jnp.asarray(values, dtype), np.float32), mask, "token-mean", 1)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="unknown aggregation mode"):
        agg.aggregate(jnp.ones((1, 1)), jnp.ones((1, 1)), mode="mean")


def test_denominator_helper_matches_aggregates():
    _, mask = make_batch(4)
    for mode in agg.AGGREGATION_MODES:
        want = agg.aggregate(jnp.ones(mask.shape), mask, mode=mode, max_length=9).denominator
        got = agg.aggregation_denominator(mask, mode=mode, max_length=9)
        assert float(got) == float(want)


def _per_token_loss(theta, inputs, advantages):
    """A smooth, non-linear per-token loss of parameters ``theta [D]``: ``[B, T]``."""
    logits = jnp.tanh(inputs @ theta)  # [B, T]
    return -advantages[:, None] * jnp.exp(logits) + 0.1 * logits**2


@pytest.mark.parametrize("mode", agg.AGGREGATION_MODES)
def test_microbatch_accumulation_equals_full_batch(mode):
    rng = np.random.default_rng(7)
    batch, length, width = 6, 5, 3
    inputs = jnp.asarray(rng.normal(size=(batch, length, width)), jnp.float32)
    advantages = jnp.asarray(rng.normal(size=batch), jnp.float32)
    _, mask = make_batch(7, batch, length)
    theta = jnp.asarray(rng.normal(size=width), jnp.float32)
    aggregate = functools.partial(agg.aggregate, mode=mode, max_length=11.0)

    def loss(theta, x, a, m, denominator=None):
        return agg.aggregate_value(aggregate(_per_token_loss(theta, x, a), m), denominator)

    grad_fn = jax.jit(jax.value_and_grad(loss))
    full_value, full_grad = grad_fn(theta, inputs, advantages, mask)
    denominator = agg.aggregation_denominator(mask, mode=mode, max_length=11.0)
    total_value, total_grad = 0.0, jnp.zeros_like(theta)
    numerators, denominators = 0.0, 0.0
    for rows in np.split(np.arange(batch), [1, 3]):  # uneven micro-batches of 1, 2, 3 rows
        value, grad = grad_fn(theta, inputs[rows], advantages[rows], mask[rows], denominator)
        total_value, total_grad = total_value + value, total_grad + grad
        part = aggregate(_per_token_loss(theta, inputs[rows], advantages[rows]), mask[rows])
        numerators, denominators = numerators + part.numerator, denominators + part.denominator
    np.testing.assert_allclose(total_value, full_value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(total_grad, full_grad, rtol=1e-5, atol=1e-6)
    if mode != "constant":  # the constant's denominator does not add up; pass it explicitly
        np.testing.assert_allclose(
            agg.safe_divide(numerators, denominators), full_value, rtol=1e-5, atol=1e-6
        )


def test_per_microbatch_means_would_be_wrong():
    """The reason for (numerator, denominator): averaging micro-batch means is biased."""
    values = jnp.array([[1.0, 1.0, 1.0], [4.0, 0.0, 0.0]])
    mask = jnp.array([[1, 1, 1], [1, 0, 0]])
    full = agg.aggregate_value(agg.token_mean(values, mask))
    halves = [
        agg.aggregate_value(agg.token_mean(values[i : i + 1], mask[i : i + 1])) for i in (0, 1)
    ]
    assert float(full) == pytest.approx(7 / 4)
    assert float(sum(halves) / 2) == pytest.approx(2.5)


def test_masked_mean():
    assert float(agg.masked_mean(jnp.array([2.0, 4.0]), jnp.array([0, 0]))) == 0.0
    assert float(agg.masked_mean(jnp.array([2.0, 4.0]), jnp.array([1, 1]))) == 3.0
