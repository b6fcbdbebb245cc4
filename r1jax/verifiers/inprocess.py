"""In-process verification: the task table and ``verify(task, completion, problem)``.

``TASKS`` maps task names to task modules (each has ``verify(completion, problem, **options)``).
A task may also be given as a callable with that signature (it must be importable by name to be
used through ``VerifierPool``). No time limit is enforced here; ``pool.py`` adds one.
"""

from collections.abc import Callable, Sequence

from r1jax.tasks import countdown, knights_knaves, math, multiplication
from r1jax.tasks import format as format_task
from r1jax.tasks import verdict as verdict_lib
from r1jax.tasks.verdict import Verdict

TASKS = {
    "countdown": countdown,
    "multiplication": multiplication,
    "arithmetic": multiplication,
    "knights_knaves": knights_knaves,
    "kk": knights_knaves,
    "math": math,
    "format": format_task,
}
"""Task name -> module with ``verify``; ``arithmetic`` and ``kk`` are aliases."""

VerifyFunction = Callable[..., Verdict]


def resolve(task: "str | VerifyFunction") -> VerifyFunction:
    """The verify function for a task name or callable."""
    if callable(task):
        return task
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {sorted(TASKS)}")
    return TASKS[task].verify


def verify(task: "str | VerifyFunction", completion: str, problem: dict, **options) -> Verdict:
    """Verifies one completion in this process (no time limit).

    Errors in the problem or options propagate; model output alone never raises.

    Example:
      >>> verify("countdown", "</think> <answer>3 * 5 + 7</answer>", {"numbers": [3, 5, 7], "target": 22}).correct
      True
    """
    return resolve(task)(completion, problem, **options)


def error_verdict(error: BaseException) -> Verdict:
    """A zero-reward ``"error"`` verdict naming the exception."""
    try:
        message = f"{type(error).__name__}: {error}"
    except Exception:  # a hostile __str__
        message = type(error).__name__
    return Verdict.failure(verdict_lib.ERROR, message)


def verify_each(
    task: "str | VerifyFunction", completions: Sequence[str], problems: Sequence[dict], **options
) -> list[Verdict]:
    """Verifies pairs in this process, turning any exception into an ``"error"`` verdict."""
    function = resolve(task)
    verdicts = []
    for completion, problem in zip(completions, problems, strict=True):
        try:
            verdicts.append(function(completion, problem, **options))
        except Exception as error:
            verdicts.append(error_verdict(error))
    return verdicts
