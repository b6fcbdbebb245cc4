"""TIS / MIS rollout-correction weights against the formulas, at token and sequence level."""

import jax
import numpy as np
import pytest

from r1jax.objectives import rollout_correction_weights

LEARNER = np.log(np.array([[1.0, 3.0, 0.5, 0.1], [0.9, 1.1, 1.0, 1.0]], np.float32))
SAMPLER = np.zeros((2, 4), np.float32)
MASK = np.array([[1, 1, 1, 0], [1, 1, 0, 0]])


def test_token_truncation_caps_the_ratio():
    out = rollout_correction_weights(LEARNER, SAMPLER, MASK, clip_max=2.0)
    np.testing.assert_allclose(out.weights, [[1.0, 2.0, 0.5, 0.0], [0.9, 1.1, 0, 0]], rtol=1e-6)
    np.testing.assert_array_equal(out.corrected, [[0, 1, 0, 0], [0, 0, 0, 0]])


def test_token_masking_zeroes_tokens_outside_the_band():
    out = rollout_correction_weights(
        LEARNER, SAMPLER, MASK, action="mask", clip_min=0.6, clip_max=2.0
    )
    np.testing.assert_allclose(out.weights, [[1.0, 0.0, 0.0, 0.0], [0.9, 1.1, 0, 0]], rtol=1e-6)
    np.testing.assert_array_equal(out.corrected, [[0, 1, 1, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize("action", ["truncate", "mask"])
def test_sequence_level_uses_the_product_of_token_ratios(action):
    out = jax.jit(
        lambda a, b, m: rollout_correction_weights(
            a, b, m, level="sequence", action=action, clip_max=2.0
        )
    )(LEARNER, SAMPLER, MASK)
    products = [1.0 * 3.0 * 0.5, 0.9 * 1.1]  # 1.5, 0.99: both inside the band
    np.testing.assert_allclose(out.weights[0, :3], products[0], rtol=1e-5)
    np.testing.assert_allclose(out.weights[1, :2], products[1], rtol=1e-5)
    assert float(out.weights[0, 3]) == 0.0 and float(np.sum(out.corrected)) == 0.0
    capped = rollout_correction_weights(
        LEARNER, SAMPLER, MASK, level="sequence", action=action, clip_max=1.2
    )
    expected = 1.2 if action == "truncate" else 0.0
    np.testing.assert_allclose(capped.weights[0, :3], expected, rtol=1e-6)


def test_identical_logprobs_give_unit_weights():
    out = rollout_correction_weights(LEARNER, LEARNER, MASK, action="mask", clip_min=0.5)
    np.testing.assert_array_equal(out.weights, MASK.astype(np.float32))


def test_a_bad_band_is_an_error():
    with pytest.raises(ValueError, match="clip_min < clip_max"):
        rollout_correction_weights(LEARNER, SAMPLER, MASK, clip_min=2.0, clip_max=1.0)
