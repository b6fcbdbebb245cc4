"""A run's components, built from a resolved config: the task, tokenizer, model, prompt
function, stop settings, evaluation settings and verifier pool size.

Config conventions decided here:

* ``data.task``: a name of `r1jax.tasks.TASKS` or the import path of a module implementing
  the task protocol (`r1jax.tasks.protocol`); what the run needs of it (a generator for
  procedural data, reference traces for a ``reference`` warm start) is checked at the start.
* ``data.template``: a template name of the task (empty: the task's own default wording);
  a name the task does not define is an error. ``tokenizer.use_chat_template`` (or the
  template ``chat``) renders ``data.system_prompt``, ``data.user_template`` (``{field}`` slots
  of the problem; empty: the task's user message) and ``data.prefill`` through the model's
  chat template.
* ``model.name``: a preset (``tiny``, ``small`` ...: trained from scratch; without
  ``tokenizer.path`` a small byte-level BPE tokenizer is fit on the task's prompts and traces
  in ``workdir/tokenizer``, the vocab sized to it and rounded up to ``model.vocab_multiple``),
  a local Hugging Face checkpoint directory, or a hub id (downloaded with ``huggingface_hub``
  when the directory does not exist). Params are kept in ``model.param_dtype`` (float32
  master weights by default) and computed in ``model.dtype``. ``model.init_from`` starts
  from another run's workdir (its newest checkpoint's policy) or an exported directory.
* ``sampling.stop_strings`` end a completion when they appear in its decoded text, however
  the tokenizer split them (`r1jax.sampling.stopping.stop_matchers`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import jax
import ml_collections
import numpy as np

from r1jax import config as config_lib
from r1jax import distributed, evaluate, tasks
from r1jax.data import from_config as data_setup
from r1jax.data import partition
from r1jax.data import prompts as prompt_data
from r1jax.models import MODEL_PRESETS, ModelConfig, init_params, load_pretrained
from r1jax.sampling import stopping
from r1jax.tokenizer import Tokenizer

TOKENIZER_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def task(config: ml_collections.ConfigDict) -> Any:
    """The task module of ``data.task``, checked for what this run needs of it."""
    needs = []
    if config.data.source == "procedural":
        needs.append("generate")
    if config.sft.mode == "warmup" and (config.sft.source or "reference").startswith("reference"):
        needs.append("reference_completion")
    if not data_setup.chat_template_used(config):
        needs.append("prompt")
    try:
        module = tasks.resolve_task(config.data.task, require=tuple(needs))
    except (ValueError, TypeError, ImportError) as error:
        raise config_lib.ConfigError(f"data.task={config.data.task!r}: {error}") from None
    return partition.split_task(module, data_setup.heldout_fraction(config), heldout=False)


def prompt_fn(config: ml_collections.ConfigDict, task_module: Any, tokenizer: Tokenizer | None):
    """``problem -> prompt text`` of ``data.template`` (or the chat template)."""
    data = config.data
    if data_setup.chat_template_used(config) and tokenizer is not None:
        return prompt_data.chat_prompt_fn(
            tokenizer,
            system_prompt=data.system_prompt or None,
            user_template=data.user_template or None,
            prefill=data.prefill,
            task=task_module,
        )
    if data_setup.chat_template_used(
        config
    ):  # fitting a tokenizer: the user text stands in for the prompt
        return lambda problem: prompt_data.render_user_template(
            data.user_template or "{question}", problem
        )
    if data.system_prompt or data.user_template or data.prefill:
        raise config_lib.ConfigError(
            "data.system_prompt, data.user_template and data.prefill need a chat template: set "
            "tokenizer.use_chat_template=true (or data.template=chat)"
        )
    if not data.template:
        return task_module.prompt  # the task's own default wording
    templates = getattr(task_module, "TEMPLATES", None)
    if templates is not None and data.template not in templates:
        raise config_lib.ConfigError(
            f"data.template={data.template!r} is not a template of task {data.task!r} "
            f"(its templates: {', '.join(sorted(templates))}; empty = its default)"
        )
    return prompt_data.make_prompt_fn(task_module, template=data.template)


def merges_per_task(config: ml_collections.ConfigDict) -> int:
    """``tokenizer.merges_per_task``, checked: a from-scratch tokenizer's BPE merges per task."""
    value = config.tokenizer.merges_per_task
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise config_lib.ConfigError(
            f"tokenizer.merges_per_task must be a non-negative integer, got {value!r}"
        )
    return value


def tokenizer(
    config: ml_collections.ConfigDict,
    workdir: str,
    task_module: Any,
    *,
    texts=None,
    num_tasks: int = 1,
) -> Tokenizer:
    """``tokenizer.path``, the ``model.init_from`` run's or export's, the model's own, or one
    fit from scratch in ``workdir/tokenizer``: 256 bytes, the special tokens and
    ``tokenizer.merges_per_task`` x ``num_tasks`` BPE merges learnt from ``texts()`` (a
    zero-argument callable giving the texts; None: the task's prompts and traces,
    `r1jax.data.from_config.tokenizer_texts`)."""
    num_merges = merges_per_task(config) * num_tasks  # checked whichever tokenizer is used
    if config.tokenizer.path:
        return Tokenizer.from_pretrained(config.tokenizer.path)
    if config.model.init_from:
        return _init_source(config)[1]
    if config.model.name not in MODEL_PRESETS:
        return Tokenizer.from_pretrained(model_directory(config.model.name))
    directory = os.path.join(workdir, "tokenizer")
    distributed.barrier("r1jax-tokenizer-check")  # no process reads a half-written file
    if os.path.isfile(os.path.join(directory, "tokenizer.json")):
        return Tokenizer.from_pretrained(directory)
    # Every process fits the same tokenizer (deterministic); process 0 writes it.
    if texts is None:
        fit_on = data_setup.tokenizer_texts(
            config, task_module, prompt_fn(config, task_module, None)
        )
    else:
        fit_on = texts()
    fitted = Tokenizer.train(
        fit_on,
        vocab_size=256 + len(TOKENIZER_SPECIALS) + num_merges,
        special_tokens=TOKENIZER_SPECIALS,
        min_frequency=20,
    )
    if distributed.is_main_process():
        fitted.save_pretrained(directory)
    distributed.barrier("r1jax-tokenizer-saved")
    return fitted


def model_directory(name: str) -> str:
    """A local checkpoint directory for ``model.name``: the path itself, or a hub id's
    snapshot (downloaded with ``huggingface_hub`` when online, else read from its cache)."""
    if os.path.isdir(name):
        return name
    if name.count("/") != 1 or name.startswith((".", "/")):
        raise config_lib.ConfigError(
            f"model.name={name!r} is neither a preset ({', '.join(MODEL_PRESETS)}), a local "
            "checkpoint directory nor a Hugging Face hub id (owner/name)"
        )
    try:
        import huggingface_hub
    except ImportError:
        raise config_lib.ConfigError(
            f"model.name={name!r} looks like a hub id but huggingface_hub is not installed "
            "(pip install huggingface_hub), and no such local directory exists"
        ) from None
    try:
        return huggingface_hub.snapshot_download(
            name, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]
        )
    except Exception as error:
        raise config_lib.ConfigError(
            f"model.name={name!r}: could not download or find it in the hub cache: {error}"
        ) from None


def _init_source(config: ml_collections.ConfigDict) -> tuple[str, Tokenizer]:
    """``("workdir" | "export", tokenizer)`` of ``model.init_from``."""
    from r1jax import export  # export builds on this module

    source = config.model.init_from
    try:
        if os.path.isdir(os.path.join(source, "checkpoints")):
            return "workdir", export.model_and_tokenizer(source, export.read_run_config(source))[1]
        if os.path.isfile(os.path.join(source, "config.json")):
            return "export", Tokenizer.from_pretrained(source)
    except (export.ExportError, OSError, ValueError) as error:
        raise config_lib.ConfigError(f"model.init_from={source!r}: {error}") from None
    raise config_lib.ConfigError(
        f"model.init_from={source!r} is neither a run's workdir (with checkpoints/) nor an "
        "exported model directory (with config.json)"
    )


def _initial_weights(config, mesh, rules) -> tuple[ModelConfig, Any]:
    """The policy of ``model.init_from``: a run's newest checkpoint, or an exported model."""
    from r1jax import export
    from r1jax.models import param_shardings

    source = config.model.init_from
    dtypes = dict(dtype=config.model.dtype, param_dtype=config.model.param_dtype)
    if _init_source(config)[0] == "export":
        model_config, params = load_pretrained(source, mesh=mesh, rules=rules, **dtypes)
        return dataclasses.replace(model_config, attention=config.model.attention), params
    try:
        model_config = export.model_and_tokenizer(source, export.read_run_config(source))[0]
        _, policy = export.restore_policy(source, model_config)
    except export.ExportError as error:
        raise config_lib.ConfigError(f"model.init_from={source!r}: {error}") from None
    model_config = dataclasses.replace(model_config, attention=config.model.attention, **dtypes)
    policy = jax.tree.map(lambda x: np.asarray(x).astype(model_config.params_dtype), policy)
    if mesh is None:
        return model_config, jax.device_put(policy)
    return model_config, jax.device_put(policy, param_shardings(model_config, mesh, rules))


def model(config, tokenizer_: Tokenizer, key: jax.Array, mesh, rules) -> tuple[ModelConfig, Any]:
    """The model config and its params, created (or read) directly in their shardings."""
    if config.model.init_from:
        return _initial_weights(config, mesh, rules)
    dtypes = dict(dtype=config.model.dtype, param_dtype=config.model.param_dtype)
    if config.model.name in MODEL_PRESETS:
        dtypes["attention"] = config.model.attention
        if config.model.vocab_multiple < 1:
            raise config_lib.ConfigError(
                f"model.vocab_multiple={config.model.vocab_multiple}: must be >= 1"
            )
        model_config = ModelConfig.from_scratch(
            config.model.name,
            tokenizer_.vocab_size,
            vocab_multiple=config.model.vocab_multiple,
            **dtypes,
        )
        return model_config, init_params(model_config, key, mesh=mesh, rules=rules)
    model_config, params = load_pretrained(
        model_directory(config.model.name), mesh=mesh, rules=rules, **dtypes
    )
    return dataclasses.replace(model_config, attention=config.model.attention), params


@dataclass(frozen=True)
class StopSettings:
    """What ends a completion: stop token ids, stop token sequences and stop strings."""

    token_ids: tuple[int, ...]
    sequences: tuple[tuple[int, ...], ...]
    strings: stopping.StopStrings | None
    texts: tuple[str, ...]  # the stop strings, to cut decoded text after them


def stop_settings(config, tokenizer_: Tokenizer, vocab_size: int) -> StopSettings:
    """``tokenizer``'s EOS ids plus ``tokenizer.extra_stop_token_ids``, and
    ``sampling.stop_strings`` both as token sequences and as decoded-text matchers."""
    ids = tuple(tokenizer_.eos_token_ids) + tuple(config.tokenizer.extra_stop_token_ids)
    texts = tuple(text for text in config.sampling.stop_strings if text)
    sequences = tuple(s for s in (tuple(tokenizer_.encode(text)) for text in texts) if s)
    strings = stopping.stop_matchers(tokenizer_, texts, vocab_size=vocab_size) if texts else None
    return StopSettings(ids, sequences, strings, texts)


def eval_settings(config, tokenizer_: Tokenizer, stops: StopSettings) -> evaluate.EvalSettings:
    """`evaluate.EvalSettings` of ``eval.*`` (read before training: a bad key fails early)."""
    max_new_tokens = config.eval.max_new_tokens or config.sampling.max_new_tokens
    return evaluate.EvalSettings(
        num_samples=config.eval.k,
        temperature=config.eval.temperature,
        top_p=config.eval.top_p,
        greedy=config.eval.greedy,
        max_new_tokens=max_new_tokens,
        prompts_per_batch=min(64, max(config.eval.num_problems, 1)),
        stop_token_ids=stops.token_ids,
        stop_sequences=stops.sequences,
        stop_strings=stops.strings,
        pad_id=tokenizer_.pad_token_id,
        ks=(1, config.eval.k),
        budget_forcing=evaluate.budget_forcing_from_config(
            config.eval.budget_forcing, tokenizer_, max_new_tokens=max_new_tokens
        ),
        budget_sweep=evaluate.budget_sweep_from_config(
            config.eval.budget_forcing, tokenizer_, max_new_tokens=max_new_tokens
        ),
        verifier_options=tuple(sorted(config.verifier.options.to_dict().items())),
        reflection_keywords=config.logging.reflection_keywords,
    )


def pool_workers(config) -> int:
    """Verifier worker processes: ``verifier.workers``, or when 0 the machine's cores, at most 4
    (verification is cheap)."""
    if config.verifier.workers < 0:
        raise config_lib.ConfigError(
            f"verifier.workers must be >= 0, got {config.verifier.workers}"
        )
    if config.verifier.timeout_seconds <= 0:
        raise config_lib.ConfigError(
            f"verifier.timeout_seconds must be > 0, got {config.verifier.timeout_seconds}"
        )
    return config.verifier.workers or max(1, min(4, os.cpu_count() or 1))
