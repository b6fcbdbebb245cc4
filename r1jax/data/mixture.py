"""Problems of several tasks in one stream: weighted draws, deterministic and resumable.

* `MixedPromptBatches`: RL prompt batches whose ``P`` rows are drawn from the tasks by weight.
  Each task keeps its own resumable prompt stream (`r1jax.data.prompts.prompt_batches`, one
  prompt per ``next``: its own shuffling, epochs and process shard); batch ``n`` draws its
  rows' tasks from ``numpy.random.default_rng([seed, MIX_STREAM, process, n])``, pulls that
  many prompts from each task's stream and left-pads them into one length bucket. Its state is
  the batch count and every stream's state (JSON), so a resumed run gets the same next batch.
* `WeightedSource`: a random-access endless source whose record ``i`` comes from the task drawn
  by ``default_rng([seed, MIX_STREAM, i])`` (the warm start's reference traces).

Every problem carries the name of its task under ``TASK_KEY``, which routes it to its task's
verifier (`r1jax.mixture`). Groups (``G`` completions of one prompt) never mix tasks: a row is
one problem. Which tasks, weights and prompt functions come from the config is
`r1jax.mixture`'s business.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from r1jax.data import padding
from r1jax.data.prompts import PromptBatch

TASK_KEY = "mixture_task"
"""Problem field holding the name of the problem's task in the mixture."""

MIX_STREAM = 0x6D6978  # folded into the draws' seeds, apart from the tasks' own streams


def normalized_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """``weights`` scaled to sum to 1.

    Raises:
      ValueError: no weights, or a weight that is not a finite number > 0.

    Example:
      >>> normalized_weights({"a": 3, "b": 1})
      {'a': 0.75, 'b': 0.25}
    """
    if not weights:
        raise ValueError("a mixture needs at least one task")
    for name, weight in weights.items():
        if not np.isfinite(weight) or weight <= 0:
            raise ValueError(f"the weight of task {name!r} must be > 0, got {weight!r}")
    total = float(sum(weights.values()))
    return {name: float(weight) / total for name, weight in weights.items()}


def draw_tasks(
    names: Sequence[str], probabilities: Sequence[float], count: int, seed: Sequence[int]
) -> list[str]:
    """``count`` task names drawn with replacement by ``probabilities`` from ``default_rng(seed)``.

    Example:
      >>> draw_tasks(["a", "b"], [1.0, 0.0], 3, [0])
      ['a', 'a', 'a']
    """
    rng = np.random.default_rng(list(seed))
    return [names[i] for i in rng.choice(len(names), size=count, p=probabilities)]


def concatenate_prompts(
    parts: Sequence[tuple[str, PromptBatch]], *, buckets: Sequence[int], pad_id: int
) -> PromptBatch:
    """One `PromptBatch` of every row of ``parts`` (``(task name, batch)`` pairs), in order.

    Rows are left-padded again to the smallest bucket that fits the longest; each problem is
    tagged with its task (``TASK_KEY``), ids are prefixed with it (``"countdown/record-3"``)
    and record indices become ``index * len(tasks) + task position`` so that rows of different
    tasks never share a sampling key (`r1jax.sampling.rollout.PromptBatch.prompt_ids`).

    Returns:
      A `PromptBatch` of ``P = sum of the parts' rows`` prompts, tokens ``[P, Tp]``.
    """
    order = {name: position for position, name in enumerate(dict.fromkeys(n for n, _ in parts))}
    rows, problems, texts, ids, indices = [], [], [], [], []
    for name, batch in parts:
        width = batch.tokens.shape[1]
        for row in range(len(batch.lengths)):
            rows.append(batch.tokens[row, width - int(batch.lengths[row]) :].tolist())
            problems.append({**batch.problems[row], TASK_KEY: name})
            texts.append(batch.texts[row])
            ids.append(f"{name}/{batch.ids[row]}")
            indices.append(int(batch.indices[row]) * len(order) + order[name])
    lengths = np.array([len(row) for row in rows], dtype=np.int32)  # [P]
    width = padding.bucket_length(int(lengths.max()), padding.check_buckets(buckets))
    return PromptBatch(
        tokens=padding.left_pad(rows, width, pad_id),  # [P, Tp]
        lengths=lengths,
        problems=problems,
        texts=texts,
        ids=ids,
        indices=np.array(indices, dtype=np.int64),
    )


class MixedPromptBatches:
    """Prompt batches drawn from several tasks' prompt streams by weight (module docstring).

    Args:
      streams: task name -> an iterator of one-prompt `PromptBatch`es with ``get_state`` /
        ``set_state`` / ``counts`` (`r1jax.data.prompts.prompt_batches` with ``batch_size=1``).
      weights: task name -> weight (> 0; normalised here).
      batch_size: ``P``, prompts per batch on this process.
      buckets: allowed prompt widths ``Tp``.
      pad_id: the tokenizer's pad id.
      seed: the draws' seed (the run's ``data.seed``).
      process_index: this process; processes draw their rows independently.
    """

    def __init__(
        self,
        streams: Mapping[str, Any],
        weights: Mapping[str, float],
        *,
        batch_size: int,
        buckets: Sequence[int],
        pad_id: int,
        seed: int,
        process_index: int = 0,
    ):
        if set(streams) != set(weights):
            raise ValueError(f"streams {sorted(streams)} and weights {sorted(weights)} differ")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self._streams = dict(streams)
        probabilities = normalized_weights(weights)
        self._names = list(probabilities)
        self._probabilities = [probabilities[name] for name in self._names]
        self._batch_size, self._buckets, self._pad_id = batch_size, tuple(buckets), pad_id
        self._seed, self._process_index = int(seed), int(process_index)
        self._batches = 0

    def __iter__(self) -> Iterator[PromptBatch]:
        return self

    def __next__(self) -> PromptBatch:
        seed = (self._seed, MIX_STREAM, self._process_index, self._batches)
        names = draw_tasks(self._names, self._probabilities, self._batch_size, seed)
        parts = [(name, next(self._streams[name])) for name in names]
        self._batches += 1
        return concatenate_prompts(parts, buckets=self._buckets, pad_id=self._pad_id)

    @property
    def counts(self) -> collections.Counter:
        """The streams' counters summed (``truncated_overlong`` ...), ``batches`` this one's."""
        total: collections.Counter = collections.Counter()
        for stream in self._streams.values():
            total.update({k: v for k, v in stream.counts.items() if k != "batches"})
        total["batches"] = self._batches
        return total

    def get_state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot: the batch count and each task stream's state."""
        return {
            "batches": self._batches,
            "streams": {name: stream.get_state() for name, stream in self._streams.items()},
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Resumes from ``get_state()`` output (also after a JSON round trip).

        Raises:
          ValueError: the state holds other tasks than this mixture (a changed mixture).
        """
        if set(state["streams"]) != set(self._streams):
            raise ValueError(
                f"the saved data state has the tasks {sorted(state['streams'])}, this mixture "
                f"{sorted(self._streams)}"
            )
        for name, stream_state in state["streams"].items():
            self._streams[name].set_state(stream_state)
        self._batches = int(state["batches"])


class WeightedSource:
    """An endless random-access source: record ``i`` is ``sources[t][i % len(sources[t])]``
    for the task ``t`` drawn by weight from ``default_rng([seed, MIX_STREAM, i])``, tagged with
    ``TASK_KEY``.

    Args:
      sources: task name -> a random-access source of problem dicts.
      weights: task name -> weight (> 0).
      seed: the draws' seed.

    Example:
      >>> source = WeightedSource({"a": [{"x": 1}], "b": [{"x": 2}]}, {"a": 1, "b": 1}, seed=0)
      >>> source[0] == source[0], sorted({source[i][TASK_KEY] for i in range(20)})
      (True, ['a', 'b'])
    """

    def __init__(self, sources: Mapping[str, Any], weights: Mapping[str, float], *, seed: int):
        probabilities = normalized_weights(weights)
        self._names = list(probabilities)
        self._probabilities = [probabilities[name] for name in self._names]
        self._sources = {name: sources[name] for name in self._names}
        self._seed = int(seed)

    def __len__(self) -> int:
        return sys.maxsize

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        name = draw_tasks(self._names, self._probabilities, 1, (self._seed, MIX_STREAM, index))[0]
        source = self._sources[name]
        return {**source[index % len(source)], TASK_KEY: name}
