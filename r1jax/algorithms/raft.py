"""RAFT, reward-ranked fine-tuning: supervised steps on the policy's own correct samples.

Each step samples ``G`` completions per prompt, verifies them, keeps the selected rows and
minimises their token-mean negative log-likelihood (RAFT, Dong et al. arXiv:2304.06767 §3;
the Online-DPO-R1 repository's RAFT baseline fine-tunes on "the positive (highest-reward,
correct) samples only", RLHFlow/Online-DPO-R1 README). ``objective.selection`` picks the rows:

- ``"correct"`` (default): every correct completion of every group (RAFT++ / rejection
  sampling fine-tuning as in Xiong et al. arXiv:2504.11343 §2);
- ``"best"``: best-of-``G``, the highest-reward completion of each group (the first on ties),
  kept only if it is correct (RAFT's top-1 ranking).

The loss is ``Σ_{selected i,t} m·(−log π(o_{i,t})) / Σ_{selected} m`` over the whole
mini-batch; a step without any selected row has zero loss and gradient. No reference, no
importance ratio: the rows are the current policy's own samples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from r1jax import objectives
from r1jax.algorithms.base import per_token_means

SELECTIONS = ("correct", "best")

PRESETS: dict[str, dict[str, Any]] = {"raft": {"objective.kl_coef": 0.0}}


def select_rows(
    rewards: jax.Array, is_correct: jax.Array, *, group_size: int, selection: str
) -> jax.Array:
    """``[B]`` bool: the rows RAFT trains on.

    Args:
      rewards: ``[B]`` total rewards, rows of a group adjacent.
      is_correct: ``[B]`` verdicts.
      group_size: ``G``.
      selection: ``"correct"`` or ``"best"`` (see the module docstring).

    Example:
      >>> select_rows(jnp.array([1., 2., 0., 0.]), jnp.array([True, True, False, False]),
      ...             group_size=2, selection="best")
      Array([False,  True, False, False], dtype=bool)
    """
    is_correct = is_correct.astype(bool)
    if selection == "correct":
        return is_correct
    grouped = rewards.reshape(-1, group_size)  # [P, G]
    best = jax.nn.one_hot(jnp.argmax(grouped, axis=-1), group_size, dtype=bool)  # [P, G]
    return best.reshape(-1) & is_correct


@dataclasses.dataclass(frozen=True)
class RewardRankedFineTuning:
    """RAFT (fields: the ``objective.*`` keys of the same names).

    Attributes:
      selection: one of ``SELECTIONS``.
      num_iterations: passes over each batch.
    """

    selection: str = "correct"
    num_iterations: int = 1

    def __post_init__(self):
        if self.selection not in SELECTIONS:
            raise ValueError(
                f"objective.selection must be one of {SELECTIONS}, got {self.selection!r}"
            )
        if self.num_iterations < 1:
            raise ValueError(f"objective.num_iterations must be >= 1, got {self.num_iterations}")

    @property
    def uses_reference(self) -> bool:
        return False

    def prepare(self, batch: Any, config: Any) -> tuple[dict[str, jax.Array], dict[str, Any]]:
        terms = config.rewards.terms(batch, max_length=config.max_new_tokens)
        rewards = sum(terms.values()).astype(jnp.float32)  # [B]
        selected = select_rows(
            rewards, batch.is_correct, group_size=config.group_size, selection=self.selection
        )  # [B]
        loss_mask = batch.completion_mask.astype(bool) & selected[:, None]  # [B, T]
        per_group = selected.reshape(-1, config.group_size).sum(axis=-1)  # [P]
        metrics = {
            "reward/total": jnp.mean(rewards),
            "raft/selected_fraction": jnp.mean(selected.astype(jnp.float32)),
            "raft/prompts_without_sample": jnp.sum(per_group == 0).astype(jnp.float32),
        }
        return {"loss_mask": loss_mask}, metrics

    def denominator(self, prepared: Mapping[str, jax.Array], config: Any) -> jax.Array:
        return objectives.aggregation_denominator(prepared["loss_mask"], mode="token-mean")

    def loss(
        self,
        logprobs: jax.Array,
        entropy: jax.Array,
        batch: Any,
        prepared: Mapping[str, jax.Array],
        denominator: jax.Array,
        config: Any,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        mask = prepared["loss_mask"]
        nll = objectives.token_nll(logprobs, mask)  # [b, T]
        numerator = objectives.aggregate(nll, mask, mode="token-mean").numerator
        loss = objectives.safe_divide(numerator, denominator)  # 0 when nothing is selected
        sums = {
            "loss": jax.lax.stop_gradient(loss),
            "nll": jax.lax.stop_gradient(numerator),
            "entropy": jnp.sum(jnp.where(mask, jax.lax.stop_gradient(entropy), 0.0)),
            "tokens": jnp.sum(mask).astype(jnp.float32),
        }
        return loss, sums

    def summarize(self, sums: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        return per_token_means(sums, ("entropy", "nll"))


CONFIG = RewardRankedFineTuning
"""The config class built from the resolved config (`r1jax.learner.from_config`)."""
