"""Supervised fine-tuning: the token-mean negative log-likelihood of target completions.

The warm start before RL (R1's cold start, arXiv:2501.12948 §2.3.1; TinyZero-style warm
starts) runs through the same compiled step as the RL algorithms, with this algorithm and the
targets as a `r1jax.learner.Batch` (`Batch.from_sft`): the loss is
``Σ_{i,t} m_{i,t}·(−log π(o_{i,t})) / Σ m`` over the whole batch (`r1jax.objectives.token_nll`
reduced token-mean).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax

from r1jax import objectives
from r1jax.algorithms.base import per_token_means

PRESETS: dict[str, dict[str, Any]] = {"sft": {}}


@dataclasses.dataclass(frozen=True)
class SupervisedFineTuning:
    """Token-mean NLL; no reference, one pass per batch."""

    num_iterations: int = 1

    @property
    def uses_reference(self) -> bool:
        return False

    def prepare(self, batch: Any, config: Any) -> tuple[dict[str, jax.Array], dict[str, Any]]:
        return {"loss_mask": batch.completion_mask.astype(bool)}, {}

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
        loss = numerator / denominator
        sums = {
            "loss": jax.lax.stop_gradient(loss),
            "nll": jax.lax.stop_gradient(numerator),
            "entropy": jax.numpy.sum(jax.numpy.where(mask, jax.lax.stop_gradient(entropy), 0.0)),
            "tokens": jax.numpy.sum(mask).astype(jax.numpy.float32),
        }
        return loss, sums

    def summarize(self, sums: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        return per_token_means(sums, ("entropy", "nll"))


CONFIG = SupervisedFineTuning
"""The config class built from the resolved config (`r1jax.learner.from_config`)."""
