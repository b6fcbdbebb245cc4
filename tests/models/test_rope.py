"""RoPE inverse frequencies match transformers for default, linear, llama3 and yarn scaling."""

import numpy as np
import pytest
import torch
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from r1jax.models import ModelConfig
from r1jax.models.rope import inverse_frequencies
from tests.models.hf_fixtures import tiny_hf_config

SCALINGS = {
    "default": None,
    "linear": dict(rope_type="linear", factor=4.0),
    "llama3": dict(
        rope_type="llama3",
        factor=8.0,
        low_freq_factor=1.0,
        high_freq_factor=4.0,
        original_max_position_embeddings=64,
    ),
    "yarn": dict(rope_type="yarn", factor=8.0, original_max_position_embeddings=32),
    "yarn_betas": dict(
        rope_type="yarn",
        factor=4.0,
        beta_fast=16.0,
        beta_slow=2.0,
        original_max_position_embeddings=64,
        truncate=False,
    ),
}


@pytest.mark.parametrize("name", sorted(SCALINGS))
def test_inverse_frequencies_match_transformers(name):
    hf = tiny_hf_config(
        "llama",
        head_dim=32,
        rope_theta=50000.0,
        rope_scaling=SCALINGS[name],
        max_position_embeddings=256,
    )
    config = ModelConfig.from_hf_config(hf.to_dict())
    rope_type = SCALINGS[name]["rope_type"] if SCALINGS[name] else "default"
    if rope_type == "default":
        expected = 1.0 / (50000.0 ** (torch.arange(0, 32, 2).float() / 32))
        expected_scale = 1.0
    else:
        expected, expected_scale = ROPE_INIT_FUNCTIONS[rope_type](hf, torch.device("cpu"))
    freqs, scale = inverse_frequencies(config)
    np.testing.assert_allclose(freqs, expected.numpy(), rtol=1e-6)
    assert scale == pytest.approx(expected_scale)
