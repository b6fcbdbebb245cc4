"""Host-side tasks: one module per task with a seeded generator, prompt templates and
``verify(completion, problem) -> Verdict``, and the table of task names.

Modules: ``countdown``, ``multiplication``, ``knights_knaves``, ``math`` (with
``math_answers`` and the procedural ``math_problems``), ``format``; shared pieces: ``verdict`` (the ``Verdict`` type), ``protocol``
(what a task provides) and ``expression`` (the safe arithmetic parser). ``TASKS`` names the
built-in tasks; ``resolve_task`` also accepts the import path of a user module that implements
``protocol.Task``. Nothing here imports jax: verifiers run in plain CPU worker processes
(``r1jax.verifiers``), which import this package and never the trainer.
"""

import importlib
from types import ModuleType
from typing import Any

from r1jax.tasks import countdown, knights_knaves, math, multiplication
from r1jax.tasks import format as format_task
from r1jax.tasks.protocol import (
    GeneratesProblems,
    HasPrompts,
    HasReferenceCompletions,
    Task,
    check_task,
)
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
"""Task name -> task module; ``arithmetic`` and ``kk`` are aliases."""


def _import_task(name: str) -> Any:
    """``pkg.module`` or ``pkg.module:attribute`` -> the object, or ``None`` if not found."""
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        # Only "this module does not exist" means "not a task path"; a module that exists but
        # fails to import its own dependencies is an error worth showing as it is.
        missing = error.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            return None
        raise
    if not attribute:
        return module
    if not hasattr(module, attribute):
        raise ValueError(f"task {name!r}: module {module_name!r} has no attribute {attribute!r}")
    return getattr(module, attribute)


def resolve_task(task: "str | ModuleType | Any", *, require: tuple[str, ...] = ()) -> Any:
    """The task for a registry name, an import path, or a task object.

    Args:
      task: a name in ``TASKS``; an import path of a module implementing ``protocol.Task``
        (``"mypkg.my_task"``) or of an object in one (``"mypkg.tasks:my_task"``); or the module
        or object itself.
      require: optional parts the caller needs, e.g. ``("generate",)`` for procedural data
        (see ``protocol.OPTIONAL_PARTS``).

    Returns:
      The task (a module or object with ``verify``).

    Raises:
      ValueError: the name is neither in ``TASKS`` nor importable.
      TypeError: the task lacks ``verify(completion, problem)`` or a required part; the
        message names it.

    Example:
      >>> resolve_task("kk") is knights_knaves
      True
      >>> resolve_task("r1jax.tasks.countdown", require=("generate",)) is countdown
      True
    """
    if not isinstance(task, str):
        name = getattr(task, "__name__", type(task).__name__)
        return check_task(task, name, require)
    if task in TASKS:
        return check_task(TASKS[task], task, require)
    found = _import_task(task) if task and not task.startswith(".") else None
    if found is None:
        raise ValueError(
            f"unknown task {task!r}: not one of {sorted(TASKS)} and not an importable module "
            "(give a registry name or an import path such as 'mypkg.my_task')"
        )
    return check_task(found, task, require)


__all__ = [
    "TASKS",
    "GeneratesProblems",
    "HasPrompts",
    "HasReferenceCompletions",
    "Task",
    "Verdict",
    "check_task",
    "resolve_task",
]
