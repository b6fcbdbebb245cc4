"""Tests for r1jax.verifiers.routing: each row of a mixed batch meets its own task's verifier."""

import numpy as np
import pytest

from r1jax.tasks import countdown, knights_knaves
from r1jax.verifiers import VerifierPool, routing

ROUTES = {
    "countdown": routing.Route("countdown"),
    "kk": routing.Route("knights_knaves", {"template": "base"}),
}


def _mixed_rows(count=12):
    """Alternating countdown / Knights & Knaves problems with their reference completions."""
    problems, completions = [], []
    for i in range(count):
        rng = np.random.default_rng([3, i])
        if i % 2:
            problem = {**knights_knaves.generate(rng, n_people=2), "task": "kk"}
            completions.append(knights_knaves.reference_completion(problem))
        else:
            problem = {**countdown.generate(rng, num_numbers=3), "task": "countdown"}
            completions.append(countdown.reference_completion(problem))
        problems.append(problem)
    return completions, problems


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(2, timeout_seconds=5.0, preload=()) as pool:
        yield pool


def test_every_row_is_verified_by_its_own_task_in_row_order(pool):
    completions, problems = _mixed_rows()
    verdicts = routing.submit_by_task(pool, ROUTES, completions, problems, task_key="task").result()
    assert [v.correct for v in verdicts] == [True] * len(problems)
    # The same rows sent to one task's verifier fail on the other task's rows.
    wrong = routing.submit_by_task(
        pool,
        {"countdown": ROUTES["countdown"], "kk": ROUTES["countdown"]},
        completions,
        problems,
        task_key="task",
    ).result()
    assert [v.correct for v in wrong] == [i % 2 == 0 for i in range(len(problems))]


def test_options_reach_only_their_task(pool):
    completions, problems = _mixed_rows(4)
    routes = {**ROUTES, "kk": routing.Route("knights_knaves", {"correct_reward": 7.0})}
    verdicts = routing.submit_by_task(pool, routes, completions, problems, task_key="task").result()
    assert [v.score for v in verdicts[1::2]] == [7.0 + knights_knaves.FORMAT_REWARD] * 2
    assert [v.score for v in verdicts[0::2]] == [countdown.CORRECT_SCORE] * 2


def test_a_row_without_a_route_is_an_error(pool):
    completions, problems = _mixed_rows(2)
    problems[1] = {**problems[1], "task": "math"}
    with pytest.raises(ValueError, match=r"row 1.*'math'"):
        routing.submit_by_task(pool, ROUTES, completions, problems, task_key="task")
