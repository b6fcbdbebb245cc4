"""Tests for r1jax.rewards.length: cosine length reward and DAPO overlong penalty."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.rewards import length


def py_cosine(correct, gen_len, max_len, r0c, rLc, r0w, rLw, exceed, margin):
    """The reference's scalar rule, written from the reference's cosine.py."""
    if gen_len + margin >= max_len:
        return exceed
    r0, rl = (r0c, rLc) if correct else (r0w, rLw)
    return rl + 0.5 * (r0 - rl) * (1.0 + math.cos(math.pi * gen_len / max_len))


def py_overlong(gen_len, max_len, cache, factor):
    """DAPO eq. 13, piecewise."""
    if gen_len <= max_len - cache:
        return 0.0
    if gen_len <= max_len:
        return ((max_len - cache) - gen_len) / cache * factor
    return -1.0 * factor


@pytest.mark.parametrize(
    "params",
    [
        {},  # the paper runs' defaults
        {"r0_correct": 1.0, "rL_correct": 0.0, "r0_wrong": -1.0, "rL_wrong": 0.0, "r_exceed": 0.0},
    ],
)
@pytest.mark.parametrize("max_length", [64, 14336])
def test_cosine_matches_reference_rule(params, max_length):
    rng = np.random.default_rng(max_length)
    correct = rng.integers(0, 2, size=32).astype(bool)
    lengths = rng.integers(0, max_length + 1, size=32)
    lengths[:3] = [0, max_length - 17, max_length - 16]  # the edges of the exceed rule
    fn = jax.jit(functools.partial(length.cosine_length_reward, max_length=max_length, **params))
    got = fn(correct, lengths)
    full = {
        "r0_correct": 2.0,
        "rL_correct": 1.0,
        "r0_wrong": -10.0,
        "rL_wrong": 0.0,
        "r_exceed": -10.0,
    }
    full.update(params)
    want = [
        py_cosine(c, int(n), max_length, full["r0_correct"], full["rL_correct"], full["r0_wrong"],
                  full["rL_wrong"], full["r_exceed"], 16)
        for c, n in zip(correct, lengths)
    ]  # fmt: skip
    assert got.shape == (32,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_cosine_hand_values_and_direction():
    got = length.cosine_length_reward(
        jnp.array([True, True, False, False, True]),
        jnp.array([0, 500, 0, 500, 984]),
        max_length=1000,
    )
    np.testing.assert_allclose(got, [2.0, 1.5, -10.0, -5.0, -10.0], atol=1e-5)
    lengths = jnp.arange(0, 900, 50)
    correct = length.cosine_length_reward(jnp.ones_like(lengths, bool), lengths, max_length=1000)
    wrong = length.cosine_length_reward(jnp.zeros_like(lengths, bool), lengths, max_length=1000)
    assert np.all(np.diff(np.asarray(correct)) < 0)  # shorter correct answers earn more
    assert np.all(np.diff(np.asarray(wrong)) > 0)  # longer wrong answers are penalised less


def test_cosine_just_below_the_margin_is_not_exceeded():
    got = length.cosine_length_reward(
        jnp.array([True, True]), jnp.array([983, 984]), max_length=1000, exceed_margin=16
    )
    assert float(got[0]) > 1.0 and float(got[1]) == -10.0


@pytest.mark.parametrize(
    ("max_length", "cache_length", "factor"), [(20, 4, 1.0), (20480, 4096, 0.5)]
)
def test_overlong_matches_eq13(max_length, cache_length, factor):
    lengths = np.unique(
        np.concatenate(
            [np.random.default_rng(0).integers(0, max_length + 50, size=64),
             [0, max_length - cache_length, max_length - cache_length + 1, max_length, max_length + 1]]
        )
    )  # fmt: skip
    fn = jax.jit(
        functools.partial(
            length.overlong_penalty, max_length=max_length, cache_length=cache_length,
            penalty_factor=factor,
        )
    )  # fmt: skip
    got = fn(lengths)
    want = [py_overlong(int(n), max_length, cache_length, factor) for n in lengths]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert np.all(np.asarray(got) <= 0) and np.all(np.asarray(got) >= -factor)


def test_overlong_rejects_bad_cache():
    with pytest.raises(ValueError, match="cache_length"):
        length.overlong_penalty(jnp.zeros(1), max_length=10, cache_length=0)
    with pytest.raises(ValueError, match="cache_length"):
        length.overlong_penalty(jnp.zeros(1), max_length=10, cache_length=11)
