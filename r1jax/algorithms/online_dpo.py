"""Online (iterative) DPO: preference pairs built from each step's own verified samples.

Each step samples ``G`` completions per prompt, verifies them, builds (chosen, rejected) pairs
inside each group from the rewards, and minimises the DPO loss against the reference
(RLHFlow/Online-DPO-R1: ``reward_labeling.py``, ``dpo_iteration/run_dpo.py``; DPO
arXiv:2305.18290):

    L = −(1 − α) log σ(β h) − α log σ(−β h),
    h = [log π(y_w) − log π_ref(y_w)] − [log π(y_l) − log π_ref(y_l)]

over whole completions (`r1jax.objectives.dpo_loss`), averaged over the mini-batch's pairs.
``objective.pairing`` is the rule:

- ``"max_min"`` (Online-DPO-R1's default): chosen = the group's highest reward, rejected = its
  lowest (the first row on ties); a group whose rewards are all equal gives no pair.
- ``"all"``: every ordered pair ``(i, j)`` of the group with ``R_i > R_j``.

The recipe's labels are 1.0 (correct), −0.5 (a boxed answer that is wrong) and −1.0 (no boxed
answer); ``rewards.correctness_weight=1.5, rewards.format_weight=0.5`` (the ``online_dpo``
preset) gives ``2 / 0.5 / 0``, the same labels shifted by 1, so the same pairs.

The iterative schedule: the reference moves to the policy every ``reference.reset_every``
steps (``reference.mode=reset_every``), so an iteration of the recipe (a new reference, the
previous iteration's model) is that many steps (preset ``iterative_dpo``).

Pairs never cross micro-batches: the rows of a group are adjacent, and every mini- and
micro-batch must hold whole groups (``optim.micro_batch_size`` a multiple of
``sampling.group_size``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from r1jax import objectives

PAIRINGS = ("max_min", "all")

_RECIPE = {
    "objective.dpo_beta": 0.1,
    "objective.dpo_label_smoothing": 0.1,
    "objective.pairing": "max_min",
    "rewards.correctness_weight": 1.5,
    "rewards.format_weight": 0.5,
    "reference.mode": "frozen",
}

PRESETS: dict[str, dict[str, Any]] = {
    "online_dpo": dict(_RECIPE),
    # An iteration of Online-DPO-R1 = 100 steps here (the recipe's iteration is one pass over a
    # fresh prompt shard; its length in steps is r1jax's choice, change reference.reset_every).
    "iterative_dpo": {**_RECIPE, "reference.mode": "reset_every", "reference.reset_every": 100},
}


def preference_pairs(rewards: jax.Array, *, group_size: int, pairing: str) -> jax.Array:
    """``[B, G]`` float 0/1: entry ``(i, j)`` is 1 when row ``i`` is chosen over row ``j`` of
    its group (``j`` indexes the group's rows).

    Args:
      rewards: ``[B]`` rewards, rows ``p*G:(p+1)*G`` one group.
      group_size: ``G``.
      pairing: ``"max_min"`` or ``"all"``.

    Example:
      >>> preference_pairs(jnp.array([0., 1., 1., 1.]), group_size=2, pairing="max_min")
      Array([[0., 0.],
             [1., 0.],
             [0., 0.],
             [0., 0.]], dtype=float32)
    """
    grouped = rewards.reshape(-1, group_size)  # [P, G]
    if pairing == "all":
        pairs = grouped[:, :, None] > grouped[:, None, :]  # [P, G, G]
    else:
        best = jax.nn.one_hot(jnp.argmax(grouped, axis=-1), group_size, dtype=bool)  # [P, G]
        worst = jax.nn.one_hot(jnp.argmin(grouped, axis=-1), group_size, dtype=bool)
        differs = (jnp.max(grouped, axis=-1) > jnp.min(grouped, axis=-1))[:, None, None]
        pairs = best[:, :, None] & worst[:, None, :] & differs  # [P, G, G]
    return pairs.reshape(-1, group_size).astype(jnp.float32)  # [B, G]


def pair_losses(
    logprobs: jax.Array,
    reference_logprobs: jax.Array,
    completion_mask: jax.Array,
    *,
    group_size: int,
    beta: float,
    label_smoothing: float,
) -> tuple[jax.Array, jax.Array]:
    """DPO loss and margin ``h`` of every ordered pair of each group, ``[b/G, G, G]`` each.

    Entry ``[p, i, j]`` treats row ``i`` of group ``p`` as chosen and row ``j`` as rejected.
    """
    policy = objectives.sequence_logprobs(logprobs, completion_mask).reshape(-1, group_size)
    reference = objectives.sequence_logprobs(reference_logprobs, completion_mask)
    reference = reference.reshape(-1, group_size)  # [p, G]
    losses = objectives.dpo_loss(
        policy[:, :, None],
        policy[:, None, :],
        reference[:, :, None],
        reference[:, None, :],
        beta=beta,
        label_smoothing=label_smoothing,
    )  # [p, G, G]
    log_ratio = jax.lax.stop_gradient(policy - reference)  # [p, G]
    return losses, log_ratio[:, :, None] - log_ratio[:, None, :]


@dataclasses.dataclass(frozen=True)
class OnlineDPO:
    """Online DPO (fields: the ``objective.*`` keys of the same names).

    Attributes:
      dpo_beta: ``β`` (TRL's default 0.1; Online-DPO-R1 does not set it).
      dpo_label_smoothing: ``α`` (Online-DPO-R1: 0.1).
      pairing: one of ``PAIRINGS``.
      num_iterations: passes over each batch.
    """

    dpo_beta: float = 0.1
    dpo_label_smoothing: float = 0.0
    pairing: str = "max_min"
    num_iterations: int = 1
    loss_couples_rows = True  # pairs within a group: no length-sorted micro-batches

    def __post_init__(self):
        if self.pairing not in PAIRINGS:
            raise ValueError(f"objective.pairing must be one of {PAIRINGS}, got {self.pairing!r}")
        if not 0.0 <= self.dpo_label_smoothing < 0.5:
            raise ValueError(
                f"objective.dpo_label_smoothing must be in [0, 0.5), got {self.dpo_label_smoothing}"
            )
        if self.num_iterations < 1:
            raise ValueError(f"objective.num_iterations must be >= 1, got {self.num_iterations}")

    @property
    def uses_reference(self) -> bool:
        return True

    def prepare(self, batch: Any, config: Any) -> tuple[dict[str, jax.Array], dict[str, Any]]:
        terms = config.rewards.terms(batch, max_length=config.max_new_tokens)
        rewards = sum(terms.values()).astype(jnp.float32)  # [B]
        pairs = preference_pairs(rewards, group_size=config.group_size, pairing=self.pairing)
        in_pair = (jnp.sum(pairs, axis=-1) > 0) | (
            jnp.sum(pairs.reshape(-1, config.group_size, config.group_size), axis=1).reshape(-1) > 0
        )  # [B] chosen or rejected somewhere
        per_prompt = jnp.sum(pairs.reshape(-1, config.group_size * config.group_size), axis=-1)
        metrics = {
            "reward/total": jnp.mean(rewards),
            "dpo/pairs_per_prompt": jnp.mean(per_prompt),
            "dpo/prompts_without_pair": jnp.sum(per_prompt == 0).astype(jnp.float32),
        }
        loss_mask = batch.completion_mask.astype(bool) & in_pair[:, None]  # [B, T]
        return {"pairs": pairs, "loss_mask": loss_mask}, metrics

    def denominator(self, prepared: Mapping[str, jax.Array], config: Any) -> jax.Array:
        return jnp.sum(prepared["pairs"])  # pairs in the mini-batch

    def loss(
        self,
        logprobs: jax.Array,
        entropy: jax.Array,
        batch: Any,
        prepared: Mapping[str, jax.Array],
        denominator: jax.Array,
        config: Any,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        group = config.group_size
        if logprobs.shape[0] % group:
            raise ValueError(
                f"online_dpo pairs completions within a group, so every micro-batch must hold "
                f"whole groups: optim.micro_batch_size (and the rows of each of "
                f"optim.minibatches_per_step mini-batches, here {logprobs.shape[0]}) must be a "
                f"multiple of sampling.group_size={group}"
            )
        losses, margins = pair_losses(
            logprobs,
            batch.reference_logprobs,
            batch.completion_mask,
            group_size=group,
            beta=self.dpo_beta,
            label_smoothing=self.dpo_label_smoothing,
        )  # [p, G, G]
        pairs = prepared["pairs"].reshape(-1, group, group)  # [p, G, G]
        loss = objectives.safe_divide(jnp.sum(pairs * losses), denominator)
        mask = prepared["loss_mask"]
        sums = {
            "loss": jax.lax.stop_gradient(loss),
            "pairs": jnp.sum(pairs),
            "pair_loss": jax.lax.stop_gradient(jnp.sum(pairs * losses)),
            "margin": jnp.sum(pairs * margins),
            "preferred": jnp.sum(pairs * (margins > 0)),
            "entropy": jnp.sum(jnp.where(mask, jax.lax.stop_gradient(entropy), 0.0)),
            "tokens": jnp.sum(mask).astype(jnp.float32),
        }
        return loss, sums

    def summarize(self, sums: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        pairs = jnp.maximum(jnp.sum(sums["pairs"]), 1.0)
        return {
            "dpo/loss": jnp.sum(sums["pair_loss"]) / pairs,
            "dpo/margin": jnp.sum(sums["margin"]) / pairs,
            "dpo/accuracy": jnp.sum(sums["preferred"]) / pairs,
            "entropy": jnp.sum(sums["entropy"]) / jnp.maximum(jnp.sum(sums["tokens"]), 1.0),
        }


CONFIG = OnlineDPO
"""The config class built from the resolved config (`r1jax.learner.from_config`)."""
