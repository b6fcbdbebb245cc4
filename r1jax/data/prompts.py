"""Prompt batches for RL: problem -> prompt text -> token ids -> left-padded ``PromptBatch``.

What lives here:

* ``make_prompt_fn``: the prompt text of a problem, either one of the task's own templates
  (``task.prompt(problem, template=name)``, byte-exact as in ``r1jax.tasks``) or ``"chat"``:
  the tokenizer's chat template around the task's user text, with an optional system prompt and
  an optional assistant prefix (e.g. ``"<think>\\n"``) appended after the generation header.
* ``chat_prompt_fn``: the same chat rendering for instruct models from plain settings: a system
  prompt, a user template over the problem's fields (``"{question}\\nAnswer in <answer>
  </answer> tags."``) and a prefill, rendered through the model's own chat template exactly as
  ``transformers``' ``apply_chat_template(..., add_generation_prompt=True)`` renders it.
* ``PromptBatch``: ``P`` prompts left-padded to a length bucket, with their problems.
* ``prompt_batches``: the resumable iterator from a problem source to ``PromptBatch``es.

Sharding, shuffling, epochs and resume come from ``r1jax.data.pipeline``; where problems come
from is ``r1jax.data.sources``. Outputs are numpy; the trainer puts them on device.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import grain
import numpy as np

from r1jax.data import padding, pipeline

PromptFn = Callable[[dict], str]


def make_prompt_fn(
    task: ModuleType | None,
    *,
    template: str = "base",
    tokenizer: Any = None,
    system_prompt: str | None = None,
    user_text: Callable[[dict], str] | None = None,
    assistant_prefix: str = "",
) -> PromptFn:
    """Returns ``problem -> prompt text`` for a task module.

    Args:
      task: a module of ``r1jax.tasks`` (anything with ``prompt(problem, *, template)``);
        may be ``None`` with ``"chat"`` when the user text is the problem's ``"question"``.
      template: a template name the task defines (``"base"``, ``"qwen_instruct"``, ...), used
        verbatim; or ``"chat"`` to wrap the user text in ``tokenizer``'s chat template.
      tokenizer: needed for ``"chat"``: an ``r1jax.tokenizer.Tokenizer``.
      system_prompt: ``"chat"`` only; a system message (``None`` keeps the chat template's
        default, which for Qwen is "You are Qwen, ...").
      user_text: ``"chat"`` only; ``problem -> user message``. Defaults to the task's
        ``user_message(problem)`` if it has one, else the problem's ``"question"`` field.
      assistant_prefix: ``"chat"`` only; text appended after the assistant header, so the
        prompt prefills the start of the response (R1-style ``"<think>\\n"``).

    Example:
      >>> import types
      >>> task = types.SimpleNamespace(prompt=lambda p, *, template: f"Q: {p['question']}")
      >>> make_prompt_fn(task)({"question": "1+1"})
      'Q: 1+1'
    """
    if template != "chat":
        if system_prompt is not None or assistant_prefix or user_text is not None:
            raise ValueError("system_prompt, user_text and assistant_prefix need template='chat'")
        return lambda problem: task.prompt(problem, template=template)
    if tokenizer is None:
        raise ValueError("template='chat' needs a tokenizer (its chat template builds the prompt)")
    if user_text is None:
        user_text = getattr(task, "user_message", None) or _question_field

    def chat_prompt(problem: dict) -> str:
        messages = [{"role": "user", "content": user_text(problem)}]
        text = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, system_prompt=system_prompt
        )
        return text + assistant_prefix

    return chat_prompt


_TEMPLATE_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render_user_template(template: str, problem: dict) -> str:
    r"""Fills ``{field}`` slots of ``template`` from ``problem``; other braces stay as written.

    Only ``{name}`` with ``name`` an identifier is a slot, so LaTeX such as ``\boxed{}`` needs
    no escaping; ``{{`` and ``}}`` give literal braces. Non-string values are inserted with
    ``str``.

    Raises:
      ValueError: a slot names a field the problem lacks (the message lists its fields).

    Example:
      >>> print(render_user_template(r"{question} Put it in \boxed{}.", {"question": "1+1?"}))
      1+1? Put it in \boxed{}.
    """

    def fill(match: re.Match) -> str:
        if match.group(0) in ("{{", "}}"):
            return match.group(0)[0]
        name = match.group(1)
        if name not in problem:
            raise ValueError(
                f"user template field {{{name}}} is not in the problem (fields: {sorted(problem)})"
            )
        value = problem[name]
        return value if isinstance(value, str) else str(value)

    return _TEMPLATE_FIELD.sub(fill, template)


def chat_prompt_fn(
    tokenizer: Any,
    *,
    system_prompt: str | None = None,
    user_template: str | None = None,
    prefill: str = "",
    task: Any = None,
    chat_template: str | None = None,
) -> PromptFn:
    """``problem -> prompt`` through the model's chat template: system, user, then a prefill.

    The conversation is ``[{"role": "system", "content": system_prompt}]`` (when given) and
    ``[{"role": "user", "content": render_user_template(user_template, problem)}]``, rendered
    with ``add_generation_prompt=True``, so the text ends with the template's assistant header
    (Qwen2.5: ``<|im_start|>assistant\\n``); ``prefill`` follows it, e.g. ``"<think>"`` or
    ``"<think>\\n"`` so the response starts inside the reasoning block (the DeepSeek-R1
    distilled models' templates end with ``<think>\\n``, arXiv:2501.12948). The result equals
    ``transformers``' ``AutoTokenizer.apply_chat_template(messages, tokenize=False,
    add_generation_prompt=True) + prefill`` on the same tokenizer files.

    Args:
      tokenizer: an ``r1jax.tokenizer.Tokenizer`` (its ``apply_chat_template``).
      system_prompt: the system message; ``None`` sends none (Qwen2.5's template then inserts
        its default "You are Qwen, ..." system message, as ``transformers`` does).
      user_template: the user message; ``{field}`` slots take the problem's fields. ``None``
        uses ``task.user_message(problem)`` when the task has one, else ``"{question}"``.
      prefill: text after the assistant header that the response continues.
      task: the task, for its ``user_message`` (``None``: none).
      chat_template: a template to use instead of the tokenizer's.

    Example:
      >>> from r1jax.tokenizer import Tokenizer
      >>> tok = Tokenizer.train(["hi"] * 10, vocab_size=300)
      >>> fn = chat_prompt_fn(tok, system_prompt="Be brief.", prefill="<think>")
      >>> fn({"question": "2+2?"})
      '<|im_start|>system\\nBe brief.<|im_end|>\\n<|im_start|>user\\n2+2?<|im_end|>\\n<|im_start|>assistant\\n<think>'
    """

    user_message = getattr(task, "user_message", None) if user_template is None else None

    def user_text(problem: dict) -> str:
        if user_message is not None:
            return user_message(problem)
        return render_user_template(user_template or "{question}", problem)

    def prompt(problem: dict) -> str:
        messages = [{"role": "user", "content": user_text(problem)}]
        if system_prompt is not None:
            messages.insert(0, {"role": "system", "content": system_prompt})
        text = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, chat_template=chat_template
        )
        return text + prefill

    return prompt


def _question_field(problem: dict) -> str:
    question = problem.get("question")
    if not isinstance(question, str):
        raise ValueError(
            f"template='chat' needs the task's user_message(problem), user_text=, or a text "
            f"'question' field in the problem; problem {problem.get('id', '')!r} has none"
        )
    return question


@dataclasses.dataclass(frozen=True)
class PromptBatch:
    """``P`` prompts, left-padded to one length bucket ``Tp``.

    Attributes:
      tokens: ``[P, Tp]`` int32; row ``p`` holds its ids in the last ``lengths[p]`` columns and
        ``pad_token_id`` before them.
      lengths: ``[P]`` int32 prompt lengths in tokens (after any left truncation).
      problems: the ``P`` problem dicts, for the verifiers.
      texts: the ``P`` prompt strings (before truncation).
      ids: the ``P`` problem ids (the problem's ``"id"``, else ``"record-<index>"``).
      indices: ``[P]`` int64 record indices in the source (the same record in a later epoch
        has the same index).
    """

    tokens: np.ndarray
    lengths: np.ndarray
    problems: list[dict]
    texts: list[str]
    ids: list[str]
    indices: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """``[P, Tp]`` bool, True on prompt tokens (False on left padding)."""
        width = self.tokens.shape[1]
        return np.arange(width)[None, :] >= (width - self.lengths)[:, None]  # [P, Tp]

    @property
    def positions(self) -> np.ndarray:
        """``[P, Tp]`` int32 positions: 0 at each row's first real token, 0 on padding."""
        width = self.tokens.shape[1]
        positions = np.arange(width)[None, :] - (width - self.lengths)[:, None]  # [P, Tp]
        return np.maximum(positions, 0).astype(np.int32)


@dataclasses.dataclass(frozen=True)
class _EncodedPrompt:
    index: int
    problem: dict
    text: str
    token_ids: list[int]


def prompt_batches(
    source: Sequence[dict] | grain.MapDataset,
    *,
    prompt_fn: PromptFn,
    tokenizer: Any,
    batch_size: int,
    buckets: Sequence[int],
    overlong: padding.OverlongPolicy = "error",
    seed: int = 0,
    shuffle: bool = True,
    num_epochs: int | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    drop_remainder: bool = True,
    read_options: grain.ReadOptions | None = None,
) -> pipeline.ResumableBatches[_EncodedPrompt, PromptBatch]:
    """A resumable iterator of ``PromptBatch``es over one process's shard of ``source``.

    Args:
      source: problem dicts with random access (``ProceduralSource``, ``FileProblems``,
        ``ArrayRecordProblems``, a list, a ``grain.MapDataset``).
      prompt_fn: ``problem -> prompt text``, usually from ``make_prompt_fn``.
      tokenizer: has ``encode(text) -> list[int]`` and ``pad_token_id``.
      batch_size: ``P``, prompts per batch on this process.
      buckets: allowed prompt widths ``Tp``; a batch takes the smallest that fits its longest
        prompt.
      overlong: for a prompt longer than the largest bucket: ``"error"`` (raise, naming the
        problem), ``"truncate_left"`` (keep its last tokens; counted as
        ``counts["truncated_overlong"]``) or ``"skip"`` (counted as
        ``counts["skipped_overlong"]``).
      seed, shuffle, num_epochs, process_index, process_count: see
        ``r1jax.data.pipeline.record_dataset``. ``drop_remainder`` here drops a last short
        batch of a finite stream.
      read_options: grain threads and prefetch for prompt building and tokenisation.

    Returns:
      An iterator with ``get_state()`` / ``set_state(state)`` and ``counts``.
    """
    buckets = padding.check_buckets(buckets)
    pad_token_id = int(tokenizer.pad_token_id)
    records = pipeline.record_dataset(
        source,
        seed=seed,
        shuffle=shuffle,
        num_epochs=num_epochs,
        process_index=process_index,
        process_count=process_count,
    )

    def encode(indexed_problem: tuple[int, dict]) -> _EncodedPrompt:
        index, problem = indexed_problem
        try:
            text = prompt_fn(problem)
        except Exception as error:  # A malformed problem: name it instead of failing bare.
            problem_id = problem.get("id") if isinstance(problem, dict) else None
            raise ValueError(
                f"cannot build the prompt of problem {problem_id!r} (record {index}): "
                f"{type(error).__name__}: {error}"
            ) from error
        return _EncodedPrompt(index, problem, text, tokenizer.encode(text))

    def take(record: _EncodedPrompt, counts: collections.Counter) -> _EncodedPrompt | None:
        what = f"prompt of problem {_problem_id(record)!r} (record {record.index})"
        token_ids, was_overlong = padding.fit_length(
            record.token_ids, buckets[-1], overlong=overlong, what=what
        )
        if token_ids is None:
            counts["skipped_overlong"] += 1
            return None
        if was_overlong:
            counts["truncated_overlong"] += 1
            return dataclasses.replace(record, token_ids=token_ids)
        return record

    def make_batch(prompts: list[_EncodedPrompt]) -> PromptBatch:
        lengths = np.array([len(p.token_ids) for p in prompts], dtype=np.int32)  # [P]
        width = padding.bucket_length(int(lengths.max()), buckets)
        return PromptBatch(
            tokens=padding.left_pad([p.token_ids for p in prompts], width, pad_token_id),
            lengths=lengths,
            problems=[p.problem for p in prompts],
            texts=[p.text for p in prompts],
            ids=[_problem_id(p) for p in prompts],
            indices=np.array([p.index for p in prompts], dtype=np.int64),
        )

    return pipeline.ResumableBatches(
        records.map(encode),
        batch_size=batch_size,
        take=take,
        make_batch=make_batch,
        drop_remainder=drop_remainder,
        read_options=read_options,
    )


def _problem_id(prompt: _EncodedPrompt) -> str:
    problem_id = prompt.problem.get("id") if isinstance(prompt.problem, dict) else None
    return str(problem_id) if problem_id is not None else f"record-{prompt.index}"
