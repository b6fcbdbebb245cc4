"""Tests for r1jax.objectives.nll: NumPy references, gradients, edge cases."""

import jax
import jax.numpy as jnp
import numpy as np

from r1jax.objectives import dpo, nll


def test_sequence_logprobs_and_nll():
    logprobs = jnp.array([[-1.0, -2.0, -3.0], [-0.5, jnp.nan, jnp.nan]])
    mask = jnp.array([[1, 1, 1], [1, 0, 0]])
    np.testing.assert_allclose(jax.jit(dpo.sequence_logprobs)(logprobs, mask), [-6.0, -0.5])
    got = jax.jit(nll.token_nll)(logprobs, mask)
    np.testing.assert_allclose(got, [[1.0, 2.0, 3.0], [0.5, 0.0, 0.0]])
    grad = jax.grad(lambda lp: nll.token_nll(lp, mask).sum())(jnp.zeros((2, 3)))
    np.testing.assert_array_equal(grad, -np.asarray(mask, np.float32))
    bf16 = nll.token_nll(logprobs.astype(jnp.bfloat16), mask)
    assert bf16.dtype == jnp.float32
