"""Sequence rewards from verdicts: the named reward terms of one batch, on the device.

`reward_terms` turns the verifier's ``[B]`` verdicts (correct, well formed, its own score),
truncation flags, lengths and token ids into named ``[B]`` terms: the correctness term (0/1, or
cosine length-scaled, arXiv:2502.03373 §3.2), the verifier's own score (the task's published
rule, e.g. TinyZero's 1 / 0.1 / 0 or Logic-RL's format + answer score), a format term, DAPO's
soft overlong penalty (arXiv:2503.14476 §3.4) and an n-gram repetition penalty
(arXiv:2502.03373 App. C). Every hyperparameter is keyword-only; `RewardConfig` holds them as
a frozen (hashable) dataclass so a compiled step can take it as a static argument.

Not here: the verifiers (host side, `r1jax.verifiers`), KL penalties placed in the reward
(the algorithm's, `r1jax.algorithms.policy_gradient`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from r1jax.rewards import length as length_rewards
from r1jax.rewards import repetition as repetition_rewards


def reward_terms(
    is_correct: jax.Array,
    is_well_formed: jax.Array,
    is_truncated: jax.Array,
    completion_tokens: jax.Array,
    completion_mask: jax.Array,
    scores: jax.Array | None = None,
    *,
    max_length: int,
    correctness_weight: float = 1.0,
    score_weight: float = 0.0,
    format_weight: float = 0.0,
    truncated_is_incorrect: bool = True,
    cosine_enabled: bool = False,
    cosine_max_correct: float = 2.0,
    cosine_min_correct: float = 1.0,
    cosine_max_wrong: float = 0.0,
    cosine_min_wrong: float = -10.0,
    cosine_exceed: float = -10.0,
    cosine_margin: int = 16,
    cosine_max_length: int = 0,
    overlong_enabled: bool = False,
    overlong_cache_length: int = 256,
    overlong_penalty_factor: float = 1.0,
    repetition_enabled: bool = False,
    repetition_ngram_size: int = 40,
    repetition_penalty: float = -0.05,
    repetition_only_start: bool = False,
) -> dict[str, jax.Array]:
    """Named ``[B]`` float32 reward terms of a batch (their sum is the sequence reward).

    Args:
      is_correct: ``[B]`` bool verdicts.
      is_well_formed: ``[B]`` bool verdicts (a correct answer counts as well formed).
      is_truncated: ``[B]`` bool, the completion hit the length limit.
      completion_tokens: ``[B, T]`` int32 ids (for the repetition penalty).
      completion_mask: ``[B, T]`` bool, the generated tokens (their count is the length).
      scores: ``[B]`` float32 verifier scores (``Verdict.score``), needed when
        ``score_weight`` is non-zero.
      max_length: ``T`` of this context stage (the length the overlong penalty ends at).
      correctness_weight: weight of the 0/1 correctness (or of the cosine-shaped value); 0
        drops the term.
      score_weight: weight of the verifier's own score; 0 drops the term.
      format_weight: weight of the 0/1 well-formed term; 0 drops the term.
      truncated_is_incorrect: a completion that hit the length limit counts as wrong and
        malformed whatever the verifier said (Dr. GRPO, ORZ).
      cosine_enabled: replace correctness with the cosine length-scaled reward; ``cosine_*``
        are its end points, exceed value, margin and ``L_max`` (0: ``max_length``).
      overlong_enabled: add DAPO's soft overlong penalty over the last
        ``overlong_cache_length`` tokens, scaled by ``overlong_penalty_factor``.
      repetition_enabled: add the n-gram repetition penalty (``repetition_ngram_size``,
        ``repetition_penalty`` per token of a repeated n-gram, or only at its start with
        ``repetition_only_start``), summed over the completion.

    Returns:
      A dict of ``[B]`` float32 terms: ``"correctness"`` (when its weight is non-zero or the
      score term is off), ``"score"``, ``"format"``, ``"overlong"`` and ``"repetition"`` when
      active.

    Example:
      >>> import jax.numpy as jnp
      >>> terms = reward_terms(jnp.array([True, False]), jnp.array([True, True]),
      ...                      jnp.array([False, False]), jnp.zeros((2, 3), jnp.int32),
      ...                      jnp.ones((2, 3), bool), max_length=3, format_weight=0.5)
      >>> {name: value.tolist() for name, value in terms.items()}
      {'correctness': [1.0, 0.0], 'format': [0.5, 0.5]}
    """
    lengths = jnp.sum(completion_mask, axis=-1).astype(jnp.int32)  # [B]
    correct = is_correct.astype(bool)
    well_formed = is_well_formed.astype(bool) | correct
    if truncated_is_incorrect:
        correct = correct & ~is_truncated
        well_formed = well_formed & ~is_truncated
    terms = {}
    if correctness_weight or not score_weight:
        if cosine_enabled:
            terms["correctness"] = correctness_weight * length_rewards.cosine_length_reward(
                correct,
                lengths,
                max_length=cosine_max_length or max_length,
                r0_correct=cosine_max_correct,
                rL_correct=cosine_min_correct,
                r0_wrong=cosine_min_wrong,
                rL_wrong=cosine_max_wrong,
                r_exceed=cosine_exceed,
                exceed_margin=cosine_margin,
            )
        else:
            terms["correctness"] = correctness_weight * correct.astype(jnp.float32)
    if score_weight:
        if scores is None:
            raise ValueError("score_weight is set but no verifier scores were given")
        score = jnp.asarray(scores, jnp.float32)
        if truncated_is_incorrect:  # a truncated completion earns what an unparseable one does
            score = jnp.where(is_truncated, jnp.minimum(score, 0.0), score)
        terms["score"] = score_weight * score
    if format_weight:
        terms["format"] = format_weight * well_formed.astype(jnp.float32)
    if overlong_enabled:
        terms["overlong"] = length_rewards.overlong_penalty(
            lengths,
            max_length=max_length,
            cache_length=min(overlong_cache_length, max_length),
            penalty_factor=overlong_penalty_factor,
        )
    if repetition_enabled:
        per_token = repetition_rewards.repetition_penalty(
            completion_tokens,
            lengths,
            ngram_size=repetition_ngram_size,
            penalty=repetition_penalty,
            only_start=repetition_only_start,
        )  # [B, T]
        terms["repetition"] = jnp.sum(per_token, axis=-1)  # [B]
    return terms


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """The keyword arguments of `reward_terms` (config section ``rewards.*``), hashable.

    Field meanings: see `reward_terms`. ``cosine_max_length = 0`` means the stage's ``T``.
    """

    correctness_weight: float = 1.0
    score_weight: float = 0.0
    format_weight: float = 0.0
    truncated_is_incorrect: bool = True
    cosine_enabled: bool = False
    cosine_max_correct: float = 2.0
    cosine_min_correct: float = 1.0
    cosine_max_wrong: float = 0.0
    cosine_min_wrong: float = -10.0
    cosine_exceed: float = -10.0
    cosine_margin: int = 16
    cosine_max_length: int = 0
    overlong_enabled: bool = False
    overlong_cache_length: int = 256
    overlong_penalty_factor: float = 1.0
    repetition_enabled: bool = False
    repetition_ngram_size: int = 40
    repetition_penalty: float = -0.05
    repetition_only_start: bool = False

    def terms(self, batch, *, max_length: int) -> dict[str, jax.Array]:
        """`reward_terms` of a `r1jax.learner.Batch` under these settings."""
        return reward_terms(
            batch.is_correct,
            batch.is_well_formed,
            batch.is_truncated,
            batch.completion_tokens,
            batch.completion_mask,
            batch.scores,
            max_length=max_length,
            **dataclasses.asdict(self),
        )
