"""Tests for r1jax.objectives.value_loss: NumPy references, gradients, edge cases."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.objectives import value_loss


@pytest.mark.parametrize("clip_range", [0.5, None])
def test_value_loss_matches_numpy(clip_range):
    rng = np.random.default_rng(0)
    values, old_values, returns = (rng.normal(size=(3, 5)).astype(np.float32) for _ in range(3))
    fn = jax.jit(functools.partial(value_loss.clipped_value_loss, clip_range=clip_range))
    loss, clipped = fn(values, old_values, returns)
    unclipped = (values - returns) ** 2
    if clip_range is None:
        want, want_clipped = 0.5 * unclipped, np.zeros_like(unclipped)
    else:
        clipped_values = old_values + np.clip(values - old_values, -clip_range, clip_range)
        other = (clipped_values - returns) ** 2
        want, want_clipped = 0.5 * np.maximum(unclipped, other), other > unclipped
    np.testing.assert_allclose(loss, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(clipped, want_clipped)


def test_value_loss_gradient():
    with jax.enable_x64(True):
        values = jnp.array([0.1, 2.0, -1.0])
        old_values = jnp.array([0.0, 0.0, 0.0])
        returns = jnp.array([1.0, 0.0, 0.5])
        grad = jax.grad(lambda v: value_loss.clipped_value_loss(v, old_values, returns)[0].sum())(
            values
        )
        # The unclipped error is the larger one for every token here, so dL/dV = V − R.
        np.testing.assert_allclose(grad, [-0.9, 2.0, -1.5])


def test_value_loss_clipped_branch_has_zero_gradient():
    grad = jax.grad(
        lambda v: value_loss.clipped_value_loss(v, jnp.zeros(1), jnp.array([2.0]))[0].sum()
    )(jnp.array([1.0]))
    # |V − R| = 1 but the clipped value 0.5 is further (1.5): the clipped branch is constant.
    assert float(grad[0]) == 0.0
