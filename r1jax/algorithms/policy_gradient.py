"""The policy-gradient family: GRPO, Dr. GRPO, DAPO, GSPO, CISPO, GMPO, RLOO and REINFORCE++
as presets of one frozen config, `PolicyGradient`.

Per step, on the full batch (`PolicyGradient.prepare`): the reward terms of the verdicts
(`r1jax.rewards.shaping`), optionally ``−β·k1(π_old, π_ref)`` placed in the reward, and the
advantages of the chosen estimator (`r1jax.objectives.advantages`); per micro-batch
(`PolicyGradient.loss`): `r1jax.objectives.policy_gradient_loss`, the clipped (or GSPO
sequence-level) surrogate with the KL and entropy terms, aggregated over the mini-batch's
denominator.

The field defaults are GRPO's published settings (DeepSeekMath arXiv:2402.03300 eq. 3;
DeepSeek-R1 arXiv:2501.12948 §2.2): group-normalised advantages with the unbiased std, clip
0.2, k3 KL in the loss with β = 0.001, per-sequence token means. `PRESETS` holds the others:

- ``grpo``: the defaults.
- ``dr_grpo``: group-centred advantages without the std, token sums over a constant ``C``, no
  KL (arXiv:2503.20783 §3.1).
- ``dapo``: clip-higher 0.2 / 0.28, token-mean loss, soft overlong penalty, no KL
  (arXiv:2503.14476 §3.1-3.4); dynamic sampling is experience collection's
  ``objective.dynamic_sampling``.
- ``gspo``: the length-normalised sequence ratio with a narrow clip 3e-4 / 4e-4
  (arXiv:2507.18071 §5.1).
- ``cispo``: the clipped-IS-weight REINFORCE surrogate, token-mean, no KL; the weight is
  capped at ``1 + 0.2`` and unbounded below (``ε_low = 10``) (MiniMax-M1 arXiv:2506.13585 §3.1;
  the cap follows verl's ``examples/cispo_trainer``, the paper's own ``ε_high`` is not stated
  in the text we read).
- ``gmpo``: the geometric-mean sequence surrogate with a log-space clip of 0.4 on each side,
  averaged over sequences, no KL (arXiv:2507.20673; repo callsys/GMPO
  ``scripts/qwen2.5-math-7b-gmpo.sh``).
- ``reinforce_pp``: batch-whitened returns, token-mean loss (arXiv:2501.03262; Logic-RL keeps
  the k3 KL in the loss, arXiv:2502.14768 §3.2).
- ``reinforce_pp_baseline``: REINFORCE++ with the group mean subtracted first.
- ``rloo``: the leave-one-out baseline, token-mean loss (arXiv:2402.14740).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from r1jax import objectives
from r1jax.algorithms.base import per_token_means
from r1jax.algorithms.rollout_correction import RolloutCorrection
from r1jax.objectives import advantages as advantage_estimators

ADVANTAGES = ("group", "rloo", "reinforce_pp", "reinforce_pp_baseline")
SURROGATES = ("clip", "gspo", "cispo", "gmpo")

PRESETS: dict[str, dict[str, Any]] = {
    "grpo": {},
    "dr_grpo": {
        "objective.std": "none",
        "objective.aggregation": "seq-mean-token-sum-norm",
        "objective.kl_coef": 0.0,
    },
    "dapo": {
        "objective.aggregation": "token-mean",
        "objective.clip_eps_low": 0.2,
        "objective.clip_eps_high": 0.28,
        "objective.kl_coef": 0.0,
        "rewards.overlong.enabled": True,
    },
    "gspo": {
        "objective.surrogate": "gspo",
        "objective.clip_eps_low": 3e-4,
        "objective.clip_eps_high": 4e-4,
    },
    "cispo": {
        "objective.surrogate": "cispo",
        "objective.aggregation": "token-mean",
        "objective.clip_eps_low": 10.0,
        "objective.clip_eps_high": 0.2,
        "objective.kl_coef": 0.0,
    },
    "gmpo": {
        "objective.surrogate": "gmpo",
        "objective.aggregation": "seq-mean-token-mean",
        "objective.clip_eps_low": 0.4,
        "objective.clip_eps_high": 0.4,
        "objective.kl_coef": 0.0,
    },
    "reinforce_pp": {"objective.advantage": "reinforce_pp", "objective.aggregation": "token-mean"},
    "reinforce_pp_baseline": {
        "objective.advantage": "reinforce_pp_baseline",
        "objective.aggregation": "token-mean",
    },
    "rloo": {"objective.advantage": "rloo", "objective.aggregation": "token-mean"},
}
"""Preset name -> config keys it sets (below the experiment file and the command line)."""


@dataclasses.dataclass(frozen=True)
class PolicyGradient:
    """One policy-gradient algorithm (fields: the ``objective.*`` keys of the same names).

    Attributes:
      advantage: one of ``ADVANTAGES``: group-relative (GRPO), leave-one-out (RLOO), batch-
        whitened returns (REINFORCE++), or those after subtracting the group mean.
      std: ``"unbiased"``, ``"population"`` or ``"none"`` (no division: Dr. GRPO's centring).
      advantage_eps: added to the group std.
      aggregation: a mode of `r1jax.objectives.AGGREGATION_MODES`.
      aggregation_constant: ``C`` of the Dr. GRPO modes; ``0`` means the stage's ``T``.
      surrogate: ``"clip"`` (per-token ratios), ``"gspo"`` (the length-normalised sequence
        ratio), ``"cispo"`` (clipped detached IS weight times ``log π``) or ``"gmpo"`` (the
        geometric mean of token ratios; ``clip_eps_*`` are then log-space bands).
      clip_eps_low: ``ε_low`` of the clipped surrogate.
      clip_eps_high: ``ε_high`` (``> clip_eps_low`` is DAPO's clip-higher).
      dual_clip: dual-clip constant ``c`` for negative advantages; ``0`` disables it.
      logratio_clamp: clamp on log ratios before ``exp``.
      kl_coef: ``β``; ``0`` means no reference model at all.
      kl_estimator: ``"k1"``, ``"k2"``, ``"k3"`` or ``"k3+"`` (k3 value, k2 gradient).
      kl_placement: ``"loss"`` (GRPO: ``β·KL`` aggregated with the policy loss) or
        ``"reward"`` (``−β·k1(π_old, π_ref)`` folded into the rewards before the advantages:
        summed over the row for the group and RLOO estimators, per token for REINFORCE++,
        whose returns then carry ``−β·Σ_{k≥t} k1_k``).
      entropy_coef: weight of the entropy bonus (subtracted from the loss).
      mask_truncated: DAPO's overlong filtering (truncated completions get no loss; their
        rewards, reward-KL penalty and returns still enter the baselines and whitening).
      num_iterations: ``μ``, passes over each rollout (``π_old`` = the sampler's log-probs,
        or the learner's own when the rollout correction is on).
      rollout_correction: TIS / MIS between the learner's and the sampler's ``π_old``
        (`r1jax.algorithms.rollout_correction`; ``objective.rollout_correction.*``).
    """

    advantage: str = "group"
    std: str = "unbiased"
    advantage_eps: float = 1e-6
    aggregation: str = "seq-mean-token-mean"
    aggregation_constant: int = 0
    surrogate: str = "clip"
    clip_eps_low: float = 0.2
    clip_eps_high: float = 0.2
    dual_clip: float = 0.0
    logratio_clamp: float = 20.0
    kl_coef: float = 0.001
    kl_estimator: str = "k3"
    kl_placement: str = "loss"
    entropy_coef: float = 0.0
    mask_truncated: bool = False
    num_iterations: int = 1
    rollout_correction: RolloutCorrection = dataclasses.field(default_factory=RolloutCorrection)

    def __post_init__(self):
        def check(name, allowed):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"objective.{name} must be one of {allowed}, got {getattr(self, name)!r}"
                )

        check("advantage", ADVANTAGES)
        check("std", ("unbiased", "population", "none"))
        check("aggregation", objectives.AGGREGATION_MODES)
        check("surrogate", SURROGATES)
        check("kl_estimator", ("k1", "k2", "k3", "k3+"))
        check("kl_placement", ("loss", "reward"))
        if self.num_iterations < 1:
            raise ValueError(f"objective.num_iterations must be >= 1, got {self.num_iterations}")
        if self.surrogate != "clip" and self.dual_clip:
            raise ValueError("objective.dual_clip applies to the token-level surrogate only")

    @property
    def uses_reference(self) -> bool:
        return self.kl_coef != 0

    @property
    def uses_learner_logprobs(self) -> bool:
        """Whether the step fills ``Batch.learner_logprobs`` (the learner's ``π_old``)."""
        return self.rollout_correction.enabled

    # ------------------------------------------------------------------ on the full batch

    def prepare(self, batch: Any, config: Any) -> tuple[dict[str, jax.Array], dict[str, Any]]:
        """Rewards, advantages and the loss mask of the full batch (``[B, T]`` each)."""
        sampled = batch.completion_mask.astype(bool)  # [B, T]
        loss_mask = sampled
        if self.mask_truncated:
            loss_mask = loss_mask & ~batch.is_truncated[:, None]
        # Overlong filtering (mask_truncated) takes truncated rows out of the loss only: their
        # rewards, their reward-KL penalty and their returns stay in the group baselines and
        # the REINFORCE++ whitening, as in an unfiltered batch.
        token_kl = None
        if self.uses_reference and self.kl_placement == "reward":
            k1 = objectives.kl_penalty(batch.old_logprobs, batch.reference_logprobs, estimator="k1")
            token_kl = jnp.where(sampled, k1, 0.0)  # [B, T]
        terms = config.rewards.terms(batch, max_length=config.max_new_tokens)
        outcome = sum(terms.values())  # [B]
        if token_kl is not None:
            terms["kl"] = -self.kl_coef * jnp.sum(token_kl, axis=-1)  # [B]
        terms["total"] = sum(terms.values()).astype(jnp.float32)
        advantages = self.advantages(outcome, sampled, config.group_size, token_kl=token_kl)
        advantages = jnp.where(loss_mask, advantages, 0.0)  # [B, T]
        metrics = {}
        for name, value in terms.items():
            metrics[f"reward/{name}"] = jnp.mean(value)
            metrics[f"reward/{name}_std"] = jnp.std(value)
        grouped = terms["total"].reshape(-1, config.group_size)  # [P, G]
        metrics["reward/equal_group_fraction"] = jnp.mean(
            jnp.all(grouped == grouped[:, :1], axis=-1).astype(jnp.float32)
        )
        metrics["advantage/abs_mean"] = objectives.masked_mean(jnp.abs(advantages), loss_mask)
        prepared = {"advantages": advantages, "loss_mask": loss_mask}
        if self.uses_learner_logprobs:
            prepared["rollout_weights"], correction = self.rollout_correction.weights(
                batch.learner_logprobs, batch.old_logprobs, sampled
            )
            metrics.update(correction)
        return prepared, metrics

    def advantages(
        self,
        rewards: jax.Array,
        completion_mask: jax.Array,
        group_size: int,
        *,
        token_kl: jax.Array | None = None,
    ) -> jax.Array:
        """``[B, T]`` advantages from ``[B]`` rewards, over the full batch.

        Args:
          rewards: ``[B]`` outcome rewards, without any KL penalty.
          completion_mask: ``[B, T]`` the tokens whose returns and whitening statistics count.
          group_size: ``G``.
          token_kl: ``[B, T]`` ``k1(π_old, π_ref)`` per sampled token (zero at padding) when
            the KL sits in the reward, else None. The outcome estimators (group, RLOO) take the
            row reward ``R − β·Σ_t k1_t``; REINFORCE++ takes the token rewards
            ``1[t = last]·R − β·k1_t``, so the return ``G_t`` carries only the KL of tokens
            ``k ≥ t`` (verl ``core_algos.py``).

        Returns:
          ``[B, T]`` advantages, zero outside ``completion_mask``.
        """
        mask = completion_mask.astype(bool)
        if self.advantage in ("reinforce_pp", "reinforce_pp_baseline"):
            baseline = self.advantage == "reinforce_pp_baseline"
            token_advantages, _ = advantage_estimators.reinforce_pp_advantages(
                rewards,
                mask,
                kl=token_kl,
                kl_coef=self.kl_coef if token_kl is not None else 0.0,
                group_size=group_size if baseline else None,
            )  # [B, T]
            return token_advantages
        total_rewards = rewards
        if token_kl is not None:
            total_rewards = rewards + -self.kl_coef * jnp.sum(token_kl, axis=-1)  # [B]
        if self.advantage == "group":
            per_row = advantage_estimators.group_relative_advantages(
                total_rewards,
                group_size=group_size,
                scale_by_std=self.std != "none",
                unbiased_std=self.std == "unbiased",
                eps=self.advantage_eps,
            )  # [B]
        else:
            per_row = advantage_estimators.rloo_advantages(total_rewards, group_size=group_size)
        return jnp.where(mask, per_row[:, None], 0.0)  # [B, T]

    def denominator(self, prepared: Mapping[str, jax.Array], config: Any) -> jax.Array:
        return loss_denominator(self, prepared, config)

    # ------------------------------------------------------------------ per micro-batch

    def loss(
        self,
        logprobs: jax.Array,
        entropy: jax.Array,
        batch: Any,
        prepared: Mapping[str, jax.Array],
        denominator: jax.Array,
        config: Any,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        corrected = self.uses_learner_logprobs
        return surrogate_loss(
            self,
            logprobs,
            entropy,
            batch,
            prepared,
            denominator,
            config,
            surrogate=self.surrogate,
            kl_in_loss=self.uses_reference and self.kl_placement == "loss",
            old_logprobs=batch.learner_logprobs if corrected else batch.old_logprobs,
            rollout_weights=prepared["rollout_weights"] if corrected else None,
        )

    def summarize(self, sums: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        return surrogate_metrics(sums)


def loss_denominator(algorithm: Any, prepared: Mapping[str, jax.Array], config: Any) -> jax.Array:
    """The mini-batch's aggregation denominator of ``algorithm.aggregation`` (its constant
    ``aggregation_constant``, or the stage's ``T``), shared by every clipped-surrogate algorithm."""
    return objectives.aggregation_denominator(
        prepared["loss_mask"],
        mode=algorithm.aggregation,
        max_length=algorithm.aggregation_constant or config.max_new_tokens,
    )


def surrogate_loss(
    algorithm: Any,
    logprobs: jax.Array,
    entropy: jax.Array,
    batch: Any,
    prepared: Mapping[str, jax.Array],
    denominator: jax.Array,
    config: Any,
    *,
    surrogate: str,
    kl_in_loss: bool,
    old_logprobs: jax.Array | None = None,
    rollout_weights: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """One micro-batch's `r1jax.objectives.policy_gradient_loss` and its additive metric sums,
    for any algorithm with the clip fields (``clip_eps_low``, ``clip_eps_high``, ``dual_clip``,
    ``logratio_clamp``), the KL fields, ``aggregation``/``aggregation_constant`` and
    ``entropy_coef``, and ``prepared["advantages"]`` / ``["loss_mask"]`` (PPO and PRIME use it
    too).

    ``old_logprobs`` default to the sampler's; ``rollout_weights`` are rollout correction's
    ``[b, T]`` importance weights, or None.
    """
    loss, metrics = objectives.policy_gradient_loss(
        logprobs,
        batch.old_logprobs if old_logprobs is None else old_logprobs,
        batch.reference_logprobs if kl_in_loss else None,
        prepared["advantages"],
        prepared["loss_mask"],
        surrogate=surrogate,
        eps_low=algorithm.clip_eps_low,
        eps_high=algorithm.clip_eps_high,
        dual_clip=getattr(algorithm, "dual_clip", 0.0) or None,
        log_ratio_clip=algorithm.logratio_clamp,
        kl_coef=algorithm.kl_coef if kl_in_loss else 0.0,
        kl_estimator=algorithm.kl_estimator,
        aggregation_mode=algorithm.aggregation,
        max_length=algorithm.aggregation_constant or config.max_new_tokens,
        entropy=entropy,
        entropy_coef=algorithm.entropy_coef,
        denominator=denominator,
        rollout_weights=rollout_weights,
    )
    tokens = metrics["num_tokens"]
    sums = {
        "loss": jax.lax.stop_gradient(loss),
        "pg_loss": metrics["pg_loss"],
        "tokens": tokens,
        "clipped_tokens": metrics["clip_frac"] * tokens,
        "abs_log_ratio": metrics["abs_log_ratio_mean"] * tokens,
        "entropy": metrics["entropy"] * tokens,
    }
    if kl_in_loss:
        sums["kl"] = metrics["kl"] * tokens
    return loss, sums


def surrogate_metrics(sums: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """The step's metrics of `surrogate_loss`'s sums: per-token entropy, KL and ``|log ρ|``,
    the mean policy loss and the clipped fraction."""
    metrics = per_token_means(sums, ("entropy", "kl", "abs_log_ratio"))
    tokens = jnp.maximum(jnp.sum(sums["tokens"]), 1.0)
    metrics["pg_loss"] = jnp.mean(sums["pg_loss"])
    metrics["clip_fraction"] = jnp.sum(sums["clipped_tokens"]) / tokens
    return metrics


CONFIG = PolicyGradient
"""The config class built from the resolved config (`r1jax.learner.from_config`)."""
