"""The verifier worker process: ``python -m r1jax.verifiers.worker FD``.

Started by ``VerifierPool`` with a socket on file descriptor ``FD`` and an environment that
hides accelerators (``JAX_PLATFORMS=cpu``, ``CUDA_VISIBLE_DEVICES=""``). It receives its
settings, pre-imports the heavy parsers, says it is ready, then serves chunks: for each item it
runs the task's ``verify`` in its main thread (so Math-Verify's SIGALRM timeouts work) and
streams the verdicts back, at least every ``flush_seconds`` and at the end of each chunk.

Protocol (pickled tuples over a ``multiprocessing.connection.Connection``):
parent -> worker: ``{"sys_path": [...], "preload": [...], "flush_seconds": float}`` once,
then ``(chunk_id, payload)`` with ``payload = pickle.dumps((task, options, items))`` and
``items = [(completion, problem), ...]``, or ``None`` to exit. Worker -> parent:
``("ready", pid)`` once, then ``("results", chunk_id, [verdict, ...])`` in item order, or
``("failed", chunk_id, message)`` when the payload cannot be loaded.
"""

import importlib
import os
import pickle
import signal
import sys
import time
from multiprocessing.connection import Connection

from r1jax.verifiers import inprocess


def _preload(module_names) -> None:
    for name in module_names:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    if "math_verify" in module_names:
        from r1jax.tasks import math_answers

        # Loads the grammar; the worker runs in its main thread, so the signal timeout works.
        math_answers.answers_match("x+1", "1+x", timeout_seconds=5.0)


def serve(connection: Connection, flush_seconds: float) -> None:
    """Answers chunks until ``None`` or end of file."""
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        chunk_id, payload = message
        try:
            task, options, items = pickle.loads(payload)
            function = inprocess.resolve(task)
        except Exception as error:
            connection.send(("failed", chunk_id, str(inprocess.error_verdict(error).detail)))
            continue
        buffer = []
        last_flush = time.monotonic()
        for completion, problem in items:
            try:
                verdict = function(completion, problem, **options)
            except Exception as error:
                verdict = inprocess.error_verdict(error)
            buffer.append(verdict)
            if time.monotonic() - last_flush >= flush_seconds:
                connection.send(("results", chunk_id, buffer))
                buffer = []
                last_flush = time.monotonic()
        if buffer:
            connection.send(("results", chunk_id, buffer))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    connection = Connection(int(argv[1]))
    settings = connection.recv()
    for path in settings["sys_path"]:
        if path not in sys.path:
            sys.path.append(path)
    _preload(settings["preload"])
    connection.send(("ready", os.getpid()))
    serve(connection, settings["flush_seconds"])


if __name__ == "__main__":
    main()
