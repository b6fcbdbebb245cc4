"""Evaluation metrics over sampled answers: pass@1 over k, unbiased pass@k, maj@k, greedy.

Host-side numpy on verdicts the verifiers already produced (pass@k: Chen et al., arXiv:2107.03374; pass@1 over k samples: R1 arXiv:2501.12948 §3). For ``N``
problems with ``n`` samples each, ``correct`` is an ``[N, n]`` bool array and ``answers`` an
``N``-list of ``n``-lists of the verifier's normalised answer strings (``None`` when a sample
has no extractable answer).

- pass@1 over k: ``(1/n) Σ_i c_i`` per problem (R1's "pass@1 averaged over k samples", DAPO's
  avg@k).
- unbiased pass@k (Chen et al. 2021): ``1 − C(n−c, k)/C(n, k)`` in the stable product form
  ``1 − Π_{i=n−c+1}^{n} (1 − k/i)``, and 1 when ``n − c < k``. Needs ``n >= k``.
- maj@k (self-consistency): the most frequent answer among the first ``k`` samples wins;
  samples without an answer do not vote; ties go to the answer seen first (earliest sample
  index), and the tie rate is reported. The winner scores the verdict of its earliest sample.

What does not live here: sampling, answer extraction and verification (``tasks/``,
``verifiers/``) and the evaluation loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


def pass_at_k(num_samples: int, num_correct: int, k: int) -> float:
    """Unbiased pass@k of one problem: P(at least one of k samples drawn without replacement
    from ``num_samples`` is correct).

    Raises:
      ValueError: ``k`` is not in ``1..num_samples`` or ``num_correct`` is out of range.

    Example:
      >>> pass_at_k(4, 1, 2)
      0.5
      >>> pass_at_k(4, 3, 2)
      1.0
    """
    if not 1 <= k <= num_samples:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={num_samples}")
    if not 0 <= num_correct <= num_samples:
        raise ValueError(f"num_correct={num_correct} is outside 0..{num_samples}")
    if num_samples - num_correct < k:
        return 1.0
    terms = 1.0 - k / np.arange(num_samples - num_correct + 1, num_samples + 1)
    return float(1.0 - np.prod(terms))


def pass_at_k_per_problem(correct: np.ndarray, k: int) -> np.ndarray:
    """``[N]`` unbiased pass@k of each problem from an ``[N, n]`` bool array.

    Example:
      >>> pass_at_k_per_problem(np.array([[1, 0, 0, 0], [0, 0, 0, 0]], bool), 2)
      array([0.5, 0. ])
    """
    correct = _as_correct(correct)
    n = correct.shape[1]
    return np.array([pass_at_k(n, int(c), k) for c in correct.sum(axis=1)], dtype=np.float64)


def pass_at_1_per_problem(correct: np.ndarray) -> np.ndarray:
    """``[N]`` fraction of correct samples per problem (pass@1 averaged over the n samples).

    Example:
      >>> pass_at_1_per_problem(np.array([[1, 0, 1, 1]], bool))
      array([0.75])
    """
    return _as_correct(correct).mean(axis=1, dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class MajorityVote:
    """The outcome of a majority vote over one problem's samples.

    Attributes:
      answer: the winning answer, or ``None`` when no sample had an answer.
      index: the earliest sample index holding the winning answer (``-1`` when none).
      votes: how many samples gave the winning answer.
      is_correct: the verdict of sample ``index`` (``False`` when no answer).
      is_tie: another answer had as many votes as the winner.
    """

    answer: str | None
    index: int
    votes: int
    is_correct: bool
    is_tie: bool


def majority_vote(answers: Sequence[str | None], correct: Sequence[bool]) -> MajorityVote:
    """Majority vote with ties broken by the earliest sample index.

    Args:
      answers: ``[n]`` normalised answers; ``None`` (or an empty string) does not vote.
      correct: ``[n]`` verdicts of the same samples.

    Example:
      >>> majority_vote(["2", "3", None, "3", "2"], [False, True, False, True, False])
      MajorityVote(answer='2', index=0, votes=2, is_correct=False, is_tie=True)
    """
    if len(answers) != len(correct):
        raise ValueError(f"{len(answers)} answers but {len(correct)} verdicts")
    counts: dict[str, int] = {}
    first_index: dict[str, int] = {}
    for i, answer in enumerate(answers):
        if answer is None or answer == "":
            continue
        counts[answer] = counts.get(answer, 0) + 1
        first_index.setdefault(answer, i)
    if not counts:
        return MajorityVote(None, -1, 0, False, False)
    top = max(counts.values())
    leaders = [a for a in counts if counts[a] == top]
    winner = min(leaders, key=first_index.__getitem__)
    index = first_index[winner]
    return MajorityVote(winner, index, top, bool(correct[index]), len(leaders) > 1)


def majority_at_k_per_problem(
    answers: Sequence[Sequence[str | None]], correct: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """maj@k over the first ``k`` samples of each problem.

    Returns:
      ``([N] float 0/1 correctness of the vote, [N] bool whether the vote was tied)``.
    """
    correct = _as_correct(correct)
    if len(answers) != correct.shape[0]:
        raise ValueError(f"{len(answers)} answer lists but {correct.shape[0]} problems")
    if not 1 <= k <= correct.shape[1]:
        raise ValueError(f"maj@k needs 1 <= k <= n, got k={k}, n={correct.shape[1]}")
    votes = [majority_vote(list(a)[:k], row[:k]) for a, row in zip(answers, correct, strict=True)]
    return (
        np.array([v.is_correct for v in votes], dtype=np.float64),
        np.array([v.is_tie for v in votes], dtype=bool),
    )


@dataclasses.dataclass(frozen=True)
class EvalReport:
    """Per-problem arrays and their means, keyed like ``pass@1``, ``pass@4``, ``maj@4``.

    Attributes:
      per_problem: name -> ``[N]`` array.
      means: name -> average over problems (what gets logged, e.g. under ``eval/``).
    """

    per_problem: dict[str, np.ndarray]
    means: dict[str, float]


def evaluate_samples(
    correct: np.ndarray,
    answers: Sequence[Sequence[str | None]] | None = None,
    *,
    ks: Sequence[int] = (),
    greedy_correct: np.ndarray | None = None,
) -> EvalReport:
    """All evaluation metrics for ``N`` problems with ``n`` samples each.

    Args:
      correct: ``[N, n]`` bool verdicts.
      answers: ``N`` lists of ``n`` normalised answers (for maj@k); ``None`` skips maj@k.
      ks: the k values for pass@k and maj@k; each must be ``<= n``. ``n`` itself is always
        included.
      greedy_correct: ``[N]`` bool verdicts of one greedy sample per problem, if decoded.

    Returns:
      An :class:`EvalReport` with ``pass@1`` (averaged over the n samples), ``pass@{k}``,
      ``maj@{k}`` and ``maj@{k}_tie_rate`` for each k, and ``greedy_accuracy``.

    Example:
      >>> report = evaluate_samples(
      ...     np.array([[1, 0], [0, 0]], bool), [["4", "5"], [None, "7"]], ks=(1,)
      ... )
      >>> report.means
      {'pass@1': 0.25, 'pass@2': 0.5, 'maj@1': 0.5, 'maj@1_tie_rate': 0.0, 'maj@2': 0.5, 'maj@2_tie_rate': 0.5}
    """
    correct = _as_correct(correct)
    n = correct.shape[1]
    per_problem = {"pass@1": pass_at_1_per_problem(correct)}
    all_ks = sorted({*ks, n})
    for k in all_ks:
        if k != 1:
            per_problem[f"pass@{k}"] = pass_at_k_per_problem(correct, k)
    if answers is not None:
        for k in all_ks:
            is_correct, is_tie = majority_at_k_per_problem(answers, correct, k)
            per_problem[f"maj@{k}"] = is_correct
            per_problem[f"maj@{k}_tie_rate"] = is_tie.astype(np.float64)
    if greedy_correct is not None:
        greedy = np.asarray(greedy_correct, dtype=bool).reshape(-1)
        if greedy.shape[0] != correct.shape[0]:
            raise ValueError(f"{greedy.shape[0]} greedy verdicts for {correct.shape[0]} problems")
        per_problem["greedy_accuracy"] = greedy.astype(np.float64)
    means = {name: float(values.mean()) for name, values in per_problem.items()}
    return EvalReport(per_problem, means)


def _as_correct(correct: np.ndarray) -> np.ndarray:
    correct = np.asarray(correct)
    if correct.ndim != 2 or correct.shape[0] == 0 or correct.shape[1] == 0:
        raise ValueError(f"correct must be a non-empty [N, n] array, got shape {correct.shape}")
    return correct.astype(bool)
