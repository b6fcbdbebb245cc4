"""The learner's batch: one rollout (or one supervised batch) laid out for the update step.

`Batch` is a pytree of ``[B, ...]`` arrays, rows of a group adjacent (``B = P*G``). It is built
on the device from the sampler's `Rollout` (`Batch.from_rollout`), so the completions never
travel device -> host -> device: only the ``[B]`` verdicts come from the host
(`Batch.with_verdicts`). Supervised batches come from the host (`Batch.from_sft`).

Not here: what the step does with it (`r1jax.learner.step`), how it is sharded
(`r1jax.distributed`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from r1jax.sampling import stopping
from r1jax.sampling.rollout import Rollout


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Batch:
    """One batch for the learner (``B`` rows; ``Tp`` prompt and ``T`` completion columns).

    Attributes:
      prompt_tokens: ``[B, Tp]`` int32 prompt ids, left-padded.
      prompt_mask: ``[B, Tp]`` bool, True on real prompt tokens.
      completion_tokens: ``[B, T]`` int32 sampled (or, for SFT, target) ids.
      completion_mask: ``[B, T]`` bool, True on generated tokens up to and including the stop
        (for SFT: the loss mask).
      old_logprobs: ``[B, T]`` float32 log-probs under the sampling policy (``π_old``).
      is_correct: ``[B]`` bool verdicts.
      is_well_formed: ``[B]`` bool verdicts (an answer was found where the task expects it).
      is_truncated: ``[B]`` bool, True where the completion hit the length limit.
      scores: ``[B]`` float32, the verifier's own reward (``Verdict.score``: the task's
        published rule, e.g. TinyZero's 1 / 0.1 / 0).
      reference_logprobs: optional ``[B, T]`` reference log-probs computed ahead of the step
        (dispatched while the host verifies); None lets the step compute them when needed.
      learner_logprobs: optional ``[B, T]`` log-probs of the completions under the policy
        that sampled them as the learner computes them (``π_old`` of the rollout correction,
        `r1jax.algorithms.rollout_correction`); None lets the step compute them, once per
        step before any update, when the algorithm needs them.
    """

    prompt_tokens: jax.Array
    prompt_mask: jax.Array
    completion_tokens: jax.Array
    completion_mask: jax.Array
    old_logprobs: jax.Array
    is_correct: jax.Array
    is_well_formed: jax.Array
    is_truncated: jax.Array
    scores: jax.Array
    reference_logprobs: jax.Array | None = None
    learner_logprobs: jax.Array | None = None

    @property
    def rows(self) -> int:
        return self.completion_tokens.shape[0]

    def replace(self, **changes: Any) -> Batch:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_rollout(cls, rollout: Rollout, *, xp: Any = jnp) -> Batch:
        """The learner's view of a sampler `Rollout`, verdicts still unknown (all False / 0).

        With device arrays in (the sampler's output) the batch stays on the device; ``xp=np``
        builds host arrays instead (tests, benchmarks).
        """
        rows, width = rollout.prompt_tokens.shape
        prompt_mask = xp.arange(width)[None, :] >= (
            width - xp.asarray(rollout.prompt_lengths)[:, None]
        )  # [B, Tp]
        false = xp.zeros((rows,), bool)
        return cls(
            prompt_tokens=xp.asarray(rollout.prompt_tokens).astype(xp.int32),
            prompt_mask=prompt_mask,
            completion_tokens=xp.asarray(rollout.tokens).astype(xp.int32),
            completion_mask=xp.asarray(rollout.mask).astype(bool),
            old_logprobs=xp.asarray(rollout.logprobs).astype(xp.float32),
            is_correct=false,
            is_well_formed=false,
            is_truncated=xp.asarray(rollout.finish_reason) == stopping.FINISH_LENGTH,
            scores=xp.zeros((rows,), xp.float32),
        )

    def with_verdicts(self, is_correct: Any, is_well_formed: Any, scores: Any) -> Batch:
        """The batch with the verifier's ``[B]`` verdicts filled in (arrays already placed
        like the batch's rows, e.g. by `r1jax.distributed.put_rows`)."""
        return self.replace(is_correct=is_correct, is_well_formed=is_well_formed, scores=scores)

    @classmethod
    def from_sft(cls, tokens: Any, loss_mask: Any, lengths: Any, *, xp: Any = jnp) -> Batch:
        """A supervised batch (right-padded ``[B, S]`` tokens and loss mask) in this layout.

        The first token plays the prompt and the other ``S - 1`` the completion, so the
        learner scores ``tokens[:, 1:]`` under ``loss_mask[:, 1:]``; verdict fields are unused.
        ``xp=np`` builds host arrays (to place with explicit shardings, e.g.
        `r1jax.distributed.put_local_rows`).
        """
        tokens = xp.asarray(tokens, xp.int32)
        rows, width = tokens.shape
        valid = xp.arange(width)[None, :] < xp.asarray(lengths)[:, None]  # [B, S]
        mask = xp.asarray(loss_mask).astype(bool) & valid
        false = xp.zeros((rows,), bool)
        return cls(
            prompt_tokens=tokens[:, :1],
            prompt_mask=xp.ones((rows, 1), bool),
            completion_tokens=tokens[:, 1:],
            completion_mask=mask[:, 1:],
            old_logprobs=xp.zeros((rows, width - 1), xp.float32),
            is_correct=false,
            is_well_formed=false,
            is_truncated=false,
            scores=xp.zeros((rows,), xp.float32),
        )


def concat_batches(batches: list[Batch]) -> Batch:
    """Row-wise concatenation, left-padding prompts to the widest one (traceable)."""
    if len(batches) == 1:
        return batches[0]
    width = max(b.prompt_tokens.shape[1] for b in batches)

    def widen(batch: Batch) -> Batch:
        extra = width - batch.prompt_tokens.shape[1]
        return batch.replace(
            prompt_tokens=jnp.pad(batch.prompt_tokens, ((0, 0), (extra, 0))),
            prompt_mask=jnp.pad(batch.prompt_mask, ((0, 0), (extra, 0))),
        )

    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *[widen(b) for b in batches])
