"""``VerifierPool``: verification in worker processes under a hard per-item time limit.

What lives here: the pool (worker lifecycle, chunking, deadlines, restarts), ``BatchHandle``
for asynchronous batches, and ``verify_batch``. The worker's side is ``worker.py``; task logic
is in ``r1jax.tasks``.

Design:

* Workers are fresh interpreters (``python -m r1jax.verifiers.worker``, i.e. spawn semantics;
  they never re-import the caller's ``__main__``) started with ``JAX_PLATFORMS=cpu`` and
  ``CUDA_VISIBLE_DEVICES=""`` in their environment, and they pre-import sympy and Math-Verify.
  Each verification runs in a worker's main thread, so Math-Verify's SIGALRM timeouts work.
* One dispatcher thread in the caller's process owns the workers. Items are sent in chunks to
  amortise IPC; a worker streams verdicts back at least every ``flush_seconds``. If a busy
  worker sends nothing for ``timeout_seconds + flush_seconds`` it is killed (SIGKILL) and
  replaced. The unanswered items of its chunk are then retried one per chunk, so the item that
  hangs is identified: alone, it gets ``Verdict(reason="timeout", score=0)``; a worker that
  dies on a lone item gives it ``reason="error"``. A hanging item thus costs at most twice the
  limit, and every other item is verified normally.
* Workers are recycled after ``max_tasks_per_worker`` items (bounds slow leaks in sympy caches).
* The pool is created by the caller and closed in ``finally`` (or used as a context manager);
  there is no module-level pool. Closing fails unfinished items with ``reason="error"``.
"""

import collections
import contextlib
import dataclasses
import itertools
import math
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from multiprocessing import connection as mp_connection
from types import ModuleType

import r1jax
from r1jax.tasks import verdict as verdict_lib
from r1jax.tasks.verdict import Verdict
from r1jax.verifiers import inprocess

DEFAULT_PRELOAD = ("numpy", "sympy", "math_verify")
_MAX_START_FAILURES = 3


class BatchHandle:
    """The future of a batch submitted with ``VerifierPool.submit_batch``."""

    def __init__(self, size: int):
        self._verdicts: list[Verdict | None] = [None] * size
        self._remaining = size
        self._lock = threading.Lock()
        self._done = threading.Event()
        if size == 0:
            self._done.set()

    def _set(self, position: int, verdict: Verdict) -> None:
        with self._lock:
            if self._verdicts[position] is not None:
                return
            self._verdicts[position] = verdict
            self._remaining -= 1
            if self._remaining == 0:
                self._done.set()

    def done(self) -> bool:
        """Whether every verdict is in."""
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> list[Verdict]:
        """Blocks until the batch is verified and returns its ``[B]`` verdicts in order.

        Raises:
          TimeoutError: if ``timeout`` seconds pass first.
        """
        if not self._done.wait(timeout):
            raise TimeoutError(f"verification batch not done after {timeout} s")
        return list(self._verdicts)


@dataclasses.dataclass
class _Chunk:
    chunk_id: int
    handle: BatchHandle
    positions: list[int]
    items: list[tuple]
    task: object
    options: dict
    isolated: bool = False


@dataclasses.dataclass
class _Worker:
    process: subprocess.Popen
    connection: mp_connection.Connection
    started_at: float
    ready: bool = False
    chunk: _Chunk | None = None
    received: int = 0
    last_message: float = 0.0
    items_done: int = 0


class VerifierPool:
    """Worker processes that verify completions under a hard per-item time limit.

    Args:
      num_workers: worker processes; ``None`` uses ``os.cpu_count()``.
      timeout_seconds: the hard limit for one item (plus ``flush_seconds`` of slack).
      max_tasks_per_worker: a worker is replaced after verifying this many items.
      chunk_size: items per message; ``None`` picks ``ceil(B / (4 * num_workers))`` capped at 64.
      preload: modules each worker imports before it takes work.
      flush_seconds: a busy worker reports at least this often.
      startup_timeout_seconds: a worker that is not ready by then is killed and replaced; after
        3 failed starts in a row the pool fails all work with ``reason="error"``.

    Example:
      >>> problem = {"numbers": [3, 5, 7], "target": 22}
      >>> with VerifierPool(1, timeout_seconds=5, preload=()) as pool:
      ...     handle = pool.submit_batch("countdown", ["<answer>3*5+7</answer>", "no"], [problem] * 2)
      ...     [v.reason for v in handle.result()]
      ['correct', 'no_answer']
    """

    def __init__(
        self,
        num_workers: int | None = None,
        *,
        timeout_seconds: float = 10.0,
        max_tasks_per_worker: int = 10_000,
        chunk_size: int | None = None,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        flush_seconds: float = 0.05,
        startup_timeout_seconds: float = 120.0,
    ):
        self.num_workers = int(num_workers or os.cpu_count() or 1)
        if self.num_workers < 1:
            raise ValueError(f"num_workers must be positive, got {num_workers}")
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        self.timeout_seconds = float(timeout_seconds)
        self.max_tasks_per_worker = int(max_tasks_per_worker)
        self.chunk_size = chunk_size
        self.flush_seconds = float(flush_seconds)
        self.startup_timeout_seconds = float(startup_timeout_seconds)
        self._settings = {
            "sys_path": list(sys.path),
            "preload": list(preload),
            "flush_seconds": self.flush_seconds,
        }
        self._lock = threading.Lock()
        self._pending: collections.deque[_Chunk] = collections.deque()
        self._closing = False
        self._closed = False
        self._broken_reason = ""
        self._start_failures = 0
        self._chunk_ids = itertools.count()
        self._workers: list[_Worker] = []
        self.restarts = 0
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._thread = threading.Thread(target=self._loop, name="r1jax-verifier-pool", daemon=True)
        self._thread.start()

    # -- public API ------------------------------------------------------------------------

    def submit_batch(
        self,
        task: "str | inprocess.VerifyFunction",
        completions: Sequence[str],
        problems: Sequence[dict],
        **options,
    ) -> BatchHandle:
        """Queues ``B`` verifications and returns at once; ``handle.result()`` waits.

        Args:
          task: a name in ``r1jax.tasks.TASKS``, the import path of a module implementing
            ``r1jax.tasks.protocol.Task`` (workers import it by that path, so it must be
            importable from ``sys.path``), a task module, or an importable module-level
            verify function.
          completions: ``[B]`` decoded responses.
          problems: ``[B]`` problems.
          **options: keyword options for the task's ``verify``.
        """
        if len(completions) != len(problems):
            raise ValueError(f"{len(completions)} completions but {len(problems)} problems")
        inprocess.resolve(task)  # unknown names and tasks without verify fail here
        if isinstance(task, ModuleType):
            task = task.__name__  # workers import the module by name
        handle = BatchHandle(len(completions))
        size = self.chunk_size or min(
            64, max(1, math.ceil(len(completions) / (4 * self.num_workers)))
        )
        with self._lock:
            if self._closing:
                raise RuntimeError("VerifierPool is closed")
            if self._broken_reason:
                for position in range(len(completions)):
                    handle._set(position, Verdict.failure(verdict_lib.ERROR, self._broken_reason))
                return handle
            for start in range(0, len(completions), size):
                positions = list(range(start, min(start + size, len(completions))))
                items = [(completions[i], problems[i]) for i in positions]
                self._pending.append(
                    _Chunk(next(self._chunk_ids), handle, positions, items, task, dict(options))
                )
        self._wake()
        return handle

    def verify_batch(self, task, completions, problems, **options) -> list[Verdict]:
        """``submit_batch(...).result()``."""
        return self.submit_batch(task, completions, problems, **options).result()

    def close(self) -> None:
        """Stops the workers; unfinished items get ``reason="error"``. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closing = True
        self._wake()
        self._thread.join()
        self._wake_reader.close()
        self._wake_writer.close()
        self._closed = True

    def __enter__(self) -> "VerifierPool":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- dispatcher thread -----------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # BlockingIOError: already awake; OSError: closing
            self._wake_writer.send(b"x")

    def _loop(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._closing:
                        break
                self._start_workers()
                self._dispatch()
                waitables = [self._wake_reader] + [w.connection for w in self._workers]
                for ready in mp_connection.wait(waitables, timeout=self._wait_seconds()):
                    if ready is self._wake_reader:
                        self._drain_wake()
                        continue
                    for worker in self._workers:
                        if worker.connection is ready:  # absent if removed in this round
                            self._receive(worker)
                            break
                self._check_deadlines()
        except Exception as error:  # never leave callers waiting on a dead dispatcher
            with self._lock:
                self._broken_reason = f"verifier pool failed: {type(error).__name__}: {error}"
        finally:
            for worker in list(self._workers):
                self._stop(worker, graceful=True)
                if worker.chunk is not None:
                    self._fail_rest(worker.chunk, worker.received, "verifier pool closed")
            with self._lock:
                pending, self._pending = list(self._pending), collections.deque()
            for chunk in pending:
                self._fail_rest(chunk, 0, "verifier pool closed")

    def _drain_wake(self) -> None:
        try:
            while self._wake_reader.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _wait_seconds(self) -> float:
        now = time.monotonic()
        deadlines = [now + 1.0]
        for worker in self._workers:
            if not worker.ready:
                deadlines.append(worker.started_at + self.startup_timeout_seconds)
            elif worker.chunk is not None:
                deadlines.append(worker.last_message + self.timeout_seconds + self.flush_seconds)
        return min(max(min(deadlines) - now, 0.001), 1.0)

    def _start_workers(self) -> None:
        if self._broken_reason:
            return
        while len(self._workers) < self.num_workers:
            parent_socket, child_socket = socket.socketpair()
            env = dict(os.environ)
            env["JAX_PLATFORMS"] = "cpu"
            env["CUDA_VISIBLE_DEVICES"] = ""
            package_root = os.path.dirname(os.path.dirname(os.path.abspath(r1jax.__file__)))
            env["PYTHONPATH"] = os.pathsep.join(
                [package_root, *filter(None, [env.get("PYTHONPATH")])]
            )
            try:
                process = subprocess.Popen(
                    [sys.executable, "-m", "r1jax.verifiers.worker", str(child_socket.fileno())],
                    pass_fds=(child_socket.fileno(),),
                    env=env,
                    stdin=subprocess.DEVNULL,
                )
            finally:
                child_socket.close()
            connection = mp_connection.Connection(parent_socket.detach())
            connection.send(self._settings)
            now = time.monotonic()
            self._workers.append(_Worker(process, connection, started_at=now, last_message=now))

    def _dispatch(self) -> None:
        for worker in self._workers:
            if not worker.ready or worker.chunk is not None:
                continue
            with self._lock:
                if not self._pending:
                    return
                chunk = self._pending.popleft()
            try:
                payload = pickle.dumps((chunk.task, chunk.options, chunk.items))
            except Exception as error:
                self._fail_rest(
                    chunk, 0, f"cannot send to a worker: {type(error).__name__}: {error}"
                )
                continue
            try:
                worker.connection.send((chunk.chunk_id, payload))
            except OSError:
                with self._lock:
                    self._pending.appendleft(chunk)
                self._remove(worker, start_failure=False)
                return
            worker.chunk, worker.received = chunk, 0
            worker.last_message = time.monotonic()

    def _receive(self, worker: _Worker) -> None:
        while True:
            try:
                message = worker.connection.recv()
            except (EOFError, OSError, pickle.UnpicklingError):
                self._worker_lost(worker, verdict_lib.ERROR, "verifier worker exited")
                return
            worker.last_message = time.monotonic()
            kind = message[0]
            if kind == "ready":
                worker.ready = True
                self._start_failures = 0
            elif kind in ("results", "failed") and worker.chunk is not None:
                chunk = worker.chunk
                if kind == "failed":
                    self._fail_rest(chunk, worker.received, message[2])
                    worker.received = len(chunk.items)
                else:
                    for verdict in message[2]:
                        if worker.received >= len(chunk.items):
                            break
                        if not isinstance(verdict, Verdict):
                            verdict = Verdict.failure(
                                verdict_lib.ERROR, f"task returned {type(verdict).__name__}"
                            )
                        chunk.handle._set(chunk.positions[worker.received], verdict)
                        worker.received += 1
                if worker.received >= len(chunk.items):
                    worker.items_done += len(chunk.items)
                    worker.chunk = None
                    if worker.items_done >= self.max_tasks_per_worker:
                        self._stop(worker, graceful=True)
                        return
            try:
                if not worker.connection.poll():
                    return
            except OSError:
                return

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            if not worker.ready:
                if now - worker.started_at > self.startup_timeout_seconds:
                    self._remove(worker, start_failure=True)
            elif worker.chunk is not None and (
                now - worker.last_message > self.timeout_seconds + self.flush_seconds
            ):
                self._worker_lost(worker, verdict_lib.TIMEOUT, "hard time limit exceeded")

    def _worker_lost(self, worker: _Worker, reason: str, detail: str) -> None:
        """Kills ``worker``; a lone item gets ``reason``, other unanswered items are retried alone."""
        chunk = worker.chunk
        self._remove(worker, start_failure=not worker.ready)
        if chunk is None:
            return
        remaining = list(range(worker.received, len(chunk.items)))
        if chunk.isolated or len(remaining) == 1:
            chunk.handle._set(chunk.positions[remaining[0]], Verdict.failure(reason, detail))
            for index in remaining[1:]:
                chunk.handle._set(chunk.positions[index], Verdict.failure(reason, detail))
            return
        retries = [
            _Chunk(
                next(self._chunk_ids),
                chunk.handle,
                [chunk.positions[index]],
                [chunk.items[index]],
                chunk.task,
                chunk.options,
                isolated=True,
            )
            for index in remaining
        ]
        with self._lock:
            self._pending.extendleft(reversed(retries))

    def _fail_rest(self, chunk: _Chunk, start: int, detail: str) -> None:
        for position in chunk.positions[start:]:
            chunk.handle._set(position, Verdict.failure(verdict_lib.ERROR, detail))

    def _remove(self, worker: _Worker, *, start_failure: bool) -> None:
        self._stop(worker, graceful=False)
        self.restarts += 1
        if start_failure:
            self._start_failures += 1
            if self._start_failures >= _MAX_START_FAILURES:
                self._broken_reason = "verifier workers fail to start"
                with self._lock:
                    pending, self._pending = list(self._pending), collections.deque()
                for chunk in pending:
                    self._fail_rest(chunk, 0, self._broken_reason)

    def _stop(self, worker: _Worker, *, graceful: bool) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        if graceful:
            with contextlib.suppress(OSError):
                worker.connection.send(None)
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(timeout=2.0)
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
        worker.connection.close()


def verify_batch(
    task: "str | inprocess.VerifyFunction",
    completions: Sequence[str],
    problems: Sequence[dict],
    *,
    timeout_seconds: float = 10.0,
    num_workers: int | None = None,
    pool: VerifierPool | None = None,
    **options,
) -> list[Verdict]:
    """Verifies ``B`` completions and returns their ``[B]`` verdicts in order.

    Args:
      task: a task name, a task module's import path, or an importable verify function.
      completions: ``[B]`` decoded responses.
      problems: ``[B]`` problems.
      timeout_seconds: per-item hard limit of a pool created here.
      num_workers: ``0`` verifies in this process without a time limit (exceptions become
        ``"error"`` verdicts); otherwise the size of a pool created and closed here.
      pool: an existing pool to use (``timeout_seconds`` and ``num_workers`` are then ignored).
      **options: keyword options for the task's ``verify``.

    Example:
      >>> verify_batch("multiplication", ["<answer>6</answer>"], [{"target": 6}], num_workers=0)[0].score
      1.0
    """
    if len(completions) != len(problems):
        raise ValueError(f"{len(completions)} completions but {len(problems)} problems")
    if pool is not None:
        return pool.verify_batch(task, completions, problems, **options)
    if num_workers == 0:
        return inprocess.verify_each(task, completions, problems, **options)
    pool = VerifierPool(num_workers, timeout_seconds=timeout_seconds)
    try:
        return pool.verify_batch(task, completions, problems, **options)
    finally:
        pool.close()
