"""Supervised (prompt, response) batches for warm starts, on the same resumable machinery.

Examples come from a JSONL/Parquet file (``load_sft_examples`` with the file's prompt and
response column names, rendered for chat models by ``chat_sft_fns``: the same system prompt,
user template, chat template and prefill as the RL prompts) or from a task's own reference
traces (``reference_trace_source``: ``task.generate`` then ``task.reference_completion`` on
the same seeded rng, so record ``i`` is reproducible).

Each example is tokenised as ``encode(prompt) + encode(response) + [eos]``. The two texts are
encoded separately so the prompt/response boundary is a token boundary (the same split the RL
sampler sees: prompt tokens, then generated tokens). ``SftBatch`` rows are **right-padded**:
positions are plain ``0..S-1`` and the valid tokens a prefix, so a causal model needs only
``attention_mask`` to ignore the padding. ``loss_mask[b, t] = 1`` where ``tokens[b, t]`` is a
response token or the final EOS, i.e. a token the model should learn to predict from the
tokens before it: the loss is on ``logits[:, :-1]`` against ``tokens[:, 1:]`` weighted by
``loss_mask[:, 1:]``.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

import grain
import numpy as np

from r1jax.data import padding, pipeline, prompts, sources


@dataclasses.dataclass(frozen=True)
class SftBatch:
    """``B`` (prompt, response) sequences, right-padded to one length bucket ``S``.

    Attributes:
      tokens: ``[B, S]`` int32: prompt ids, response ids, EOS, then ``pad_token_id``.
      loss_mask: ``[B, S]`` int32, 1 exactly on the response ids and the EOS.
      lengths: ``[B]`` int32 valid tokens per row (prompt + response + EOS, after truncation).
      prompt_lengths: ``[B]`` int32 prompt tokens per row (after truncation).
      ids: the ``B`` example ids.
      indices: ``[B]`` int64 record indices in the source.
    """

    tokens: np.ndarray
    loss_mask: np.ndarray
    lengths: np.ndarray
    prompt_lengths: np.ndarray
    ids: list[str]
    indices: np.ndarray

    @property
    def attention_mask(self) -> np.ndarray:
        """``[B, S]`` bool, True on the valid prefix of each row."""
        return np.arange(self.tokens.shape[1])[None, :] < self.lengths[:, None]  # [B, S]

    @property
    def positions(self) -> np.ndarray:
        """``[B, S]`` int32 positions ``0..S-1`` (right padding needs no offset)."""
        batch, width = self.tokens.shape
        return np.broadcast_to(np.arange(width, dtype=np.int32), (batch, width))  # [B, S]


@dataclasses.dataclass(frozen=True)
class _EncodedExample:
    index: int
    example_id: str
    token_ids: list[int]
    loss_mask: list[int]
    prompt_length: int


def reference_trace_source(
    task: ModuleType,
    *,
    seed: int,
    num_records: int | None = None,
    method: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> sources.ProceduralSource:
    """Problems with a ``"response"`` field holding the task's reference chain of thought.

    Record ``i`` draws ``problem = task.generate(rng, **options)`` and then
    ``task.reference_completion(problem, rng, method=method)`` from the same
    ``np.random.default_rng([seed, i])``.

    Args:
      task: a task module with ``generate`` and ``reference_completion`` (countdown,
        multiplication).
      seed: the stream's seed.
      num_records: virtual length; ``None`` is endless.
      method: ``reference_completion``'s ``method``; ``None`` uses the task's default.
      options: ``generate`` options.
    """
    method_kwargs = {} if method is None else {"method": method}

    def generate(rng: np.random.Generator, **generate_options: Any) -> dict:
        problem = task.generate(rng, **generate_options)
        response = task.reference_completion(problem, rng, **method_kwargs)
        return {**problem, "response": response}

    generate.__name__ = f"{task.__name__.rsplit('.', 1)[-1]}_reference_trace"
    return sources.ProceduralSource(generate, seed=seed, num_records=num_records, options=options)


def load_sft_examples(
    path: str,
    *,
    prompt_field: str = "prompt",
    response_field: str = "response",
    id_field: str = "",
    on_bad_row: sources.BadRowPolicy = "error",
) -> sources.FileProblems:
    """(prompt, response) examples from a JSONL or Parquet file with any column names.

    Each row becomes ``{"question": row[prompt_field], "response": row[response_field], **other
    columns}`` (``id`` from ``id_field`` when given), so `chat_sft_fns` renders the prompt
    column with the same user template and chat template as RL prompts.

    Raises:
      r1jax.data.sources.DataError: a missing file, or a row without text in either column
        (unless ``on_bad_row="skip"``).
    """
    fields = {"question": prompt_field, "response": response_field}
    if id_field:
        fields["id"] = id_field
    return sources.load_problems(
        path, fields=fields, text_fields=("question", "response"), on_bad_row=on_bad_row
    )


def chat_sft_fns(
    tokenizer: Any,
    *,
    system_prompt: str | None = None,
    user_template: str | None = "{question}",
    prefill: str = "",
    task: ModuleType | None = None,
    chat_template: str | None = None,
) -> tuple[Callable[[dict], str], Callable[[dict], str]]:
    """``(prompt_fn, response_fn)`` for `sft_batches`, rendered as the RL prompts are.

    ``prompt_fn`` is ``prompts.chat_prompt_fn`` with the same arguments, so the warm start sees
    exactly the prompts RL will sample from, prefill included. ``response_fn`` returns the
    example's ``"response"``; when that text starts with the prefill (a file that stores
    ``"<think>..."`` while the prompt already ends with ``"<think>"``), the prefill is removed
    from it, so prompt + response is the text once.
    """
    prompt_fn = prompts.chat_prompt_fn(
        tokenizer,
        system_prompt=system_prompt,
        user_template=user_template,
        prefill=prefill,
        task=task,
        chat_template=chat_template,
    )

    def response_fn(example: dict) -> str:
        response = example["response"]
        if prefill and response.startswith(prefill):
            return response[len(prefill) :]
        return response

    return prompt_fn, response_fn


def sft_batches(
    source: Sequence[dict] | grain.MapDataset,
    *,
    prompt_fn: Callable[[dict], str],
    tokenizer: Any,
    batch_size: int,
    buckets: Sequence[int],
    response_fn: Callable[[dict], str] = lambda example: example["response"],
    eos_token_id: int | None = None,
    overlong: padding.OverlongPolicy = "error",
    max_skipped_in_a_row: int = 1000,
    seed: int = 0,
    shuffle: bool = True,
    num_epochs: int | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    drop_remainder: bool = True,
    read_options: grain.ReadOptions | None = None,
) -> pipeline.ResumableBatches[_EncodedExample, SftBatch]:
    """A resumable iterator of right-padded ``SftBatch``es over one process's shard.

    Args:
      source: example dicts with random access (``FileProblems``, ``reference_trace_source``,
        ``ArrayRecordProblems``, a list).
      prompt_fn: ``example -> prompt text``, e.g. ``make_prompt_fn(task, template="base")``, or
        ``lambda example: example["prompt"]`` for files that hold the prompt verbatim.
      tokenizer: has ``encode``, ``pad_token_id`` and ``eos_token_ids``.
      batch_size: ``B``, rows per batch on this process.
      buckets: allowed widths ``S``; a batch takes the smallest that fits its longest row.
      response_fn: ``example -> response text`` (default: the ``"response"`` field).
      eos_token_id: appended after every response (and covered by the loss mask); defaults to
        ``tokenizer.eos_token_ids[0]``. For a chat template pass its end-of-turn token, for a
        base-model template the end-of-text token.
      overlong: for a row longer than the largest bucket: ``"error"``, ``"truncate_left"``
        (drop ids from the start of the prompt, then of the response, keeping the end;
        counted as ``counts["truncated_overlong"]``) or ``"skip"`` (counted as
        ``counts["skipped_overlong"]``).
      max_skipped_in_a_row: with ``"skip"``, this many overlong examples in a row raise a
        ``ValueError`` (a procedural source whose every example is too long would otherwise
        never yield a batch).
      seed, shuffle, num_epochs, process_index, process_count: see
        ``r1jax.data.pipeline.record_dataset``. ``drop_remainder`` drops a last short batch.
      read_options: grain threads and prefetch for tokenisation.

    Returns:
      An iterator with ``get_state()`` / ``set_state(state)`` and ``counts``.
    """
    buckets = padding.check_buckets(buckets)
    pad_token_id = int(tokenizer.pad_token_id)
    eos_token_id = int(tokenizer.eos_token_ids[0] if eos_token_id is None else eos_token_id)
    records = pipeline.record_dataset(
        source,
        seed=seed,
        shuffle=shuffle,
        num_epochs=num_epochs,
        process_index=process_index,
        process_count=process_count,
    )

    def encode(indexed_example: tuple[int, dict]) -> _EncodedExample:
        index, example = indexed_example
        example_id = example.get("id")
        try:
            prompt, response = prompt_fn(example), response_fn(example)
        except Exception as error:  # A malformed example: name it instead of failing bare.
            raise ValueError(
                f"cannot build the prompt/response of example {example_id!r} (record {index}): "
                f"{type(error).__name__}: {error}"
            ) from error
        prompt_ids = tokenizer.encode(prompt)
        response_ids = [*tokenizer.encode(response), eos_token_id]
        return _EncodedExample(
            index=index,
            example_id=f"record-{index}" if example_id is None else str(example_id),
            token_ids=prompt_ids + response_ids,
            loss_mask=[0] * len(prompt_ids) + [1] * len(response_ids),
            prompt_length=len(prompt_ids),
        )

    skipped_in_a_row = 0

    def take(record: _EncodedExample, counts: collections.Counter) -> _EncodedExample | None:
        nonlocal skipped_in_a_row
        what = f"example {record.example_id!r} (record {record.index})"
        token_ids, was_overlong = padding.fit_length(
            record.token_ids, buckets[-1], overlong=overlong, what=what
        )
        if token_ids is None:
            counts["skipped_overlong"] += 1
            skipped_in_a_row += 1
            if skipped_in_a_row >= max_skipped_in_a_row:
                raise ValueError(
                    f"{skipped_in_a_row} examples in a row are longer than the largest SFT "
                    f"bucket ({buckets[-1]} tokens; the last, {what}, has "
                    f"{len(record.token_ids)}): raise the sequence length (for the trainer, "
                    "data.bucket_sizes + sampling.max_new_tokens) or shorten the examples"
                )
            return None
        skipped_in_a_row = 0
        if not was_overlong:
            return record
        counts["truncated_overlong"] += 1
        cut = len(record.token_ids) - len(token_ids)
        return dataclasses.replace(
            record,
            token_ids=token_ids,
            loss_mask=record.loss_mask[cut:],
            prompt_length=max(record.prompt_length - cut, 0),
        )

    def make_batch(examples: list[_EncodedExample]) -> SftBatch:
        lengths = np.array([len(e.token_ids) for e in examples], dtype=np.int32)  # [B]
        width = padding.bucket_length(int(lengths.max()), buckets)
        return SftBatch(
            tokens=padding.right_pad([e.token_ids for e in examples], width, pad_token_id),
            loss_mask=padding.right_pad([e.loss_mask for e in examples], width, 0),
            lengths=lengths,
            prompt_lengths=np.array([e.prompt_length for e in examples], dtype=np.int32),
            ids=[e.example_id for e in examples],
            indices=np.array([e.index for e in examples], dtype=np.int64),
        )

    return pipeline.ResumableBatches(
        records.map(encode),
        batch_size=batch_size,
        take=take,
        make_batch=make_batch,
        drop_remainder=drop_remainder,
        read_options=read_options,
    )
