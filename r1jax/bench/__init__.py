"""Benchmarks: ``python -m r1jax.bench {sample,step,verify,async} ...``.

Each subcommand lives in its own module (``sample.py``, ``step.py``, ``verify.py``,
``async_steps.py``) that defines ``add_arguments(parser)`` and ``run(args) -> dict``. ``run``
prints a human-readable report and returns the measured figures; ``--json`` prints them as one
JSON object instead.
"""
