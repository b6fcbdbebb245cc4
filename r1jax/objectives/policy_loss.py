"""Per-token policy-gradient surrogates: PPO clipping (asymmetric, dual), GSPO, CISPO, GMPO.

With ``ℓ_{i,t} = log π_θ − log π_old`` (the sampler's log-probs) clamped to ``[−20, 20]`` and
``ρ = exp(ℓ)`` (verl's guard, verl/trainer/ppo/core_algos.py), the clipped surrogate loss per token is

    L_{i,t} = max(−Â ρ, −Â clip(ρ, 1 − ε_low, 1 + ε_high))                    (PPO, arXiv:1707.06347)

with ``ε_low = ε_high = 0.2`` by default, and DAPO's clip-higher ``ε_high = 0.28``
(arXiv:2503.14476 §3.1). Dual-clip (verl ``clip_ratio_c``, Ye et al. arXiv:1912.09729) caps the
loss of negative-advantage tokens at ``−Â c``: ``L = min(L, −Â c)`` where ``Â < 0``.
The gradient is exactly zero wherever a clip is active.

GSPO (arXiv:2507.18071) uses one length-normalised sequence ratio
``s_i = exp((1/|o_i|) Σ_t m ℓ_{i,t})`` for every token of ``o_i``, with its own small band
(``ε_low = 3e-4``, ``ε_high = 4e-4``). The token-level form
``s_{i,t} = sg[s_i] · π_θ(o_{i,t}) / sg[π_θ(o_{i,t})]`` has the value ``s_i`` and the gradient of
``s_i`` once averaged over the sequence's tokens (aggregate with ``seq-mean-token-mean``).

CISPO (arXiv:2506.13585) clips a detached importance weight instead of the objective,
``L = −sg[clip(ρ, 1 − ε_low, 1 + ε_high)] Â log π_θ``, so no token loses its gradient. GMPO
(arXiv:2507.20673) replaces GRPO's arithmetic mean of token ratios by their geometric mean,
``L_i = −Â_i exp(mean_t ℓ̃_{i,t})``, with a sign-aware per-token clip of ``ℓ`` in log space.

Each function returns :class:`SurrogateTerms`: the unreduced per-token loss, the ratio, and
float 0/1 indicators of where each clip is active (for clip-fraction metrics). Reduce with
``aggregation``.

Not here: advantages (``advantages``), KL (``kl``), the composed algorithms (``losses``).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class SurrogateTerms(NamedTuple):
    """Per-token outputs of a surrogate, all ``[B, T]``.

    Attributes:
      loss: per-token loss ``L_{i,t}`` to minimise (unreduced, unmasked).
      ratio: the importance ratio used (``ρ_{i,t}``, or ``s_i`` repeated for GSPO).
      clipped_low: 1 where ``Â < 0`` and the ratio is below ``1 − ε_low`` (zero gradient).
      clipped_high: 1 where ``Â > 0`` and the ratio is above ``1 + ε_high`` (zero gradient).
      clipped_dual: 1 where the dual clip caps the loss (``Â < 0`` and ratio above ``c``).
    """

    loss: jax.Array
    ratio: jax.Array
    clipped_low: jax.Array
    clipped_high: jax.Array
    clipped_dual: jax.Array


def _as_float(x: jax.typing.ArrayLike) -> jax.Array:
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _token_advantages(advantages: jax.typing.ArrayLike, shape: tuple[int, ...]) -> jax.Array:
    """``[B]`` or ``[B, T]`` advantages as ``[B, T]``."""
    advantages = _as_float(advantages)
    if advantages.ndim == 1:
        advantages = advantages[:, None]  # [B, 1]
    return jnp.broadcast_to(advantages, shape)


def _clipped_objective(
    ratio: jax.Array,
    advantages: jax.Array,
    *,
    eps_low: float,
    eps_high: float,
    dual_clip: float | None,
) -> SurrogateTerms:
    unclipped = -advantages * ratio
    clipped = -advantages * jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high)
    loss = jnp.maximum(unclipped, clipped)
    negative = advantages < 0
    clipped_low = negative & (ratio < 1.0 - eps_low)
    clipped_high = (advantages > 0) & (ratio > 1.0 + eps_high)
    if dual_clip is None:
        clipped_dual = jnp.zeros_like(negative)
    else:
        cap = -advantages * dual_clip
        clipped_dual = negative & (loss > cap)
        loss = jnp.where(clipped_dual, cap, loss)
    dtype = loss.dtype
    return SurrogateTerms(
        loss=loss,
        ratio=ratio,
        clipped_low=clipped_low.astype(dtype),
        clipped_high=clipped_high.astype(dtype),
        clipped_dual=clipped_dual.astype(dtype),
    )


def clipped_surrogate_loss(
    logprobs: jax.typing.ArrayLike,
    old_logprobs: jax.typing.ArrayLike,
    advantages: jax.typing.ArrayLike,
    *,
    eps_low: float = 0.2,
    eps_high: float | None = None,
    dual_clip: float | None = None,
    log_ratio_clip: float = 20.0,
) -> SurrogateTerms:
    """PPO's clipped surrogate per token, with clip-higher and optional dual clip.

    ``L = max(−Â ρ, −Â clip(ρ, 1 − ε_low, 1 + ε_high))``, then for ``Â < 0`` and a ``dual_clip``
    ``c``: ``L = min(L, −Â c)``. ``ρ = exp(clip(log π_θ − log π_old, ±log_ratio_clip))``.

    Args:
      logprobs: ``[B, T]`` policy log-probs of the sampled tokens (differentiated).
      old_logprobs: ``[B, T]`` log-probs under the sampling policy (no gradient is taken).
      advantages: ``[B, T]`` per-token or ``[B]`` per-sequence advantages (no gradient).
      eps_low: lower band ``ε_low`` (0.2, PPO / verl / TRL).
      eps_high: upper band ``ε_high``; ``None`` means ``eps_low``. DAPO uses 0.28.
      dual_clip: ``c > 1`` for negative advantages, or ``None`` for off (verl 3.0; DAPO
        scripts 10.0).
      log_ratio_clip: clamp on ``log ρ`` before ``exp`` (verl 20).

    Returns:
      :class:`SurrogateTerms` of ``[B, T]`` arrays, float32 or wider.

    Example:
      >>> import jax.numpy as jnp
      >>> terms = clipped_surrogate_loss(
      ...     jnp.log(jnp.array([[1.5, 0.5]])), jnp.zeros((1, 2)), jnp.array([1.0]))
      >>> terms.loss, terms.clipped_high
      (Array([[-1.2, -0.5]], dtype=float32), Array([[1., 0.]], dtype=float32))
    """
    eps_high = eps_low if eps_high is None else eps_high
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
    logprobs = _as_float(logprobs)
    log_ratio = jnp.clip(logprobs - _as_float(old_logprobs), -log_ratio_clip, log_ratio_clip)
    ratio = jnp.exp(log_ratio)  # [B, T]
    adv = jax.lax.stop_gradient(_token_advantages(advantages, ratio.shape))  # [B, T]
    return _clipped_objective(ratio, adv, eps_low=eps_low, eps_high=eps_high, dual_clip=dual_clip)


def sequence_log_ratio(
    logprobs: jax.typing.ArrayLike,
    old_logprobs: jax.typing.ArrayLike,
    completion_mask: jax.typing.ArrayLike,
) -> jax.Array:
    """GSPO's length-normalised sequence log-ratio ``log s_i = (1/|o_i|) Σ_t m ℓ_{i,t}``.

    Args:
      logprobs: ``[B, T]``.
      old_logprobs: ``[B, T]``.
      completion_mask: ``[B, T]``.

    Returns:
      ``[B]``; 0 for a fully masked row.

    Example:
      >>> import jax.numpy as jnp
      >>> sequence_log_ratio(jnp.array([[0.2, 0.4, 9.0]]), jnp.zeros((1, 3)), jnp.array([[1, 1, 0]]))
      Array([0.3], dtype=float32)
    """
    mask = jnp.asarray(completion_mask).astype(bool)
    log_ratio = _as_float(logprobs) - _as_float(old_logprobs)
    total = jnp.sum(jnp.where(mask, log_ratio, 0.0), axis=-1)  # [B]
    length = jnp.sum(mask, axis=-1)  # [B]
    return total / jnp.maximum(length, 1).astype(total.dtype)


def gspo_surrogate_loss(
    logprobs: jax.typing.ArrayLike,
    old_logprobs: jax.typing.ArrayLike,
    advantages: jax.typing.ArrayLike,
    completion_mask: jax.typing.ArrayLike,
    *,
    eps_low: float = 3e-4,
    eps_high: float = 4e-4,
    log_ratio_clip: float = 20.0,
) -> SurrogateTerms:
    """GSPO's sequence-ratio clipped surrogate, in its token-level form (arXiv:2507.18071).

    ``log s_{i,t} = sg[log s_i] + log π_θ(o_{i,t}) − sg[log π_θ(o_{i,t})]``, clamped to
    ``±log_ratio_clip``; ``L = max(−Â_i s_{i,t}, −Â_i clip(s_{i,t}, 1 − ε_low, 1 + ε_high))``.
    Every token of a sequence sees the same value ``s_i``, and averaging the per-token loss over
    the sequence's tokens gives the gradient of the sequence-level objective.

    Args:
      logprobs: ``[B, T]`` policy log-probs (differentiated).
      old_logprobs: ``[B, T]`` sampler log-probs.
      advantages: ``[B]`` sequence advantages (or ``[B, T]`` constant along ``T``).
      completion_mask: ``[B, T]``.
      eps_low: lower band (3e-4, GSPO paper §5.1).
      eps_high: upper band (4e-4, GSPO paper §5.1).
      log_ratio_clip: clamp on ``log s`` before ``exp``.

    Returns:
      :class:`SurrogateTerms`; ``ratio`` is ``s_i`` repeated over ``T``.

    Example:
      >>> import jax.numpy as jnp
      >>> terms = gspo_surrogate_loss(
      ...     jnp.array([[0.1, -0.1]]), jnp.zeros((1, 2)), jnp.array([1.0]), jnp.ones((1, 2)))
      >>> terms.ratio, terms.loss
      (Array([[1., 1.]], dtype=float32), Array([[-1., -1.]], dtype=float32))
    """
    logprobs = _as_float(logprobs)
    seq_log_ratio = sequence_log_ratio(logprobs, old_logprobs, completion_mask)  # [B]
    log_ratio = (
        jax.lax.stop_gradient(seq_log_ratio)[:, None] + logprobs - jax.lax.stop_gradient(logprobs)
    )  # [B, T]
    ratio = jnp.exp(jnp.clip(log_ratio, -log_ratio_clip, log_ratio_clip))
    adv = jax.lax.stop_gradient(_token_advantages(advantages, ratio.shape))  # [B, T]
    return _clipped_objective(ratio, adv, eps_low=eps_low, eps_high=eps_high, dual_clip=None)


def cispo_surrogate_loss(
    logprobs: jax.typing.ArrayLike,
    old_logprobs: jax.typing.ArrayLike,
    advantages: jax.typing.ArrayLike,
    *,
    eps_low: float = 10.0,
    eps_high: float = 0.2,
    log_ratio_clip: float = 20.0,
) -> SurrogateTerms:
    """CISPO: the clipped importance weight times the REINFORCE term (arXiv:2506.13585 §3.1).

    ``L_{i,t} = −sg[clip(ρ_{i,t}, 1 − ε_low, 1 + ε_high)] · Â_{i,t} · log π_θ(o_{i,t})`` with
    ``ρ = exp(clip(log π_θ − log π_old, ±log_ratio_clip))``. Unlike PPO's clip, which zeroes the
    gradient of clipped tokens, CISPO clips only the (detached) weight, so every token keeps
    the gradient ``sg[w]·Â·∇log π_θ`` (verl ``compute_policy_loss_cispo``). MiniMax-M1 leaves
    the lower side unbounded (a large ``ε_low``) and tunes only ``ε_high``.

    Args:
      logprobs: ``[B, T]`` policy log-probs (differentiated).
      old_logprobs: ``[B, T]`` log-probs of the policy that sampled.
      advantages: ``[B, T]`` per-token or ``[B]`` per-sequence advantages (no gradient).
      eps_low: lower band; the default 10 leaves the weight unbounded below (verl's CISPO
        example ``clip_ratio_low=10``).
      eps_high: upper band: the weight is capped at ``1 + ε_high`` (verl default 0.2).
      log_ratio_clip: clamp on ``log ρ`` before ``exp`` (verl 20).

    Returns:
      :class:`SurrogateTerms` of ``[B, T]`` arrays; ``ratio`` is the unclipped ``ρ`` and
      ``clipped_low`` / ``clipped_high`` mark where the weight was capped (whatever the sign of
      ``Â``); ``clipped_dual`` is zero.

    Example:
      >>> import jax.numpy as jnp
      >>> terms = cispo_surrogate_loss(
      ...     jnp.log(jnp.array([[1.5, 0.5]])), jnp.zeros((1, 2)), jnp.array([2.0]))
      >>> [round(float(x), 3) for x in terms.loss[0]]  # −min(ρ, 1.2) · 2 · log π_θ
      [-0.973, 0.693]
    """
    logprobs = _as_float(logprobs)
    log_ratio = jnp.clip(logprobs - _as_float(old_logprobs), -log_ratio_clip, log_ratio_clip)
    ratio = jnp.exp(log_ratio)  # [B, T]
    weight = jax.lax.stop_gradient(jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high))  # [B, T]
    adv = jax.lax.stop_gradient(_token_advantages(advantages, ratio.shape))  # [B, T]
    loss = -weight * adv * logprobs  # [B, T]
    dtype = loss.dtype
    return SurrogateTerms(
        loss=loss,
        ratio=jax.lax.stop_gradient(ratio),
        clipped_low=(ratio < 1.0 - eps_low).astype(dtype),
        clipped_high=(ratio > 1.0 + eps_high).astype(dtype),
        clipped_dual=jnp.zeros_like(loss),
    )


def gmpo_surrogate_loss(
    logprobs: jax.typing.ArrayLike,
    old_logprobs: jax.typing.ArrayLike,
    advantages: jax.typing.ArrayLike,
    completion_mask: jax.typing.ArrayLike,
    *,
    eps_low: float = 0.4,
    eps_high: float = 0.4,
    log_ratio_clip: float = 20.0,
) -> SurrogateTerms:
    """GMPO: the geometric mean of the token ratios, clipped per token in log space
    (arXiv:2507.20673 §3; repo callsys/GMPO ``train_zero_math_gmpo.py``).

    With ``ℓ_t = clip(log π_θ − log π_old, ±log_ratio_clip)`` and the sequence advantage
    ``Â_i`` (the masked token mean of ``advantages``), the sign-aware clip is
    ``ℓ̃_t = min(ℓ_t, clip(ℓ_t, −ε_low, ε_high))`` where ``Â_i > 0`` and
    ``max(ℓ_t, clip(ℓ_t, −ε_low, ε_high))`` otherwise, and the sequence loss is

        L_i = −Â_i · exp((1/|o_i|) Σ_t m_t ℓ̃_t)

    The bands are log-space values (0.4: the ratio stays in ``(e^−0.4, e^0.4)``), not
    ``1 ± ε``. Every token of ``o_i`` gets the value ``L_i``: aggregated with
    ``seq-mean-token-mean`` the loss is ``mean_i L_i`` with its exact gradient (GMPO and verl
    ``compute_policy_loss_geo_mean`` average over sequences).

    Args:
      logprobs: ``[B, T]`` policy log-probs (differentiated).
      old_logprobs: ``[B, T]`` log-probs of the policy that sampled.
      advantages: ``[B]`` or ``[B, T]`` advantages (no gradient).
      completion_mask: ``[B, T]``.
      eps_low: log-space lower band (0.4, GMPO's scripts).
      eps_high: log-space upper band (0.4).
      log_ratio_clip: clamp on ``ℓ`` before the clip (keeps ``exp`` finite).

    Returns:
      :class:`SurrogateTerms`; ``loss`` and ``ratio`` (``exp`` of the clipped mean log ratio)
      repeat the sequence's value over ``T``; ``clipped_low`` / ``clipped_high`` mark tokens
      whose ``ℓ`` the sign-aware clip changed.

    Example:
      >>> import jax.numpy as jnp
      >>> lp = jnp.array([[0.1, 0.9, 5.0]])  # ℓ = 0.1, 0.9 (clipped to 0.4); t = 3 is padding
      >>> terms = gmpo_surrogate_loss(lp, jnp.zeros((1, 3)), jnp.array([1.0]),
      ...                             jnp.array([[1, 1, 0]]))
      >>> terms.loss.round(4), terms.clipped_high
      (Array([[-1.284, -1.284, -1.284]], dtype=float32), Array([[0., 1., 0.]], dtype=float32))
    """
    mask = jnp.asarray(completion_mask).astype(bool)
    logprobs = _as_float(logprobs)
    log_ratio = jnp.clip(logprobs - _as_float(old_logprobs), -log_ratio_clip, log_ratio_clip)
    token_adv = jax.lax.stop_gradient(_token_advantages(advantages, log_ratio.shape))
    length = jnp.maximum(jnp.sum(mask, axis=-1), 1).astype(log_ratio.dtype)  # [B]
    seq_adv = jnp.sum(jnp.where(mask, token_adv, 0.0), axis=-1) / length  # [B]
    positive = (seq_adv > 0)[:, None]  # [B, 1]
    banded = jnp.clip(log_ratio, -eps_low, eps_high)
    clipped = jnp.where(
        positive, jnp.minimum(log_ratio, banded), jnp.maximum(log_ratio, banded)
    )  # [B, T]
    mean_log_ratio = jnp.sum(jnp.where(mask, clipped, 0.0), axis=-1) / length  # [B]
    ratio = jnp.exp(mean_log_ratio)  # [B]
    loss = jnp.broadcast_to((-seq_adv * ratio)[:, None], log_ratio.shape)  # [B, T]
    dtype = loss.dtype
    return SurrogateTerms(
        loss=loss,
        ratio=jnp.broadcast_to(jax.lax.stop_gradient(ratio)[:, None], log_ratio.shape),
        clipped_low=(~positive & (log_ratio < -eps_low)).astype(dtype),
        clipped_high=(positive & (log_ratio > eps_high)).astype(dtype),
        clipped_dual=jnp.zeros_like(loss),
    )
