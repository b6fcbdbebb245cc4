"""Checkpoints of the training state (orbax) and a SIGTERM guard for clean preemption.

A checkpoint at ``directory/<step>/`` holds two items:

- ``train_state``: the array pytree (policy, reference, optimizer state, step), saved with
  ``ocp.args.StandardSave`` and restored with ``StandardRestore`` straight into the shardings
  of an abstract target (``jax.ShapeDtypeStruct`` leaves with ``sharding=``);
- ``host_state``: a JSON dict of host-side state (data iterator state, RNG seeds, curriculum
  stage, config hash ...), saved with ``JsonSave``.

Before restoring, the saved tree is compared with the target: missing or unexpected leaves,
shape and dtype mismatches and a different ``config_hash`` raise :class:`CheckpointError`
naming the directory and what differs. Unreadable files raise it too. A damaged checkpoint
never turns into a silent fresh start.

What does not live here: deciding when to save (the loop calls :meth:`Checkpointer.save`
every step and orbax keeps only multiples of ``save_every``), building the train state, and
HF safetensors import/export (``models/hf.py``).
"""

from __future__ import annotations

import os
import signal
import threading
import types
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

TRAIN_STATE = "train_state"
HOST_STATE = "host_state"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not match what the run expects."""


def _path_names(path: tuple) -> tuple[str, ...]:
    """A key path as plain strings, so dataclass fields and dict keys compare equal."""
    names = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                names.append(str(getattr(entry, attr)))
                break
        else:
            names.append(str(entry))
    return tuple(names)


def _leaf_table(tree: Any, is_leaf=None) -> dict[tuple[str, ...], Any]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    return {_path_names(path): leaf for path, leaf in leaves}


def _describe(paths: Iterable[tuple[str, ...]], limit: int = 10) -> str:
    paths = sorted(paths)
    text = ", ".join("/".join(p) for p in paths[:limit])
    return text + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def compare_tree_to_metadata(abstract_tree: Any, saved_metadata: Any) -> list[str]:
    """Lists the differences between a target pytree and a saved tree's metadata.

    Args:
      abstract_tree: pytree whose leaves have ``shape`` and ``dtype``.
      saved_metadata: the saved tree's metadata (leaves with ``shape`` and ``dtype``).

    Returns:
      Human-readable differences; empty when the checkpoint fits the target.
    """

    def has_shape(x):
        return hasattr(x, "shape") and hasattr(x, "dtype")

    target = _leaf_table(abstract_tree)
    saved = _leaf_table(saved_metadata, is_leaf=has_shape)
    problems = []
    missing = target.keys() - saved.keys()
    unexpected = saved.keys() - target.keys()
    if missing:
        problems.append(f"missing in checkpoint: {_describe(missing)}")
    if unexpected:
        problems.append(f"not in the target state: {_describe(unexpected)}")
    for path in sorted(target.keys() & saved.keys()):
        want, have = target[path], saved[path]
        name = "/".join(path)
        want_shape = tuple(np.shape(want)) if not hasattr(want, "shape") else tuple(want.shape)
        have_shape = tuple(getattr(have, "shape", ()) or ())
        if want_shape != have_shape:
            problems.append(f"{name}: shape {have_shape} in checkpoint, {want_shape} expected")
            continue
        want_dtype = getattr(want, "dtype", None)
        have_dtype = getattr(have, "dtype", None)
        known = want_dtype is not None and have_dtype is not None
        if known and np.dtype(want_dtype) != np.dtype(have_dtype):
            problems.append(f"{name}: dtype {have_dtype} in checkpoint, {want_dtype} expected")
    return problems


def _short(error: BaseException, limit: int = 400) -> str:
    text = f"{type(error).__name__}: {error}".replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + " ..."


class Checkpointer:
    """Saves and restores ``(train_state, host_state)`` under one directory.

    Args:
      directory: checkpoint root, e.g. ``workdir/checkpoints`` (local path or ``gs://``).
      save_every: keep a save request only when ``step % save_every == 0`` (``force`` skips
        the check). ``0`` saves only forced steps.
      keep: number of most recent checkpoints kept; ``None`` keeps all.
      async_save: write in a background thread; :meth:`save` returns once the arrays are
        copied to host memory.

    Example:
      >>> import tempfile, jax.numpy as jnp
      >>> with tempfile.TemporaryDirectory() as d, Checkpointer(d, save_every=1) as ckpt:
      ...     _ = ckpt.save(2, train_state={"w": jnp.ones(2)}, host_state={"stage": 1})
      ...     ckpt.wait_until_finished()
      ...     state, host = ckpt.restore(abstract_train_state=abstract_like({"w": jnp.ones(2)}))
      ...     (ckpt.latest_step(), state["w"].tolist(), host)
      (2, [1.0, 1.0], {'stage': 1})
    """

    def __init__(
        self, directory: str, *, save_every: int = 1, keep: int | None = 3, async_save: bool = True
    ):
        self.directory = os.fspath(directory)
        self._save_every = save_every
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=max(save_every, 1),
            max_to_keep=keep,
            enable_async_checkpointing=async_save,
            create=True,
            should_save_fn=self._should_save,
        )
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=options,
            item_handlers={
                TRAIN_STATE: ocp.StandardCheckpointHandler(),
                HOST_STATE: ocp.JsonCheckpointHandler(),
            },
        )

    def _should_save(self, step: int, last_saved_step: int | None) -> bool:
        del last_saved_step
        return self.should_save(step)

    def should_save(self, step: int) -> bool:
        """Whether :meth:`save` without ``force`` would save at ``step`` (a multiple of
        ``save_every``), so a caller can skip building the host state otherwise."""
        return self._save_every > 0 and step % self._save_every == 0

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def latest_step(self) -> int | None:
        """The newest checkpoint step (saves still in flight included), or ``None``."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """Steps of the checkpoints (saves still in flight included), ascending."""
        return sorted(self._manager.all_steps())

    def save(
        self,
        step: int,
        *,
        train_state: Any,
        host_state: Mapping[str, Any],
        force: bool = False,
    ) -> bool:
        """Saves at ``step`` when it is a multiple of ``save_every`` (or ``force``).

        Args:
          step: the training step the state belongs to (state after ``step`` updates).
          train_state: pytree of ``jax.Array``.
          host_state: JSON-serialisable dict.
          force: save even off the interval (preemption, end of run).

        Returns:
          Whether a save was started.
        """
        if step in self._manager.all_steps():
            return False
        args = ocp.args.Composite(
            **{
                TRAIN_STATE: ocp.args.StandardSave(train_state),
                HOST_STATE: ocp.args.JsonSave(dict(host_state)),
            }
        )
        return self._manager.save(step, args=args, force=force)

    def restore(
        self,
        step: int | None = None,
        *,
        abstract_train_state: Any,
        expected_config_hash: str | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Restores the checkpoint at ``step`` (default: the latest) into the target shardings.

        Args:
          step: checkpoint step, or ``None`` for the latest.
          abstract_train_state: pytree of ``jax.ShapeDtypeStruct`` with ``sharding`` set (see
            :func:`abstract_like`), the same structure as the saved train state.
          expected_config_hash: when given, ``host_state["config_hash"]`` must equal it.

        Returns:
          ``(train_state, host_state)``.

        Raises:
          CheckpointError: no checkpoint, unreadable files, a structure / shape / dtype
            mismatch or a config mismatch; the message names the step directory.
        """
        self.wait_until_finished()
        if step is None:
            step = self.latest_step()
            if step is None:
                raise CheckpointError(f"no checkpoint in {self.directory}")
        step_dir = os.path.join(self.directory, str(step))
        if step not in self.all_steps():
            raise CheckpointError(
                f"no checkpoint for step {step} in {self.directory} (have {self.all_steps()})"
            )
        try:
            metadata = self._manager.item_metadata(step)
            saved = metadata[TRAIN_STATE]
            tree = getattr(saved, "tree", saved)
        except Exception as e:
            raise CheckpointError(f"checkpoint {step_dir} is unreadable: {_short(e)}") from e
        if tree is None:
            raise CheckpointError(f"checkpoint {step_dir} has no readable {TRAIN_STATE} metadata")
        problems = compare_tree_to_metadata(abstract_train_state, tree)
        if problems:
            raise CheckpointError(
                f"checkpoint {step_dir} does not match the train state: " + "; ".join(problems)
            )
        host_state = self._restore_item(step, HOST_STATE, ocp.args.JsonRestore())
        if not isinstance(host_state, dict):
            raise CheckpointError(f"checkpoint {step_dir}: {HOST_STATE} is not a JSON object")
        if expected_config_hash is not None:
            saved_hash = host_state.get("config_hash")
            if saved_hash != expected_config_hash:
                raise CheckpointError(
                    f"checkpoint {step_dir} was written with config hash {saved_hash!r}, the "
                    f"current config has {expected_config_hash!r}: the configs differ in keys "
                    "that change training (compare config.json in the workdir)"
                )
        train_state = self._restore_item(
            step, TRAIN_STATE, ocp.args.StandardRestore(abstract_train_state)
        )
        return train_state, host_state

    def _restore_item(self, step: int, name: str, args: ocp.args.CheckpointArgs) -> Any:
        try:
            return self._manager.restore(step, args=ocp.args.Composite(**{name: args}))[name]
        except Exception as e:
            step_dir = os.path.join(self.directory, str(step))
            raise CheckpointError(
                f"checkpoint {step_dir}: {name} could not be restored: {_short(e)}"
            ) from e

    def wait_until_finished(self) -> None:
        """Blocks until background saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()


def abstract_like(tree: Any) -> Any:
    """A ``jax.ShapeDtypeStruct`` pytree (with shardings) describing ``tree``'s arrays.

    Handy in tests; a trainer builds the abstract state with ``jax.eval_shape`` and its
    shardings without materialising arrays.
    """
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        tree,
    )


def restore_latest_or_none(
    checkpointer: Checkpointer,
    *,
    abstract_train_state: Any,
    expected_config_hash: str | None = None,
) -> tuple[int, Any, dict[str, Any]] | None:
    """Resumes from the newest checkpoint: ``(step, train_state, host_state)``, or ``None``.

    ``None`` means the directory holds no checkpoint (a fresh run). A checkpoint that exists
    but cannot be restored raises :class:`CheckpointError`; it is never skipped.
    """
    step = checkpointer.latest_step()
    if step is None:
        return None
    train_state, host_state = checkpointer.restore(
        step,
        abstract_train_state=abstract_train_state,
        expected_config_hash=expected_config_hash,
    )
    return step, train_state, host_state


class PreemptionGuard:
    """Turns SIGTERM (and optionally other signals) into a flag the training loop polls.

    Used as a context manager: the previous handlers come back on exit. Outside the main
    thread, where Python cannot install signal handlers, the guard installs nothing and the
    flag only changes through :meth:`request_stop`.

    Example:
      >>> with PreemptionGuard() as guard:
      ...     guard.stop_requested
      False
    """

    def __init__(self, signals: Iterable[int] = (signal.SIGTERM,)):
        self._signals = tuple(signals)
        self._previous: dict[int, Any] = {}
        self._event = threading.Event()
        self.received_signal: int | None = None

    @property
    def stop_requested(self) -> bool:
        """Whether a guarded signal arrived (or :meth:`request_stop` was called)."""
        return self._event.is_set()

    def request_stop(self) -> None:
        self._event.set()

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        del frame
        self.received_signal = signum
        self._event.set()

    def __enter__(self) -> PreemptionGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in self._signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
