"""The record stream under every r1jax batch iterator: shuffle, repeat, shard, prefetch, resume.

``record_dataset`` turns any random-access source (a list, ``ProceduralSource``,
``ArrayRecordProblems``, a grain ``MapDataset``) into a grain ``MapDataset`` of
``(record_index, record)`` in the order one process reads it:

1. the source, with each record's index in the source attached;
2. ``shuffle(seed)`` (optional), then ``repeat(num_epochs)``, reshuffled every epoch: one
   global order shared by all processes;
3. ``[process_index::process_count]``: process ``p`` reads positions ``p, p + n, p + 2n, ...``
   of that global order, so the processes' shards are disjoint and together cover every epoch.

``ResumableBatches`` pulls records from it through grain's prefetching iterator and groups them
into batches with a caller-given function. Its ``get_state()`` is a small JSON-serialisable
dict (grain's position plus the caller's counters), and ``set_state`` resumes so that the next
batch is exactly the one that would have come. Prompt text and tokens are the business of
``r1jax.data.prompts`` and ``r1jax.data.sft``.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import grain

RecordT = TypeVar("RecordT")
BatchT = TypeVar("BatchT")


def process_shard(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    """Returns ``(process_index, process_count)``, defaulting to JAX's when either is None."""
    if process_index is None or process_count is None:
        import jax  # Only for the defaults; tests and tools pass both explicitly.

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    return int(process_index), int(process_count)


def record_dataset(
    source: Sequence[Any] | grain.MapDataset,
    *,
    seed: int = 0,
    shuffle: bool = True,
    num_epochs: int | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    drop_remainder: bool = False,
) -> grain.MapDataset:
    """One process's ordered view of ``source``: ``MapDataset`` of ``(record_index, record)``.

    Args:
      source: anything with ``len`` and ``[i]`` (or a ``grain.MapDataset``).
      seed: shuffle seed; every process must pass the same one.
      shuffle: shuffle the source, with a fresh order each epoch. Leave it off for endless
        procedural sources, whose records are already independent draws.
      num_epochs: passes over the source; ``None`` repeats forever.
      process_index: this process, ``0 <= process_index < process_count``; defaults to
        ``jax.process_index()``.
      process_count: number of reading processes; defaults to ``jax.process_count()``. (The
        defaults shard like ``grain.sharding.ShardByJaxProcess``, but strided rather than in
        contiguous blocks, so endless sources shard too.)
      drop_remainder: drop the last ``len(source) % process_count`` records of every epoch so
        each process reads the same number per epoch (multi-host steps stay in lockstep across
        epoch ends). Off by default: the shards then cover every record.

    Returns:
      A ``grain.MapDataset`` of ``(record_index, record)`` tuples.

    Example:
      >>> ds = record_dataset(["a", "b", "c"], shuffle=False, num_epochs=1,
      ...                     process_index=1, process_count=2)
      >>> list(ds)
      [(1, 'b')]
    """
    process_index, process_count = process_shard(process_index, process_count)
    dataset = source if isinstance(source, grain.MapDataset) else grain.MapDataset.source(source)
    if len(dataset) == 0:
        raise ValueError(f"empty source: {source!r}")
    num_records = len(dataset)
    # grain hands epoch-e indices as `e * len + i` to the datasets under `repeat`.
    dataset = dataset.map_with_index(lambda index, record: (index % num_records, record))
    if shuffle:
        dataset = dataset.shuffle(seed=seed)
    if drop_remainder and process_count > 1:
        usable = len(dataset) - len(dataset) % process_count
        if usable == 0:
            raise ValueError(f"{len(dataset)} records cannot be split over {process_count}")
        dataset = dataset[:usable]
    if (num_epochs is None or num_epochs > 1) and len(dataset) < sys.maxsize:
        dataset = dataset.repeat(num_epochs)  # A `sys.maxsize` source is already endless.
    return dataset[process_index::process_count]


class ResumableBatches(Generic[RecordT, BatchT]):
    """Groups a record stream into batches, with exact resume through ``get_state/set_state``.

    ``take(record, counts)`` is called on each record in order and returns the record to keep
    or ``None`` to drop it (it may add to ``counts``, e.g. ``counts["skipped_overlong"] += 1``).
    ``make_batch(kept_records)`` turns ``batch_size`` kept records into a batch. The iterator
    pulls only what each batch needs, so its state after ``next`` is exact.

    Args:
      dataset: the record stream, e.g. ``record_dataset(...).map(encode)``.
      batch_size: records per batch.
      take: the per-record filter described above.
      make_batch: builds a batch from a list of kept records.
      drop_remainder: at the end of a finite stream, drop a last batch smaller than
        ``batch_size`` (default) instead of yielding it.
      read_options: grain's threads and prefetch buffer for the record map.
    """

    def __init__(
        self,
        dataset: grain.MapDataset,
        *,
        batch_size: int,
        take: Callable[[RecordT, collections.Counter], RecordT | None],
        make_batch: Callable[[list[RecordT]], BatchT],
        drop_remainder: bool = True,
        read_options: grain.ReadOptions | None = None,
    ):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        read_options = read_options or grain.ReadOptions(num_threads=2, prefetch_buffer_size=64)
        self._records = iter(dataset.to_iter_dataset(read_options))
        self._batch_size = batch_size
        self._take = take
        self._make_batch = make_batch
        self._drop_remainder = drop_remainder
        self.counts: collections.Counter[str] = collections.Counter()

    def __iter__(self) -> Iterator[BatchT]:
        return self

    def __next__(self) -> BatchT:
        kept: list[RecordT] = []
        while len(kept) < self._batch_size:
            try:
                record = next(self._records)
            except StopIteration:
                if kept and not self._drop_remainder:
                    break
                raise
            record = self._take(record, self.counts)
            if record is not None:
                kept.append(record)
        self.counts["batches"] += 1
        return self._make_batch(kept)

    def get_state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot: the record position and the counters."""
        return {"records": self._records.get_state(), "counts": dict(self.counts)}

    def set_state(self, state: dict[str, Any]) -> None:
        """Resumes from ``get_state()`` output (also after a ``json.dumps``/``loads`` trip)."""
        self._records.set_state(state["records"])
        self.counts = collections.Counter(state["counts"])
