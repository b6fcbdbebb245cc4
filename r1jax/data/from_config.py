"""The trainer's data, built from a resolved config: problem sources, the warm start's traces,
the prompt and SFT batch iterators, the held-out problems and a from-scratch tokenizer's text.

* ``data.source``: ``procedural`` (the task's generator) or a file source of
  `r1jax.data.sources.FILE_SOURCES` (a JSONL/Parquet file, or a tfds ArrayRecord dataset
  directory with ``data.split``). Evaluation reads ``eval.path`` (empty: ``data.path``) with
  ``eval.split``, or the generator with a held-out seed (and, with ``data.heldout_fraction``,
  only the held-out share of the problem space, which training never draws:
  `r1jax.data.partition`).
* ``sft.source``: a JSONL/Parquet file of ``prompt``/``response`` rows, or
  ``reference[:METHOD=WEIGHT,...]`` for the task's reference traces, mixing methods with the
  given weights; the method ``direct`` keeps the trace from its ``</think>`` on (the answer
  without the reasoning). Empty means ``reference``.

Each process reads its own share of every batch (``batch_size // jax.process_count()``).
"""

from __future__ import annotations

import copy
from typing import Any

import jax
import ml_collections
import numpy as np

from r1jax import config as config_lib
from r1jax.data import curriculum, padding, partition, sources
from r1jax.data import prompts as prompt_data
from r1jax.data import sft as sft_data

EVAL_SEED_OFFSET = 1_000_003  # held-out problems come from another generator seed
DISTINCT_DRAWS_PER_PROBLEM = 50  # eval.distinct: records read per wanted problem at most


def task_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """``data.task_options`` as keyword arguments for the task's generator."""
    return dict(config.data.task_options.to_dict()) if config.data.task_options else {}


def heldout_fraction(config: ml_collections.ConfigDict) -> float:
    """``data.heldout_fraction``, checked: the share of a generator's problem space that only
    evaluation draws (`r1jax.data.partition`); 0 = held-out problems from another seed."""
    fraction = float(config.data.get("heldout_fraction", 0.0))
    if not 0.0 <= fraction < 1.0:
        raise config_lib.ConfigError(f"data.heldout_fraction={fraction}: must be in [0, 1)")
    if fraction and config.data.source != "procedural":
        raise config_lib.ConfigError(
            f"data.heldout_fraction={fraction} splits generated problems; data.source="
            f"{config.data.source!r} reads a file, whose held-out problems come from eval.path"
        )
    return fraction


def problem_source(
    config: ml_collections.ConfigDict, task: Any, *, seed: int, count=None, split=None, path=None
) -> Any:
    """Random-access problems of ``data.source`` (at most ``count``)."""
    if config.data.source == "procedural":
        return sources.ProceduralSource(
            task.generate, seed=seed, num_records=count, options=task_options(config)
        )
    if config.data.source in sources.FILE_SOURCES:
        problems = sources.problems_from_config(config.data, path=path, split=split)
        return (
            problems if count is None else [problems[i] for i in range(min(count, len(problems)))]
        )
    raise config_lib.ConfigError(
        f"data.source={config.data.source!r} is not supported by the trainer "
        f"(procedural, {', '.join(sources.FILE_SOURCES)})"
    )


def mixed_reference_source(task: Any, spec: str, *, seed: int, options: dict) -> Any:
    """``reference:partial_products=0.4,direct=0.6`` -> problems with a ``response`` field."""
    _, _, mixture = spec.partition(":")
    methods, weights = [], []
    for part in filter(None, (p.strip() for p in mixture.split(","))):
        name, _, weight = part.partition("=")
        methods.append(name)
        weights.append(float(weight) if weight else 1.0)
    probabilities = np.array(weights or [1.0]) / np.sum(weights or [1.0])

    def generate(rng: np.random.Generator, **generate_options: Any) -> dict:
        problem = task.generate(rng, **generate_options)
        method = methods[int(rng.choice(len(methods), p=probabilities))] if methods else None
        if method in (None, "direct"):
            response = task.reference_completion(problem, rng)
        else:
            response = task.reference_completion(problem, rng, method=method)
        if method == "direct":  # the answer without the reasoning
            cut = response.rfind("</think>")
            response = response[cut:] if cut >= 0 else response.strip().splitlines()[-1]
            response = response.strip()
        return {**problem, "response": response, "sft_method": method or "default"}

    generate.__name__ = "reference_mixture"
    return sources.ProceduralSource(generate, seed=seed, options=options)


def tokenizer_texts(config: ml_collections.ConfigDict, task: Any, prompt_fn, count=2000):
    """Prompts and worked traces of the task: the text a from-scratch tokenizer is fit on.

    The traces are the ones the supervised warm start will train on when ``sft.source`` is a
    ``reference:...`` mixture (every method it names, in its proportions), so words such as
    ``carry`` become tokens rather than letters; otherwise the task's default worked solution.
    """
    options = task_options(config)
    spec = config.sft.source or "reference"
    if config.sft.mode != "none" and spec.startswith("reference"):
        source = mixed_reference_source(task, spec, seed=config.data.seed + 7, options=options)
    else:
        source = sources.ProceduralSource(task.generate, seed=config.data.seed + 7, options=options)
    texts = []
    for index in range(count):
        problem = source[index]
        texts.append(prompt_fn(problem))
        if "response" in problem:
            texts.append(problem["response"])
        elif hasattr(task, "reference_completion"):
            texts.append(task.reference_completion(problem, np.random.default_rng(index)))
    return texts


def chat_template_used(config: ml_collections.ConfigDict) -> bool:
    """Whether prompts are rendered through the model's chat template."""
    return config.data.template == "chat" or config.tokenizer.use_chat_template


def _response(example: dict) -> str:
    return example["response"]


def _read_options():
    import grain

    return grain.ReadOptions(num_threads=1, prefetch_buffer_size=8)


def sft_iterator(config: ml_collections.ConfigDict, task: Any, tokenizer, prompt_fn) -> Any:
    """The warm start's batches of ``sft.batch_size`` rows (this process's share)."""
    spec = config.sft.source or "reference"
    response_of = _response
    if spec.startswith("reference"):
        if not hasattr(task, "reference_completion"):
            raise config_lib.ConfigError(
                f"sft.source={spec!r}: task {config.data.task!r} has no reference_completion; "
                "give sft.source a JSONL/Parquet file of prompt/response rows"
            )
        source = mixed_reference_source(
            task, spec, seed=config.data.seed + 11, options=task_options(config)
        )
        text_of_prompt = prompt_fn
    else:
        source = sft_data.load_sft_examples(
            spec,
            prompt_field=config.sft.prompt_field,
            response_field=config.sft.response_field,
            id_field=config.sft.id_field,
            on_bad_row=config.data.on_bad_row,
        )
        if chat_template_used(config):  # rendered exactly as the RL prompts are
            text_of_prompt, response_of = sft_data.chat_sft_fns(
                tokenizer,
                system_prompt=config.data.system_prompt or None,
                user_template=config.data.user_template or None,
                prefill=config.data.prefill,
                task=task,
            )
        else:

            def text_of_prompt(example):
                return example["question"]

    return sft_batches_of(
        config,
        source,
        prompt_fn=text_of_prompt,
        response_fn=response_of,
        tokenizer=tokenizer,
        shuffle=not spec.startswith("reference"),
    )


def sft_batches_of(
    config: ml_collections.ConfigDict, source: Any, *, prompt_fn, response_fn, tokenizer, shuffle
) -> Any:
    """The warm start's batches over ``source`` (examples with a prompt and a response):
    ``sft.batch_size`` rows (this process's share) in ``sft.bucket_step`` widths."""
    # A whole example must fit: cutting prompts only for long responses would teach the model
    # that a shorter prompt means a longer answer. Examples that do not fit are skipped.
    longest = max(config.data.bucket_sizes) + config.sampling.max_new_tokens + 1
    if config.sft.bucket_step < 1:
        raise config_lib.ConfigError(f"sft.bucket_step={config.sft.bucket_step}: must be >= 1")
    return sft_data.sft_batches(
        source,
        prompt_fn=prompt_fn,
        response_fn=response_fn,
        tokenizer=tokenizer,
        batch_size=config.sft.batch_size // jax.process_count(),
        buckets=padding.linear_buckets(longest, step=config.sft.bucket_step),
        seed=config.data.seed,
        shuffle=shuffle,
        overlong="skip",
        read_options=_read_options(),
    )


def prompt_iterator(
    config: ml_collections.ConfigDict, task: Any, tokenizer, prompt_fn, *, batch_size=None
) -> Any:
    """The RL steps' prompt batches of ``data.prompts_per_step`` (this process's share), or
    of ``batch_size`` prompts when given (one task's stream of a mixture reads one at a time)."""
    if batch_size is None:
        batch_size = config.data.prompts_per_step // jax.process_count()
    if config.data.curriculum:  # one stream per stage (r1jax.data.curriculum)
        return curriculum_prompt_iterator(config, task, tokenizer, prompt_fn)
    return prompt_data.prompt_batches(
        problem_source(config, task, seed=config.data.seed),
        prompt_fn=prompt_fn,
        tokenizer=tokenizer,
        batch_size=batch_size,
        buckets=config.data.bucket_sizes,
        seed=config.data.seed,
        shuffle=config.data.shuffle and config.data.source != "procedural",
        overlong="truncate_left",
        read_options=_read_options(),
    )


def curriculum_prompt_iterator(
    config: ml_collections.ConfigDict, task: Any, tokenizer, prompt_fn
) -> curriculum.CurriculumBatches:
    """``data.curriculum``'s prompt batches: stage ``i`` reads the task's generator with the
    stage's options from seed `r1jax.data.curriculum.stage_seed`; the trainer sets the RL step.

    Raises:
      r1jax.config.ConfigError: a malformed curriculum, a file source, or a stage whose
        options the task's generator rejects.
    """
    if config.data.source != "procedural":
        raise config_lib.ConfigError(
            "data.curriculum sets the task generator's options by RL step; it needs "
            f"data.source='procedural', not {config.data.source!r}"
        )
    try:
        stages = curriculum.parse_stages(config.data.curriculum, task_options(config))
    except ValueError as error:
        raise config_lib.ConfigError(str(error)) from None
    for index, stage in enumerate(stages):
        try:
            task.generate(np.random.default_rng(0), **stage.options)
        except (TypeError, ValueError) as error:
            raise config_lib.ConfigError(
                f"data.curriculum[{index}]: task {config.data.task!r} rejects the options "
                f"{stage.options}: {error}"
            ) from None

    def stage_batches(index: int, stage: curriculum.Stage) -> Any:
        view = copy.deepcopy(config)  # the plain iterator over the stage's options and seed
        view.data.curriculum = ()
        view.data.seed = curriculum.stage_seed(config.data.seed, index)
        view.data.task_options = ml_collections.ConfigDict(stage.options)
        return prompt_iterator(view, task, tokenizer, prompt_fn)

    return curriculum.CurriculumBatches(stages, stage_batches)


def eval_problems(config: ml_collections.ConfigDict, task: Any) -> list[dict]:
    """The held-out problems (``eval.num_problems`` of them), read once before training.

    Raises:
      r1jax.config.ConfigError: the evaluation source holds no problems, or a file source
        would be evaluated on its own training data (no ``eval.path``; for tfds, the same
        split): held-out problems must come from elsewhere.
    """
    data = config.data
    own_split = data.source != "tfds" or config.eval.split == data.split
    if data.source != "procedural" and not config.eval.path and own_split:
        raise config_lib.ConfigError(
            f"eval.num_problems={config.eval.num_problems} with data.source={data.source!r} "
            "needs held-out problems: set eval.path (a JSONL/Parquet file or tfds directory"
            + (", or an eval.split other than data.split" if data.source == "tfds" else "")
            + "), or eval.num_problems=0; the run never evaluates on its training data"
        )
    if data.source == "procedural":  # the held-out side of data.heldout_fraction, if any
        task = partition.split_task(task, heldout_fraction(config), heldout=True)
    distinct = bool(config.eval.get("distinct", False))
    problems = problem_source(
        config,
        task,
        seed=config.data.seed + EVAL_SEED_OFFSET,
        count=None if distinct and data.source == "procedural" else config.eval.num_problems,
        split=config.eval.split,
        path=config.eval.path,
    )
    if distinct:
        try:
            problems = partition.distinct_problems(
                problems,
                task,
                config.eval.num_problems,
                max_draws=DISTINCT_DRAWS_PER_PROBLEM * config.eval.num_problems,
            )
        except ValueError as error:
            where = config.eval.path or config.data.path or f"the {data.task} generator"
            raise config_lib.ConfigError(
                f"eval.distinct with eval.num_problems={config.eval.num_problems}: {where} "
                f"gave {error}; lower eval.num_problems"
                + (" or raise data.heldout_fraction" if data.source == "procedural" else "")
            ) from None
    problems = [problems[i] for i in range(len(problems))]
    if not problems:
        where = config.eval.path or config.data.path
        raise config_lib.ConfigError(
            f"eval.num_problems={config.eval.num_problems} but the evaluation source "
            f"({where}, split {config.eval.split!r}) holds no problems"
        )
    return problems
