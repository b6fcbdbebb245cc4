"""Sampling rollouts from a policy: a jitted KV-cache sampler and s1 budget forcing.

Public API: `sample`, `SamplingParams`, `PromptBatch`, `Rollout`, the finish codes
(`FINISH_STOP_TOKEN`, `FINISH_STOP_SEQUENCE`, `FINISH_LENGTH`, `FINISH_REASON_NAMES`),
`BudgetForcing` and `sample_with_budget`. Logit filters live in `r1jax.sampling.logits`.
"""

from r1jax.sampling.budget_forcing import BudgetForcedRollout, BudgetForcing, sample_with_budget
from r1jax.sampling.rollout import PromptBatch, Rollout
from r1jax.sampling.sampler import SamplingParams, sample
from r1jax.sampling.stopping import (
    FINISH_LENGTH,
    FINISH_NONE,
    FINISH_REASON_NAMES,
    FINISH_STOP_SEQUENCE,
    FINISH_STOP_TOKEN,
)

__all__ = [
    "FINISH_LENGTH",
    "FINISH_NONE",
    "FINISH_REASON_NAMES",
    "FINISH_STOP_SEQUENCE",
    "FINISH_STOP_TOKEN",
    "BudgetForcedRollout",
    "BudgetForcing",
    "PromptBatch",
    "Rollout",
    "SamplingParams",
    "sample",
    "sample_with_budget",
]
