"""Rollout correction: importance weights between the learner's and the sampler's log-probs.

The sampler and the learner compute ``π_old`` with different kernels (and, in r1jax, possibly
another compute dtype, ``sampling.dtype``), so the tokens were drawn from ``μ`` (the sampler's
distribution) while the learner's ratio ``π_θ / π_old`` uses its own ``π_old``. With
``ℓ_t = log π_old(o_t) − log μ(o_t)`` (the same parameters, two engines):

- token level: ``ρ_t = exp(ℓ_t)``;
- sequence level: ``ρ = exp(Σ_t m_t ℓ_t)`` (a product of token ratios), on every token.

Truncated importance sampling (TIS; Yao et al., fengyao.notion.site/off-policy-rl; verl
``rollout_corr_helper.py``) weights the loss by ``w = clip(ρ, C_min, C_max)`` (``C_min = 0``:
``min(ρ, C)``); masked importance sampling (MIS; verl ``rollout_rs``, TRL
``vllm_importance_sampling_mode="*_mask"``, IcePop arXiv:2510.18855) by
``w = ρ · 1[C_min ≤ ρ ≤ C_max]``: tokens (or whole sequences) outside the band contribute
nothing. The weight carries no gradient and multiplies the per-token policy loss.

Not here: where the learner's ``π_old`` comes from (`r1jax.learner.step` computes it once per
step on the full batch), how a loss uses the weight (`r1jax.objectives.policy_gradient_loss`).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

LEVELS = ("token", "sequence")
ACTIONS = ("truncate", "mask")


class RolloutWeights(NamedTuple):
    """The weights and what they did, all ``[B, T]`` (zero outside the completion mask).

    Attributes:
      weights: ``w`` per token (no gradient), 0 on padding.
      log_ratio: ``ℓ_t`` at token level, or the sequence's ``Σ_t m ℓ_t`` on each of its tokens.
      corrected: float 1 where truncation or masking changed the weight (``w ≠ ρ``).
    """

    weights: jax.Array
    log_ratio: jax.Array
    corrected: jax.Array


def rollout_correction_weights(
    learner_logprobs: jax.typing.ArrayLike,
    sampler_logprobs: jax.typing.ArrayLike,
    completion_mask: jax.typing.ArrayLike,
    *,
    level: str = "token",
    action: str = "truncate",
    clip_min: float = 0.0,
    clip_max: float = 2.0,
    log_ratio_clip: float = 20.0,
) -> RolloutWeights:
    """TIS / MIS weights of the learner's ``π_old`` against the sampler's ``μ``.

    Args:
      learner_logprobs: ``[B, T]`` ``log π_old`` as the learner computes it.
      sampler_logprobs: ``[B, T]`` ``log μ``, what the sampler reported.
      completion_mask: ``[B, T]``.
      level: ``"token"`` (``ρ_t``) or ``"sequence"`` (``exp Σ_t m ℓ_t`` for every token).
      action: ``"truncate"`` (TIS: ``clip(ρ, C_min, C_max)``) or ``"mask"`` (MIS:
        ``ρ · 1[C_min ≤ ρ ≤ C_max]``).
      clip_min: ``C_min`` (TIS: 0 = no floor).
      clip_max: ``C_max`` (2.0: verl's and the TIS blog's token-level cap).
      log_ratio_clip: ``ℓ`` (or its sequence sum) is clamped to ``±log_ratio_clip`` before
        ``exp`` (verl 20).

    Returns:
      :class:`RolloutWeights`.

    Example:
      >>> import jax.numpy as jnp
      >>> out = rollout_correction_weights(
      ...     jnp.log(jnp.array([[1.0, 3.0, 0.5]])), jnp.zeros((1, 3)), jnp.array([[1, 1, 0]]))
      >>> out.weights, out.corrected
      (Array([[1., 2., 0.]], dtype=float32), Array([[0., 1., 0.]], dtype=float32))
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
    if not 0.0 <= clip_min < clip_max:
        raise ValueError(f"need 0 <= clip_min < clip_max, got {clip_min}, {clip_max}")
    mask = jnp.asarray(completion_mask).astype(bool)
    learner_logprobs = jnp.asarray(learner_logprobs)
    dtype = jnp.promote_types(learner_logprobs.dtype, jnp.float32)
    log_ratio = learner_logprobs.astype(dtype) - jnp.asarray(sampler_logprobs).astype(dtype)
    log_ratio = jnp.where(mask, log_ratio, 0.0)  # [B, T]
    if level == "sequence":
        total = jnp.sum(log_ratio, axis=-1, keepdims=True)  # [B, 1]
        log_ratio = jnp.where(mask, total, 0.0)  # [B, T]
    log_ratio = jax.lax.stop_gradient(log_ratio)
    ratio = jnp.exp(jnp.clip(log_ratio, -log_ratio_clip, log_ratio_clip))  # [B, T]
    if action == "truncate":
        weights = jnp.clip(ratio, clip_min, clip_max)
        corrected = (ratio < clip_min) | (ratio > clip_max)
    else:
        inside = (ratio >= clip_min) & (ratio <= clip_max)
        weights = jnp.where(inside, ratio, 0.0)
        corrected = ~inside
    return RolloutWeights(
        weights=jnp.where(mask, weights, 0.0),
        log_ratio=log_ratio,
        corrected=(corrected & mask).astype(dtype),
    )
