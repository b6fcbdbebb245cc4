"""The ``Verdict`` every r1jax verifier returns, and its closed vocabulary of reasons.

A verdict is what the host hands to the compiled update: whether the completion was correct,
whether it was well formed, why not, and the task's reference reward. Everything numeric after
that (length shaping, advantages) happens on device. Task logic lives in the task modules; the
process pool lives in ``r1jax.verifiers``.
"""

import dataclasses

CORRECT = "correct"
WRONG = "wrong"
NO_ANSWER = "no_answer"
UNPARSEABLE = "unparseable"
BAD_FORMAT = "bad_format"
TIMEOUT = "timeout"
ERROR = "error"

REASONS = (CORRECT, WRONG, NO_ANSWER, UNPARSEABLE, BAD_FORMAT, TIMEOUT, ERROR)

MAX_ANSWER_CHARS = 200
"""Extracted answers are truncated to this many characters before they go into a verdict."""

MAX_DETAIL_CHARS = 200


def truncate(text: str | None, limit: int = MAX_ANSWER_CHARS) -> str | None:
    """Shortens ``text`` to at most ``limit`` characters, marking the cut with ``...``.

    Example:
      >>> truncate("x" * 10, 6)
      'xxx...'
    """
    if text is None or len(text) <= limit:
        return text
    return text[: max(limit - 3, 0)] + "..."


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of verifying one completion.

    Attributes:
      correct: the answer is right under the task's rules.
      well_formed: the completion had the structure the task asks for (e.g. an ``<answer>`` tag).
      reason: one of ``REASONS``: ``"correct"``, ``"wrong"``, ``"no_answer"``,
        ``"unparseable"``, ``"bad_format"``, ``"timeout"``, ``"error"``.
      score: the task's reference reward (TinyZero's 1.0 / 0.1 / 0, Logic-RL's 3 / -0.5 / -1 / -3,
        a binary math reward, ...).
      answer: the extracted answer, truncated to ``MAX_ANSWER_CHARS``; ``None`` when none.
      detail: a short machine-readable refinement of ``reason`` (e.g. ``"division_by_zero"``,
        ``"numbers_mismatch"``) or an error message; empty when there is nothing to add.
      legacy_score: countdown only: the score the original (``eval``-based) TinyZero rules give;
        ``None`` where they were not emulated or would not have returned.

    Example:
      >>> v = Verdict(correct=True, well_formed=True, reason=CORRECT, score=1.0, answer="4")
      >>> v.to_dict()["reason"]
      'correct'
    """

    correct: bool
    well_formed: bool
    reason: str
    score: float
    answer: str | None = None
    detail: str = ""
    legacy_score: float | None = None

    def __post_init__(self):
        if self.reason not in REASONS:
            raise ValueError(f"Verdict reason must be one of {REASONS}, got {self.reason!r}")

    def to_dict(self) -> dict:
        """A JSON-serialisable dict of the fields."""
        return dataclasses.asdict(self)

    @classmethod
    def failure(cls, reason: str, detail: str = "") -> "Verdict":
        """A zero-reward verdict for a verification that did not run to completion.

        Example:
          >>> Verdict.failure(TIMEOUT).score
          0.0
        """
        return cls(
            correct=False,
            well_formed=False,
            reason=reason,
            score=0.0,
            detail=truncate(detail, MAX_DETAIL_CHARS) or "",
        )
