"""Objectives for RL on language models: advantages, surrogates, KL, aggregation, losses.

Everything here is a pure ``jnp`` function of arrays with keyword-only hyperparameters, safe to
call inside one jitted, micro-batched update step. Per-token functions return unreduced
``[B, T]`` values; reduce them with a named aggregator from ``aggregation``, or use a composed
loss from ``losses`` (``grpo_loss``, ``dr_grpo_loss``, ``dapo_loss``, ``gspo_loss``,
``reinforce_pp_loss``, ``rloo_loss``). Nothing here imports flax or host-side code.
"""

from r1jax.objectives.advantages import (
    broadcast_over_tokens,
    discounted_returns,
    dr_grpo_advantages,
    gae_advantages,
    group_relative_advantages,
    masked_whiten,
    reinforce_pp_advantages,
    rloo_advantages,
    terminal_rewards,
)
from r1jax.objectives.aggregation import (
    AGGREGATION_MODES,
    Aggregate,
    aggregate,
    aggregate_value,
    aggregation_denominator,
    constant_normaliser,
    masked_mean,
    safe_divide,
    seq_mean_token_mean,
    seq_mean_token_sum,
    seq_mean_token_sum_norm,
    token_mean,
)
from r1jax.objectives.dpo import dpo_loss, sequence_logprobs
from r1jax.objectives.kl import (
    KL_ESTIMATORS,
    entropy_from_logits,
    full_kl_from_logits,
    kl_k1,
    kl_k2,
    kl_k3,
    kl_penalty,
)
from r1jax.objectives.losses import (
    dapo_loss,
    dr_grpo_loss,
    grpo_loss,
    gspo_loss,
    policy_gradient_loss,
    reinforce_pp_loss,
    rloo_loss,
)
from r1jax.objectives.nll import token_nll
from r1jax.objectives.policy_loss import (
    SurrogateTerms,
    cispo_surrogate_loss,
    clipped_surrogate_loss,
    gmpo_surrogate_loss,
    gspo_surrogate_loss,
    sequence_log_ratio,
)
from r1jax.objectives.rollout_correction import RolloutWeights, rollout_correction_weights
from r1jax.objectives.value_loss import clipped_value_loss

__all__ = [
    "AGGREGATION_MODES",
    "KL_ESTIMATORS",
    "Aggregate",
    "RolloutWeights",
    "SurrogateTerms",
    "aggregate",
    "aggregate_value",
    "aggregation_denominator",
    "broadcast_over_tokens",
    "cispo_surrogate_loss",
    "clipped_surrogate_loss",
    "clipped_value_loss",
    "constant_normaliser",
    "dapo_loss",
    "discounted_returns",
    "dpo_loss",
    "dr_grpo_advantages",
    "dr_grpo_loss",
    "entropy_from_logits",
    "full_kl_from_logits",
    "gae_advantages",
    "gmpo_surrogate_loss",
    "group_relative_advantages",
    "grpo_loss",
    "gspo_loss",
    "gspo_surrogate_loss",
    "kl_k1",
    "kl_k2",
    "kl_k3",
    "kl_penalty",
    "masked_mean",
    "masked_whiten",
    "policy_gradient_loss",
    "reinforce_pp_advantages",
    "reinforce_pp_loss",
    "rloo_advantages",
    "rloo_loss",
    "rollout_correction_weights",
    "safe_divide",
    "seq_mean_token_mean",
    "seq_mean_token_sum",
    "seq_mean_token_sum_norm",
    "sequence_log_ratio",
    "sequence_logprobs",
    "terminal_rewards",
    "token_mean",
    "token_nll",
]
