"""Held-out problems that never occur in training: a procedural task's problem space split by a
hash of each problem.

Drawing held-out problems from another generator seed (the default) keeps the two streams
unrelated, but a small problem space repeats itself: 3-digit x 1-digit multiplication has 8,100
problems, so a few thousand training draws cover most of any evaluation set. With
``data.heldout_fraction = f > 0`` a problem is held out when the hash of its identity
(`problem_key`) falls in the lowest fraction ``f`` of the hash range (`heldout_score`). Training
(the RL prompts, the warm start's traces, curriculum stages, a from-scratch tokenizer's text)
draws only the other problems and evaluation only held-out ones, whatever the seeds, so the two
sets are disjoint by construction.

`split_task` wraps a task so that its ``generate`` keeps drawing from the record's own generator
until a problem of the wanted side comes up: a record is still a function of ``(seed, index)``,
so sharding, shuffling and resuming are unchanged. Everything else is the task's own.

A task says what makes two problems the same with ``problem_key(problem) -> str`` (countdown:
the multiset of numbers and the target, whatever the order or the witness); without it the key
is the problem's JSON with sorted keys.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

MAX_DRAWS = 10_000
"""Draws per record before `PartitionedTask.generate` gives up (a side too rare to reach)."""


def problem_key(task: Any, problem: dict) -> str:
    """The identity of ``problem``: ``task.problem_key(problem)``, else its sorted JSON.

    Example:
      >>> problem_key(object(), {"b": 2, "a": 1})
      '{"a": 1, "b": 2}'
    """
    key_fn = getattr(task, "problem_key", None)
    if key_fn is not None:
        return str(key_fn(problem))
    return json.dumps(problem, sort_keys=True, default=str)


def heldout_score(key: str) -> float:
    """A uniform number in ``[0, 1)`` fixed by ``key`` (the first 8 bytes of its SHA-256).

    Example:
      >>> heldout_score("7 * 8") == heldout_score("7 * 8"), 0.0 <= heldout_score("7 * 8") < 1.0
      (True, True)
    """
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_heldout(task: Any, problem: dict, fraction: float) -> bool:
    """Whether ``problem`` belongs to the held-out share ``fraction`` of the problem space."""
    return heldout_score(problem_key(task, problem)) < fraction


class PartitionedTask:
    """``task`` whose ``generate`` only returns problems of one side of the partition.

    Args:
      task: the task (a module or any object of the task protocol) with ``generate``.
      fraction: the held-out share of the problem space, in ``(0, 1)``.
      heldout: True for the evaluation side, False for the training side.

    Every attribute but ``generate`` is the task's own.
    """

    def __init__(self, task: Any, fraction: float, *, heldout: bool):
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")
        self.task, self.fraction, self.heldout = task, float(fraction), bool(heldout)

    def __getattr__(self, name: str) -> Any:
        if name == "task":  # not set yet (copy, pickle): never recurse
            raise AttributeError(name)
        return getattr(self.task, name)

    def generate(self, rng, **options: Any) -> dict:
        """The first problem of the wanted side that ``rng`` draws.

        Raises:
          ValueError: no problem of that side in `MAX_DRAWS` draws (the options leave too
            small a problem space on this side).
        """
        for _ in range(MAX_DRAWS):
            problem = self.task.generate(rng, **options)
            if is_heldout(self.task, problem, self.fraction) == self.heldout:
                return problem
        side = "held-out" if self.heldout else "training"
        raise ValueError(
            f"no {side} problem in {MAX_DRAWS} draws of {getattr(self.task, '__name__', self.task)}"
            f" with options {options} and data.heldout_fraction={self.fraction}"
        )

    def __repr__(self) -> str:
        side = "held-out" if self.heldout else "training"
        return f"PartitionedTask({self.task!r}, {side} side of {self.fraction})"


def base_task(task: Any) -> Any:
    """The task under any `PartitionedTask` wrapper."""
    return task.task if isinstance(task, PartitionedTask) else task


def distinct_problems(source: Any, task: Any, count: int, *, max_draws: int) -> list[dict]:
    """The first ``count`` problems of ``source`` whose `problem_key` differ, in order.

    A procedural source draws with replacement, so ``count`` records of a small problem space
    (or of its held-out share) repeat some problems; an evaluation reported as "N problems"
    should hold N different ones.

    Args:
      source: random-access problems (``source[i]``, ``len(source)``).
      task: the task whose `problem_key` says when two problems are the same.
      count: distinct problems wanted.
      max_draws: records read at most before giving up.

    Raises:
      ValueError: fewer than ``count`` distinct problems in the first ``max_draws`` records
        (or in the whole source), with how many were found.

    Example:
      >>> distinct_problems([{"a": 1}, {"a": 1}, {"a": 2}], object(), 2, max_draws=10)
      [{'a': 1}, {'a': 2}]
    """
    seen: set[str] = set()
    problems: list[dict] = []
    draws = min(max_draws, len(source))
    for index in range(draws):
        problem = source[index]
        key = problem_key(base_task(task), problem)
        if key not in seen:
            seen.add(key)
            problems.append(problem)
            if len(problems) == count:
                return problems
    raise ValueError(f"only {len(problems)} distinct problems in {draws} draws, {count} wanted")


def split_task(task: Any, fraction: float, *, heldout: bool) -> Any:
    """``task`` restricted to one side of the partition; ``task`` itself when ``fraction`` is 0."""
    task = base_task(task)
    if not fraction:
        return task
    return PartitionedTask(task, fraction, heldout=heldout)
