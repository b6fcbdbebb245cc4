"""Rollout correction settings (``objective.rollout_correction.*``) and their weights.

The sampler's log-probs (``Batch.old_logprobs``, ``μ``) and the learner's log-probs of the same
parameters (``π_old``) differ when the two run in different compute dtypes
(``sampling.dtype`` vs ``model.dtype``), and slightly even in the same dtype (different
kernels). `RolloutCorrection` decides whether the policy-gradient algorithms correct for it:
with it on, the step computes the learner's ``π_old`` once on the full batch before any update
(``Batch.learner_logprobs``), the ratio becomes ``π_θ / π_old`` and the per-token loss is
weighted by a truncated (TIS) or masked (MIS) importance weight ``π_old / μ``
(`r1jax.objectives.rollout_correction`; verl ``algorithm.rollout_correction`` decoupled mode,
fengyao.notion.site/off-policy-rl).

``mode="auto"`` (the default) turns it on when the sampler's compute dtype differs from the
learner's, or when rows can be stale (``sampling.partial_rollouts``: a carried row's earlier
tokens were sampled by an older policy, so ``μ`` is not the learner's ``π_old`` however the
dtypes agree). float32 samplers and learners agree to about 1e-6 per token, so float32 runs
without stale rows train as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from r1jax import objectives

MODES = ("auto", "on", "off")


@dataclasses.dataclass(frozen=True)
class RolloutCorrection:
    """Resolved rollout correction (``objective.rollout_correction.*`` with ``mode`` decided).

    Attributes:
      enabled: whether the loss is corrected (``mode`` resolved by `from_config`).
      level: ``"token"`` or ``"sequence"`` ratios.
      action: ``"truncate"`` (TIS) or ``"mask"`` (MIS).
      clip_min: ``C_min`` of the band (0: TIS without a floor).
      clip_max: ``C_max`` of the band (2.0: the TIS blog's and verl's token-level cap).
    """

    enabled: bool = False
    level: str = "token"
    action: str = "truncate"
    clip_min: float = 0.0
    clip_max: float = 2.0

    def __post_init__(self):
        if self.level not in objectives.rollout_correction.LEVELS:
            raise ValueError(
                f"objective.rollout_correction.level must be one of "
                f"{objectives.rollout_correction.LEVELS}, got {self.level!r}"
            )
        if self.action not in objectives.rollout_correction.ACTIONS:
            raise ValueError(
                f"objective.rollout_correction.action must be one of "
                f"{objectives.rollout_correction.ACTIONS}, got {self.action!r}"
            )
        if not 0.0 <= self.clip_min < self.clip_max:
            raise ValueError(
                "objective.rollout_correction needs 0 <= clip_min < clip_max, got "
                f"{self.clip_min}, {self.clip_max}"
            )

    def weights(
        self, learner_logprobs: jax.Array, sampler_logprobs: jax.Array, mask: jax.Array
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """``[B, T]`` weights of the full batch and their metrics (``rollout_correction/*``):
        mean and max of the log-ratio ``log π_old − log μ`` over the tokens (token level) or
        the sequences (sequence level), and the share of tokens truncated or masked."""
        out = objectives.rollout_correction_weights(
            learner_logprobs,
            sampler_logprobs,
            mask,
            level=self.level,
            action=self.action,
            clip_min=self.clip_min,
            clip_max=self.clip_max,
        )
        mask = mask.astype(bool)
        counted = mask if self.level == "token" else mask & (jnp.cumsum(mask, axis=-1) == 1)
        log_ratio = jnp.where(counted, out.log_ratio, 0.0)
        metrics = {
            "rollout_correction/log_ratio_mean": objectives.masked_mean(log_ratio, counted),
            "rollout_correction/log_ratio_max": jnp.where(
                jnp.any(counted), jnp.max(jnp.where(counted, out.log_ratio, -jnp.inf)), 0.0
            ),
            "rollout_correction/abs_log_ratio_max": jnp.max(jnp.abs(log_ratio)),
            f"rollout_correction/{self.action}d_fraction": objectives.masked_mean(
                out.corrected, mask
            ),
        }
        return out.weights, metrics


def from_config(
    section: Mapping[str, Any], *, sampler_dtype: str, learner_dtype: str, stale_rows: bool = False
) -> RolloutCorrection:
    """`RolloutCorrection` of the ``objective.rollout_correction`` section.

    Args:
      section: ``mode`` (auto | on | off), ``level``, ``action``, ``clip_min``, ``clip_max``.
      sampler_dtype: the sampler's compute dtype (``sampling.dtype`` or ``model.dtype``).
      learner_dtype: the learner's compute dtype (``model.dtype``).
      stale_rows: rows may hold tokens of an older policy (partial rollouts); ``auto`` turns
        the correction on.

    Raises:
      ValueError: an unknown mode or a bad band.

    Example:
      >>> section = dict(mode="auto", level="token", action="truncate", clip_min=0.0,
      ...                clip_max=2.0)
      >>> from_config(section, sampler_dtype="bfloat16", learner_dtype="float32").enabled
      True
      >>> from_config(section, sampler_dtype="float32", learner_dtype="float32").enabled
      False
      >>> from_config(section, sampler_dtype="float32", learner_dtype="float32",
      ...             stale_rows=True).enabled
      True
    """
    values = dict(section)
    mode = values.pop("mode")
    if mode not in MODES:
        raise ValueError(f"objective.rollout_correction.mode must be one of {MODES}, got {mode!r}")
    if mode == "auto":
        enabled = stale_rows or jnp.dtype(sampler_dtype) != jnp.dtype(learner_dtype)
    else:
        enabled = mode == "on"
    return RolloutCorrection(enabled=bool(enabled), **values)
