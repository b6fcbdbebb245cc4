"""The r1jax trainer: ``python -m r1jax.train --config experiments/NAME.py[:preset] --workdir DIR``.

`run(config, workdir)` is the R1-Zero loop, also callable from a notebook without flag parsing:

    data -> prompts -> sampler (policy) -> text -> verifier pool -> update_step -> metrics, checkpoints

Each RL step draws ``P`` prompts, samples ``G`` completions per prompt with the KV-cache sampler,
decodes them, submits them to the verifier pool (asynchronously: the reference log-probs are
dispatched to the device while the workers verify), and runs `r1jax.update.update_step_fn`,
one compiled program that turns verdicts into rewards, advantages, a loss and an optimizer
update. An optional supervised warm start (``sft.mode = "warmup"``) runs first through the same
step.

Devices: the ``mesh.*`` sizes give a ``data x fsdp x tensor`` mesh over all devices of all
processes (1x1x1 on one device). Params are created (or read from an HF checkpoint) directly in
their shardings, the train state is created by a jit with declared out-shardings, and the step
is `r1jax.update.CompiledSteps`: one ``jax.jit`` per stage config with declared in/out
shardings and the state donated. Batch rows are split over the ``rules.batch`` axes, so
``data.prompts_per_step * sampling.group_size`` (and ``sft.batch_size``) must divide by that
data-parallel size. With several processes (``distributed.*``) each reads its share of every
batch; `r1jax.distributed` describes how rows move between hosts and devices.

Randomness: every stream folds the global step into the root key (``fold_in(key, step)``), so a
resumed run draws exactly what an uninterrupted run would. Checkpoints (``checkpoint.every``)
hold the train state (policy, reference, optimizer, counters) and a host state (data iterator
position, phase, curriculum stage, config hash); the run resumes from the newest one in
``workdir/checkpoints`` and refuses a checkpoint that does not fit. SIGTERM saves and returns.

Config conventions decided here:

* ``objective.algorithm`` picks the estimator; objective keys still at their `base_config`
  default take the algorithm's defaults (`r1jax.update.algorithm_defaults`, e.g. DAPO's
  clip-higher), explicit values win.
* A model preset (``model.name`` = tiny / small / ...) trains from scratch; without
  ``tokenizer.path`` a small byte-level BPE tokenizer is trained on the task's prompts and
  reference traces (``workdir/tokenizer``) and the vocab is sized to it, rounded up to a
  multiple of ``model.vocab_multiple``.
* ``data.source``: ``procedural`` (the task's generator) or a file source of
  `r1jax.data.sources.FILE_SOURCES` (a JSONL/Parquet file, or a tfds ArrayRecord dataset
  directory with ``data.split``). Evaluation reads ``eval.path`` (empty: ``data.path``) with
  ``eval.split``, or the generator with a held-out seed; ``eval.budget_forcing`` applies s1
  budget forcing to it. Both are read once before the first step, so a bad eval key or a
  missing split fails at the start. With several processes every process evaluates the same
  problems and gets the same figures (`r1jax.evaluate`).
* ``sft.source``: a JSONL/Parquet file of ``prompt``/``response`` rows, or
  ``reference[:METHOD=WEIGHT,...]`` for the task's reference traces, mixing methods with the
  given weights; the method ``direct`` is the trace's last line only (the answer without the
  reasoning). Empty means ``reference``.

Not here: what any of these pieces compute (their own modules).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from r1jax import checkpointing, distributed, evaluate, metrics, update
from r1jax import config as config_lib
from r1jax.data import padding, sources
from r1jax.data import prompts as prompt_data
from r1jax.data import sft as sft_data
from r1jax.models import (
    ModelConfig,
    flops_per_token,
    init_params,
    load_pretrained,
    num_params,
    param_shardings,
    save_pretrained,
)
from r1jax.sampling import sampler as sampler_lib
from r1jax.sampling.rollout import PromptBatch, Rollout
from r1jax.tasks.verdict import Verdict
from r1jax.tokenizer import Tokenizer
from r1jax.verifiers import TASKS, VerifierPool, reflection_stats

PRESETS = ("tiny", "small", "qwen05b")
TOKENIZER_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# Stream constants folded into the root key, so sampling, evaluation and init never share keys.
INIT_STREAM, SAMPLE_STREAM, EVAL_STREAM = 0, 1, 2
EVAL_SEED_OFFSET = 1_000_003  # held-out problems come from another generator seed


class TrainingError(RuntimeError):
    """The run cannot go on (e.g. non-finite updates in a row); the message says why."""


# ------------------------------------------------------------------------------------ setup


def _task(config: ml_collections.ConfigDict) -> Any:
    if config.data.task not in TASKS:
        raise config_lib.ConfigError(
            f"data.task={config.data.task!r} is not a task; known: {sorted(TASKS)}"
        )
    return TASKS[config.data.task]


def _task_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
    return dict(config.data.task_options.to_dict()) if config.data.task_options else {}


def _tokenizer_texts(config: ml_collections.ConfigDict, task: Any, count: int = 2000) -> list[str]:
    """Prompts and worked traces of the task: the text a from-scratch tokenizer is fit on.

    The traces are the ones the supervised warm start will train on when ``sft.source`` is a
    ``reference:...`` mixture (every method it names, in its proportions), so words such as
    ``carry`` become tokens rather than letters; otherwise the task's default worked solution.
    """
    prompt_fn = _prompt_fn(config, task, None)
    options = _task_options(config)
    spec = config.sft.source or "reference"
    if config.sft.mode != "none" and spec.startswith("reference"):
        source = _mixed_reference_source(task, spec, seed=config.data.seed + 7, options=options)
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


def _load_tokenizer(config: ml_collections.ConfigDict, workdir: str, task: Any) -> Tokenizer:
    if config.tokenizer.path:
        return Tokenizer.from_pretrained(config.tokenizer.path)
    if config.model.name not in PRESETS:
        return Tokenizer.from_pretrained(config.model.name)
    directory = os.path.join(workdir, "tokenizer")
    distributed.barrier("r1jax-tokenizer-check")  # no process reads a half-written file
    if os.path.isfile(os.path.join(directory, "tokenizer.json")):
        return Tokenizer.from_pretrained(directory)
    # Every process fits the same tokenizer (deterministic); process 0 writes it.
    tokenizer = Tokenizer.train(
        _tokenizer_texts(config, task),
        vocab_size=256 + len(TOKENIZER_SPECIALS) + 256,
        special_tokens=TOKENIZER_SPECIALS,
        min_frequency=20,
    )
    if distributed.is_main_process():
        tokenizer.save_pretrained(directory)
    distributed.barrier("r1jax-tokenizer-saved")
    return tokenizer


def _load_model(
    config: ml_collections.ConfigDict, tokenizer: Tokenizer, key: jax.Array, mesh, rules
) -> tuple[ModelConfig, Any]:
    """The model config and its params, created (or read) directly in their shardings."""
    dtypes = dict(dtype=config.model.dtype, param_dtype=config.model.param_dtype)
    if config.model.name in PRESETS:
        if config.model.vocab_multiple < 1:
            raise config_lib.ConfigError(
                f"model.vocab_multiple={config.model.vocab_multiple}: must be >= 1"
            )
        model_config = ModelConfig.from_scratch(
            config.model.name,
            tokenizer.vocab_size,
            vocab_multiple=config.model.vocab_multiple,
            **dtypes,
        )
        return model_config, init_params(model_config, key, mesh=mesh, rules=rules)
    return load_pretrained(config.model.name, dtype=config.model.dtype, mesh=mesh, rules=rules)


def _prompt_fn(config: ml_collections.ConfigDict, task: Any, tokenizer: Tokenizer | None):
    template = config.data.template
    if template == "r1_zero" and "r1_zero" not in getattr(task, "TEMPLATES", {"r1_zero": 0}):
        template = "base"  # the tasks' own default wording
    if template == "chat" or config.tokenizer.use_chat_template:
        return prompt_data.make_prompt_fn(task, template="chat", tokenizer=tokenizer)
    return prompt_data.make_prompt_fn(task, template=template)


def _problem_source(
    config: ml_collections.ConfigDict, task: Any, *, seed: int, count=None, split=None, path=None
):
    if config.data.source == "procedural":
        return sources.ProceduralSource(
            task.generate, seed=seed, num_records=count, options=_task_options(config)
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


def _mixed_reference_source(task: Any, spec: str, *, seed: int, options: dict) -> Any:
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
        if method == "direct":
            response = response.strip().splitlines()[-1]
        return {**problem, "response": response, "sft_method": method or "default"}

    generate.__name__ = "reference_mixture"
    return sources.ProceduralSource(generate, seed=seed, options=options)


def _sft_iterator(config, task, tokenizer, prompt_fn):
    spec = config.sft.source or "reference"
    if spec.startswith("reference"):
        source = _mixed_reference_source(
            task, spec, seed=config.data.seed + 11, options=_task_options(config)
        )
        text_of_prompt = prompt_fn
    else:
        source = sources.load_problems(
            spec,
            fields={"prompt": "prompt", "response": "response"},
            text_fields=("prompt", "response"),
            on_bad_row=config.data.on_bad_row,
        )

        def text_of_prompt(example):
            return example["prompt"]

    # A whole example must fit: cutting prompts only for long responses would teach the model
    # that a shorter prompt means a longer answer. Examples that do not fit are skipped.
    longest = max(config.data.bucket_sizes) + config.sampling.max_new_tokens + 1
    if config.sft.bucket_step < 1:
        raise config_lib.ConfigError(f"sft.bucket_step={config.sft.bucket_step}: must be >= 1")
    buckets = padding.linear_buckets(longest, step=config.sft.bucket_step)
    return sft_data.sft_batches(
        source,
        prompt_fn=text_of_prompt,
        tokenizer=tokenizer,
        batch_size=config.sft.batch_size // jax.process_count(),  # this process's share
        buckets=buckets,
        seed=config.data.seed,
        shuffle=not spec.startswith("reference"),
        overlong="skip",
        read_options=_read_options(),
    )


def _read_options():
    import grain

    return grain.ReadOptions(num_threads=1, prefetch_buffer_size=8)


def _prompt_iterator(config, task, tokenizer, prompt_fn):
    source = _problem_source(config, task, seed=config.data.seed)
    return prompt_data.prompt_batches(
        source,
        prompt_fn=prompt_fn,
        tokenizer=tokenizer,
        batch_size=config.data.prompts_per_step // jax.process_count(),  # this process's share
        buckets=config.data.bucket_sizes,
        seed=config.data.seed,
        shuffle=config.data.shuffle and config.data.source != "procedural",
        overlong="truncate_left",
        read_options=_read_options(),
    )


def _stop_settings(config, tokenizer) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
    stop_ids = tuple(tokenizer.eos_token_ids) + tuple(config.tokenizer.extra_stop_token_ids)
    sequences = tuple(tuple(tokenizer.encode(text)) for text in config.sampling.stop_strings)
    return stop_ids, tuple(s for s in sequences if s)


def _context_stage(config: ml_collections.ConfigDict, rl_step: int) -> tuple[int, int]:
    """``(stage index, max_new_tokens)`` at an RL step (DeepScaleR context lengthening)."""
    stage, length = 0, config.sampling.max_new_tokens
    for index, (start, tokens) in enumerate(sorted(config.schedule.context_stages)):
        if rl_step >= start:
            stage, length = index + 1, int(tokens)
    return stage, length


def _update_config(
    config: ml_collections.ConfigDict,
    model_config: ModelConfig,
    *,
    sft: bool,
    max_new_tokens: int,
    rules: Any = None,
) -> update.UpdateConfig:
    """The static `UpdateConfig` of one phase / context stage, unpacked from the config."""
    base = config_lib.base_config()
    o, r, opt = config.objective, config.rewards, config.optim
    algorithm = "sft" if sft else o.algorithm
    defaults = update.algorithm_defaults(algorithm)
    explicit = {
        "aggregation": o.aggregation,
        "clip_eps_low": o.clip_eps_low,
        "clip_eps_high": o.clip_eps_high,
        "kl_coef": o.kl_coef,
        "std": o.std,
        "overlong_enabled": r.overlong.enabled,
    }
    base_values = {
        "aggregation": base.objective.aggregation,
        "clip_eps_low": base.objective.clip_eps_low,
        "clip_eps_high": base.objective.clip_eps_high,
        "kl_coef": base.objective.kl_coef,
        "std": base.objective.std,
        "overlong_enabled": base.rewards.overlong.enabled,
    }
    chosen = {
        name: defaults[name] if value == base_values[name] and name in defaults else value
        for name, value in explicit.items()
    }
    if sft:
        chosen["kl_coef"] = 0.0
    if config.reference.mode == "none":
        chosen["kl_coef"] = 0.0
    if sft:  # the warm start has its own schedule, which ends with sft.steps
        schedule = config.sft
        total_steps = max(schedule.steps, schedule.warmup_steps + 1)
    else:
        schedule = opt
        total_steps = opt.warmup_steps + (
            opt.decay_steps or max(config.steps - opt.warmup_steps, 1)
        )
    if schedule.schedule not in ("constant", "cosine", "linear"):
        section = "sft" if sft else "optim"
        raise config_lib.ConfigError(
            f"{section}.schedule={schedule.schedule!r}: must be constant, cosine or linear"
        )
    optimizer = update.OptimizerConfig(
        learning_rate=config.sft.lr if sft else opt.lr,
        warmup_steps=schedule.warmup_steps,
        decay=schedule.schedule,
        total_steps=total_steps,
        end_fraction=schedule.min_lr_ratio,
        weight_decay=opt.weight_decay,
        b1=opt.b1,
        b2=opt.b2,
        eps=opt.eps,
        max_grad_norm=opt.grad_clip_norm,
    )
    try:
        return update.UpdateConfig(
            model=model_config,
            optimizer=optimizer,
            algorithm=algorithm,
            group_size=config.sampling.group_size,
            advantage=defaults.get("advantage", "group"),
            std=defaults.get("std", chosen["std"]) if o.std == base.objective.std else o.std,
            advantage_eps=o.advantage_eps,
            aggregation=chosen["aggregation"],
            aggregation_constant=o.aggregation_constant,
            sequence_level_ratio=defaults.get("sequence_level_ratio", False),
            clip_eps_low=chosen["clip_eps_low"],
            clip_eps_high=chosen["clip_eps_high"],
            dual_clip=o.dual_clip,
            logratio_clamp=o.logratio_clamp,
            kl_coef=chosen["kl_coef"],
            kl_estimator=o.kl_estimator,
            kl_placement=o.kl_placement,
            entropy_coef=0.0 if sft else o.entropy_coef,
            temperature=config.sampling.temperature,
            max_new_tokens=max_new_tokens,
            correctness_weight=r.correctness_weight,
            format_weight=r.format_weight,
            truncated_is_incorrect=r.truncated_is_incorrect,
            cosine_enabled=r.cosine.enabled,
            cosine_max_correct=r.cosine.max_correct,
            cosine_min_correct=r.cosine.min_correct,
            cosine_max_wrong=r.cosine.max_wrong,
            cosine_min_wrong=r.cosine.min_wrong,
            cosine_exceed=r.cosine.exceed,
            cosine_margin=r.cosine.margin,
            cosine_max_length=r.cosine.max_length,
            overlong_enabled=chosen["overlong_enabled"],
            overlong_cache_length=r.overlong.cache_length,
            overlong_penalty_factor=r.overlong.penalty_factor,
            repetition_enabled=r.repetition.enabled,
            repetition_ngram_size=r.repetition.ngram_size,
            repetition_penalty=r.repetition.penalty,
            repetition_only_start=r.repetition.only_start,
            mask_truncated=o.mask_truncated,
            num_iterations=1 if sft else o.num_iterations,
            minibatches_per_step=1 if sft else opt.minibatches_per_step,
            micro_batch_size=opt.micro_batch_size,
            logprob_chunk_size=opt.logprob_chunk_size,
            remat=config.model.remat,
            rules=rules,
        )
    except ValueError as error:  # a value UpdateConfig rejects
        raise config_lib.ConfigError(str(error)) from error


# ---------------------------------------------------------------------------- checkpoints


def _state_tree(state: update.TrainState) -> dict[str, Any]:
    tree = {field.name: getattr(state, field.name) for field in dataclasses.fields(state)}
    if tree["reference"] is None:
        del tree["reference"]
    return tree


def _state_from_tree(tree: dict[str, Any]) -> update.TrainState:
    return update.TrainState(**{"reference": None, **tree})


# ---------------------------------------------------------------------------------- steps


def _sampling_params(config, stop_ids, stop_sequences, pad_id, max_new_tokens):
    return sampler_lib.SamplingParams(
        max_new_tokens=max_new_tokens,
        temperature=config.sampling.temperature,
        top_p=config.sampling.top_p,
        top_k=config.sampling.top_k,
        min_p=config.sampling.min_p,
        stop_token_ids=stop_ids,
        stop_sequences=stop_sequences,
        num_samples_per_prompt=config.sampling.group_size,
        pad_id=pad_id,
    )


def _to_sampler_batch(prompts: prompt_data.PromptBatch, pad_id: int) -> PromptBatch:
    """This process's prompts joined with every other process's: one global host batch.

    Processes whose longest prompts fall in different buckets left-pad to the widest, so the
    global batch has one shape (the bucket one process reading every prompt would pick).
    """
    tokens = np.asarray(prompts.tokens, np.int32)
    width = distributed.global_max(tokens.shape[1])
    tokens = np.pad(tokens, ((0, 0), (width - tokens.shape[1], 0)), constant_values=pad_id)
    local = {
        "tokens": tokens,
        "lengths": np.asarray(prompts.lengths, np.int32),
        "prompt_ids": (np.asarray(prompts.indices) % (2**31 - 1)).astype(np.int32),
    }
    return PromptBatch(**distributed.gather_rows(local))


def _gather_verdicts(verdicts: list[Verdict]) -> list[Verdict]:
    """Every process's verdicts, in process order (the rows of the global batch)."""
    if jax.process_count() == 1:
        return verdicts
    parts = distributed.gather_objects([v.to_dict() for v in verdicts])
    return [Verdict(**fields) for part in parts for fields in part]


def _concat_rollouts(parts: list[Rollout], pad_id: int) -> Rollout:
    """Concatenates rollouts row-wise, left-padding prompts to the widest one."""
    width = max(p.prompt_tokens.shape[1] for p in parts)

    def widen(tokens):
        tokens = np.asarray(tokens)
        extra = width - tokens.shape[1]
        return np.pad(tokens, ((0, 0), (extra, 0)), constant_values=pad_id)

    arrays = {
        f.name: np.concatenate(
            [
                widen(getattr(p, f.name))
                if f.name == "prompt_tokens"
                else np.asarray(getattr(p, f.name))
                for p in parts
            ]
        )
        for f in dataclasses.fields(Rollout)
    }
    return Rollout(**arrays)


def _take_rows(rollout: Rollout, rows: np.ndarray) -> Rollout:
    return Rollout(
        **{f.name: np.asarray(getattr(rollout, f.name))[rows] for f in dataclasses.fields(Rollout)}
    )


class _Run:
    """The state of one `run` call that the step functions share: settings, the mesh and the
    compiled programs (`update.CompiledSteps`)."""

    def __init__(self, config, workdir, mesh, rules, task, tokenizer, model_config, prompt_fn):
        self.config, self.workdir, self.mesh, self.rules = config, workdir, mesh, rules
        self.task, self.tokenizer, self.model_config = task, tokenizer, model_config
        self.prompt_fn, self.pool, self.steps = prompt_fn, None, None
        self.stop_ids, self.stop_sequences = _stop_settings(config, tokenizer)
        self.eval_settings = None
        if config.eval.num_problems:  # (problems, EvalSettings)
            self.eval_settings = _eval_settings(
                config, task, tokenizer, self.stop_ids, self.stop_sequences
            )
        self.root_key = jax.random.key(config.seed)
        self.timer = metrics.Timer()
        self.rows = distributed.row_sharding(mesh, rules)

    def put_batch(self, batch: update.UpdateBatch) -> update.UpdateBatch:
        """A host `UpdateBatch` of the global rows -> rows sharded over the batch axes."""
        return distributed.put_rows(batch, self.rows)

    def sample_and_verify(self, params, prompts, key, max_new_tokens):
        """Samples the global batch, verifies this process's rows (asynchronously).

        Returns ``(rollout, texts, problems, handle)``: the host rollout and texts of every
        row, the problems of every row (for logging) and the pool handle of this process's
        verdicts.
        """
        config = self.config
        params_sampling = _sampling_params(
            config, self.stop_ids, self.stop_sequences, self.tokenizer.pad_token_id, max_new_tokens
        )
        group = config.sampling.group_size
        with self.timer.section("sample"):
            rollout = sampler_lib.sample(
                params,
                self.model_config,
                _to_sampler_batch(prompts, self.tokenizer.pad_token_id),
                key,
                params_sampling,
                mesh=self.mesh,
                rules=self.rules,
            )
            rollout = distributed.to_host(rollout)
        texts = self.tokenizer.decode_batch(rollout.completions(), skip_special_tokens=True)
        local_problems = [p for p in prompts.problems for _ in range(group)]
        mine = distributed.process_rows(len(texts))
        handle = self.pool.submit_batch(config.data.task, texts[mine], local_problems)
        problems = [p for part in distributed.gather_objects(local_problems) for p in part]
        return rollout, texts, problems, handle


def _verdict_arrays(verdicts) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array([v.correct for v in verdicts], bool),
        np.array([v.well_formed or v.correct for v in verdicts], bool),
    )


def _host_metrics(rollout, texts, verdicts, config) -> dict[str, float]:
    correct, well_formed = _verdict_arrays(verdicts)
    lengths = np.asarray(rollout.lengths)
    truncated = np.asarray(rollout.finish_reason) == 3
    out = {
        "accuracy": float(correct.mean()),
        "format_rate": float(well_formed.mean()),
        "response_length/mean": float(lengths.mean()),
        "response_length/max": float(lengths.max()),
        "truncated_fraction": float(truncated.mean()),
    }
    grouped = correct.reshape(-1, config.sampling.group_size)
    out["pass@group"] = float(grouped.any(axis=1).mean())
    reasons = {}
    for verdict in verdicts:
        reasons[verdict.reason] = reasons.get(verdict.reason, 0) + 1
    for reason, count in reasons.items():
        out[f"verifier/{reason}"] = float(count)
    stats = reflection_stats(
        texts, correct.tolist(), keywords=config.logging.reflection_keywords, lengths=lengths
    )
    for name in ("reflect_rate", "ssr_rate", "acc_given_reflect"):
        if name in stats and np.isfinite(stats[name]):  # rates over empty groups are undefined
            out[f"reflection/{name}"] = float(stats[name])
    return out


def _rl_step(run: _Run, state, prompt_iterator, rl_step: int, global_step: int, stage_update):
    """One RL step: sample (with dynamic-sampling refills), verify, update. Returns
    ``(state, device_metrics, host_metrics, samples)``."""
    config = run.config
    update_config = stage_update
    step_key = jax.random.fold_in(jax.random.fold_in(run.root_key, SAMPLE_STREAM), global_step)
    dynamic = config.objective.dynamic_sampling
    max_rounds = dynamic.max_rounds if dynamic.max_rounds > 0 else 1_000_000
    wanted = config.data.prompts_per_step
    group = config.sampling.group_size
    kept_rollouts, kept_texts, kept_problems, kept_verdicts = [], [], [], []
    spare = []
    verify_wait = 0.0
    verify_total = 0.0
    rounds = 0
    num_kept = 0
    reference = None
    while True:
        prompts = next(prompt_iterator)
        key = jax.random.fold_in(step_key, rounds)
        rollout, texts, problems, handle = run.sample_and_verify(
            state.policy, prompts, key, update_config.max_new_tokens
        )
        submitted = time.perf_counter()
        if update_config.uses_reference and not dynamic.enabled:
            # The device computes the reference log-probs while the workers verify.
            unverified = run.put_batch(update.UpdateBatch.from_rollout(rollout, xp=np))
            reference = run.steps.reference(state.reference, unverified, update_config)
        waited = time.perf_counter()
        verdicts = _gather_verdicts(handle.result())
        done = time.perf_counter()
        verify_wait += done - waited
        verify_total += done - submitted
        rounds += 1
        if not dynamic.enabled:
            kept_rollouts, kept_texts, kept_problems, kept_verdicts = (
                [rollout],
                texts,
                problems,
                verdicts,
            )
            break
        correct = _verdict_arrays(verdicts)[0].reshape(-1, group)
        informative = correct.any(axis=1) & ~correct.all(axis=1)
        for index in range(correct.shape[0]):
            rows = np.arange(index * group, (index + 1) * group)
            entry = (
                _take_rows(rollout, rows),
                texts[rows[0] : rows[-1] + 1],
                problems[rows[0] : rows[-1] + 1],
                verdicts[rows[0] : rows[-1] + 1],
            )
            if informative[index] and num_kept < wanted:
                kept_rollouts.append(entry[0])
                kept_texts += entry[1]
                kept_problems += entry[2]
                kept_verdicts += entry[3]
                num_kept += 1
            else:
                spare.append(entry)
        if num_kept >= wanted or rounds >= max_rounds:
            for entry in spare[: wanted - num_kept]:  # refill to keep shapes fixed
                kept_rollouts.append(entry[0])
                kept_texts += entry[1]
                kept_problems += entry[2]
                kept_verdicts += entry[3]
            break
    rollout = (
        kept_rollouts[0]
        if len(kept_rollouts) == 1
        else _concat_rollouts(kept_rollouts, run.tokenizer.pad_token_id)
    )
    correct, well_formed = _verdict_arrays(kept_verdicts)
    batch = run.put_batch(update.UpdateBatch.from_rollout(rollout, correct, well_formed, xp=np))
    batch = dataclasses.replace(batch, reference_logprobs=reference)
    with run.timer.section("update"):
        state, device_metrics = run.steps.update(state, batch, update_config)
        streak = int(state.nonfinite_streak)
    host = _host_metrics(rollout, kept_texts, kept_verdicts, config)
    host["time/verify_total"] = verify_total
    host["time/verify_wait"] = verify_wait
    host["time/verify_hidden"] = max(verify_total - verify_wait, 0.0)
    if dynamic.enabled:
        host["dynamic_sampling/rounds"] = float(rounds)
        host["dynamic_sampling/kept_groups"] = float(min(num_kept, wanted))
    host["tokens"] = float(np.asarray(rollout.lengths).sum())
    samples = [
        {"prompt": kept_problems[i], "completion": kept_texts[i], "reason": kept_verdicts[i].reason}
        for i in range(min(config.logging.samples_to_log, len(kept_texts)))
    ]
    if streak >= config.max_nonfinite_in_a_row:
        raise TrainingError(
            f"step {global_step}: {streak} optimizer updates in a row had a non-finite loss or "
            f"gradient (max_nonfinite_in_a_row={config.max_nonfinite_in_a_row}); the last "
            "finite state is in the latest checkpoint. Lower optim.lr or check the data."
        )
    return state, device_metrics, host, samples


def _sft_step(run: _Run, state, sft_iterator, update_config):
    """One supervised step on this process's share of the batch (rows of all processes)."""
    batch = next(sft_iterator)
    tokens, loss_mask = np.asarray(batch.tokens), np.asarray(batch.loss_mask)
    extra = distributed.global_max(tokens.shape[1]) - tokens.shape[1]  # one width everywhere
    tokens = np.pad(tokens, ((0, 0), (0, extra)), constant_values=run.tokenizer.pad_token_id)
    loss_mask = np.pad(loss_mask, ((0, 0), (0, extra)))
    local = update.UpdateBatch.from_sft(tokens, loss_mask, batch.lengths, xp=np)
    update_batch = distributed.put_local_rows(local, run.rows)
    with run.timer.section("update"):
        state, device_metrics = run.steps.update(state, update_batch, update_config)
        streak = int(state.nonfinite_streak)
    if streak >= run.config.max_nonfinite_in_a_row:
        raise TrainingError(
            f"supervised warm start: {streak} non-finite updates in a row; lower sft.lr"
        )
    counts = np.array([loss_mask.sum(), sft_iterator.counts.get("skipped_overlong", 0)], float)
    tokens_total, skipped = distributed.gather_rows(counts[None]).sum(axis=0)
    host = {"tokens": float(tokens_total), "sft/skipped_overlong": float(skipped)}
    return state, device_metrics, host


def _eval_settings(config, task, tokenizer, stop_ids, stop_sequences):
    """The held-out problems and the `evaluate.EvalSettings` of ``eval.*``.

    Read once before training, so a missing eval split or a bad ``eval.budget_forcing`` key is
    an error at the start of the run, not after its steps.
    """
    problems = _problem_source(
        config,
        task,
        seed=config.data.seed + EVAL_SEED_OFFSET,
        count=config.eval.num_problems,
        split=config.eval.split,
        path=config.eval.path,
    )
    problems = [problems[i] for i in range(len(problems))]
    if not problems:
        where = config.eval.path or config.data.path
        raise config_lib.ConfigError(
            f"eval.num_problems={config.eval.num_problems} but the evaluation source "
            f"({where}, split {config.eval.split!r}) holds no problems"
        )
    max_new_tokens = config.eval.max_new_tokens or config.sampling.max_new_tokens
    settings = evaluate.EvalSettings(
        num_samples=config.eval.k,
        temperature=config.eval.temperature,
        top_p=config.eval.top_p,
        greedy=config.eval.greedy,
        max_new_tokens=max_new_tokens,
        prompts_per_batch=min(64, len(problems)),
        stop_token_ids=stop_ids,
        stop_sequences=stop_sequences,
        pad_id=tokenizer.pad_token_id,
        ks=(1, config.eval.k),
        budget_forcing=evaluate.budget_forcing_from_config(
            config.eval.budget_forcing, tokenizer, max_new_tokens=max_new_tokens
        ),
    )
    return problems, settings


def _evaluate(run: _Run, params, label: str, step: int) -> dict[str, Any]:
    config = run.config
    problems, settings = run.eval_settings
    key = jax.random.fold_in(run.root_key, EVAL_STREAM)  # the same samples' keys at every eval
    with run.timer.section("eval"):
        results = evaluate.evaluate(
            params,
            run.model_config,
            run.tokenizer,
            problems,
            task=config.data.task,
            prompt_fn=run.prompt_fn,
            key=key,
            settings=settings,
            pool=run.pool,
            mesh=run.mesh,
            rules=run.rules,
        )
    if distributed.is_main_process():  # every process has the same results
        print(evaluate.format_summary(results, label=f"{label} (step {step})"), flush=True)
    return results


# ------------------------------------------------------------------------------------- run


def run(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    devices: Sequence[jax.Device] | None = None,
) -> dict[str, Any]:
    """Trains as ``config`` says, writing checkpoints, metrics and exports under ``workdir``.

    Resumes from the newest checkpoint in ``workdir/checkpoints`` when there is one (into the
    current mesh's shardings, whatever mesh wrote it). With several processes (see
    ``distributed.*`` and `r1jax.distributed`), every process calls `run` with the same config;
    process 0 writes metrics, the summary and the export, and all of them write checkpoints.

    Args:
      config: a resolved config (`r1jax.config.load_config`).
      workdir: the run directory (created when missing); shared by all processes.
      devices: the devices of the ``mesh.*`` mesh; all of ``jax.devices()`` when None.

    Returns:
      A summary: ``final_step``, the evaluation results ``eval_after_sft`` / ``eval_final``
      (when evaluations ran), ``stopped`` (``"completed"`` or ``"preempted"``) and the paths of
      the metrics file and the exported model.

    Raises:
      r1jax.config.ConfigError: a config value the trainer cannot use.
      r1jax.checkpointing.CheckpointError: a checkpoint in ``workdir`` that cannot be resumed.
      TrainingError: too many non-finite updates in a row.
    """
    distributed.initialize(config.distributed)
    main_process = distributed.is_main_process()
    log = print if main_process else distributed.quiet
    workdir = os.path.abspath(os.fspath(workdir))
    os.makedirs(workdir, exist_ok=True)
    if main_process:
        config_lib.save_config(config, workdir)
    task = _task(config)
    mesh = distributed.mesh_from_config(config, devices)
    rules = distributed.rules_from_config(config, mesh)
    sft_steps = config.sft.steps if config.sft.mode == "warmup" else 0
    distributed.check_layout(config, mesh, rules, sft=bool(sft_steps))
    tokenizer = _load_tokenizer(config, workdir, task)
    init_key = jax.random.fold_in(jax.random.key(config.seed), INIT_STREAM)
    model_config, params = _load_model(config, tokenizer, init_key, mesh, rules)
    prompt_fn = _prompt_fn(config, task, tokenizer)
    total_steps = sft_steps + config.steps
    config_hash = config_lib.config_hash(config)

    rl_update = {}

    def rl_update_config(stage_tokens):
        if stage_tokens not in rl_update:
            rl_update[stage_tokens] = _update_config(
                config, model_config, sft=False, max_new_tokens=stage_tokens, rules=rules
            )
        return rl_update[stage_tokens]

    sft_update = _update_config(
        config, model_config, sft=True, max_new_tokens=config.sampling.max_new_tokens, rules=rules
    )
    # One state structure for both phases (a reference only when RL uses one).
    shape_config = rl_update_config(config.sampling.max_new_tokens)
    run_state = _Run(config, workdir, mesh, rules, task, tokenizer, model_config, prompt_fn)
    abstract_state = jax.eval_shape(
        functools.partial(update.init_train_state, config=shape_config), params
    )
    policy_sharding = param_shardings(model_config, mesh, rules)
    run_state.steps = update.CompiledSteps(mesh, policy_sharding, run_state.rows, abstract_state)
    state = run_state.steps.init(params, shape_config)
    del params  # donated to the state
    prompt_iterator = _prompt_iterator(config, task, tokenizer, prompt_fn)
    sft_iterator = _sft_iterator(config, task, tokenizer, prompt_fn) if sft_steps else None
    summary: dict[str, Any] = {"stopped": "completed"}

    checkpointer = checkpointing.Checkpointer(
        os.path.join(workdir, "checkpoints"),
        save_every=config.checkpoint.every,
        keep=config.checkpoint.keep,
        async_save=config.checkpoint.async_save,
    )
    start = 0
    abstract_tree = checkpointing.abstract_like(_state_tree(state))  # with the shardings
    if checkpointer.latest_step() is not None:
        state = None  # free the fresh state before the checkpoint is read into its shardings
    restored = checkpointing.restore_latest_or_none(
        checkpointer, abstract_train_state=abstract_tree, expected_config_hash=config_hash
    )
    if restored is not None:
        start, tree, host_state = restored
        state = _state_from_tree(tree)
        where = f"checkpoint {workdir}/checkpoints/{start}"
        prompt_iterator.set_state(distributed.this_process(host_state["prompt_data"], where))
        if sft_iterator is not None and host_state.get("sft_data") is not None:
            sft_iterator.set_state(distributed.this_process(host_state["sft_data"], where))
        summary.update(host_state.get("summary", {}))
        log(f"r1jax: resumed {workdir} at step {start}", flush=True)

    writer = metrics.create_writer(
        workdir,
        console=False,
        jsonl=config.logging.jsonl,
        tensorboard=config.logging.tensorboard,
        wandb_project=config.logging.wandb_project if config.logging.wandb else None,
        wandb_config=config_lib.config_to_dict(config),
        process_index=jax.process_index(),
        run_name=config.logging.run_name or os.path.basename(workdir),
        resume_from_step=start if restored is not None else None,
    )
    bar = metrics.ProgressBar(
        total_steps,
        initial_step=start,
        enabled=config.logging.progress_bar and main_process,
        postfix_keys={"reward": "reward/total", "acc": "accuracy", "len": "response_length/mean"},
    )
    flops_token = flops_per_token(model_config, config.sampling.max_new_tokens)
    peak = None
    log(
        f"r1jax: {config.objective.algorithm} on {config.data.task}, model {config.model.name} "
        f"({num_params(model_config) / 1e6:.2f}M params, vocab {model_config.vocab_size}), "
        f"{sft_steps} SFT + {config.steps} RL steps, mesh {dict(mesh.shape)} over "
        f"{jax.process_count()} process(es), workdir {workdir}",
        flush=True,
    )

    def host_state(step):
        return {
            "config_hash": config_hash,
            "step": step,
            "phase": "sft" if step < sft_steps else "rl",
            "context_stage": _context_stage(config, max(step - sft_steps, 0))[0],
            "seed": config.seed,
            "prompt_data": distributed.per_process(prompt_iterator.get_state()),
            "sft_data": None
            if sft_iterator is None
            else distributed.per_process(sft_iterator.get_state()),
            "summary": {k: v for k, v in summary.items() if k.startswith("eval")},
        }

    pool = VerifierPool(
        config_pool_workers(config), timeout_seconds=config.verifier.timeout_seconds
    )
    run_state.pool = pool
    step = start
    try:
        with checkpointing.PreemptionGuard() as guard:
            if step == 0 and config.eval.at_start and config.eval.num_problems:
                summary["eval_at_start"] = _eval_and_log(
                    run_state, state.policy, "eval at start", 0, writer
                )
            while step < total_steps:
                if distributed.any_process(guard.stop_requested):
                    checkpointer.save(
                        step,
                        train_state=_state_tree(state),
                        host_state=host_state(step),
                        force=True,
                    )
                    checkpointer.wait_until_finished()
                    log(f"r1jax: SIGTERM at step {step}: saved and stopping", flush=True)
                    summary["stopped"] = "preempted"
                    break
                run_state.timer.reset()
                step_start = time.perf_counter()
                if step < sft_steps:
                    state, device_metrics, host = _sft_step(
                        run_state, state, sft_iterator, sft_update
                    )
                    samples = []
                else:
                    if step == sft_steps and sft_steps:
                        # Warm start done: fresh optimizer, reference = the warm-started policy.
                        state = run_state.steps.init(state.policy, shape_config)
                        if config.eval.num_problems:
                            summary["eval_after_sft"] = _eval_and_log(
                                run_state, state.policy, "eval after SFT", step, writer
                            )
                    rl_step = step - sft_steps
                    state = _maybe_reset_reference(config, state, rl_step, run_state)
                    _, stage_tokens = _context_stage(config, rl_step)
                    state, device_metrics, host, samples = _rl_step(
                        run_state,
                        state,
                        prompt_iterator,
                        rl_step,
                        step,
                        rl_update_config(stage_tokens),
                    )
                step += 1
                elapsed = time.perf_counter() - step_start
                if checkpointer.should_save(step):
                    checkpointer.save(
                        step, train_state=_state_tree(state), host_state=host_state(step)
                    )
                if step % config.logging.every == 0 or step == total_steps:
                    scalars = {k: float(v) for k, v in jax.device_get(device_metrics).items()}
                    scalars.update(host)
                    scalars.update(run_state.timer.durations())
                    scalars["time/step"] = elapsed
                    scalars["tokens_per_second"] = host["tokens"] / max(elapsed, 1e-9)
                    if peak is None:
                        peak = metrics.peak_flops(jax.devices()[0])
                    # Approximate: 3 forward passes' worth (forward + backward) per trained
                    # token plus one forward per sampled token; prompt tokens are left out.
                    passes = 3 if step <= sft_steps else 4
                    scalars["mfu"] = metrics.model_flops_utilization(
                        passes * flops_token * host["tokens"],
                        elapsed,
                        peak_flops_per_device=peak,
                        num_devices=jax.device_count(),
                    )
                    scalars["phase_sft"] = float(step <= sft_steps)
                    writer.write_scalars(step, scalars)
                    if samples:
                        writer.write_texts(step, {"samples": json.dumps(samples, default=str)})
                    writer.flush()
                    bar.update(step, scalars)
                    if config.logging.console and main_process:
                        _print_summary(step, total_steps, scalars)
                if (
                    config.eval.every
                    and step > sft_steps
                    and (step - sft_steps) % config.eval.every == 0
                    and step < total_steps
                ):
                    _eval_and_log(run_state, state.policy, "eval", step, writer)
            else:
                if config.eval.num_problems and total_steps > sft_steps:
                    summary["eval_final"] = _eval_and_log(
                        run_state, state.policy, "eval after RL", step, writer
                    )
                elif config.eval.num_problems and sft_steps and "eval_after_sft" not in summary:
                    summary["eval_after_sft"] = _eval_and_log(
                        run_state, state.policy, "eval after SFT", step, writer
                    )
                checkpointer.save(
                    step, train_state=_state_tree(state), host_state=host_state(step), force=True
                )
                export = os.path.join(workdir, "export")
                policy = distributed.to_host(state.policy)  # every process takes part
                if main_process:
                    save_pretrained(export, model_config, policy, tokenizer)
                summary["export"] = export
    finally:
        bar.close()
        writer.close()
        pool.close()
        checkpointer.close()
    summary["final_step"] = step
    summary["metrics_file"] = os.path.join(workdir, metrics.METRICS_FILE)
    for key in ("eval_after_sft", "eval_final"):
        if key in summary:
            summary[key] = {k: v for k, v in summary[key].items() if k != "examples"}
    if main_process:
        with open(os.path.join(workdir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2, default=str)
    return summary


def _maybe_reset_reference(
    config, state: update.TrainState, rl_step: int, run
) -> update.TrainState:
    """R1's reference reset: every ``reference.reset_every`` RL steps, reference <- policy."""
    every = config.reference.reset_every
    if config.reference.mode != "reset_every" or not every or state.reference is None:
        return state
    if rl_step and rl_step % every == 0:
        copy = update.reference_copy(state.policy, run.model_config)
        return state.replace(reference=jax.device_put(copy, run.steps.policy_sharding))
    return state


def config_pool_workers(config) -> int:
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


def _eval_and_log(run_state, params, label, step, writer) -> dict[str, Any]:
    results = _evaluate(run_state, params, label, step)
    scalars = {f"eval/{k}": float(v) for k, v in results.items() if isinstance(v, int | float)}
    writer.write_scalars(max(step, 0), scalars)
    writer.write_texts(max(step, 0), {"eval_examples": json.dumps(results["examples"])})
    return results


def _print_summary(step: int, total: int, scalars: dict[str, float]) -> None:
    names = (
        ("loss", "loss"),
        ("reward", "reward/total"),
        ("acc", "accuracy"),
        ("len", "response_length/mean"),
        ("kl", "kl"),
        ("ent", "entropy"),
        ("gnorm", "grad_norm"),
        ("s", "time/step"),
    )
    parts = [f"{label} {scalars[name]:.4g}" for label, name in names if name in scalars]
    print(f"step {step}/{total}: " + " | ".join(parts), flush=True)


# ------------------------------------------------------------------------------------- CLI


def default_experiment() -> str:
    """Path of ``experiments/default.py`` next to the package (what no arguments runs)."""
    return str(Path(__file__).resolve().parents[1] / "experiments" / "default.py")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m r1jax.train [--config FILE[:preset]] [--config.key=value ...] --workdir DIR``.

    With no arguments, runs ``experiments/default.py`` into a fresh directory under the
    current folder and prints where.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        workdir = os.path.join(os.getcwd(), "r1jax_runs", f"default-{stamp}")
        print(f"r1jax: no arguments: running {default_experiment()} into {workdir}", flush=True)
        argv = ["--config", default_experiment(), "--workdir", workdir]
    cli = config_lib.parse_command_line(argv, prog="python -m r1jax.train")
    summary = run(cli.config, cli.workdir)
    if distributed.is_main_process():
        print(f"r1jax: done: {json.dumps(summary, default=str)}", flush=True)
    return summary


if __name__ == "__main__":
    main()
