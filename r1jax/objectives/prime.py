"""PRIME: implicit process rewards, their online cross-entropy loss and PRIME's advantages
(arXiv:2502.01456; repo:PRIME-RL/PRIME ``training/verl/trainer/ppo/core_algos.py``).

- Implicit PRM (paper abstract; repo ``dp_prime.py`` ``compute_implicit_reward``): the token
  score ``q_t = log π_φ(y_t) − log π_ref(y_t)`` and the process reward ``r_t = β q_t``.
- PRM loss (repo ``compute_ce_dpo_loss_rm``): ``BCE(σ(β Σ_t m_t q_t), acc)`` per response,
  with ``acc`` the verifier's outcome in ``[0, 1]``.
- Advantages. The reference code (``compute_rloo_returns``, "rloo"): per group of ``K``,
  ``S = Σ_j mean_{t∈m_j} r_{j,t}`` and ``r'_{i,t} = r_{i,t} K/(K−1) − S/(K−1)`` for the
  process rewards and likewise for the outcome reward placed on the last token; the two are
  summed, ``R_t = Σ_{s≥t} γ^{s−t} r'_s`` and ``A = whiten(R)`` over the valid tokens. The
  paper's form ("paper"): ``A_t^i = Σ_{s≥t} γ^{s−t}[r_{i,s} − (1/(K−1)) Σ_{j≠i} r̄_j] +
  r_o^i − (1/(K−1)) Σ_{j≠i} r_o^j`` with ``r̄_j`` the mean process reward of response ``j``;
  r1jax whitens it the same way (the paper does not say whether it does). The two differ
  per token by ``(r̄_i − r_{i,t})/(K−1)``, which sums to 0 over a response.

Rows are grouped as elsewhere (rows ``p*K:(p+1)*K`` share prompt ``p``); ``K = 1`` keeps the
rewards as they are.

Not here: which groups are kept (PRIME's accuracy band, `r1jax.algorithms.prime`).
"""

import jax
import jax.numpy as jnp

from r1jax.objectives.advantages import discounted_returns, masked_whiten, terminal_rewards


def implicit_process_rewards(
    prm_logprobs: jax.typing.ArrayLike,
    reference_logprobs: jax.typing.ArrayLike,
    completion_mask: jax.typing.ArrayLike,
    *,
    beta: float,
) -> jax.Array:
    """``r_t = β (log π_φ(y_t) − log π_ref(y_t))`` on valid tokens, 0 elsewhere.

    Args:
      prm_logprobs: ``[B, T]`` log-probs of the implicit PRM.
      reference_logprobs: ``[B, T]`` log-probs of the reference.
      completion_mask: ``[B, T]``.
      beta: ``β`` (PRIME's ``beta_train`` 0.05).

    Returns:
      ``[B, T]`` float32 process rewards.

    Example:
      >>> implicit_process_rewards(jnp.array([[-1.0, -2.0]]), jnp.array([[-2.0, -2.0]]),
      ...                          jnp.array([[1, 0]]), beta=0.5)
      Array([[0.5, 0. ]], dtype=float32)
    """
    mask = jnp.asarray(completion_mask).astype(bool)
    q = jnp.asarray(prm_logprobs, jnp.float32) - jnp.asarray(reference_logprobs, jnp.float32)
    return jnp.where(mask, beta * q, 0.0)


def implicit_prm_loss(
    prm_logprobs: jax.typing.ArrayLike,
    reference_logprobs: jax.typing.ArrayLike,
    completion_mask: jax.typing.ArrayLike,
    accuracy: jax.typing.ArrayLike,
    *,
    beta: float,
) -> jax.Array:
    """Per-response cross-entropy of the implicit PRM: ``BCE(σ(β Σ_t m_t q_t), acc)``.

    Written as ``softplus(z) − acc·z`` with ``z = β Σ_t m_t q_t`` (the same value as
    ``−acc log σ(z) − (1 − acc) log(1 − σ(z))``, finite for any ``z``). Gradients flow
    through ``prm_logprobs`` only.

    Args:
      prm_logprobs: ``[B, T]`` log-probs of the PRM (differentiated).
      reference_logprobs: ``[B, T]`` reference log-probs (no gradient).
      completion_mask: ``[B, T]``.
      accuracy: ``[B]`` outcome labels in ``[0, 1]``.
      beta: ``β``.

    Returns:
      ``[B]`` unreduced losses.

    Example:
      >>> implicit_prm_loss(jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.ones((2, 3)),
      ...                   jnp.array([1.0, 0.0]), beta=0.05).round(4)
      Array([0.6931, 0.6931], dtype=float32)
    """
    reference = jax.lax.stop_gradient(jnp.asarray(reference_logprobs, jnp.float32))
    rewards = implicit_process_rewards(prm_logprobs, reference, completion_mask, beta=beta)
    z = jnp.sum(rewards, axis=-1)  # [B]
    accuracy = jnp.asarray(accuracy, jnp.float32)
    return jax.nn.softplus(z) - accuracy * z


def _group_sum(values: jax.Array, group_size: int) -> jax.Array:
    """``[B]`` -> ``[B]``: each row's group total."""
    grouped = values.reshape(-1, group_size)  # [P, K]
    return jnp.repeat(jnp.sum(grouped, axis=-1), group_size)  # [B]


def leave_one_out_token_rewards(
    token_rewards: jax.typing.ArrayLike, mask: jax.typing.ArrayLike, *, group_size: int
) -> jax.Array:
    """PRIME's ``masked_rloo``: ``r'_{i,t} = r_{i,t} K/(K−1) − S/(K−1)`` on ``mask``.

    ``S = Σ_j mean_{t∈mask_j} r_{j,t}`` over the ``K`` responses of the group. With the
    outcome reward on the last token only (``mask`` = that token), ``r'`` there is
    ``R_i − mean_{j≠i} R_j``, RLOO's advantage.

    Args:
      token_rewards: ``[B, T]``.
      mask: ``[B, T]`` the entries that carry a reward.
      group_size: ``K``.

    Returns:
      ``[B, T]``, zero outside ``mask``.

    Example:
      >>> leave_one_out_token_rewards(jnp.array([[1.0, 1.0], [0.0, 0.0]]),
      ...                             jnp.array([[1, 1], [1, 0]]), group_size=2)
      Array([[ 2.,  2.],
             [-1.,  0.]], dtype=float32)
    """
    rewards = jnp.asarray(token_rewards, jnp.float32)
    mask = jnp.asarray(mask).astype(bool)
    if group_size == 1:
        return jnp.where(mask, rewards, 0.0)
    count = jnp.maximum(jnp.sum(mask, axis=-1), 1)  # [B]
    means = jnp.sum(jnp.where(mask, rewards, 0.0), axis=-1) / count  # [B]
    total = _group_sum(means, group_size)  # [B]
    scaled = rewards * group_size / (group_size - 1) - total[:, None] / (group_size - 1)
    return jnp.where(mask, scaled, 0.0)


def prime_advantages(
    process_rewards: jax.typing.ArrayLike,
    outcome_rewards: jax.typing.ArrayLike,
    completion_mask: jax.typing.ArrayLike,
    *,
    group_size: int,
    gamma: float = 1.0,
    form: str = "rloo",
    process_weight: float = 1.0,
    outcome_weight: float = 1.0,
    eps: float = 1e-8,
) -> tuple[jax.Array, jax.Array]:
    """PRIME's advantages from ``[B, T]`` process rewards and ``[B]`` outcome rewards.

    Args:
      process_rewards: ``[B, T]`` implicit process rewards (zero outside the mask).
      outcome_rewards: ``[B]`` verifier rewards.
      completion_mask: ``[B, T]`` the tokens whose rewards, returns and whitening count
        (PRIME drops filtered groups before this; pass them masked out).
      group_size: ``K``.
      gamma: discount of the returns (1 in PRIME).
      form: ``"rloo"`` (the reference code) or ``"paper"`` (the paper's equation).
      process_weight: scale of the process-reward returns (the recipe's reward_dpo_coef).
      outcome_weight: scale of the outcome returns (reward_gt_coef).
      eps: variance floor of the whitening.

    Returns:
      ``(advantages, returns)``, both ``[B, T]``, zero outside the mask.

    Example:
      >>> adv, ret = prime_advantages(jnp.zeros((2, 2)), jnp.array([1.0, 0.0]),
      ...                             jnp.ones((2, 2)), group_size=2)
      >>> ret
      Array([[ 1.,  1.],
             [-1., -1.]], dtype=float32)
    """
    if form not in ("rloo", "paper"):
        raise ValueError(f"form must be 'rloo' or 'paper', got {form!r}")
    mask = jnp.asarray(completion_mask).astype(bool)
    process = jnp.where(mask, jnp.asarray(process_rewards, jnp.float32), 0.0)
    outcome = jnp.asarray(outcome_rewards, jnp.float32)
    if form == "rloo":
        process_loo = leave_one_out_token_rewards(process, mask, group_size=group_size)
        last = terminal_rewards(jnp.ones_like(outcome), mask) > 0  # [B, T]
        outcome_tokens = terminal_rewards(outcome, mask)
        outcome_loo = leave_one_out_token_rewards(outcome_tokens, last, group_size=group_size)
        rewards = process_weight * process_loo + outcome_weight * outcome_loo
        returns = discounted_returns(rewards, mask, gamma=gamma)
    else:
        if group_size == 1:
            baseline = jnp.zeros(outcome.shape)
            outcome_loo = outcome
        else:
            count = jnp.maximum(jnp.sum(mask, axis=-1), 1)
            means = jnp.sum(process, axis=-1) / count  # [B] r̄_j
            baseline = (_group_sum(means, group_size) - means) / (group_size - 1)  # [B]
            others = (_group_sum(outcome, group_size) - outcome) / (group_size - 1)
            outcome_loo = outcome - others  # [B]
        centred = jnp.where(mask, process - baseline[:, None], 0.0)
        returns = process_weight * discounted_returns(centred, mask, gamma=gamma)
        returns = jnp.where(mask, returns + outcome_weight * outcome_loo[:, None], 0.0)
    return masked_whiten(returns, mask, eps=eps), returns
