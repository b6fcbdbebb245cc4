"""Rotary position embeddings: inverse frequencies (default, linear, llama3, yarn) and rotation.

Lives here: `inverse_frequencies` (numpy, computed once per static config exactly as
transformers computes them in float32) and `apply_rope` (rotate-half convention of
Qwen and Llama checkpoints). Not here: where positions come from (callers pass them).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from r1jax.models.config import ModelConfig


def inverse_frequencies(config: ModelConfig) -> tuple[np.ndarray, float]:
    """The ``[Dh/2]`` float32 inverse frequencies and the cos/sin scale (YaRN's mscale).

    Example:
      >>> freqs, scale = inverse_frequencies(ModelConfig.preset("tiny"))
      >>> freqs.shape, float(freqs[0]), scale
      ((16,), 1.0, 1.0)
    """
    dim = config.head_dim
    base = config.rope_theta
    exponents = np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / np.float32(dim)
    inv_freq = (1.0 / np.power(np.float32(base), exponents)).astype(np.float32)  # [Dh/2]
    scaling = config.rope_scaling
    if scaling is None:
        return inv_freq, 1.0
    if scaling.rope_type == "linear":
        return (inv_freq / np.float32(scaling.factor)).astype(np.float32), 1.0
    if scaling.rope_type == "llama3":
        return _llama3(inv_freq, scaling), 1.0
    return _yarn(config)


def _llama3(inv_freq: np.ndarray, scaling) -> np.ndarray:
    factor = scaling.factor
    low, high = scaling.low_freq_factor, scaling.high_freq_factor
    old_context = scaling.original_max_position_embeddings
    low_freq_wavelen = old_context / low
    high_freq_wavelen = old_context / high
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_context / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return np.where(is_medium, smoothed, scaled).astype(np.float32)


def _yarn(config: ModelConfig) -> tuple[np.ndarray, float]:
    scaling = config.rope_scaling
    dim, base = config.head_dim, config.rope_theta
    original = scaling.original_max_position_embeddings
    factor = scaling.factor
    if factor is None:
        factor = config.max_position_embeddings / original

    def get_mscale(scale, mscale=1.0):
        return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0

    attention_factor = scaling.attention_factor
    if attention_factor is None:
        if scaling.mscale and scaling.mscale_all_dim:
            attention_factor = get_mscale(factor, scaling.mscale) / get_mscale(
                factor, scaling.mscale_all_dim
            )
        else:
            attention_factor = get_mscale(factor)
    beta_fast = scaling.beta_fast or 32
    beta_slow = scaling.beta_slow or 1

    def correction_dim(rotations):
        return (dim * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if scaling.truncate is None or scaling.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float32) - low) / (high - low), 0, 1)
    extrapolation_factor = (1 - ramp).astype(np.float32)
    pos_freqs = np.power(np.float32(base), np.arange(0, dim, 2, dtype=np.float32) / dim)
    extrapolation = 1.0 / pos_freqs
    interpolation = 1.0 / (factor * pos_freqs)
    inv_freq = interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor
    return inv_freq.astype(np.float32), float(attention_factor)


def rope_angles(positions: jax.Array, config: ModelConfig) -> tuple[jax.Array, jax.Array]:
    """``cos`` and ``sin`` of the rotation angles, each ``[B, S, Dh/2]`` float32.

    Args:
      positions: ``[B, S]`` int32 RoPE positions.
      config: the model config (head dim, theta, scaling).
    """
    inv_freq, scale = inverse_frequencies(config)
    angles = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)  # [B, S, Dh/2]
    return jnp.cos(angles) * scale, jnp.sin(angles) * scale


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotates ``x`` ``[B, S, N, Dh]`` by the angles (rotate-half layout); keeps ``x.dtype``."""
    x32 = x.astype(jnp.float32)
    x1, x2 = jnp.split(x32, 2, axis=-1)  # [B, S, N, Dh/2] each
    cos, sin = cos[:, :, None, :], sin[:, :, None, :]  # [B, S, 1, Dh/2]
    rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return rotated.astype(x.dtype)
