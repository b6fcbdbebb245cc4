"""Host-side tasks: one module per task with a seeded generator, prompt templates and
``verify(completion, problem) -> Verdict``.

Modules: ``countdown``, ``multiplication``, ``knights_knaves``, ``math`` (with
``math_answers``), ``format``; shared pieces: ``verdict`` (the ``Verdict`` type) and
``expression`` (the safe arithmetic parser). Nothing here imports jax: verifiers run in plain
CPU worker processes (``r1jax.verifiers``). Importing this package imports no task module.
"""

from r1jax.tasks.verdict import Verdict

__all__ = ["Verdict"]
