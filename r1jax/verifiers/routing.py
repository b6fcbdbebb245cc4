"""Verification of a batch whose rows belong to different tasks: each row goes to its own
task's verifier through the same pool, and the verdicts come back in row order.

A row's task is a field of its problem (``task_key``, e.g. ``"mixture_task"`` that
`r1jax.data.mixture` writes); a `Route` says which verifier (task name or import path) and
which ``verify`` options it gets. `submit_by_task` returns at once, like
`VerifierPool.submit_batch`, so the device keeps working while the workers verify.

Not here: the pool itself (``pool.py``), the tasks' rules (`r1jax.tasks`).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from r1jax.tasks.verdict import Verdict


@dataclasses.dataclass(frozen=True)
class Route:
    """How one task's completions are verified.

    Attributes:
      task: a name in ``r1jax.tasks.TASKS`` or the import path of a task module.
      options: keyword options of its ``verify``.
    """

    task: str
    options: dict = dataclasses.field(default_factory=dict)


class RoutedHandle:
    """The verdicts of one batch verified as several per-task pool batches, in row order."""

    def __init__(self, size: int, parts: list[tuple[list[int], Any]]):
        self._size, self._parts = size, parts

    def done(self) -> bool:
        """Whether every verdict is in."""
        return all(handle.done() for _, handle in self._parts)

    def result(self, timeout: float | None = None) -> list[Verdict]:
        """Blocks until every part is verified; the ``[B]`` verdicts in the submitted order."""
        verdicts: list[Verdict | None] = [None] * self._size
        for positions, handle in self._parts:
            for position, verdict in zip(positions, handle.result(timeout), strict=True):
                verdicts[position] = verdict
        return verdicts


def submit_by_task(
    pool: Any,
    routes: Mapping[str, Route],
    completions: Sequence[str],
    problems: Sequence[dict],
    *,
    task_key: str,
) -> RoutedHandle:
    """Submits each row to the verifier of its problem's task; returns at once.

    Args:
      pool: a `r1jax.verifiers.VerifierPool` (anything with its ``submit_batch``).
      routes: task name (the value of ``problem[task_key]``) -> `Route`.
      completions: ``[B]`` decoded completions.
      problems: ``[B]`` problems, each with ``task_key``.
      task_key: the problem field naming its task.

    Returns:
      A handle whose ``result()`` is the ``[B]`` verdicts in row order.

    Raises:
      ValueError: a problem whose task has no route (the message names the row).

    Example:
      >>> from r1jax.verifiers import VerifierPool
      >>> routes = {"c": Route("countdown"), "m": Route("multiplication")}
      >>> problems = [{"t": "c", "numbers": [3, 5], "target": 8}, {"t": "m", "answer": "6"}]
      >>> with VerifierPool(1) as pool:
      ...     handle = submit_by_task(pool, routes, ["<answer>3+5</answer>"] * 2, problems,
      ...                             task_key="t")
      ...     [verdict.correct for verdict in handle.result()]
      [True, False]
    """
    if len(completions) != len(problems):
        raise ValueError(f"{len(completions)} completions but {len(problems)} problems")
    rows: dict[str, list[int]] = collections.defaultdict(list)
    for position, problem in enumerate(problems):
        name = problem.get(task_key) if isinstance(problem, Mapping) else None
        if name not in routes:
            raise ValueError(
                f"row {position}: its problem's {task_key!r} is {name!r}, not one of "
                f"{sorted(routes)}"
            )
        rows[name].append(position)
    parts = []
    for name, positions in rows.items():
        route = routes[name]
        handle = pool.submit_batch(
            route.task,
            [completions[i] for i in positions],
            [problems[i] for i in positions],
            **route.options,
        )
        parts.append((positions, handle))
    return RoutedHandle(len(problems), parts)
