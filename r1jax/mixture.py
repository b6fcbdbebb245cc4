"""Several tasks in one run (``data.mixture``): each task's view of the config, the mixed prompt
and warm-start streams, verification routed by task, and per-task rollout metrics.

``data.mixture`` maps a name to an entry with the keys of ``ENTRY_KEYS``::

    c.data.mixture = dict(
        countdown=dict(weight=0.5, task_options=dict(num_numbers=3), template="base"),
        knights_knaves=dict(weight=0.3),
        math=dict(weight=0.2, path="/data/math_train.jsonl"),
    )

The name is the task unless ``task`` says otherwise (two entries may share a task with other
options). An entry without ``path`` uses the task's generator (``data.seed``); one with a path
reads it (``source`` guessed from the path: a directory is a tfds dataset, ``.parquet`` is
Parquet, anything else JSONL). ``template``, ``split`` and the field names default to the
``data.*`` keys; ``task_options``, ``verifier_options`` (keyword arguments of the task's
``verify``) and ``sft_source`` (a ``reference[:METHOD=W,...]`` spec for this task's warm-start
traces; default ``sft.source``) belong to the entry. The single-task keys ``data.task``,
``data.task_options``, ``data.path``, ``data.source``, ``data.curriculum``,
``verifier.options`` and ``eval.path``
must stay unset in a mixed run (a `r1jax.config.ConfigError` says which).

Each entry becomes a one-task view of the run's config (`r1jax.config.with_values` with
``data.task``, ``data.task_options``, ... replaced), so `r1jax.build` and
`r1jax.data.from_config` build its task, prompt function, problem stream, warm-start traces
and held-out problems unchanged. A prompt batch draws each row's task by weight
(`r1jax.data.mixture.MixedPromptBatches`); every problem carries its task's name
(``TASK_KEY``) and is verified by that task's verifier (`submit_by_task`). A group is the
``G`` completions of one problem, so it never mixes tasks. Evaluation: one set per task
(`r1jax.eval_sets`).

Not here: the weighted draws and their resumable state (`r1jax.data.mixture`), evaluation sets
(`r1jax.eval_sets`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from r1jax import build, distributed
from r1jax import config as config_lib
from r1jax.data import from_config as data_setup
from r1jax.data import mixture as data_mixture
from r1jax.tasks.verdict import Verdict
from r1jax.verifiers import routing

TASK_KEY = data_mixture.TASK_KEY

ENTRY_KEYS = {
    "weight": (int, float),
    "task": (str,),
    "task_options": (Mapping,),
    "template": (str,),
    "source": (str,),
    "path": (str,),
    "split": (str,),
    "prompt_field": (str,),
    "answer_field": (str,),
    "id_field": (str,),
    "verifier_options": (Mapping,),
    "sft_source": (str,),
}
"""The keys of a ``data.mixture`` entry and the types they take."""


@dataclasses.dataclass(frozen=True)
class RunTask:
    """One task of a run.

    Attributes:
      name: the entry's name in ``data.mixture`` (a single-task run: ``data.task``); the
        problems' ``TASK_KEY`` and the metric names use it.
      weight: its share of the prompts (normalised; 1.0 in a single-task run).
      config: the run's config as this task alone would have it (its ``data.*``).
      module: the task (`r1jax.tasks.resolve_task`).
    """

    name: str
    weight: float
    config: ml_collections.ConfigDict
    module: Any


def is_mixture(config: ml_collections.ConfigDict) -> bool:
    """Whether the run trains on several tasks (``data.mixture`` is set)."""
    return bool(config.data.mixture)


def guess_source(path: str) -> str:
    """``tfds`` for a directory, ``parquet`` for ``*.parquet``, else ``jsonl``.

    Example:
      >>> guess_source("train.parquet"), guess_source("train.jsonl")
      ('parquet', 'jsonl')
    """
    if os.path.isdir(path):
        return "tfds"
    return "parquet" if path.endswith(".parquet") else "jsonl"


def check_entry(where: str, entry: Mapping[str, Any], keys: Mapping[str, tuple]) -> None:
    """Raises a `ConfigError` naming ``where`` for a key not in ``keys`` or a wrong type."""
    for key, value in entry.items():
        if key not in keys:
            raise config_lib.ConfigError(
                f"{where}: unknown key {key!r}; valid keys: {', '.join(sorted(keys))}"
            )
        types = keys[key]
        if not isinstance(value, types) or isinstance(value, bool) != (bool in types):
            expected = " or ".join(t.__name__ for t in types)
            raise config_lib.ConfigError(
                f"{where}.{key} must be {expected}, got {type(value).__name__} {value!r}"
            )


def _plain(value: Any) -> Any:
    """A ``ConfigDict`` (nested) as plain dicts; other values as they are."""
    return value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value


def entry_view(
    config: ml_collections.ConfigDict, name: str, entry: Mapping[str, Any]
) -> ml_collections.ConfigDict:
    """The run's config as the mixture entry ``name`` alone would have it.

    Returns:
      A locked copy of ``config`` with ``data.task``, ``data.task_options``,
      ``data.template``, ``data.source``, ``data.path``, ``data.split``, the field names,
      ``verifier.options`` and ``sft.source`` from the entry, and no mixture or sets.
    """
    data = config.data
    path = entry.get("path", "")
    return config_lib.with_values(
        config,
        {
            "data.mixture": {},
            "eval.sets": {},
            "data.task": entry.get("task", name),
            "data.task_options": _plain(entry.get("task_options", {})),
            "data.template": entry.get("template", data.template),
            "data.source": entry.get("source") or (guess_source(path) if path else "procedural"),
            "data.path": path,
            "data.split": entry.get("split", data.split),
            "data.prompt_field": entry.get("prompt_field", data.prompt_field),
            "data.answer_field": entry.get("answer_field", data.answer_field),
            "data.id_field": entry.get("id_field", data.id_field),
            "verifier.options": _plain(entry.get("verifier_options", {})),
            "sft.source": entry.get("sft_source", config.sft.source),
        },
    )


def _check_single_task_keys(config: ml_collections.ConfigDict) -> None:
    """A mixed run leaves the single-task keys alone (each entry has its own)."""
    base = config_lib.base_config()
    if config.data.task != base.data.task:
        raise config_lib.ConfigError(
            f"data.task={config.data.task!r} and data.mixture exclude each other: name the "
            "tasks in data.mixture (an entry's 'task' key when it differs from its name)"
        )
    own_keys = {  # single-task key -> the entry key that replaces it
        "data.task_options": (config.data.task_options, "task_options"),
        "data.path": (config.data.path, "path"),
        "verifier.options": (config.verifier.options, "verifier_options"),
    }
    for key, (value, entry_key) in own_keys.items():
        if value:
            raise config_lib.ConfigError(
                f"{key} is set, but with data.mixture each task has its own: set "
                f"data.mixture.<name>.{entry_key} instead"
            )
    if config.data.source != base.data.source:
        raise config_lib.ConfigError(
            f"data.source={config.data.source!r} with data.mixture: each entry reads its own "
            "'path' (or its generator without one); set data.mixture.<name>.source/path"
        )
    if config.data.curriculum:
        raise config_lib.ConfigError(
            "data.curriculum changes one task's generator options by step; it is not supported "
            "with data.mixture (give each entry the task_options it should train on)"
        )
    if config.eval.path:
        raise config_lib.ConfigError(
            "eval.path is set, but with data.mixture each task is evaluated on its own set: "
            "give held-out files as eval.sets.<name>.path"
        )


def _resolve(view: ml_collections.ConfigDict, name: str) -> Any:
    """The task of an entry's view, checked for what the run needs (`r1jax.build.task`)."""
    try:
        return build.task(view)
    except config_lib.ConfigError as error:
        hint = ""
        if "reference_completion" in str(error):
            hint = (
                " (the warm start from reference traces needs it of every task in the mixture;"
                " give sft.source a JSONL/Parquet file of prompt/response rows instead)"
            )
        raise config_lib.ConfigError(f"data.mixture.{name}: {error}{hint}") from None


def run_tasks(config: ml_collections.ConfigDict) -> list[RunTask]:
    """The run's tasks: one per ``data.mixture`` entry, or ``data.task`` alone.

    Raises:
      r1jax.config.ConfigError: an unknown entry key or a wrong type (naming the entry), a
        single-task key set in a mixed run, a task that lacks what the run needs of it.
    """
    if not is_mixture(config):
        return [RunTask(config.data.task, 1.0, config, build.task(config))]
    _check_single_task_keys(config)
    entries = {name: _plain(entry) for name, entry in config.data.mixture.items()}
    for name, entry in entries.items():
        if not isinstance(entry, Mapping):
            raise config_lib.ConfigError(
                f"data.mixture.{name} must be a group of settings (e.g. weight=0.5), got {entry!r}"
            )
        check_entry(f"data.mixture.{name}", entry, ENTRY_KEYS)
    try:
        weights = data_mixture.normalized_weights(
            {name: float(entry.get("weight", 1.0)) for name, entry in entries.items()}
        )
    except ValueError as error:
        raise config_lib.ConfigError(f"data.mixture: {error}") from None
    tasks = []
    for name, entry in entries.items():
        view = entry_view(config, name, entry)
        tasks.append(RunTask(name, weights[name], view, _resolve(view, name)))
    return tasks


def describe(tasks: Sequence[RunTask]) -> str:
    """``"countdown"``, or ``"countdown 50% + knights_knaves 50%"``."""
    if len(tasks) == 1:
        return tasks[0].config.data.task
    return " + ".join(f"{task.name} {100 * task.weight:.0f}%" for task in tasks)


# ------------------------------------------------------------------------------------- data


def tokenizer_texts(tasks: Sequence[RunTask], count: int = 2000) -> list[str]:
    """Every task's prompts and traces (`r1jax.data.from_config.tokenizer_texts`), about
    ``count`` in all by weight and at least a tenth of ``count`` per task."""
    texts = []
    for task in tasks:
        prompt_fn = build.prompt_fn(task.config, task.module, None)
        share = max(count // 10, round(count * task.weight))
        texts += data_setup.tokenizer_texts(task.config, task.module, prompt_fn, count=share)
    return texts


def prompt_iterator(
    config: ml_collections.ConfigDict,
    tasks: Sequence[RunTask],
    tokenizer: Any,
    prompt_fns: Mapping[str, Callable[[dict], str]],
) -> Any:
    """The RL steps' prompt batches: ``data.prompts_per_step`` rows (this process's share),
    each task's drawn by weight; resumable (``get_state``/``set_state``). A single-task run
    gets `r1jax.data.from_config.prompt_iterator`'s."""
    if not is_mixture(config):
        task = tasks[0]
        return data_setup.prompt_iterator(config, task.module, tokenizer, prompt_fns[task.name])
    streams = {
        task.name: data_setup.prompt_iterator(
            task.config, task.module, tokenizer, prompt_fns[task.name], batch_size=1
        )
        for task in tasks
    }
    return data_mixture.MixedPromptBatches(
        streams,
        {task.name: task.weight for task in tasks},
        batch_size=config.data.prompts_per_step // jax.process_count(),
        buckets=config.data.bucket_sizes,
        pad_id=tokenizer.pad_token_id,
        seed=config.data.seed,
        process_index=jax.process_index(),
    )


def sft_iterator(
    config: ml_collections.ConfigDict,
    tasks: Sequence[RunTask],
    tokenizer: Any,
    prompt_fns: Mapping[str, Callable[[dict], str]],
) -> Any:
    """The warm start's batches: every task's reference traces mixed by weight, or the rows of
    an ``sft.source`` file (which holds its own prompts). A single-task run gets
    `r1jax.data.from_config.sft_iterator`'s."""
    if not is_mixture(config):
        task = tasks[0]
        return data_setup.sft_iterator(config, task.module, tokenizer, prompt_fns[task.name])
    spec = config.sft.source or "reference"
    if not spec.startswith("reference"):
        return data_setup.sft_iterator(config, None, tokenizer, None)
    sources = {}
    for task in tasks:
        own = task.config.sft.source or "reference"
        if not own.startswith("reference"):
            raise config_lib.ConfigError(
                f"data.mixture.{task.name}.sft_source={own!r}: a task's own warm-start source "
                "is a reference[:METHOD=W,...] spec; a file of prompt/response rows goes in "
                "sft.source"
            )
        sources[task.name] = data_setup.mixed_reference_source(
            task.module,
            own,
            seed=config.data.seed + 11,
            options=data_setup.task_options(task.config),
        )
    source = data_mixture.WeightedSource(
        sources, {task.name: task.weight for task in tasks}, seed=config.data.seed + 11
    )
    return data_setup.sft_batches_of(
        config,
        source,
        prompt_fn=lambda example: prompt_fns[example[TASK_KEY]](example),
        response_fn=lambda example: example["response"],
        tokenizer=tokenizer,
        shuffle=False,
    )


# ------------------------------------------------------------------------------- verifying


def routes(tasks: Sequence[RunTask]) -> dict[str, routing.Route]:
    """Task name -> how its rows are verified (``data.task`` and ``verifier.options`` of its
    view), for `r1jax.verifiers.routing.submit_by_task`."""
    return {
        task.name: routing.Route(
            task.config.data.task, dict(task.config.verifier.options.to_dict())
        )
        for task in tasks
    }


# ---------------------------------------------------------------------------------- metrics


@functools.partial(jax.jit, static_argnames=("rewards", "max_length"))
def _outcome_rewards(batch: Any, *, rewards: Any, max_length: int) -> jax.Array:
    terms = rewards.terms(batch, max_length=max_length)
    return sum(terms.values(), start=jax.numpy.zeros(batch.rows, jax.numpy.float32))  # [B]


def outcome_rewards(batch: Any, learner_config: Any, mesh: Any) -> np.ndarray:
    """``[B]`` each row's sequence reward (the sum of `r1jax.rewards.shaping.reward_terms` under
    the step's ``rewards``; a KL penalty placed in the reward is not part of it), on the host."""
    with jax.set_mesh(mesh):
        rewards = _outcome_rewards(
            batch, rewards=learner_config.rewards, max_length=learner_config.max_new_tokens
        )
    return np.asarray(distributed.to_host(rewards), np.float32)


def task_metrics(
    task_names: Sequence[str],
    problems: Sequence[dict],
    verdicts: Sequence[Verdict],
    lengths: np.ndarray,
    rewards: np.ndarray,
    *,
    group_size: int,
) -> dict[str, float]:
    """Per-task metrics of a step's ``B = P * G`` rows.

    Args:
      task_names: every task of the mixture (each gets ``prompts``, 0 when it drew none).
      problems: ``B`` problems with ``TASK_KEY``.
      verdicts: ``B`` verdicts.
      lengths: ``[B]`` completion lengths in tokens.
      rewards: ``[B]`` sequence rewards (`outcome_rewards`).
      group_size: ``G``.

    Returns:
      ``rollout/<task>/prompts`` for every task and, for tasks with rows this step,
      ``rollout/<task>/accuracy``, ``/format_rate``, ``/reward_mean``, ``/response_length``
      and ``/pass@group``.

    Example:
      >>> v = [Verdict(bool(c), True, "correct" if c else "wrong", float(c)) for c in (1, 0, 0, 0)]
      >>> p = [{TASK_KEY: "a"}] * 2 + [{TASK_KEY: "b"}] * 2
      >>> m = task_metrics(["a", "b"], p, v, np.ones(4), np.array([1., 0, 0, 0]), group_size=2)
      >>> m["rollout/a/accuracy"], m["rollout/b/accuracy"], m["rollout/a/prompts"]
      (0.5, 0.0, 1.0)
    """
    names = np.array([problem[TASK_KEY] for problem in problems])
    correct = np.array([v.correct for v in verdicts], bool)
    well_formed = np.array([v.well_formed or v.correct for v in verdicts], bool)
    out = {}
    for name in task_names:
        rows = names == name  # [B]
        out[f"rollout/{name}/prompts"] = float(rows.sum() // group_size)
        if not rows.any():
            continue
        out[f"rollout/{name}/accuracy"] = float(correct[rows].mean())
        out[f"rollout/{name}/format_rate"] = float(well_formed[rows].mean())
        out[f"rollout/{name}/reward_mean"] = float(rewards[rows].mean())
        out[f"rollout/{name}/response_length"] = float(lengths[rows].mean())
        grouped = correct[rows].reshape(-1, group_size)  # [P_task, G]
        out[f"rollout/{name}/pass@group"] = float(grouped.any(axis=1).mean())
    return out
