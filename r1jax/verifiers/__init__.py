"""Running verifiers: in-process ``verify``, the ``VerifierPool`` and ``verify_batch``.

Modules: ``inprocess`` (``verify`` in this process), ``pool`` (worker processes with hard
time limits), ``worker`` (the worker's main loop), ``reflection`` (self-reflection metrics).
Task rules and the task table live in ``r1jax.tasks`` (``TASKS`` is re-exported here for
compatibility; use ``r1jax.tasks.TASKS`` / ``resolve_task``). Nothing here imports jax.
"""

from r1jax.tasks import TASKS
from r1jax.tasks.verdict import Verdict
from r1jax.verifiers.inprocess import verify
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
