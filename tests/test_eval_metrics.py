"""Tests for r1jax.eval_metrics against brute-force enumeration and hand-worked votes."""

import itertools
import math

import numpy as np
import pytest

from r1jax import eval_metrics


def _brute_force_pass_at_k(n, c, k):
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_pass_at_k_matches_enumeration_of_subsets(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            expected = _brute_force_pass_at_k(n, c, k)
            assert eval_metrics.pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)
            assert expected == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_pass_at_k_is_stable_for_large_n():
    value = eval_metrics.pass_at_k(1000, 3, 64)
    assert 0 < value < 1 and math.isfinite(value)
    assert value == pytest.approx(1 - math.comb(997, 64) / math.comb(1000, 64), rel=1e-9)


def test_pass_at_k_rejects_bad_arguments():
    with pytest.raises(ValueError, match="k <= n"):
        eval_metrics.pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="k <= n"):
        eval_metrics.pass_at_k(4, 1, 0)
    with pytest.raises(ValueError, match="outside"):
        eval_metrics.pass_at_k(4, 5, 1)


def test_pass_at_1_is_the_mean_and_equals_pass_at_k_for_k1():
    rng = np.random.default_rng(0)
    correct = rng.random((6, 5)) < 0.4
    np.testing.assert_allclose(
        eval_metrics.pass_at_1_per_problem(correct),
        eval_metrics.pass_at_k_per_problem(correct, 1),
    )


def test_majority_vote_rules():
    vote = eval_metrics.majority_vote
    assert vote(["1", "2", "2"], [True, False, False]) == eval_metrics.MajorityVote(
        "2", 1, 2, False, False
    )
    # No-answer samples do not vote, even when they are the most common.
    assert vote([None, None, "", "5"], [False, False, False, True]).answer == "5"
    # Ties go to the earliest sample index.
    tied = vote(["b", "a", "a", "b"], [False, True, True, False])
    assert (tied.answer, tied.index, tied.is_tie, tied.is_correct) == ("b", 0, True, False)
    nobody = vote([None, None], [False, False])
    assert (nobody.answer, nobody.index, nobody.is_correct, nobody.is_tie) == (
        None,
        -1,
        False,
        False,
    )
    with pytest.raises(ValueError):
        vote(["1"], [True, False])


def test_evaluate_samples_per_problem_and_means():
    correct = np.array([[1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], bool)
    answers = [["3", "3", "4", "4"], ["1", None, "2", "9"], [None, None, None, None]]
    report = eval_metrics.evaluate_samples(
        correct, answers, ks=(1, 2), greedy_correct=np.array([True, False, False])
    )
    np.testing.assert_allclose(report.per_problem["pass@1"], [0.5, 0.25, 0.0])
    np.testing.assert_allclose(report.per_problem["pass@2"], [5 / 6, 0.5, 0.0])
    np.testing.assert_allclose(report.per_problem["pass@4"], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(report.per_problem["maj@1"], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(report.per_problem["maj@2"], [1.0, 0.0, 0.0])
    # maj@4: problem 0 ties 3 vs 4 -> "3" (earliest), correct; problem 1 ties 1/2/9 -> "1".
    np.testing.assert_allclose(report.per_problem["maj@4"], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(report.per_problem["maj@4_tie_rate"], [1.0, 1.0, 0.0])
    assert report.means["pass@1"] == pytest.approx(0.25)
    assert report.means["greedy_accuracy"] == pytest.approx(1 / 3)
    assert set(report.means) == set(report.per_problem)


def test_evaluate_samples_checks_shapes():
    with pytest.raises(ValueError, match=r"\[N, n\]"):
        eval_metrics.evaluate_samples(np.zeros(3, bool))
    with pytest.raises(ValueError, match="k <= n"):
        eval_metrics.evaluate_samples(np.zeros((2, 2), bool), ks=(3,))
    with pytest.raises(ValueError, match="greedy"):
        eval_metrics.evaluate_samples(np.zeros((2, 2), bool), greedy_correct=np.zeros(3, bool))
    with pytest.raises(ValueError, match="answer lists"):
        eval_metrics.evaluate_samples(np.zeros((2, 2), bool), [["1", "2"]])
