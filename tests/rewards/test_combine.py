"""Tests for r1jax.rewards.combine: format reward and weighted combination of named terms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.rewards import combine


def test_format_reward_under_jit():
    got = jax.jit(lambda w: combine.format_reward(w, reward=1.0, penalty=-0.5))(
        jnp.array([True, False, True])
    )
    np.testing.assert_array_equal(got, [1.0, -0.5, 1.0])
    assert got.dtype == jnp.float32


def test_combine_rewards_sums_weighted_terms_and_keeps_each():
    terms = {
        "correct": jnp.array([1.0, 0.0, 1.0]),
        "format": jnp.array([True, True, False]),
        "overlong": jnp.array([0.0, -0.5, -1.0], jnp.bfloat16),
    }
    weights = {"correct": 1.0, "format": 0.1, "overlong": 2.0}
    total, parts = jax.jit(combine.combine_rewards)(terms, weights)
    np.testing.assert_allclose(total, [1.1, -0.9, -1.0], rtol=1e-6)
    np.testing.assert_allclose(parts["overlong"], [0.0, -1.0, -2.0])
    assert set(parts) == set(terms) and total.dtype == jnp.float32
    unweighted, _ = combine.combine_rewards(terms)
    np.testing.assert_allclose(unweighted, [2.0, 0.5, 0.0])


def test_combine_rewards_names_mismatched_weights():
    terms = {"correct": jnp.ones(2), "format": jnp.ones(2)}
    with pytest.raises(ValueError, match=r"missing \['format'\], unknown \['fromat'\]"):
        combine.combine_rewards(terms, {"correct": 1.0, "fromat": 1.0})


def test_combine_rewards_rejects_bad_shapes():
    with pytest.raises(ValueError, match="'dense' must have shape"):
        combine.combine_rewards({"dense": jnp.ones((2, 3))})
    with pytest.raises(ValueError, match="'b' has shape"):
        combine.combine_rewards({"a": jnp.ones(2), "b": jnp.ones(3)})
    with pytest.raises(ValueError, match="at least one"):
        combine.combine_rewards({})
