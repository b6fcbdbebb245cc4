"""What a task is: the ``Task`` protocol, its optional parts, and the check a task must pass.

A task is any object with these attributes, usually a module (``r1jax.tasks.countdown``) or a
user module given by import path (``mypkg.my_task``). Only ``verify`` is required; the others
enable more of the trainer:

* ``verify(completion, problem, **options) -> Verdict`` (required): scores one decoded
  response. It is a pure function of strings and never raises on model output (bad problems or
  options may raise). It runs in the verifier worker processes (``r1jax.verifiers``), which
  import the task by name, so it must not need jax or anything built in the trainer.
* ``generate(rng, **options) -> dict``: a problem drawn from a ``numpy.random.Generator``; the
  problem is a function of the generator's state. Needed for procedural data.
* ``prompt(problem, *, template=...) -> str`` with ``TEMPLATES`` (name -> template text): the
  task's own prompt wording, byte for byte. Without it, prompts come from a chat template and
  ``user_message(problem) -> str`` (or the problem's ``"question"``).
* ``reference_completion(problem, rng=None, *, method=...) -> str``: a worked response the
  task's ``verify`` scores correct under its default template (a supervised warm start).
* ``problem_key(problem) -> str``: what makes two generated problems the same, for
  ``data.heldout_fraction``'s split (`r1jax.data.partition`); without it, the problem's JSON.

What does not live here: the registry (``r1jax.tasks.TASKS``) and ``resolve_task``, in the
package's ``__init__``.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, runtime_checkable

import numpy as np

from r1jax.tasks.verdict import Verdict

OPTIONAL_PARTS = {
    "generate": "generate(rng, **options)",
    "prompt": "prompt(problem, template=...)",
    "reference_completion": "reference_completion(problem, rng)",
    "user_message": "user_message(problem)",
}
"""Optional task functions -> the call that the error messages show."""


@runtime_checkable
class Task(Protocol):
    """The one thing every task provides: ``verify``."""

    def verify(self, completion: str, problem: dict, **options: Any) -> Verdict: ...


@runtime_checkable
class GeneratesProblems(Protocol):
    """A task with a seeded problem generator (procedural data)."""

    def generate(self, rng: np.random.Generator, **options: Any) -> dict: ...


@runtime_checkable
class HasPrompts(Protocol):
    """A task with its own prompt templates."""

    TEMPLATES: dict[str, str]

    def prompt(self, problem: dict, *, template: str = ...) -> str: ...


@runtime_checkable
class HasReferenceCompletions(Protocol):
    """A task that writes worked responses for a supervised warm start."""

    def reference_completion(
        self, problem: dict, rng: np.random.Generator | None = None, **options: Any
    ) -> str: ...


def _takes_positional(function: Any, count: int) -> bool:
    """Whether ``function`` can be called with ``count`` positional arguments."""
    try:
        inspect.signature(function).bind(*([None] * count))
    except TypeError:
        return False
    except ValueError:  # no signature (some builtins): assume it does
        return True
    return True


def check_task(task: Any, name: str, require: tuple[str, ...] = ()) -> Any:
    """Returns ``task`` if it has ``verify(completion, problem)`` and every part in ``require``.

    Args:
      task: a module or object.
      name: how the task was named, for error messages.
      require: optional parts this caller needs (keys of ``OPTIONAL_PARTS``).

    Raises:
      TypeError: naming the first missing part, e.g. ``task 'mypkg.x' has no
        verify(completion, problem)``.

    Example:
      >>> import types
      >>> check_task(types.SimpleNamespace(), "empty")
      Traceback (most recent call last):
      ...
      TypeError: task 'empty' has no verify(completion, problem) (a function that returns r1jax.tasks.Verdict)
    """
    verify = getattr(task, "verify", None)
    if not callable(verify) or not _takes_positional(verify, 2):
        raise TypeError(
            f"task {name!r} has no verify(completion, problem) "
            "(a function that returns r1jax.tasks.Verdict)"
        )
    for part in require:
        if part not in OPTIONAL_PARTS:
            raise ValueError(f"unknown task part {part!r}; known: {sorted(OPTIONAL_PARTS)}")
        function = getattr(task, part, None)
        arguments = 2 if part == "reference_completion" else 1
        if not callable(function) or not _takes_positional(function, arguments):
            raise TypeError(f"task {name!r} has no {OPTIONAL_PARTS[part]}")
    if "prompt" in require and not isinstance(getattr(task, "TEMPLATES", None), dict):
        raise TypeError(f"task {name!r} has prompt() but no TEMPLATES dict of template names")
    return task
