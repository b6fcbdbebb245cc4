"""Running verifiers: in-process ``verify``, the ``VerifierPool`` and ``verify_batch``.

Modules: ``inprocess`` (the task table and ``verify``), ``pool`` (worker processes with hard
time limits), ``worker`` (the worker's main loop), ``reflection`` (self-reflection metrics).
Task rules live in ``r1jax.tasks``. Nothing here imports jax.
"""

from r1jax.tasks.verdict import Verdict
from r1jax.verifiers.inprocess import TASKS, verify
from r1jax.verifiers.pool import BatchHandle, VerifierPool, verify_batch
from r1jax.verifiers.reflection import reflection_stats

__all__ = [
    "TASKS",
    "BatchHandle",
    "Verdict",
    "VerifierPool",
    "reflection_stats",
    "verify",
    "verify_batch",
]
