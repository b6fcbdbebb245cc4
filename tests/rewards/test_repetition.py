"""Tests for r1jax.rewards.repetition against the reference's Python loops (demystify-long-cot reward/repetition.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.rewards import repetition


def py_dense(tokens, gen_len, total_len, ngram_size, penalty, only_start):
    """The reference dense penalty: set-based scan over n-grams, assignment per token."""
    gen = list(tokens[:gen_len])
    repeated, seen = [], set()
    for start in range(len(gen) - ngram_size + 1):
        ngram = tuple(gen[start : start + ngram_size])
        if ngram in seen:
            repeated.append(start)
        seen.add(ngram)
    reward = [0.0] * total_len
    end = -1
    for start in repeated:
        if not only_start or start > end:
            for i in range(start, start + ngram_size):
                reward[i] = penalty
        end = start + ngram_size
    return reward


def py_sequence(tokens, gen_len, ngram_size, max_penalty):
    gen = list(tokens[:gen_len])
    ngrams = [tuple(gen[i : i + ngram_size]) for i in range(len(gen) - ngram_size + 1)]
    if not ngrams:
        return 0.0
    return max_penalty * (1 - len(set(ngrams)) / len(ngrams))


def random_tokens(seed, batch, length, vocab):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocab, size=(batch, length))
    # Plant exact repeats of a long span in some rows, so long n-grams repeat too.
    for row in range(0, batch, 2):
        span = rng.integers(4, length // 2 + 1)
        start = rng.integers(0, length - 2 * span + 1)
        tokens[row, start + span : start + 2 * span] = tokens[row, start : start + span]
    lengths = rng.integers(0, length + 1, size=batch)
    lengths[0] = length
    return tokens.astype(np.int32), lengths.astype(np.int32)


@pytest.mark.parametrize(
    ("ngram_size", "vocab", "only_start"),
    [(1, 5, False), (2, 3, True), (3, 4, False), (8, 50, True)],
)
def test_dense_penalty_matches_reference(ngram_size, vocab, only_start):
    tokens, lengths = random_tokens(ngram_size, 6, 33, vocab)
    fn = jax.jit(
        functools.partial(
            repetition.repetition_penalty, ngram_size=ngram_size, penalty=-0.05,
            only_start=only_start,
        )
    )  # fmt: skip
    got = fn(tokens, lengths)
    want = [
        py_dense(row, n, tokens.shape[1], ngram_size, -0.05, only_start)
        for row, n in zip(tokens.tolist(), lengths.tolist())
    ]
    assert got.shape == tokens.shape and got.dtype == jnp.float32
    np.testing.assert_array_equal(got, np.asarray(want, np.float32))


@pytest.mark.parametrize(("ngram_size", "vocab"), [(2, 4), (5, 30)])
def test_sequence_penalty_matches_reference(ngram_size, vocab):
    tokens, lengths = random_tokens(10 + ngram_size, 8, 21, vocab)
    lengths[1] = ngram_size - 1  # no n-grams at all
    fn = jax.jit(
        functools.partial(
            repetition.sequence_repetition_penalty, ngram_size=ngram_size, max_penalty=-1.0
        )
    )
    got = fn(tokens, lengths)
    want = [
        py_sequence(row, n, ngram_size, -1.0) for row, n in zip(tokens.tolist(), lengths.tolist())
    ]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert float(got[1]) == 0.0


def test_hand_values():
    tokens = jnp.array([[7, 8, 9, 7, 8, 9, 7, 8, 0, 0]])
    got = repetition.repetition_penalty(tokens, jnp.array([8]), ngram_size=3, penalty=-1.0)
    np.testing.assert_array_equal(got, [[0, 0, 0, -1, -1, -1, -1, -1, 0, 0]])
    start_only = repetition.repetition_penalty(
        tokens, jnp.array([8]), ngram_size=3, penalty=-1.0, only_start=True
    )
    np.testing.assert_array_equal(start_only, [[0, 0, 0, -1, -1, -1, 0, 0, 0, 0]])
    seq = repetition.sequence_repetition_penalty(tokens, jnp.array([8]), ngram_size=3)
    np.testing.assert_allclose(seq, [-0.5])  # 6 trigrams, 3 unique


def test_padding_and_short_inputs():
    tokens = jnp.array([[1, 1, 1, 1], [2, 2, 2, 2]])
    got = repetition.repetition_penalty(tokens, jnp.array([0, 2]), ngram_size=2, penalty=-1.0)
    np.testing.assert_array_equal(got, np.zeros((2, 4)))
    short = repetition.repetition_penalty(tokens, jnp.array([4, 4]), ngram_size=5)
    np.testing.assert_array_equal(short, np.zeros((2, 4)))
    seq = repetition.sequence_repetition_penalty(tokens, jnp.array([4, 1]), ngram_size=5)
    np.testing.assert_array_equal(seq, [0.0, 0.0])


def test_long_paper_setting_runs_under_jit():
    rng = np.random.default_rng(0)
    period = rng.integers(0, 1000, size=50)
    tokens = np.concatenate([rng.integers(0, 1000, size=100), np.tile(period, 8)])[None, :]
    fn = jax.jit(functools.partial(repetition.repetition_penalty, ngram_size=40, penalty=-0.05))
    got = np.asarray(fn(jnp.asarray(tokens), jnp.array([tokens.shape[1]])))
    want = py_dense(tokens[0].tolist(), tokens.shape[1], tokens.shape[1], 40, -0.05, False)
    np.testing.assert_array_equal(got[0], np.asarray(want, np.float32))
    assert got[0, :150].sum() == 0 and np.all(got[0, 150:] == np.float32(-0.05))


def test_positive_penalties_are_rejected():
    with pytest.raises(ValueError, match="<= 0"):
        repetition.repetition_penalty(jnp.zeros((1, 4), int), jnp.array([4]), penalty=0.1)
    with pytest.raises(ValueError, match="<= 0"):
        repetition.sequence_repetition_penalty(
            jnp.zeros((1, 4), int), jnp.array([4]), max_penalty=1.0
        )
