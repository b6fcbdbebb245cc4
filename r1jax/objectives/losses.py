"""Composed policy-gradient losses: GRPO, Dr. GRPO, DAPO, GSPO, REINFORCE++ and RLOO, whole.

Each entry point takes per-token log-probs of the sampled completions under the policy
(``logprobs``, differentiated), the sampler (``old_logprobs``) and the reference
(``ref_logprobs`` or ``None``), the sequence ``rewards`` and the ``completion_mask``, all
``[B, T]`` except ``rewards [B]``, and returns ``(loss, metrics)``. Every one computes

    loss = agg( L^PG_{i,t} + β · KL_{i,t} − c_H · H_{i,t} )

with the algorithm's advantage, surrogate ``L^PG`` (``policy_loss``), KL estimator (``kl``) and
aggregation (``aggregation``); the defaults are the published ones, cited per function.

For a micro-batched update, compute the advantages and the aggregation denominator once on the
full batch and pass both in (``advantages=``, ``denominator=``): each micro-batch's loss is then
its share of the full-batch loss, and the gradients of the micro-batch losses sum to the
full-batch gradient. Group advantages need whole groups; REINFORCE++ whitening needs the whole
batch.

``metrics`` holds scalars over this call's valid tokens: ``loss``, ``pg_loss``, ``kl`` (mean
per-token estimate, when ``ref_logprobs`` is given), ``entropy`` (when ``entropy`` is given),
``clip_frac_low``/``clip_frac_high``/``clip_frac_dual``, ``clip_frac`` (any of the three), ``ratio_mean``/``ratio_min``/``ratio_max``, ``abs_log_ratio_mean``
(mean ``|log π_θ − log π_old|``), ``advantage_mean``/``advantage_std``/``advantage_min``/``advantage_max``,
``num_tokens`` and ``denominator``.

Not here: reward shaping (``r1jax.rewards``), log-prob computation (``r1jax.models``), the
optimizer step (``r1jax.learner``).
"""

import jax
import jax.numpy as jnp

from r1jax.objectives import advantages as adv_lib
from r1jax.objectives import aggregation as agg_lib
from r1jax.objectives import kl as kl_lib
from r1jax.objectives import policy_loss as pl_lib

Metrics = dict[str, jax.Array]


def _masked_stats(values: jax.Array, mask: jax.Array, prefix: str) -> Metrics:
    """Masked mean/std/min/max of ``values``; zeros (ratio: ones) when nothing is valid."""
    values = jnp.broadcast_to(values, mask.shape).astype(jnp.float32)
    count = jnp.sum(mask)
    mean = agg_lib.masked_mean(values, mask)
    var = agg_lib.masked_mean(jnp.square(values - mean), mask)
    empty = 1.0 if prefix == "ratio" else 0.0
    low = jnp.min(jnp.where(mask, values, jnp.inf))
    high = jnp.max(jnp.where(mask, values, -jnp.inf))
    stats = {
        f"{prefix}_mean": jnp.where(count > 0, mean, empty),
        f"{prefix}_min": jnp.where(count > 0, low, empty),
        f"{prefix}_max": jnp.where(count > 0, high, empty),
    }
    if prefix != "ratio":
        stats[f"{prefix}_std"] = jnp.sqrt(var)
    return stats


def policy_gradient_loss(
    logprobs: jax.typing.ArrayLike,
    old_logprobs: jax.typing.ArrayLike,
    ref_logprobs: jax.typing.ArrayLike | None,
    advantages: jax.typing.ArrayLike,
    completion_mask: jax.typing.ArrayLike,
    *,
    surrogate: str = "clip",
    eps_low: float = 0.2,
    eps_high: float | None = None,
    dual_clip: float | None = None,
    log_ratio_clip: float = 20.0,
    kl_coef: float = 0.0,
    kl_estimator: str = "k3",
    aggregation_mode: str = "token-mean",
    max_length: float | None = None,
    entropy: jax.typing.ArrayLike | None = None,
    entropy_coef: float = 0.0,
    denominator: jax.typing.ArrayLike | None = None,
    rollout_weights: jax.typing.ArrayLike | None = None,
) -> tuple[jax.Array, Metrics]:
    """The shared body of every composed loss, and what `r1jax.algorithms` trains with.

    ``loss = agg(w · L^PG + β KL − c_H H)`` with ``L^PG`` from
    ``policy_loss.clipped_surrogate_loss`` (``surrogate="clip"``),
    ``policy_loss.gspo_surrogate_loss`` (``"gspo"``), ``policy_loss.cispo_surrogate_loss``
    (``"cispo"``) or ``policy_loss.gmpo_surrogate_loss`` (``"gmpo"``), and ``w`` the rollout
    correction weights (`r1jax.objectives.rollout_correction`; 1 when not given). For GMPO,
    whose per-token loss repeats the sequence's value, ``w`` thus enters as the mean of the
    sequence's token weights under ``seq-mean-token-mean``.

    Args:
      logprobs: ``[B, T]`` policy log-probs (differentiated).
      old_logprobs: ``[B, T]`` sampler log-probs.
      ref_logprobs: ``[B, T]`` reference log-probs, or ``None`` (no KL term and no KL metric).
      advantages: ``[B]`` or ``[B, T]`` advantages (treated as constants).
      completion_mask: ``[B, T]``.
      surrogate: ``"clip"``, ``"gspo"``, ``"cispo"`` or ``"gmpo"``.
      eps_low: lower clip band.
      eps_high: upper clip band; ``None`` means ``eps_low``.
      dual_clip: dual-clip ``c`` (``"clip"`` only), or ``None``.
      log_ratio_clip: log ratios are clamped to ``±log_ratio_clip`` before ``exp``.
      kl_coef: ``β`` of the KL loss term (0 disables the term; the metric is still logged).
      kl_estimator: one of ``kl.KL_ESTIMATORS``.
      aggregation_mode: one of ``aggregation.AGGREGATION_MODES``.
      max_length: ``C`` for the constant-normaliser modes (default ``T``).
      entropy: optional ``[B, T]`` per-token entropy (e.g. ``kl.entropy_from_logits``).
      entropy_coef: ``c_H``, the entropy bonus (needs ``entropy``).
      denominator: global-batch aggregation denominator for micro-batching.
      rollout_weights: optional ``[B, T]`` importance weights (no gradient) multiplying the
        per-token surrogate loss (TIS / MIS rollout correction).

    Returns:
      ``(loss, metrics)``: scalar float32 loss and a dict of scalar metrics.

    Example:
      >>> import jax.numpy as jnp
      >>> loss, metrics = policy_gradient_loss(
      ...     jnp.zeros((2, 3)), jnp.zeros((2, 3)), None, jnp.array([1.0, -1.0]), jnp.ones((2, 3)))
      >>> float(loss), float(metrics["clip_frac_high"])
      (0.0, 0.0)
    """
    mask = jnp.asarray(completion_mask).astype(bool)
    if surrogate == "clip":
        terms = pl_lib.clipped_surrogate_loss(
            logprobs,
            old_logprobs,
            advantages,
            eps_low=eps_low,
            eps_high=eps_high,
            dual_clip=dual_clip,
            log_ratio_clip=log_ratio_clip,
        )
    elif surrogate == "gspo":
        if dual_clip is not None:
            raise ValueError("dual_clip applies to the token-level clipped surrogate only")
        terms = pl_lib.gspo_surrogate_loss(
            logprobs,
            old_logprobs,
            advantages,
            mask,
            eps_low=eps_low,
            eps_high=eps_low if eps_high is None else eps_high,
            log_ratio_clip=log_ratio_clip,
        )
    elif surrogate in ("cispo", "gmpo"):
        if dual_clip is not None:
            raise ValueError("dual_clip applies to the token-level clipped surrogate only")
        bands = dict(eps_low=eps_low, eps_high=eps_low if eps_high is None else eps_high)
        if surrogate == "cispo":
            terms = pl_lib.cispo_surrogate_loss(
                logprobs, old_logprobs, advantages, log_ratio_clip=log_ratio_clip, **bands
            )
        else:
            terms = pl_lib.gmpo_surrogate_loss(
                logprobs, old_logprobs, advantages, mask, log_ratio_clip=log_ratio_clip, **bands
            )
    else:
        raise ValueError(
            f"unknown surrogate {surrogate!r}; expected 'clip', 'gspo', 'cispo' or 'gmpo'"
        )
    if rollout_weights is not None:
        weights = jax.lax.stop_gradient(jnp.asarray(rollout_weights))
        terms = terms._replace(loss=terms.loss * weights.astype(terms.loss.dtype))
    if entropy_coef and entropy is None:
        raise ValueError("entropy_coef is set but no per-token entropy was passed")

    def reduce(values: jax.Array) -> jax.Array:
        agg = agg_lib.aggregate(values, mask, mode=aggregation_mode, max_length=max_length)
        return agg_lib.aggregate_value(agg, denominator)

    per_token = terms.loss  # [B, T]
    metrics: Metrics = {}
    metrics["pg_loss"] = reduce(terms.loss)
    if ref_logprobs is not None:
        kl_values = kl_lib.kl_penalty(logprobs, ref_logprobs, estimator=kl_estimator)  # [B, T]
        metrics["kl"] = agg_lib.masked_mean(jax.lax.stop_gradient(kl_values), mask)
        if kl_coef:
            per_token = per_token + kl_coef * kl_values
    elif kl_coef:
        raise ValueError("kl_coef is set but ref_logprobs is None")
    if entropy is not None:
        entropy = jnp.asarray(entropy)
        metrics["entropy"] = agg_lib.masked_mean(jax.lax.stop_gradient(entropy), mask)
        if entropy_coef:
            per_token = per_token - entropy_coef * entropy.astype(per_token.dtype)
    loss = reduce(per_token)

    token_adv = jnp.broadcast_to(
        jnp.asarray(advantages)[:, None] if jnp.ndim(advantages) == 1 else advantages, mask.shape
    )
    if denominator is None:
        denominator = agg_lib.aggregation_denominator(
            mask, mode=aggregation_mode, max_length=max_length
        )
    metrics.update(
        loss=loss,
        clip_frac_low=agg_lib.masked_mean(terms.clipped_low, mask),
        clip_frac_high=agg_lib.masked_mean(terms.clipped_high, mask),
        clip_frac_dual=agg_lib.masked_mean(terms.clipped_dual, mask),
        clip_frac=agg_lib.masked_mean(
            (terms.clipped_low + terms.clipped_high + terms.clipped_dual) > 0, mask
        ),
        abs_log_ratio_mean=agg_lib.masked_mean(
            jnp.abs(jnp.asarray(logprobs) - jnp.asarray(old_logprobs)), mask
        ),
        num_tokens=jnp.sum(mask).astype(jnp.float32),
        denominator=jnp.asarray(denominator, jnp.float32),
        **_masked_stats(terms.ratio, mask, "ratio"),
        **_masked_stats(token_adv, mask, "advantage"),
    )
    return loss, {name: jax.lax.stop_gradient(value) for name, value in metrics.items()}


def _resolve_advantages(advantages, rewards, compute):
    if advantages is not None:
        return jnp.asarray(advantages)
    if rewards is None:
        raise ValueError("pass either rewards or precomputed advantages")
    return compute(jnp.asarray(rewards))


def grpo_loss(
    logprobs: jax.typing.ArrayLike,
    old_logprobs: jax.typing.ArrayLike,
    ref_logprobs: jax.typing.ArrayLike | None,
    rewards: jax.typing.ArrayLike | None,
    completion_mask: jax.typing.ArrayLike,
    *,
    group_size: int,
    eps: float = 0.2,
    kl_coef: float = 0.001,
    kl_estimator: str = "k3",
    unbiased_std: bool = True,
    aggregation_mode: str = "seq-mean-token-mean",
    dual_clip: float | None = None,
    entropy: jax.typing.ArrayLike | None = None,
    entropy_coef: float = 0.0,
    advantages: jax.typing.ArrayLike | None = None,
    denominator: jax.typing.ArrayLike | None = None,
) -> tuple[jax.Array, Metrics]:
    """GRPO (DeepSeekMath eq. 3, arXiv:2402.03300; DeepSeek-R1, arXiv:2501.12948).

    ``J = (1/G) Σ_i (1/|o_i|) Σ_t [min(ρ Â_i, clip(ρ, 1−ε, 1+ε) Â_i) − β k3_{i,t}]`` with
    ``Â_i = (R_i − mean_g R)/(std_g R + 1e-6)``; ``loss = −J``, aggregated
    ``seq-mean-token-mean``. Defaults: ``ε = 0.2`` (PPO/verl), ``β = 0.001`` with k3 in the loss
    (R1-Zero; DeepSeekMath used 0.04), unbiased std (verl).

    Args:
      logprobs: ``[B, T]`` policy log-probs (differentiated).
      old_logprobs: ``[B, T]`` sampler log-probs.
      ref_logprobs: ``[B, T]`` reference log-probs, or ``None`` (then ``kl_coef`` must be 0).
      rewards: ``[B]`` sequence rewards grouped by prompt, or ``None`` with ``advantages``.
      completion_mask: ``[B, T]``.
      group_size: ``G``.
      eps: symmetric clip band ``ε``.
      kl_coef: ``β``.
      kl_estimator: ``"k3"`` (papers) or ``"k3+"``, ``"k1"``, ``"k2"``, ``"abs"``.
      unbiased_std: sample std (verl) vs population std.
      aggregation_mode: see ``aggregation.AGGREGATION_MODES``; ``"token-mean"`` reproduces
        TinyZero / Logic-RL / DeepScaleR.
      dual_clip: optional dual-clip ``c``.
      entropy: optional ``[B, T]`` per-token entropy.
      entropy_coef: entropy bonus (verl's old default 0.001).
      advantages: precomputed ``[B]`` or ``[B, T]`` advantages (micro-batching).
      denominator: precomputed global aggregation denominator (micro-batching).

    Returns:
      ``(loss, metrics)``.

    Example:
      >>> import jax.numpy as jnp
      >>> lp = jnp.full((4, 3), -1.0)
      >>> loss, metrics = grpo_loss(lp, lp, lp, jnp.array([1., 0., 1., 1.]), jnp.ones((4, 3)),
      ...                           group_size=2)
      >>> float(loss), float(metrics["advantage_max"]) > 0.7
      (0.0, True)
    """
    adv = _resolve_advantages(
        advantages,
        rewards,
        lambda r: adv_lib.group_relative_advantages(
            r, group_size=group_size, unbiased_std=unbiased_std
        ),
    )
    return policy_gradient_loss(
        logprobs,
        old_logprobs,
        ref_logprobs,
        adv,
        completion_mask,
        eps_low=eps,
        dual_clip=dual_clip,
        kl_coef=kl_coef,
        kl_estimator=kl_estimator,
        aggregation_mode=aggregation_mode,
        entropy=entropy,
        entropy_coef=entropy_coef,
        denominator=denominator,
    )


def dr_grpo_loss(
    logprobs: jax.typing.ArrayLike,
    old_logprobs: jax.typing.ArrayLike,
    ref_logprobs: jax.typing.ArrayLike | None,
    rewards: jax.typing.ArrayLike | None,
    completion_mask: jax.typing.ArrayLike,
    *,
    group_size: int,
    eps: float = 0.2,
    kl_coef: float = 0.0,
    kl_estimator: str = "k3",
    max_length: float | None = None,
    aggregation_mode: str = "seq-mean-token-sum-norm",
    entropy: jax.typing.ArrayLike | None = None,
    entropy_coef: float = 0.0,
    advantages: jax.typing.ArrayLike | None = None,
    denominator: jax.typing.ArrayLike | None = None,
) -> tuple[jax.Array, Metrics]:
    """Dr. GRPO, "GRPO done right" (arXiv:2503.20783; repo understand-r1-zero / oat).

    ``J = (1/G) Σ_i Σ_t min(ρ Â_i, clip(ρ, 1−ε, 1+ε) Â_i) / C`` with ``Â_i = R_i − mean_g R``:
    no ``1/|o_i|`` and no std division. ``C`` is the generation budget (3000 in the paper's
    recipes); it defaults to ``T``, the completion buffer length. Defaults: ``ε = 0.2``,
    ``β = 0`` (no reference model).

    Args:
      logprobs: ``[B, T]`` policy log-probs (differentiated).
      old_logprobs: ``[B, T]`` sampler log-probs.
      ref_logprobs: ``[B, T]`` or ``None``.
      rewards: ``[B]`` sequence rewards grouped by prompt, or ``None`` with ``advantages``.
      completion_mask: ``[B, T]``.
      group_size: ``G``.
      eps: clip band.
      kl_coef: ``β`` (aggregated the same way when non-zero, as oat does).
      kl_estimator: KL estimator name.
      max_length: the constant ``C``; ``None`` uses ``T``.
      aggregation_mode: ``"seq-mean-token-sum-norm"`` (oat) or ``"constant"`` (verl).
      entropy: optional ``[B, T]`` per-token entropy.
      entropy_coef: entropy bonus.
      advantages: precomputed advantages (micro-batching).
      denominator: precomputed global aggregation denominator (micro-batching).

    Returns:
      ``(loss, metrics)``.

    Example:
      >>> import jax.numpy as jnp
      >>> lp = jnp.zeros((2, 4))
      >>> mask = jnp.array([[1, 1, 1, 1], [1, 0, 0, 0]])
      >>> loss, _ = dr_grpo_loss(lp, lp, None, jnp.array([1.0, 0.0]), mask, group_size=2)
      >>> float(loss)  # −(4 · 0.5 − 1 · 0.5) / 4 / 2 sequences
      -0.1875
    """
    adv = _resolve_advantages(
        advantages, rewards, lambda r: adv_lib.dr_grpo_advantages(r, group_size=group_size)
    )
    return policy_gradient_loss(
        logprobs,
        old_logprobs,
        ref_logprobs,
        adv,
        completion_mask,
        eps_low=eps,
        kl_coef=kl_coef,
        kl_estimator=kl_estimator,
        aggregation_mode=aggregation_mode,
        max_length=max_length,
        entropy=entropy,
        entropy_coef=entropy_coef,
        denominator=denominator,
    )


def dapo_loss(
    logprobs: jax.typing.ArrayLike,
    old_logprobs: jax.typing.ArrayLike,
    ref_logprobs: jax.typing.ArrayLike | None,
    rewards: jax.typing.ArrayLike | None,
    completion_mask: jax.typing.ArrayLike,
    *,
    group_size: int,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    dual_clip: float | None = None,
    kl_coef: float = 0.0,
    kl_estimator: str = "k3",
    entropy: jax.typing.ArrayLike | None = None,
    entropy_coef: float = 0.0,
    advantages: jax.typing.ArrayLike | None = None,
    denominator: jax.typing.ArrayLike | None = None,
) -> tuple[jax.Array, Metrics]:
    """DAPO's policy loss (arXiv:2503.14476 eq. 8; verl ``recipe/dapo``).

    ``J = (1/Σ_i |o_i|) Σ_i Σ_t min(ρ Â_i, clip(ρ, 1−ε_low, 1+ε_high) Â_i)`` with the GRPO
    advantage, clip-higher ``ε_low = 0.2, ε_high = 0.28``, token-mean aggregation and no KL.
    Dynamic sampling and the soft overlong punishment live outside the loss (the trainer's
    batch filter and ``rewards.overlong_penalty``). verl's DAPO scripts add ``dual_clip=10``.

    Args:
      logprobs: ``[B, T]`` policy log-probs (differentiated).
      old_logprobs: ``[B, T]`` sampler log-probs.
      ref_logprobs: ``[B, T]`` or ``None``.
      rewards: ``[B]`` sequence rewards grouped by prompt, or ``None`` with ``advantages``.
      completion_mask: ``[B, T]``.
      group_size: ``G``.
      eps_low: lower clip band.
      eps_high: upper clip band (clip-higher).
      dual_clip: optional dual-clip ``c``.
      kl_coef: ``β`` (DAPO drops the KL: 0).
      kl_estimator: KL estimator name.
      entropy: optional ``[B, T]`` per-token entropy.
      entropy_coef: entropy bonus (DAPO: 0).
      advantages: precomputed advantages (micro-batching).
      denominator: global token count (micro-batching).

    Returns:
      ``(loss, metrics)``.

    Example:
      >>> import jax.numpy as jnp
      >>> old = jnp.zeros((2, 2))
      >>> lp = jnp.log(jnp.full((2, 2), 1.5))  # ρ = 1.5 everywhere
      >>> _, metrics = dapo_loss(lp, old, None, jnp.array([1.0, 0.0]), jnp.ones((2, 2)),
      ...                        group_size=2)
      >>> float(metrics["clip_frac_high"])  # the positive-advantage row is clipped at 1.28
      0.5
    """
    adv = _resolve_advantages(
        advantages, rewards, lambda r: adv_lib.group_relative_advantages(r, group_size=group_size)
    )
    return policy_gradient_loss(
        logprobs,
        old_logprobs,
        ref_logprobs,
        adv,
        completion_mask,
        eps_low=eps_low,
        eps_high=eps_high,
        dual_clip=dual_clip,
        kl_coef=kl_coef,
        kl_estimator=kl_estimator,
        aggregation_mode="token-mean",
        entropy=entropy,
        entropy_coef=entropy_coef,
        denominator=denominator,
    )


def gspo_loss(
    logprobs: jax.typing.ArrayLike,
    old_logprobs: jax.typing.ArrayLike,
    ref_logprobs: jax.typing.ArrayLike | None,
    rewards: jax.typing.ArrayLike | None,
    completion_mask: jax.typing.ArrayLike,
    *,
    group_size: int,
    eps_low: float = 3e-4,
    eps_high: float = 4e-4,
    kl_coef: float = 0.0,
    kl_estimator: str = "k3",
    entropy: jax.typing.ArrayLike | None = None,
    entropy_coef: float = 0.0,
    advantages: jax.typing.ArrayLike | None = None,
    denominator: jax.typing.ArrayLike | None = None,
) -> tuple[jax.Array, Metrics]:
    """GSPO, group sequence policy optimisation (arXiv:2507.18071 eq. 5–7).

    ``J = (1/G) Σ_i min(s_i Â_i, clip(s_i, 1−ε_low, 1+ε_high) Â_i)`` with the sequence ratio
    ``s_i = exp((1/|o_i|) Σ_t log(π_θ/π_old))`` and the GRPO advantage. Implemented in the
    token-level form (``policy_loss.gspo_surrogate_loss``) aggregated ``seq-mean-token-mean``,
    which has the same value and gradient. Defaults: ``ε_low = 3e-4, ε_high = 4e-4`` (GSPO
    §5.1), no KL.

    Args:
      logprobs: ``[B, T]`` policy log-probs (differentiated).
      old_logprobs: ``[B, T]`` sampler log-probs.
      ref_logprobs: ``[B, T]`` or ``None``.
      rewards: ``[B]`` sequence rewards grouped by prompt, or ``None`` with ``advantages``.
      completion_mask: ``[B, T]``.
      group_size: ``G``.
      eps_low: lower band on ``s_i``.
      eps_high: upper band on ``s_i``.
      kl_coef: ``β``.
      kl_estimator: KL estimator name.
      entropy: optional ``[B, T]`` per-token entropy.
      entropy_coef: entropy bonus.
      advantages: precomputed advantages (micro-batching).
      denominator: global count of non-empty sequences (micro-batching).

    Returns:
      ``(loss, metrics)``; ``ratio_*`` metrics describe ``s_i``.

    Example:
      >>> import jax.numpy as jnp
      >>> lp = jnp.zeros((2, 3))
      >>> loss, _ = gspo_loss(lp, lp, None, jnp.array([1.0, 0.0]), jnp.ones((2, 3)), group_size=2)
      >>> float(loss)
      0.0
    """
    adv = _resolve_advantages(
        advantages, rewards, lambda r: adv_lib.group_relative_advantages(r, group_size=group_size)
    )
    return policy_gradient_loss(
        logprobs,
        old_logprobs,
        ref_logprobs,
        adv,
        completion_mask,
        surrogate="gspo",
        eps_low=eps_low,
        eps_high=eps_high,
        kl_coef=kl_coef,
        kl_estimator=kl_estimator,
        aggregation_mode="seq-mean-token-mean",
        entropy=entropy,
        entropy_coef=entropy_coef,
        denominator=denominator,
    )


def reinforce_pp_loss(
    logprobs: jax.typing.ArrayLike,
    old_logprobs: jax.typing.ArrayLike,
    ref_logprobs: jax.typing.ArrayLike | None,
    rewards: jax.typing.ArrayLike | None,
    completion_mask: jax.typing.ArrayLike,
    *,
    eps: float = 0.2,
    gamma: float = 1.0,
    kl_reward_coef: float = 0.001,
    kl_coef: float = 0.0,
    kl_estimator: str = "k3",
    group_size: int | None = None,
    entropy: jax.typing.ArrayLike | None = None,
    entropy_coef: float = 0.0,
    advantages: jax.typing.ArrayLike | None = None,
    denominator: jax.typing.ArrayLike | None = None,
) -> tuple[jax.Array, Metrics]:
    """REINFORCE++ (arXiv:2501.03262; verl) and its ``-baseline`` variant.

    Token rewards ``r_t = 1[t = last] R − β_r k1(π_old, π_ref)_t``, returns
    ``G_t = Σ_{k≥t} γ^{k−t} r_k``, ``Â = whiten(G)`` over the batch's valid tokens
    (``advantages.reinforce_pp_advantages``), then the clipped surrogate with ``ε = 0.2`` and
    token-mean aggregation. ``β_r = 0.001`` (TinyZero; Logic-RL's reward-KL script). Logic-RL's
    modification moves the KL to the loss: ``kl_reward_coef=0, kl_coef=0.001`` (k3). With
    ``group_size`` the group mean of ``R`` is subtracted first (REINFORCE++-baseline).

    Args:
      logprobs: ``[B, T]`` policy log-probs (differentiated).
      old_logprobs: ``[B, T]`` sampler log-probs (also the KL-in-reward policy).
      ref_logprobs: ``[B, T]`` or ``None`` (then no KL anywhere).
      rewards: ``[B]`` sequence scores or ``[B, T]`` token rewards, or ``None`` with
        ``advantages``.
      completion_mask: ``[B, T]``.
      eps: clip band.
      gamma: discount.
      kl_reward_coef: ``β_r``, k1 in the reward.
      kl_coef: ``β``, KL in the loss.
      kl_estimator: estimator for the loss term.
      group_size: ``G`` for REINFORCE++-baseline, or ``None``.
      entropy: optional ``[B, T]`` per-token entropy.
      entropy_coef: entropy bonus.
      advantages: precomputed ``[B, T]`` advantages (required under micro-batching: the
        whitening is global).
      denominator: global token count (micro-batching).

    Returns:
      ``(loss, metrics)``.

    Example:
      >>> import jax.numpy as jnp
      >>> lp = jnp.zeros((2, 2))
      >>> loss, metrics = reinforce_pp_loss(lp, lp, None, jnp.array([1.0, 0.0]), jnp.ones((2, 2)))
      >>> float(loss), round(float(metrics["advantage_max"]), 4)
      (0.0, 0.866)
    """

    def compute(r: jax.Array) -> jax.Array:
        kl = None
        if ref_logprobs is not None and kl_reward_coef:
            kl = jax.lax.stop_gradient(kl_lib.kl_k1(old_logprobs, ref_logprobs))  # [B, T]
        adv, _ = adv_lib.reinforce_pp_advantages(
            r, completion_mask, kl=kl, kl_coef=kl_reward_coef, gamma=gamma, group_size=group_size
        )
        return adv

    adv = _resolve_advantages(advantages, rewards, compute)
    return policy_gradient_loss(
        logprobs,
        old_logprobs,
        ref_logprobs,
        adv,
        completion_mask,
        eps_low=eps,
        kl_coef=kl_coef,
        kl_estimator=kl_estimator,
        aggregation_mode="token-mean",
        entropy=entropy,
        entropy_coef=entropy_coef,
        denominator=denominator,
    )


def rloo_loss(
    logprobs: jax.typing.ArrayLike,
    old_logprobs: jax.typing.ArrayLike,
    ref_logprobs: jax.typing.ArrayLike | None,
    rewards: jax.typing.ArrayLike | None,
    completion_mask: jax.typing.ArrayLike,
    *,
    group_size: int,
    eps: float = 0.2,
    kl_coef: float = 0.0,
    kl_estimator: str = "k3",
    aggregation_mode: str = "token-mean",
    entropy: jax.typing.ArrayLike | None = None,
    entropy_coef: float = 0.0,
    advantages: jax.typing.ArrayLike | None = None,
    denominator: jax.typing.ArrayLike | None = None,
) -> tuple[jax.Array, Metrics]:
    """RLOO with the clipped surrogate (Ahmadian et al. arXiv:2402.14740; verl).

    ``Â_i = R_i − (1/(G−1)) Σ_{j≠i} R_j`` broadcast over tokens, the clipped surrogate with
    ``ε = 0.2`` and verl's default token-mean aggregation. With one update per rollout
    (``π_old = π_θ``) this is the vanilla RLOO policy gradient.

    Args:
      logprobs: ``[B, T]`` policy log-probs (differentiated).
      old_logprobs: ``[B, T]`` sampler log-probs.
      ref_logprobs: ``[B, T]`` or ``None``.
      rewards: ``[B]`` sequence rewards grouped by prompt, or ``None`` with ``advantages``.
      completion_mask: ``[B, T]``.
      group_size: ``G``.
      eps: clip band.
      kl_coef: ``β``.
      kl_estimator: KL estimator name.
      aggregation_mode: see ``aggregation.AGGREGATION_MODES``.
      entropy: optional ``[B, T]`` per-token entropy.
      entropy_coef: entropy bonus.
      advantages: precomputed advantages (micro-batching).
      denominator: precomputed global aggregation denominator (micro-batching).

    Returns:
      ``(loss, metrics)``.

    Example:
      >>> import jax.numpy as jnp
      >>> lp = jnp.zeros((2, 1))
      >>> loss, _ = rloo_loss(lp, lp, None, jnp.array([1.0, 0.0]), jnp.ones((2, 1)), group_size=2)
      >>> float(loss)  # −(1 · 1 + (−1) · 1) / 2 tokens
      0.0
    """
    adv = _resolve_advantages(
        advantages, rewards, lambda r: adv_lib.rloo_advantages(r, group_size=group_size)
    )
    return policy_gradient_loss(
        logprobs,
        old_logprobs,
        ref_logprobs,
        adv,
        completion_mask,
        eps_low=eps,
        kl_coef=kl_coef,
        kl_estimator=kl_estimator,
        aggregation_mode=aggregation_mode,
        entropy=entropy,
        entropy_coef=entropy_coef,
        denominator=denominator,
    )
