"""Advantage estimators: from rewards (and values) to the per-token weight ``Â`` of the surrogate.

Rows are laid out by prompt: rows ``p*G:(p+1)*G`` of a ``[B]`` array are the ``G`` completions
of prompt ``p``. Every estimator is a pure ``jnp`` function with no gradient flowing through it in
normal use (call it on rewards, not on anything that depends on the policy parameters).

- GRPO (DeepSeekMath §4.1.2, arXiv:2402.03300; R1 eq. 3):
  ``Â_i = (R_i − mean_g R) / (std_g R + ε)`` with the unbiased std and ``ε = 1e-6``
  [repo:verl/trainer/ppo/core_algos.py ``compute_grpo_outcome_advantage``]. A group of size 1
  gets mean 0 and std 1; a group whose rewards are all equal gets exactly 0.
- Dr. GRPO (arXiv:2503.20783): ``Â_i = R_i − mean_g R`` (no std division).
- RLOO [repo:verl ``compute_rloo_outcome_advantage``]:
  ``Â_i = R_i − (1/(G−1)) Σ_{j≠i} R_j = G/(G−1) · (R_i − mean_g R)``; ``G = 1`` gives ``Â = R``.
- REINFORCE++ (arXiv:2501.03262) [repo:verl ``compute_reinforce_plus_plus_outcome_advantage``]:
  token rewards ``r_t = 1[t = last] R − β k1_t``, discounted returns
  ``G_t = Σ_{k≥t} γ^{k−t} r_k`` reset after EOS, then whitened over every valid token of the
  global batch: ``Â = (G − μ) / sqrt(σ² + 1e-8)`` with the unbiased masked variance.
  REINFORCE++-baseline first subtracts the group mean of ``R``.
- GAE (Schulman et al. 2015; PPO as in ORZ, arXiv:2503.24290):
  ``δ_t = r_t + γ V_{t+1} − V_t``, ``Â_t = Σ_l (γλ)^l δ_{t+l}``, computed by a reverse scan that
  skips masked positions.

Not here: rewards themselves (``r1jax.rewards``), the losses that consume advantages
(``policy_loss``, ``losses``), and KL estimators (``kl``).
"""

import jax
import jax.numpy as jnp


def _float(x: jax.typing.ArrayLike) -> jax.Array:
    """``x`` as an array of at least float32 precision."""
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _grouped(rewards: jax.typing.ArrayLike, group_size: int) -> jax.Array:
    """``[B]`` rewards reshaped to ``[P, G]``, with a clear error on a bad batch size."""
    rewards = _float(rewards)
    if rewards.ndim != 1:
        raise ValueError(f"rewards must have shape [B], got {rewards.shape}")
    if group_size < 1 or rewards.shape[0] % group_size:
        raise ValueError(
            f"batch of {rewards.shape[0]} rewards is not a whole number of groups of {group_size}"
        )
    return rewards.reshape(-1, group_size)  # [P, G]


def group_relative_advantages(
    rewards: jax.typing.ArrayLike,
    *,
    group_size: int,
    scale_by_std: bool = True,
    unbiased_std: bool = True,
    eps: float = 1e-6,
) -> jax.Array:
    """Centres each reward on its prompt group's mean, optionally scaled by the group's std.

    ``Â_i = (R_i − mean_g R) / (std_g R + eps)`` (GRPO, arXiv:2402.03300 §4.1.2). With
    ``scale_by_std=False`` it is Dr. GRPO's ``Â_i = R_i − mean_g R`` (arXiv:2503.20783).
    A group of size 1 uses mean 0 and std 1, as verl does, so its advantage is ``R / (1 + eps)``.

    Args:
      rewards: ``[B]`` rewards with ``B = P * G``; rows ``p*G:(p+1)*G`` share prompt ``p``.
      group_size: ``G``, completions sampled per prompt.
      scale_by_std: divide by the group's std (GRPO); ``False`` gives Dr. GRPO's centring only.
      unbiased_std: the sample std (divides by ``G − 1``, torch's default, used by verl and
        understand-r1-zero); ``False`` gives the population std. The papers do not say which.
      eps: added to the std so the division stays finite when a group's rewards are all equal.

    Returns:
      ``[B]`` advantages in float32 (or wider when ``rewards`` is wider).

    Example:
      >>> import jax.numpy as jnp
      >>> group_relative_advantages(jnp.array([1., 0., 0., 0.]), group_size=2, scale_by_std=False)
      Array([ 0.5, -0.5,  0. ,  0. ], dtype=float32)
      >>> group_relative_advantages(jnp.array([1., 0., 3., 3.]), group_size=2).round(4)
      Array([ 0.7071, -0.7071,  0.    ,  0.    ], dtype=float32)
    """
    grouped = _grouped(rewards, group_size)  # [P, G]
    if group_size == 1:
        mean, std = jnp.zeros_like(grouped), jnp.ones_like(grouped)
    else:
        mean = jnp.mean(grouped, axis=-1, keepdims=True)  # [P, 1]
        std = jnp.std(grouped, axis=-1, keepdims=True, ddof=1 if unbiased_std else 0)  # [P, 1]
    centred = grouped - mean
    advantages = centred / (std + eps) if scale_by_std else centred
    return advantages.reshape(-1)  # [B]


def dr_grpo_advantages(rewards: jax.typing.ArrayLike, *, group_size: int) -> jax.Array:
    """Dr. GRPO's advantage ``Â_i = R_i − mean_g R``, no std division (arXiv:2503.20783 §3.2).

    Args:
      rewards: ``[B]`` rewards, grouped by prompt as in :func:`group_relative_advantages`.
      group_size: ``G``.

    Returns:
      ``[B]`` advantages.

    Example:
      >>> import jax.numpy as jnp
      >>> dr_grpo_advantages(jnp.array([1., 0., 2., 2.]), group_size=2)
      Array([ 0.5, -0.5,  0. ,  0. ], dtype=float32)
    """
    return group_relative_advantages(rewards, group_size=group_size, scale_by_std=False)


def rloo_advantages(rewards: jax.typing.ArrayLike, *, group_size: int) -> jax.Array:
    """Leave-one-out baseline: ``Â_i = R_i − mean_{j≠i} R_j`` (RLOO; verl).

    Equal to ``G/(G−1) · (R_i − mean_g R)``. A group of size 1 has no other sample, so ``Â = R``.

    Args:
      rewards: ``[B]`` rewards, grouped by prompt.
      group_size: ``G``.

    Returns:
      ``[B]`` advantages.

    Example:
      >>> import jax.numpy as jnp
      >>> rloo_advantages(jnp.array([1., 0., 0., 0.]), group_size=4).round(4)
      Array([ 1.    , -0.3333, -0.3333, -0.3333], dtype=float32)
    """
    grouped = _grouped(rewards, group_size)  # [P, G]
    if group_size == 1:
        return grouped.reshape(-1)
    others_mean = (jnp.sum(grouped, axis=-1, keepdims=True) - grouped) / (group_size - 1)
    return (grouped - others_mean).reshape(-1)  # [B]


def broadcast_over_tokens(
    sequence_advantages: jax.typing.ArrayLike, completion_mask: jax.typing.ArrayLike
) -> jax.Array:
    """Repeats a per-sequence value over its valid tokens: ``Â_{i,t} = Â_i m_{i,t}``.

    Args:
      sequence_advantages: ``[B]``.
      completion_mask: ``[B, T]`` (bool or 0/1).

    Returns:
      ``[B, T]`` with zeros at masked positions.

    Example:
      >>> import jax.numpy as jnp
      >>> broadcast_over_tokens(jnp.array([2.0, -1.0]), jnp.array([[1, 1, 0], [1, 0, 0]]))
      Array([[ 2.,  2.,  0.],
             [-1.,  0.,  0.]], dtype=float32)
    """
    adv = _float(sequence_advantages)
    mask = jnp.asarray(completion_mask).astype(bool)
    return jnp.where(mask, adv[:, None], jnp.zeros((), adv.dtype))  # [B, T]


def masked_whiten(
    values: jax.typing.ArrayLike,
    mask: jax.typing.ArrayLike,
    *,
    eps: float = 1e-8,
    shift_mean: bool = True,
) -> jax.Array:
    """Whitens with a token-weighted masked mean and unbiased masked variance (verl).

    ``(x − μ) / sqrt(σ² + eps)`` with ``μ = Σ m x / Σ m`` and
    ``σ² = Σ m (x − μ)² / (Σ m − 1)``; with a single valid token the biased variance (0) is used.
    Masked positions are 0 in the output. ``shift_mean=False`` adds ``μ`` back.

    Args:
      values: ``[B, T]`` (or any shape matching ``mask``).
      mask: the same shape.
      eps: variance floor.
      shift_mean: subtract the mean (True) or only rescale.

    Returns:
      Whitened values, the shape of ``values``; all zeros when nothing is valid.

    Example:
      >>> import jax.numpy as jnp
      >>> masked_whiten(jnp.array([[1.0, 3.0, 9.0]]), jnp.array([[1, 1, 0]])).round(4)
      Array([[-0.7071,  0.7071,  0.    ]], dtype=float32)
    """
    values = _float(values)
    mask = jnp.asarray(mask).astype(bool)
    weight = mask.astype(values.dtype)
    count = jnp.sum(weight)
    safe_count = jnp.maximum(count, 1.0)
    mean = jnp.sum(jnp.where(mask, values, 0.0)) / safe_count
    sq = jnp.sum(jnp.where(mask, (values - mean) ** 2, 0.0)) / safe_count
    correction = jnp.where(count > 1, count / jnp.maximum(count - 1, 1.0), 1.0)
    var = sq * correction
    whitened = (values - mean) * jax.lax.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return jnp.where(mask, whitened, 0.0)


def terminal_rewards(
    rewards: jax.typing.ArrayLike, completion_mask: jax.typing.ArrayLike
) -> jax.Array:
    """Places each sequence reward on its last valid token (the EOS, or the last token kept).

    Args:
      rewards: ``[B]`` sequence rewards.
      completion_mask: ``[B, T]``.

    Returns:
      ``[B, T]`` token rewards, zero except at each row's last valid position (all zero for a
      fully masked row).

    Example:
      >>> import jax.numpy as jnp
      >>> terminal_rewards(jnp.array([1.0, 2.0]), jnp.array([[1, 1, 0], [0, 0, 0]]))
      Array([[0., 1., 0.],
             [0., 0., 0.]], dtype=float32)
    """
    rewards = _float(rewards)
    mask = jnp.asarray(completion_mask).astype(bool)
    positions = jnp.arange(mask.shape[-1])
    last = jnp.max(jnp.where(mask, positions, -1), axis=-1)  # [B]
    is_last = positions[None, :] == last[:, None]  # [B, T]; never true for last = -1
    return jnp.where(is_last, rewards[:, None], jnp.zeros((), rewards.dtype))


def discounted_returns(
    token_rewards: jax.typing.ArrayLike,
    completion_mask: jax.typing.ArrayLike,
    *,
    gamma: float = 1.0,
) -> jax.Array:
    """``G_t = Σ_{k≥t} γ^{k−t} r_k`` by a reverse scan that resets after the last valid token.

    The running return is multiplied by ``m_t`` after each step (verl), so nothing after EOS
    leaks into the returns of valid tokens. Masked positions of the output are 0.

    Args:
      token_rewards: ``[B, T]``.
      completion_mask: ``[B, T]``.
      gamma: discount ``γ`` (1 in REINFORCE++ and the R1-style recipes).

    Returns:
      ``[B, T]`` returns.

    Example:
      >>> import jax.numpy as jnp
      >>> discounted_returns(jnp.array([[0.0, 1.0, 5.0]]), jnp.array([[1, 1, 0]]), gamma=0.5)
      Array([[0.5, 1. , 0. ]], dtype=float32)
    """
    rewards = _float(token_rewards)
    mask = jnp.asarray(completion_mask).astype(rewards.dtype)

    def step(running, inputs):
        reward_t, mask_t = inputs  # [B], [B]
        running = reward_t + gamma * running
        return running * mask_t, running

    _, returns = jax.lax.scan(
        step, jnp.zeros(rewards.shape[:1], rewards.dtype), (rewards.T, mask.T), reverse=True
    )  # [T, B]
    return jnp.where(mask > 0, returns.T, 0.0)  # [B, T]


def reinforce_pp_advantages(
    rewards: jax.typing.ArrayLike,
    completion_mask: jax.typing.ArrayLike,
    *,
    kl: jax.typing.ArrayLike | None = None,
    kl_coef: float = 0.0,
    gamma: float = 1.0,
    group_size: int | None = None,
    eps: float = 1e-8,
) -> tuple[jax.Array, jax.Array]:
    """REINFORCE++ advantages: KL-penalised token rewards, returns, global whitening.

    ``r_t = 1[t = last] R − β KL_t``, ``G_t = Σ_{k≥t} γ^{k−t} r_k`` (reset after EOS) and
    ``Â = whiten(G)`` over every valid token of the batch (arXiv:2501.03262; verl). With
    ``group_size`` set this is REINFORCE++-baseline: ``R`` is first centred on its group mean.
    The KL penalty is usually k1 of the sampler against the reference
    (``kl.kl_penalty(old_logprobs, ref_logprobs, estimator="k1")``); it is constant in θ.

    Args:
      rewards: ``[B]`` sequence scores placed on each row's last valid token, or ``[B, T]``
        token rewards used as given.
      completion_mask: ``[B, T]``.
      kl: optional ``[B, T]`` per-token KL estimate folded into the reward.
      kl_coef: ``β`` for ``kl`` (TinyZero and Logic-RL's reward-KL scripts use 0.001).
      gamma: discount (1 by default).
      group_size: ``G`` for the REINFORCE++-baseline variant; requires ``[B]`` rewards.
      eps: variance floor of the whitening.

    Returns:
      ``(advantages, returns)``, both ``[B, T]`` with zeros at masked positions. Whitening is over
      the batch given, so call it on the full batch, not on micro-batches.

    Example:
      >>> import jax.numpy as jnp
      >>> adv, ret = reinforce_pp_advantages(jnp.array([1.0, 0.0]), jnp.array([[1, 1], [1, 0]]))
      >>> ret
      Array([[1., 1.],
             [0., 0.]], dtype=float32)
      >>> adv
      Array([[ 0.5774,  0.5774],
             [-1.1547,  0.    ]], dtype=float32)
    """
    rewards = _float(rewards)
    mask = jnp.asarray(completion_mask).astype(bool)
    if group_size is not None:
        if rewards.ndim != 1:
            raise ValueError("REINFORCE++-baseline needs [B] sequence rewards")
        rewards = dr_grpo_advantages(rewards, group_size=group_size)
    token_rewards = terminal_rewards(rewards, mask) if rewards.ndim == 1 else rewards  # [B, T]
    if kl is not None:
        token_rewards = token_rewards - kl_coef * jnp.where(mask, _float(kl), 0.0)
    returns = discounted_returns(token_rewards, mask, gamma=gamma)  # [B, T]
    return masked_whiten(returns, mask, eps=eps), returns


def gae_advantages(
    token_rewards: jax.typing.ArrayLike,
    values: jax.typing.ArrayLike,
    completion_mask: jax.typing.ArrayLike,
    *,
    gamma: float = 1.0,
    lam: float = 1.0,
) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation, masked, by a reverse scan (PPO; ORZ uses γ = λ = 1).

    ``δ_t = r_t + γ V_{t+1} − V_t`` and ``Â_t = δ_t + γλ Â_{t+1}``, where ``t+1`` is the next
    *valid* position: masked positions carry the running ``V`` and ``Â`` through unchanged (verl
    ``compute_gae_advantage_return``). After the last valid token ``V = 0``. Returns are
    ``Â + V``, the value-function targets. Whiten the advantages with :func:`masked_whiten` if
    the recipe asks for it (ORZ normalises at batch level).

    Args:
      token_rewards: ``[B, T]``, e.g. :func:`terminal_rewards` minus a KL penalty.
      values: ``[B, T]`` critic values ``V(s_t)``.
      completion_mask: ``[B, T]``.
      gamma: discount ``γ``.
      lam: GAE ``λ``; ORZ found λ = 1 much more stable than 0.95.

    Returns:
      ``(advantages, returns)``, both ``[B, T]``, zero at masked positions.

    Example:
      >>> import jax.numpy as jnp
      >>> adv, ret = gae_advantages(
      ...     jnp.array([[0.0, 1.0]]), jnp.array([[0.5, 0.25]]), jnp.array([[1, 1]]))
      >>> adv, ret
      (Array([[0.5 , 0.75]], dtype=float32), Array([[1., 1.]], dtype=float32))
    """
    rewards = _float(token_rewards)
    values = _float(values)
    mask = jnp.asarray(completion_mask).astype(rewards.dtype)

    def step(carry, inputs):
        next_value, next_advantage = carry  # [B], [B]
        reward_t, value_t, mask_t = inputs  # [B] each
        delta = reward_t + gamma * next_value - value_t
        advantage = delta + gamma * lam * next_advantage
        next_value = mask_t * value_t + (1 - mask_t) * next_value
        next_advantage = mask_t * advantage + (1 - mask_t) * next_advantage
        return (next_value, next_advantage), advantage

    zeros = jnp.zeros(rewards.shape[:1], rewards.dtype)
    _, advantages = jax.lax.scan(
        step, (zeros, zeros), (rewards.T, values.T, mask.T), reverse=True
    )  # [T, B]
    advantages = advantages.T  # [B, T]
    valid = mask > 0
    returns = jnp.where(valid, advantages + values, 0.0)
    return jnp.where(valid, advantages, 0.0), returns
