"""Named evaluation sets (``eval.sets``): which held-out sets a run evaluates, and their metrics.

``eval.sets`` maps a name to settings with the keys of ``SET_KEYS``::

    c.eval.sets = dict(
        math500=dict(path="/data/math500.jsonl"),
        aime24=dict(path="/data/aime24.jsonl", k=16, num_problems=30),
        countdown=dict(task="countdown", task_options=dict(num_numbers=4)),
    )

Every key defaults to the run's own: ``task`` to ``data.task``, ``num_problems`` / ``k`` /
``temperature`` / ``top_p`` / ``greedy`` / ``max_new_tokens`` to ``eval.*``, ``template`` and
the field names (``prompt_field``, ``answer_field``, ``id_field``) to ``data.*``,
``verifier_options`` (keyword arguments of the task's ``verify``) to ``verifier.options``.
``path`` is a JSONL/Parquet file or tfds directory (``source`` guessed from it, ``split`` for
tfds); a set without one evaluates its task's generator with the held-out seed
(``task_options`` its options) or, for the run's own file-based task, ``eval.path``. A set of
another task than the run's starts from that task's own options, verifier options and default
template (a ``chat`` template stays). ``num_problems=0`` drops a set.

Which sets a run evaluates:

* no ``eval.sets`` and one task: one set, exactly as before sets existed: ``eval.path`` (or the
  generator's held-out seed), reported as ``eval/pass@1``, ``eval/pass@{k}``, ...;
* ``eval.sets``: those sets, each reported as ``eval/<name>/pass@1``, ``eval/<name>/pass@{k}``,
  ``eval/<name>/maj@{k}``, ``eval/<name>/greedy_accuracy`` ...;
* ``data.mixture``: one set per task of the mixture (named like its entry, with its options,
  template and fields); ``eval.sets`` entries of the same name change its settings (a
  file-based task needs ``eval.sets.<name>.path``), others add sets.

Each set is a one-task view of the config (`r1jax.config.with_values`), read by the same
builders as the single set: `r1jax.data.from_config.eval_problems`,
`r1jax.build.eval_settings`, `r1jax.build.prompt_fn`. `evaluate_sets` runs
`r1jax.evaluate.evaluate` (pass@1 over k samples, unbiased pass@k, maj@k) on each.

Not here: the evaluation itself (`r1jax.evaluate`), the trainer's schedule of evaluations.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import ml_collections

from r1jax import build, evaluate, mixture, tasks
from r1jax import config as config_lib
from r1jax.data import from_config as data_setup

SET_KEYS = {
    "path": (str,),
    "split": (str,),
    "source": (str,),
    "task": (str,),
    "task_options": (Mapping,),
    "template": (str,),
    "prompt_field": (str,),
    "answer_field": (str,),
    "id_field": (str,),
    "num_problems": (int,),
    "k": (int,),
    "temperature": (int, float),
    "top_p": (int, float),
    "greedy": (bool,),
    "max_new_tokens": (int,),
    "verifier_options": (Mapping,),
}
"""The keys of an ``eval.sets`` entry and the types they take."""

# Set key -> the config key it replaces in the set's view.
_VIEW_KEYS = {
    "split": "eval.split",
    "task_options": "data.task_options",
    "template": "data.template",
    "prompt_field": "data.prompt_field",
    "answer_field": "data.answer_field",
    "id_field": "data.id_field",
    "num_problems": "eval.num_problems",
    "k": "eval.k",
    "temperature": "eval.temperature",
    "top_p": "eval.top_p",
    "greedy": "eval.greedy",
    "max_new_tokens": "eval.max_new_tokens",
    "verifier_options": "verifier.options",
}


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """One held-out set, ready to evaluate.

    Attributes:
      name: its name (``eval.sets`` key, mixture task, or ``data.task`` for the single set).
      named: report as ``eval/<name>/...`` (False: the single set's ``eval/...``).
      task: the verifier's task name or import path.
      problems: ``N`` problem dicts.
      prompt_fn: ``problem -> prompt text``.
      settings: what to sample (`r1jax.evaluate.EvalSettings`).
    """

    name: str
    named: bool
    task: str
    problems: list[dict]
    prompt_fn: Callable[[dict], str]
    settings: evaluate.EvalSettings

    @property
    def prefix(self) -> str:
        """The metric-name prefix: ``"eval/<name>/"``, or ``"eval/"`` for the single set."""
        return f"eval/{self.name}/" if self.named else "eval/"


def set_view(
    base: ml_collections.ConfigDict, name: str, settings: Mapping[str, Any]
) -> ml_collections.ConfigDict:
    """The config as the set ``name`` reads it: ``base`` (the run's, or a mixture task's view)
    with the set's settings laid over it (module docstring).

    Raises:
      r1jax.config.ConfigError: an unknown key or a wrong type, naming the set.
    """
    mixture.check_entry(f"eval.sets.{name}", settings, SET_KEYS)
    values: dict[str, Any] = {"data.mixture": {}, "eval.sets": {}}
    task = settings.get("task", base.data.task)
    if task != base.data.task:  # another task: its own options, default template, generator
        values.update({"data.task": task, "data.task_options": {}, "eval.path": ""})
        values["verifier.options"] = {}
        values["data.source"] = "procedural"
        if base.data.template not in ("", "chat"):
            values["data.template"] = ""
    if settings.get("path"):
        values["eval.path"] = settings["path"]
        values["data.source"] = settings.get("source") or mixture.guess_source(settings["path"])
    elif settings.get("source"):
        values["data.source"] = settings["source"]
    for key, config_key in _VIEW_KEYS.items():
        if key in settings:
            value = settings[key]
            values[config_key] = value.to_dict() if hasattr(value, "to_dict") else value
    return config_lib.with_values(base, values)


def _check_held_out(view: ml_collections.ConfigDict, name: str) -> None:
    """A file-based set needs its own held-out problems (never the training data)."""
    data = view.data
    own_split = data.source != "tfds" or view.eval.split == data.split
    if data.source != "procedural" and not view.eval.path and own_split:
        raise config_lib.ConfigError(
            f"eval.sets.{name}: task {data.task!r} reads its training problems from "
            f"{data.path or 'a file'}; give the set held-out problems with "
            f"eval.sets.{name}.path (a JSONL/Parquet file or tfds directory)"
        )


def set_views(
    config: ml_collections.ConfigDict, run_tasks: Sequence[mixture.RunTask]
) -> list[tuple[str, ml_collections.ConfigDict]] | None:
    """``(name, view)`` of every named set with problems, or None for the single unnamed set
    of a one-task run without ``eval.sets``.

    Raises:
      r1jax.config.ConfigError: a bad set (naming it); in a mixed run, a set named after no
        task of the mixture that does not say its ``task``.
    """
    if not config.eval.sets and not mixture.is_mixture(config):
        return None
    bases = {task.name: task.config for task in run_tasks} if mixture.is_mixture(config) else {}
    requested = {name: {} for name in bases}
    for name, settings in config.eval.sets.items():
        if not isinstance(settings, ml_collections.ConfigDict | Mapping):
            raise config_lib.ConfigError(
                f"eval.sets.{name} must be a group of settings (e.g. path=...), got {settings!r}"
            )
        requested[name] = settings.to_dict() if hasattr(settings, "to_dict") else dict(settings)
    views = []
    for name, settings in requested.items():
        base = bases.get(name, config)
        if name not in bases and bases and "task" not in settings:
            raise config_lib.ConfigError(
                f"eval.sets.{name}: with data.mixture a set that is not named after a task of "
                f"the mixture ({', '.join(bases)}) must say its task (eval.sets.{name}.task)"
            )
        view = set_view(base, name, settings)
        if view.eval.num_problems > 0:
            _check_held_out(view, name)
            views.append((name, view))
    return views


def _set_task(view: ml_collections.ConfigDict, name: str) -> Any:
    """The set's task, checked for a generator (no path) and its own prompts (no chat)."""
    needs = ["generate"] if view.data.source == "procedural" else []
    if not data_setup.chat_template_used(view):
        needs.append("prompt")
    try:
        return tasks.resolve_task(view.data.task, require=tuple(needs))
    except (ValueError, TypeError, ImportError) as error:
        raise config_lib.ConfigError(
            f"eval.sets.{name}: task {view.data.task!r}: {error}"
            + (f" (give eval.sets.{name}.path a file of problems)" if "generate" in needs else "")
        ) from None


def build_sets(
    config: ml_collections.ConfigDict,
    run_tasks: Sequence[mixture.RunTask],
    tokenizer: Any,
    stops: build.StopSettings,
    prompt_fn: Callable[[dict], str],
) -> list[EvalSet]:
    """The sets the run evaluates, their problems read once (before training).

    Args:
      config: the run's config.
      run_tasks: the run's tasks (`r1jax.mixture.run_tasks`).
      tokenizer: the run's tokenizer.
      stops: the run's stop settings.
      prompt_fn: the single task's prompt function (used by the unnamed single set).

    Returns:
      The sets, empty when the run does not evaluate (``eval.num_problems=0`` without sets).

    Raises:
      r1jax.config.ConfigError: a set without problems or with bad settings, naming it.
    """
    views = set_views(config, run_tasks)
    if views is None:
        if not config.eval.num_problems:
            return []
        task = run_tasks[0]
        return [
            EvalSet(
                name=config.data.task,
                named=False,
                task=config.data.task,
                problems=data_setup.eval_problems(config, task.module),
                prompt_fn=prompt_fn,
                settings=build.eval_settings(config, tokenizer, stops),
            )
        ]
    sets = []
    for name, view in views:
        try:
            module = _set_task(view, name)
            sets.append(
                EvalSet(
                    name=name,
                    named=True,
                    task=view.data.task,
                    problems=data_setup.eval_problems(view, module),
                    prompt_fn=build.prompt_fn(view, module, tokenizer),
                    settings=build.eval_settings(view, tokenizer, stops),
                )
            )
        except config_lib.ConfigError as error:
            if str(error).startswith(f"eval.sets.{name}"):
                raise
            raise config_lib.ConfigError(f"eval.sets.{name}: {error}") from None
    return sets


def set_key(key: jax.Array, eval_set: EvalSet) -> jax.Array:
    """The set's sampling key: ``key`` for the single set, else ``key`` folded with a hash of
    the name (adding or removing a set leaves the others' samples unchanged)."""
    if not eval_set.named:
        return key
    return jax.random.fold_in(key, zlib.crc32(eval_set.name.encode()) & 0x7FFFFFFF)


def evaluate_sets(
    sets: Sequence[EvalSet], params: Any, model_config: Any, tokenizer: Any, *, key, **kwargs
) -> dict[str, dict[str, Any]]:
    """`r1jax.evaluate.evaluate` on every set: set name -> its results.

    Args:
      sets: the sets.
      params, model_config, tokenizer: the policy.
      key: the evaluation's PRNG key (`set_key` derives each set's).
      **kwargs: ``pool``, ``mesh``, ``rules`` of `r1jax.evaluate.evaluate`.
    """
    return {
        eval_set.name: evaluate.evaluate(
            params,
            model_config,
            tokenizer,
            eval_set.problems,
            task=eval_set.task,
            prompt_fn=eval_set.prompt_fn,
            key=set_key(key, eval_set),
            settings=eval_set.settings,
            **kwargs,
        )
        for eval_set in sets
    }


def scalars(sets: Sequence[EvalSet], results: Mapping[str, dict]) -> dict[str, float]:
    """Every set's numeric results under its prefix (``eval/pass@1``, ``eval/aime/pass@16``)."""
    out = {}
    for eval_set in sets:
        for name, value in results[eval_set.name].items():
            if isinstance(value, int | float):
                out[f"{eval_set.prefix}{name}"] = float(value)
    return out


def example_texts_key(eval_set: EvalSet) -> str:
    """The text-log key of a set's example completions (``eval_examples[/<name>]``)."""
    return f"eval_examples/{eval_set.name}" if eval_set.named else "eval_examples"


def summary(sets: Sequence[EvalSet], results: Mapping[str, dict]) -> dict[str, Any]:
    """What ``summary.json`` holds for one evaluation: the single set's results as they are,
    or set name -> results."""
    if len(sets) == 1 and not sets[0].named:
        return dict(results[sets[0].name])
    return {eval_set.name: dict(results[eval_set.name]) for eval_set in sets}


def without_examples(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A `summary` entry without its example completions (at either level)."""
    return {
        key: without_examples(value) if isinstance(value, Mapping) else value
        for key, value in entry.items()
        if key != "examples"
    }
