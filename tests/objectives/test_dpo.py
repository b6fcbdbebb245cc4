"""Tests for r1jax.objectives.dpo: NumPy references, gradients, edge cases."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.objectives import dpo


def np_log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_dpo_matches_numpy(label_smoothing):
    rng = np.random.default_rng(1)
    chosen, rejected, ref_chosen, ref_rejected = (
        -rng.exponential(size=6).astype(np.float32) * 10 for _ in range(4)
    )
    fn = jax.jit(functools.partial(dpo.dpo_loss, beta=0.2, label_smoothing=label_smoothing))
    got = fn(chosen, rejected, ref_chosen, ref_rejected)
    margin = 0.2 * ((chosen - ref_chosen) - (rejected - ref_rejected))
    want = -(1 - label_smoothing) * np_log_sigmoid(margin) - label_smoothing * np_log_sigmoid(
        -margin
    )
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_dpo_gradient_and_extreme_margins():
    with jax.enable_x64(True):
        chosen, rejected = jnp.array([-3.0, -1.0]), jnp.array([-2.0, -4.0])
        ref = jnp.array([-2.5, -2.5])

        def total(c):
            return dpo.dpo_loss(c, rejected, ref, ref, beta=0.1, label_smoothing=0.1).sum()

        grad = jax.grad(total)(chosen)
        step = 1e-6
        numeric = [
            (total(chosen.at[i].add(step)) - total(chosen.at[i].add(-step))) / (2 * step)
            for i in range(2)
        ]
        np.testing.assert_allclose(grad, numeric, rtol=1e-6)
    extreme = dpo.dpo_loss(jnp.array([1e4, -1e4]), jnp.zeros(2), jnp.zeros(2), jnp.zeros(2))
    assert np.all(np.isfinite(extreme))
