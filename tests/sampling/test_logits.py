"""Tests for r1jax/sampling/logits.py: filters, the inverse-CDF draw, and sampled frequencies."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.sampling import logits as logits_lib

LOGITS = np.array([2.0, 1.5, 1.0, 0.3, -0.5, -1.0, 0.9, -3.0], np.float32)
NUM_DRAWS = 40_000
SAMPLE = jax.jit(logits_lib.sample_tokens)


def reference_probs(logits, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0):
    """The intended distribution, written independently with a sort (transformers' order)."""
    scaled = logits.astype(np.float64) / temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    keep = np.ones_like(probs, bool)
    if top_k > 0:
        keep &= probs >= np.sort(probs)[::-1][top_k - 1]
    if top_p < 1.0:
        kept = np.where(keep, probs, 0.0)
        kept /= kept.sum()
        order = np.argsort(-kept)
        mass_above = np.concatenate([[0.0], np.cumsum(kept[order])[:-1]])
        nucleus = np.zeros_like(keep)
        nucleus[order] = mass_above < top_p
        keep &= nucleus
    if min_p > 0:
        kept = np.where(keep, probs, 0.0)
        keep &= kept >= min_p * kept.max()
    out = np.where(keep, probs, 0.0)
    return out / out.sum()


def chi_square_critical(dof, z=4.26):
    """Wilson-Hilferty upper quantile of chi-square (z = 4.26 is about p = 1e-5)."""
    a = 2.0 / (9.0 * dof)
    return dof * (1.0 - a + z * np.sqrt(a)) ** 3


def draw_counts(key, *, temperature, top_k=0, top_p=1.0, min_p=0.0):
    keys = jax.random.split(key, NUM_DRAWS)
    logits = jnp.broadcast_to(jnp.asarray(LOGITS), (NUM_DRAWS, LOGITS.size))
    tokens, _ = SAMPLE(
        keys,
        logits,
        temperature=jnp.float32(temperature),
        top_k=jnp.int32(top_k),
        top_p=jnp.float32(top_p),
        min_p=jnp.float32(min_p),
    )
    return np.bincount(np.asarray(tokens), minlength=LOGITS.size)


@pytest.mark.parametrize(
    "controls",
    [
        dict(temperature=1.0),
        dict(temperature=0.5),
        dict(temperature=1.7),
        dict(temperature=1.0, top_k=3),
        dict(temperature=0.8, top_p=0.7),
        dict(temperature=1.0, top_p=0.9, top_k=5),
        dict(temperature=1.0, min_p=0.2),
        dict(temperature=1.3, top_k=6, top_p=0.95, min_p=0.05),
    ],
)
def test_sampled_frequencies_match_intended_distribution(controls):
    counts = draw_counts(jax.random.key(7), **controls)
    probs = reference_probs(LOGITS, **controls)
    assert np.all(counts[probs == 0] == 0), "a filtered token was drawn"
    support = probs > 0
    expected = probs[support] * NUM_DRAWS
    statistic = np.sum((counts[support] - expected) ** 2 / expected)
    assert statistic < chi_square_critical(max(int(support.sum()) - 1, 1)), (counts, expected)


def test_thresholds_match_sorting():
    rng = np.random.default_rng(0)
    for _ in range(20):
        weights = np.exp(rng.normal(size=(3, 50)) * 2).astype(np.float32)
        weights /= weights.max(axis=-1, keepdims=True)
        k = int(rng.integers(1, 50))
        top_p = float(rng.uniform(0.05, 0.99))
        got_k = np.asarray(logits_lib.top_k_threshold(jnp.asarray(weights), k))[:, 0]
        np.testing.assert_array_equal(got_k, np.sort(weights, axis=-1)[:, ::-1][:, k - 1])
        got_p = np.asarray(logits_lib.top_p_threshold(jnp.asarray(weights), top_p))[:, 0]
        for row in range(3):
            kept = reference_probs(np.log(weights[row]), top_p=top_p) > 0
            np.testing.assert_array_equal(weights[row] >= got_p[row], kept)


def test_logprobs_are_untruncated_tempered_log_softmax():
    logits = jax.random.normal(jax.random.key(0), (16, 40)) * 3
    keys = jax.random.split(jax.random.key(1), 16)
    tokens, logprobs = logits_lib.sample_tokens(
        keys, logits, temperature=0.7, top_k=4, top_p=0.8, min_p=0.1
    )
    expected = jax.nn.log_softmax(logits / 0.7, axis=-1)[jnp.arange(16), tokens]
    np.testing.assert_allclose(logprobs, expected, atol=1e-6)


def test_greedy_is_argmax_with_temperature_one_logprobs():
    logits = jax.random.normal(jax.random.key(0), (8, 30))
    keys = jax.random.split(jax.random.key(1), 8)
    tokens, logprobs = logits_lib.sample_tokens(keys, logits, temperature=0.0, top_p=0.5)
    np.testing.assert_array_equal(tokens, jnp.argmax(logits, axis=-1))
    expected = jax.nn.log_softmax(logits, axis=-1)[jnp.arange(8), tokens]
    np.testing.assert_allclose(logprobs, expected, atol=1e-6)


def test_inverse_cdf_never_draws_zero_weight():
    weights = jnp.zeros((64, 300)).at[:, 17].set(1.0).at[:, 255].set(2.0)
    uniforms = jnp.linspace(0.0, 1.0 - 1e-7, 64)
    tokens = np.asarray(logits_lib.inverse_cdf_draw(weights, uniforms))
    assert set(tokens.tolist()) == {17, 255}
    assert np.sum(tokens == 17) == np.sum(uniforms < 1 / 3)


def test_runtime_controls_do_not_retrace():
    logits = jax.random.normal(jax.random.key(0), (4, 20))
    keys = jax.random.split(jax.random.key(1), 4)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def draw(keys, logits, temperature, top_k, top_p, min_p):
        return logits_lib.sample_tokens(
            keys, logits, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p
        )

    for controls in [(1.0, 0, 1.0, 0.0), (0.5, 3, 0.9, 0.1), (0.0, 10, 0.5, 0.2)]:
        temperature, top_k, top_p, min_p = controls
        draw(
            keys,
            logits,
            jnp.float32(temperature),
            jnp.int32(top_k),
            jnp.float32(top_p),
            jnp.float32(min_p),
        )
