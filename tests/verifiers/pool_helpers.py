"""Test-only verify functions, importable by pool workers: hang, crash or echo on request."""

import os
import time

from r1jax.tasks.verdict import Verdict


def misbehaving_verify(completion, problem, **options):
    if completion == "hang":
        time.sleep(3600)
    if completion == "crash":
        os._exit(3)
    if completion == "raise":
        raise RuntimeError("boom")
    if completion == "not a verdict":
        return 42
    correct = completion == problem["answer"]
    return Verdict(
        correct=correct,
        well_formed=True,
        reason="correct" if correct else "wrong",
        score=float(correct),
        answer=completion,
        detail=os.environ.get("JAX_PLATFORMS", "")
        + "|"
        + os.environ.get("CUDA_VISIBLE_DEVICES", "-"),
    )
