"""PRIME: policy optimisation with an implicit process reward model trained online from
outcome labels (arXiv:2502.01456; repo:PRIME-RL/PRIME ``training/``).

The implicit PRM ``π_φ`` is a second causal LM (an auxiliary model of kind ``"causal_lm"``,
`r1jax.learner.auxiliary`), initialised from the policy (``prm.init="policy"``: the
reference, PRIME's ``ref_type=freeze``) or a Hugging Face directory. Per step:

1. ``score_auxiliary``: the PRM's ``[B, T]`` log-probs of the sampled tokens before its update
   (PRIME's default ``update=after``: rewards from the PRM as it was when the batch arrived);
2. ``prepare``: the token rewards ``r_t = β (log π_φ − log π_ref)``
   (`r1jax.objectives.implicit_process_rewards`), the outcome reward ``R`` (the reward terms
   of the verdicts), PRIME's accuracy filter and the advantages
   (`r1jax.objectives.prime_advantages`: the reference code's leave-one-out form by default,
   the paper's with ``prm.reward_form=paper``), whitened over the kept tokens;
3. the policy's clipped surrogate, token-mean (PRIME ``compute_policy_loss``);
4. the PRM's update: ``BCE(σ(β Σ_t q_t), acc)`` per kept response, a mean over the
   mini-batch's kept responses (`r1jax.objectives.implicit_prm_loss`), with its own AdamW
   (``prm.lr`` 1e-6, gradient clip 10).

Accuracy filter (PRIME ``ray_trainer.py`` ``filter``): a prompt group is kept only when the
mean correctness of its ``K`` responses lies in ``[prm.accuracy_low, prm.accuracy_high]``
(inclusive; 0.2-0.8 keeps 1-3 of 4). r1jax applies it as a loss mask inside the update: a
dropped group gets no policy loss and no PRM loss and takes no part in the whitening, so the
update equals PRIME's on the kept groups, but the step trains on fewer responses instead of
sampling more prompts until the batch is full as the PRIME repository does (with DAPO's
``objective.dynamic_sampling`` the collector already drops all-equal groups and refills).
``prime/kept_group_fraction`` reports the share kept.

Preset ``prime``: PRIME's ``examples/run_prime_main.sh`` settings: β = 0.05, policy lr 5e-7,
PRM lr 1e-6 with gradient clip 10, clip 0.2, no KL, no entropy bonus, γ = 1, token-mean loss,
process and outcome returns weighted 1:1 (the effective weighting of both codebases).
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
from r1jax.learner.logprobs import _rows_in_chunks, completion_logprobs
from r1jax.objectives import prime as prime_objectives

PRM = "prm"
DEFAULT_PRM = auxiliary_lib.AuxiliaryModel(PRM, "causal_lm")
"""The PRM's defaults; ``prm.*`` keys replace them (`r1jax.learner.from_config`)."""

PRESETS: dict[str, dict[str, Any]] = {
    "prime": {
        "objective.gamma": 1.0,
        "objective.clip_eps_low": 0.2,
        "objective.clip_eps_high": 0.2,
        "objective.kl_coef": 0.0,
        "objective.entropy_coef": 0.0,
        "objective.aggregation": "token-mean",
        "optim.lr": 5e-7,
        "prm.lr": 1e-6,
        "prm.grad_clip_norm": 10.0,
        "prm.beta": 0.05,
        "prm.accuracy_low": 0.2,
        "prm.accuracy_high": 0.8,
    },
}
"""Preset name -> config keys it sets (below the experiment file and the command line)."""


@dataclasses.dataclass(frozen=True)
class Prime:
    """PRIME (fields: the ``objective.*`` keys of the same names and, with a ``prm_``
    prefix, the ``prm.*`` keys).

    Attributes:
      gamma: discount of both return sources (1 in PRIME).
      clip_eps_low, clip_eps_high: the clipped surrogate's ``ε``.
      logratio_clamp: clamp on log ratios before ``exp``.
      kl_coef: ``β`` of a k-estimator KL against the reference in the loss (PRIME: 0; the
        reference is kept anyway, the implicit rewards need it).
      kl_estimator: that KL's estimator.
      entropy_coef: weight of the entropy bonus.
      aggregation: the policy loss's reduction.
      aggregation_constant: ``C`` of the constant modes; ``0`` means ``T``.
      num_iterations: passes of the policy over each batch.
      prm: the PRM's `AuxiliaryModel` (``prm.init``, ``prm.lr`` ...).
      prm_beta: ``β`` of the implicit rewards and of the PRM loss (beta_train).
      prm_reward_form: ``"rloo"`` (reference code) or ``"paper"``.
      prm_process_weight: weight of the process-reward returns.
      prm_outcome_weight: weight of the outcome returns.
      prm_accuracy_low, prm_accuracy_high: the kept band of a group's accuracy.
    """

    gamma: float = 1.0
    clip_eps_low: float = 0.2
    clip_eps_high: float = 0.2
    logratio_clamp: float = 20.0
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    entropy_coef: float = 0.0
    aggregation: str = "token-mean"
    aggregation_constant: int = 0
    num_iterations: int = 1
    prm: auxiliary_lib.AuxiliaryModel = DEFAULT_PRM
    prm_beta: float = 0.05
    prm_reward_form: str = "rloo"
    prm_process_weight: float = 1.0
    prm_outcome_weight: float = 1.0
    prm_accuracy_low: float = 0.2
    prm_accuracy_high: float = 0.8

    def __post_init__(self):
        if self.prm_reward_form not in ("rloo", "paper"):
            raise ValueError(f"prm.reward_form must be rloo or paper: {self.prm_reward_form!r}")
        if self.aggregation not in objectives.AGGREGATION_MODES:
            raise ValueError(f"objective.aggregation={self.aggregation!r} is not a mode")
        if self.prm.kind != "causal_lm" or self.prm.name != PRM:
            raise ValueError("PRIME's PRM is an auxiliary model named 'prm' of kind 'causal_lm'")
        if not 0.0 <= self.prm_accuracy_low <= self.prm_accuracy_high <= 1.0:
            raise ValueError("need 0 <= prm.accuracy_low <= prm.accuracy_high <= 1")

    @property
    def uses_reference(self) -> bool:
        return True  # the implicit rewards are log-ratios against the reference

    @property
    def auxiliary_models(self) -> tuple[auxiliary_lib.AuxiliaryModel, ...]:
        return (self.prm,)

    # ------------------------------------------------------------------ on the full batch

    def score_auxiliary(self, params: Mapping[str, Any], batch: Any, config: Any) -> dict:
        """The PRM's ``[B, T]`` log-probs before its update, in micro-batches of rows."""

        def score(chunk):
            return completion_logprobs(params[PRM], chunk, config, with_entropy=False)[0]

        rows = config.micro_batch_size
        return {"prm_logprobs": jax.lax.stop_gradient(_rows_in_chunks(score, batch, rows))}

    def kept_rows(self, batch: Any, group_size: int) -> jax.Array:
        """``[B]`` True for the rows of groups whose accuracy lies in the band."""
        accuracy = batch.is_correct.astype(jnp.float32).reshape(-1, group_size).mean(axis=-1)
        kept = (accuracy >= self.prm_accuracy_low - 1e-6) & (
            accuracy <= self.prm_accuracy_high + 1e-6
        )  # [P]
        return jnp.repeat(kept, group_size)  # [B]

    def prepare(
        self, batch: Any, config: Any, *, auxiliary: Mapping[str, jax.Array]
    ) -> tuple[dict[str, jax.Array], dict[str, Any]]:
        sampled = batch.completion_mask.astype(bool)  # [B, T]
        kept = self.kept_rows(batch, config.group_size)  # [B]
        loss_mask = sampled & kept[:, None]
        process = prime_objectives.implicit_process_rewards(
            auxiliary["prm_logprobs"], batch.reference_logprobs, sampled, beta=self.prm_beta
        )  # [B, T]
        terms = config.rewards.terms(batch, max_length=config.max_new_tokens)
        outcome = sum(terms.values())  # [B]
        terms["total"] = outcome.astype(jnp.float32)
        advantages, _ = prime_objectives.prime_advantages(
            process,
            outcome,
            loss_mask,
            group_size=config.group_size,
            gamma=self.gamma,
            form=self.prm_reward_form,
            process_weight=self.prm_process_weight,
            outcome_weight=self.prm_outcome_weight,
        )
        metrics = {}
        for name, value in terms.items():
            metrics[f"reward/{name}"] = jnp.mean(value)
            metrics[f"reward/{name}_std"] = jnp.std(value)
        metrics["prime/kept_group_fraction"] = jnp.mean(kept.astype(jnp.float32))
        metrics["prime/process_reward"] = jnp.mean(jnp.sum(process, axis=-1))
        metrics["advantage/abs_mean"] = objectives.masked_mean(jnp.abs(advantages), loss_mask)
        prepared = {
            "advantages": advantages,
            "loss_mask": loss_mask,
            "kept": kept,
            "accuracy": batch.is_correct.astype(jnp.float32),
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
            kl_in_loss=self.kl_coef != 0,
        )

    def summarize(self, sums: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        return policy_gradient.surrogate_metrics(sums)

    # ------------------------------------------------------------------ the PRM

    def auxiliary_denominator(self, name: str, prepared: Mapping, config: Any) -> jax.Array:
        """The mini-batch's kept responses (the PRM loss is a mean over responses)."""
        return jnp.maximum(jnp.sum(prepared["kept"]), 1).astype(jnp.float32)

    def auxiliary_loss(
        self,
        name: str,
        params: Any,
        batch: Any,
        prepared: Mapping[str, jax.Array],
        denominator: jax.Array,
        config: Any,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """This micro-batch's share of the PRM's cross-entropy over kept responses."""
        logprobs, _ = completion_logprobs(params, batch, config, with_entropy=False)
        per_row = prime_objectives.implicit_prm_loss(
            logprobs,
            batch.reference_logprobs,
            batch.completion_mask,
            prepared["accuracy"],
            beta=self.prm_beta,
        )  # [b]
        kept = prepared["kept"]
        numerator = jnp.sum(jnp.where(kept, per_row, 0.0))
        loss = numerator / denominator
        z = jnp.sum(
            prime_objectives.implicit_process_rewards(
                jax.lax.stop_gradient(logprobs),
                batch.reference_logprobs,
                batch.completion_mask,
                beta=self.prm_beta,
            ),
            axis=-1,
        )  # [b]
        predicted = z > 0
        correct = prepared["accuracy"] > 0.5
        sums = {
            "loss": jax.lax.stop_gradient(loss),
            "prm_loss": jax.lax.stop_gradient(numerator),
            "prm_agreement": jnp.sum(jnp.where(kept, predicted == correct, False)),
            "rows": jnp.sum(kept).astype(jnp.float32),
        }
        return loss, sums

    def auxiliary_summarize(self, name: str, sums: Mapping[str, jax.Array]) -> dict:
        """``loss`` (mean cross-entropy over kept responses of every update) and
        ``accuracy`` (how often ``σ(β Σ q) > ½`` agrees with the verifier, before the update
        of each mini-batch)."""
        rows = jnp.maximum(jnp.sum(sums["rows"]), 1.0)
        return {
            "loss": jnp.sum(sums["prm_loss"]) / rows,
            "accuracy": jnp.sum(sums["prm_agreement"]) / rows,
        }


CONFIG = Prime
"""The config class built from the resolved config (`r1jax.learner.from_config`)."""
