"""In-process verification: ``verify(task, completion, problem)`` and ``verify_each``.

Tasks come from ``r1jax.tasks``: a registry name (``TASKS``), the import path of a user module
that implements ``r1jax.tasks.protocol.Task``, a task module, or a bare callable with the
signature of ``verify`` (importable by name to be used through ``VerifierPool``). ``TASKS`` is
re-exported here for compatibility. No time limit is enforced here; ``pool.py`` adds one.
"""

from collections.abc import Callable, Sequence
from types import ModuleType

from r1jax.tasks import TASKS, resolve_task
from r1jax.tasks import verdict as verdict_lib
from r1jax.tasks.verdict import Verdict

__all__ = ["TASKS", "VerifyFunction", "error_verdict", "resolve", "verify", "verify_each"]

VerifyFunction = Callable[..., Verdict]


def resolve(task: "str | ModuleType | VerifyFunction") -> VerifyFunction:
    """The verify function of a task name, import path, task module/object, or a callable.

    Raises:
      ValueError: an unknown name; TypeError: a task without ``verify(completion, problem)``.
    """
    if callable(task) and not hasattr(task, "verify"):
        return task
    return resolve_task(task).verify


def verify(
    task: "str | ModuleType | VerifyFunction", completion: str, problem: dict, **options
) -> Verdict:
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
    task: "str | ModuleType | VerifyFunction",
    completions: Sequence[str],
    problems: Sequence[dict],
    **options,
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
