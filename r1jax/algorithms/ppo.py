"""PPO with a learned critic, as Open-Reasoner-Zero and TinyZero run it.

Per step, on the full batch: the critic's values of the sampled tokens before any update
(``score_auxiliary``), the token rewards ``r_t = 1[t = last]·R`` (``R``: the reward terms of
the verdicts, `r1jax.rewards.shaping`) minus ``β·k1(π_old, π_ref)_t`` when the KL sits in the
reward, GAE ``δ_t = r_t + γV_{t+1} − V_t``, ``Â_t = Σ_l (γλ)^l δ_{t+l}`` with returns
``Â + V`` (`r1jax.objectives.gae_advantages`) and the advantages whitened over the batch's
tokens. Per micro-batch: the clipped surrogate (`r1jax.objectives.policy_gradient_loss`, the
KL in the loss when ``objective.kl_placement=loss``) for the policy, and for the critic
(an auxiliary model of kind ``"value"``, `r1jax.learner.auxiliary`) the value loss
``½ max((V − R)², (clip(V, V_old ± c) − R)²)`` (`r1jax.objectives.clipped_value_loss`;
``critic.value_clip = 0`` gives ORZ's unclipped ``½(V − R)²``), token-mean over the
critic's mini-batch. The critic trains with its own AdamW (``critic.lr`` ...) on
``critic.minibatches_per_step`` mini-batches per step; during the first ``critic.warmup_steps``
steps only the critic trains.

Presets:

- ``ppo``: Open-Reasoner-Zero (arXiv:2503.24290 §2.1.3, §3.1; repo:Open-Reasoner-Zero
  ``config.py``, ``playground/orz_7b_ppo.py``): GAE γ = λ = 1, advantages normalised over the
  batch, clip 0.2, no KL of any kind, no entropy bonus, critic lr 5e-6 with 50 warm-up steps,
  AdamW β = (0.9, 0.95), weight decay 0, no value clipping. ORZ's 12 critic mini-batches per
  rollout of 128 x 64 samples are a scale setting (``critic.minibatches_per_step``, set in
  ``experiments/orz_ppo.py``). The policy-loss reduction is the per-sequence token mean of
  OpenRLHF, on which ORZ builds (our reading; ORZ does not state it).
- ``ppo_tinyzero``: TinyZero's PPO (repo:TinyZero ``scripts/train_tiny_zero.sh``,
  ``verl/trainer/config/ppo_trainer.yaml``): k1 KL in the reward with β = 0.001, entropy
  bonus 0.001, token-mean loss, critic lr 1e-5, value clip 0.5.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from r1jax import objectives
from r1jax.algorithms import policy_gradient
from r1jax.learner import auxiliary as auxiliary_lib
from r1jax.learner.logprobs import _rows_in_chunks

CRITIC = "critic"
DEFAULT_CRITIC = auxiliary_lib.AuxiliaryModel(CRITIC, "value")
"""The critic's defaults; ``critic.*`` keys replace them (`r1jax.learner.from_config`)."""

PRESETS: dict[str, dict[str, Any]] = {
    "ppo": {
        "objective.gamma": 1.0,
        "objective.gae_lambda": 1.0,
        "objective.whiten_advantages": True,
        "objective.clip_eps_low": 0.2,
        "objective.clip_eps_high": 0.2,
        "objective.kl_coef": 0.0,
        "objective.entropy_coef": 0.0,
        "objective.aggregation": "seq-mean-token-mean",
        "optim.lr": 1e-6,
        "optim.b2": 0.95,
        "optim.weight_decay": 0.0,
        "optim.warmup_steps": 50,
        "critic.lr": 5e-6,
        "critic.lr_warmup_steps": 50,
        "critic.b2": 0.95,
        "critic.weight_decay": 0.0,
        "critic.value_clip": 0.0,
    },
    "ppo_tinyzero": {
        "objective.gamma": 1.0,
        "objective.gae_lambda": 1.0,
        "objective.whiten_advantages": True,
        "objective.kl_coef": 0.001,
        "objective.kl_estimator": "k1",
        "objective.kl_placement": "reward",
        "objective.entropy_coef": 0.001,
        "objective.aggregation": "token-mean",
        "critic.lr": 1e-5,
        "critic.value_clip": 0.5,
    },
}
"""Preset name -> config keys it sets (below the experiment file and the command line)."""


@dataclasses.dataclass(frozen=True)
class PPO:
    """PPO with a critic (fields: the ``objective.*`` keys of the same names and, with a
    ``critic_`` prefix, the ``critic.*`` keys).

    Attributes:
      gamma: discount ``γ`` of GAE.
      gae_lambda: GAE ``λ`` (ORZ: 1; 0.95 was much less stable in its ablation).
      whiten_advantages: normalise the advantages over the batch's sampled tokens (ORZ).
      clip_eps_low, clip_eps_high: the clipped surrogate's ``ε``.
      dual_clip: dual-clip constant for negative advantages; ``0`` disables it.
      logratio_clamp: clamp on log ratios before ``exp``.
      kl_coef: ``β``; ``0`` keeps no reference model.
      kl_estimator: the estimator of the KL in the loss (the reward always takes k1).
      kl_placement: ``"loss"`` or ``"reward"`` (``−β·k1(π_old, π_ref)_t`` per token).
      entropy_coef: weight of the entropy bonus.
      aggregation: the policy loss's reduction (`r1jax.objectives.AGGREGATION_MODES`).
      aggregation_constant: ``C`` of the constant modes; ``0`` means ``T``.
      mask_truncated: truncated completions get no policy loss (the critic still fits them).
      num_iterations: passes of the policy over each batch.
      critic: the critic's `AuxiliaryModel` (``critic.init``, ``critic.lr`` ...).
      critic_value_clip: ``c`` of the clipped value loss; ``0`` = unclipped (ORZ).
      critic_warmup_steps: first RL steps in which only the critic trains.
    """

    gamma: float = 1.0
    gae_lambda: float = 1.0
    whiten_advantages: bool = True
    clip_eps_low: float = 0.2
    clip_eps_high: float = 0.2
    dual_clip: float = 0.0
    logratio_clamp: float = 20.0
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    kl_placement: str = "loss"
    entropy_coef: float = 0.0
    aggregation: str = "seq-mean-token-mean"
    aggregation_constant: int = 0
    mask_truncated: bool = False
    num_iterations: int = 1
    critic: auxiliary_lib.AuxiliaryModel = DEFAULT_CRITIC
    critic_value_clip: float = 0.0
    critic_warmup_steps: int = 0

    def __post_init__(self):
        if self.kl_placement not in ("loss", "reward"):
            raise ValueError(f"objective.kl_placement must be loss or reward: {self.kl_placement}")
        if self.kl_estimator not in objectives.KL_ESTIMATORS:
            raise ValueError(f"objective.kl_estimator={self.kl_estimator!r} is not an estimator")
        if self.aggregation not in objectives.AGGREGATION_MODES:
            raise ValueError(f"objective.aggregation={self.aggregation!r} is not a mode")
        if self.critic.kind != "value" or self.critic.name != CRITIC:
            raise ValueError("PPO's critic is an auxiliary model named 'critic' of kind 'value'")
        if self.critic_warmup_steps < 0 or self.critic_value_clip < 0:
            raise ValueError("critic.warmup_steps and critic.value_clip must be >= 0")

    @property
    def uses_reference(self) -> bool:
        return self.kl_coef != 0

    @property
    def auxiliary_models(self) -> tuple[auxiliary_lib.AuxiliaryModel, ...]:
        return (self.critic,)

    @property
    def policy_frozen_steps(self) -> int:
        return self.critic_warmup_steps

    # ------------------------------------------------------------------ on the full batch

    def score_auxiliary(self, params: Mapping[str, Any], batch: Any, config: Any) -> dict:
        """The critic's ``[B, T]`` values before any update, in micro-batches of rows."""

        def values(chunk):
            return auxiliary_lib.completion_values(params[CRITIC], chunk, config)

        rows = config.micro_batch_size
        return {"values": jax.lax.stop_gradient(_rows_in_chunks(values, batch, rows))}

    def prepare(
        self, batch: Any, config: Any, *, auxiliary: Mapping[str, jax.Array]
    ) -> tuple[dict[str, jax.Array], dict[str, Any]]:
        """Token rewards, GAE advantages and returns, the loss masks (``[B, T]`` each)."""
        sampled = batch.completion_mask.astype(bool)  # [B, T]
        loss_mask = sampled & ~batch.is_truncated[:, None] if self.mask_truncated else sampled
        values = jnp.where(sampled, auxiliary["values"], 0.0)  # [B, T]
        terms = config.rewards.terms(batch, max_length=config.max_new_tokens)
        outcome = sum(terms.values())  # [B]
        token_rewards = objectives.terminal_rewards(outcome, sampled)  # [B, T]
        if self.uses_reference and self.kl_placement == "reward":
            k1 = objectives.kl_penalty(batch.old_logprobs, batch.reference_logprobs, estimator="k1")
            token_kl = jnp.where(sampled, k1, 0.0)  # [B, T]
            token_rewards = token_rewards - self.kl_coef * token_kl
            terms["kl"] = -self.kl_coef * jnp.sum(token_kl, axis=-1)
        terms["total"] = sum(terms.values()).astype(jnp.float32)
        advantages, returns = objectives.gae_advantages(
            token_rewards, values, sampled, gamma=self.gamma, lam=self.gae_lambda
        )
        if self.whiten_advantages:
            advantages = objectives.masked_whiten(advantages, sampled)
        advantages = jnp.where(loss_mask, advantages, 0.0)
        metrics = {}
        for name, value in terms.items():
            metrics[f"reward/{name}"] = jnp.mean(value)
            metrics[f"reward/{name}_std"] = jnp.std(value)
        metrics["advantage/abs_mean"] = objectives.masked_mean(jnp.abs(advantages), loss_mask)
        metrics.update(
            {f"critic/{k}": v for k, v in value_metrics(values, returns, sampled).items()}
        )
        prepared = {
            "advantages": advantages,
            "loss_mask": loss_mask,
            "returns": returns,
            "old_values": values,
            "value_mask": sampled,
        }
        return prepared, metrics

    def denominator(self, prepared: Mapping[str, jax.Array], config: Any) -> jax.Array:
        return policy_gradient.loss_denominator(self, prepared, config)

    def loss(
        self,
        logprobs: jax.Array,
        entropy: jax.Array,
        batch: Any,
        prepared: Mapping[str, jax.Array],
        denominator: jax.Array,
        config: Any,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        return policy_gradient.surrogate_loss(
            self,
            logprobs,
            entropy,
            batch,
            prepared,
            denominator,
            config,
            surrogate="clip",
            kl_in_loss=self.uses_reference and self.kl_placement == "loss",
        )

    def summarize(self, sums: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        return policy_gradient.surrogate_metrics(sums)

    # ------------------------------------------------------------------ the critic

    def auxiliary_denominator(self, name: str, prepared: Mapping, config: Any) -> jax.Array:
        """The critic's mini-batch token count (its loss is a token mean)."""
        return jnp.maximum(jnp.sum(prepared["value_mask"]), 1).astype(jnp.float32)

    def auxiliary_loss(
        self,
        name: str,
        params: Any,
        batch: Any,
        prepared: Mapping[str, jax.Array],
        denominator: jax.Array,
        config: Any,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """This micro-batch's share of the critic's token-mean value loss."""
        mask = prepared["value_mask"]
        values = auxiliary_lib.completion_values(params, batch, config)  # [b, T]
        per_token, clipped = objectives.clipped_value_loss(
            values,
            prepared["old_values"],
            prepared["returns"],
            clip_range=self.critic_value_clip or None,
        )
        numerator = jnp.sum(jnp.where(mask, per_token, 0.0))
        loss = numerator / denominator
        sums = {
            "loss": jax.lax.stop_gradient(loss),
            "value_loss": jax.lax.stop_gradient(numerator),
            "clipped": jnp.sum(jnp.where(mask, clipped, 0.0)),
            "tokens": jnp.sum(mask).astype(jnp.float32),
        }
        return loss, sums

    def auxiliary_summarize(self, name: str, sums: Mapping[str, jax.Array]) -> dict:
        """``value_loss`` (token mean over every update) and ``value_clip_fraction``."""
        tokens = jnp.maximum(jnp.sum(sums["tokens"]), 1.0)
        return {
            "value_loss": jnp.sum(sums["value_loss"]) / tokens,
            "value_clip_fraction": jnp.sum(sums["clipped"]) / tokens,
        }


def value_metrics(values: jax.Array, returns: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
    """How well the critic's values before the update fit the returns, over ``mask``.

    Returns:
      ``explained_variance`` ``1 − Var(R − V) / Var(R)`` (0 when the returns do not vary),
      ``value_error`` the mean ``|V − R|`` and ``value_mean``.
    """
    mask = mask.astype(bool)
    count = jnp.maximum(jnp.sum(mask), 1)

    def variance(x):
        mean = jnp.sum(jnp.where(mask, x, 0.0)) / count
        return jnp.sum(jnp.where(mask, jnp.square(x - mean), 0.0)) / count

    returns_variance = variance(returns)
    explained = 1.0 - variance(returns - values) / jnp.where(
        returns_variance > 0, returns_variance, 1.0
    )
    return {
        "explained_variance": jnp.where(returns_variance > 0, explained, 0.0),
        "value_error": jnp.sum(jnp.where(mask, jnp.abs(values - returns), 0.0)) / count,
        "value_mean": jnp.sum(jnp.where(mask, values, 0.0)) / count,
    }


CONFIG = PPO
"""The config class built from the resolved config (`r1jax.learner.from_config`)."""
