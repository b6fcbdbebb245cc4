"""Starts worker processes of a localhost ``jax.distributed`` test and collects their output."""

import os
import socket
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port free on localhost right now (the coordinator's)."""
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def run_workers(commands: list[list[str]], timeout: float) -> list[str]:
    """Runs one process per command from the repo root, without the test's ``XLA_FLAGS`` (each
    worker sets its own device count), and returns their outputs once all exited with 0.

    Raises:
      AssertionError: a worker failed (its output's tail in the message).
      subprocess.TimeoutExpired: a worker ran past ``timeout`` seconds (all are killed).
    """
    env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    workers = [
        subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for command in commands
    ]
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=timeout)[0])
    finally:
        for worker in workers:
            worker.kill()
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-4000:]
    return outputs
