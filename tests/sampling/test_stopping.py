"""Tests for r1jax/sampling/stopping.py: stop ids, stop sequences and finish-reason names."""

import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.sampling import stopping


def test_stop_sequence_matches_only_complete_suffix():
    ids, mask = stopping.pad_stop_sequences([(4, 5, 6), (9,)])
    recent = jnp.full((1, 3), -1, jnp.int32)
    hits = []
    for token in [4, 5, 4, 5, 6, 9]:
        recent = stopping.push_recent(recent, jnp.array([token]))
        hits.append(
            bool(stopping.matches_stop_sequence(recent, jnp.asarray(ids), jnp.asarray(mask))[0])
        )
    assert hits == [False, False, False, False, True, True]


def test_short_history_never_matches_a_longer_sequence():
    ids, mask = stopping.pad_stop_sequences([(5, 6)])
    recent = jnp.array([[-1, 6]])
    assert not bool(stopping.matches_stop_sequence(recent, jnp.asarray(ids), jnp.asarray(mask))[0])


def test_no_stops_never_match():
    ids, mask = stopping.pad_stop_sequences([])
    assert ids.shape == (0, 1)
    recent = jnp.zeros((2, 1), jnp.int32)
    assert not np.any(stopping.matches_stop_sequence(recent, jnp.asarray(ids), jnp.asarray(mask)))
    assert not np.any(stopping.matches_stop_token(jnp.array([0, 1]), jnp.zeros((0,), jnp.int32)))


def test_several_stop_token_ids():
    hits = stopping.matches_stop_token(jnp.array([1, 2, 3]), jnp.array([3, 1]))
    np.testing.assert_array_equal(hits, [True, False, True])


@pytest.mark.parametrize("bad", [[()], [(1, -2)]])
def test_bad_stop_sequences_are_rejected(bad):
    with pytest.raises(ValueError, match="stop_sequences"):
        stopping.pad_stop_sequences(bad)


def test_finish_reason_names():
    codes = np.array([stopping.FINISH_STOP_SEQUENCE, stopping.FINISH_LENGTH, 0])
    assert stopping.finish_reason_names(codes) == ["stop_sequence", "length", "none"]
