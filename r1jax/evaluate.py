"""Held-out evaluation of a policy: greedy accuracy, pass@1 over k samples, pass@k and maj@k.

Lives here: `EvalSettings` (what to sample) and `evaluate`, which encodes the problems' prompts,
samples ``k`` completions per problem (and one greedy completion when asked) with the KV-cache
sampler in fixed-shape batches, verifies them with the task's verifier (through a
`r1jax.verifiers.VerifierPool` when one is given), and reduces the verdicts with
`r1jax.eval_metrics.evaluate_samples` (R1 arXiv:2501.12948 §3: pass@1 averaged over the k samples,
unbiased pass@k, maj@k with earliest-index ties). The trainer calls it periodically; the
``python -m r1jax.eval`` command line (`r1jax.eval`) calls it on a checkpoint.

Several processes (a multi-host run): every process calls `evaluate` with the same problems
and key; the sampler shards the rows over the mesh (``mesh``, ``rules``), every process reads
all sampled rows back (`r1jax.distributed.to_host`), verifies a contiguous share of them and
the verdicts are gathered, so every process returns the same results. Budget forcing is
supported there too: each budget-forcing phase gathers its rows to every host.

s1 budget forcing (arXiv:2501.19393 §3.1): with ``EvalSettings.budget_forcing`` set, the greedy
completion and the k samples alike come from
`r1jax.sampling.budget_forcing.sample_with_budget`: the thinking is capped (the end-of-thinking
string and an answer prefix are forced at the cap) and, in ``extend`` mode, an end of thinking
is replaced by ``Wait`` up to ``num_ignore`` times. `budget_forcing_from_config` turns a config
section (``eval.budget_forcing``, keys of `r1jax.config.base_config`) into those settings.

A sweep over thinking budgets (s1's test-time scaling curve, arXiv:2501.19393 §3-4):
``EvalSettings.budget_sweep`` (from `budget_sweep_from_config`: ``thinking_budgets`` x
``num_ignores``) makes `evaluate` run once more per point after the headline evaluation and
report each point's figures under ``results["budget_sweep"]``; ``python -m r1jax.plot`` draws
accuracy against the budget from ``summary.json``.

Not here: the metric formulas (`r1jax.eval_metrics`), the sampler and the budget-forcing
controller (`r1jax.sampling`), the verification rules (`r1jax.tasks`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from r1jax import distributed, eval_metrics
from r1jax.config import ConfigError
from r1jax.data import padding
from r1jax.sampling import budget_forcing as budget_lib
from r1jax.sampling import sampler as sampler_lib
from r1jax.sampling import stopping
from r1jax.sampling.rollout import PromptBatch
from r1jax.tasks.verdict import Verdict
from r1jax.verifiers import inprocess, reflection


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """What `evaluate` samples.

    Attributes:
      num_samples: ``k`` samples per problem (pass@1 is their mean; pass@k and maj@k use all).
      temperature: sampling temperature of the k samples (R1 / DeepScaleR: 0.6).
      top_p: nucleus threshold of the k samples.
      greedy: also decode one greedy completion per problem (``greedy_accuracy``).
      max_new_tokens: completion length cap ``T``.
      prompts_per_batch: prompts per sampler call (the last batch is padded to this size, so
        one shape compiles once).
      stop_token_ids: ids that end a completion (EOS).
      stop_sequences: id sequences that end a completion (e.g. ``</answer>``).
      stop_strings: decoded-text stop strings (`r1jax.sampling.stopping.stop_matchers`), or
        None; completions are cut after them before verification.
      pad_id: the tokenizer's pad id.
      ks: extra k values for pass@k / maj@k (each ``<= num_samples``).
      budget_forcing: s1 budget forcing for the greedy and the sampled completions, or None
        for plain sampling. When set, its ``completion_length`` replaces ``max_new_tokens``.
      budget_sweep: ``(thinking_budget, num_ignore, BudgetForcing)`` points evaluated after
        the headline evaluation (`budget_sweep_from_config`); empty for none.
      verifier_options: ``(name, value)`` keyword arguments of the task's ``verify`` (the run's
        ``verifier.options``, e.g. a math ``scoring`` rule), so held-out completions are
        graded by the rule the rewards use.
      reflection_keywords: the keyword set of ``reflect_rate``
        (`r1jax.verifiers.reflection.reflection_count`; the run's
        ``logging.reflection_keywords``).
    """

    num_samples: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    greedy: bool = True
    max_new_tokens: int = 256
    prompts_per_batch: int = 64
    stop_token_ids: tuple[int, ...] = ()
    stop_sequences: tuple[tuple[int, ...], ...] = ()
    stop_strings: stopping.StopStrings | None = None
    pad_id: int = 0
    ks: tuple[int, ...] = (1,)
    budget_forcing: budget_lib.BudgetForcing | None = None
    budget_sweep: tuple[tuple[int, int, budget_lib.BudgetForcing], ...] = ()
    verifier_options: tuple[tuple[str, Any], ...] = ()
    reflection_keywords: str = "default"


BUDGET_FORCING_MODES = ("none", "cap", "extend")


def _section_value(section: Any, name: str, section_name: str) -> Any:
    try:
        return section[name]
    except (KeyError, AttributeError) as error:
        raise ConfigError(f"{section_name} lacks the key {name!r}") from error


def budget_forcing_from_config(
    section: Mapping[str, Any] | Any,
    tokenizer: Any,
    *,
    max_new_tokens: int,
    section_name: str = "eval.budget_forcing",
) -> budget_lib.BudgetForcing | None:
    """`BudgetForcing` token settings from a ``budget_forcing`` config section, or None.

    The section has the keys of ``base_config().eval.budget_forcing``: ``mode`` (``none``,
    ``cap``: force the end of thinking at the budget, ``extend``: also replace the first
    ``num_ignore`` ends of thinking with ``ignore_string``), ``thinking_budget`` (``0`` = auto),
    ``answer_reserve``, ``num_ignore``, ``ignore_string``, ``end_of_thinking`` and
    ``answer_prefix``. Strings are encoded with ``tokenizer`` on their own, so
    ``end_of_thinking`` is recognised only when the model emits exactly those ids (a token
    merged across its boundary is not seen; a tokenizer with ``</think>`` as one added token
    avoids this).

    The auto budget follows s1's ``max_gen_toks - len(end + "\\nFinal Answer:") - 100`` over
    the completion alone: ``max_new_tokens - len(end_of_thinking ids) - len(answer_prefix ids)
    - answer_reserve``, so the whole completion fits ``max_new_tokens``. An explicit
    ``thinking_budget`` may make the completion longer than ``max_new_tokens`` (its length is
    ``BudgetForcing.completion_length``). The answer after the thinking gets
    ``answer_reserve`` tokens.

    Args:
      section: a ``ConfigDict`` or mapping with the keys above.
      tokenizer: encodes the strings (``encode(text) -> list[int]``).
      max_new_tokens: the completion cap that the auto budget divides.
      section_name: the section's config path, for error messages.

    Returns:
      None when ``mode`` is ``none``, else the settings.

    Raises:
      r1jax.config.ConfigError: (a ``ValueError``) an unknown mode, an empty end-of-thinking or
        ignore string, or an auto budget that leaves no thinking tokens; the message names the
        key.

    Example:
      >>> class Chars:
      ...     def encode(self, text):
      ...         return [ord(c) for c in text]
      >>> section = {"mode": "cap", "thinking_budget": 0, "answer_reserve": 10, "num_ignore": 1,
      ...            "ignore_string": "Wait", "end_of_thinking": "</t>", "answer_prefix": ""}
      >>> bf = budget_forcing_from_config(section, Chars(), max_new_tokens=64)
      >>> bf.max_thinking_tokens, bf.max_answer_tokens, bf.num_ignores, bf.completion_length
      (50, 10, 0, 64)
    """
    mode = _section_value(section, "mode", section_name)
    if mode not in BUDGET_FORCING_MODES:
        raise ConfigError(f"{section_name}.mode={mode!r}; expected one of {BUDGET_FORCING_MODES}")
    if mode == "none":
        return None
    end = tuple(tokenizer.encode(_section_value(section, "end_of_thinking", section_name)))
    if not end:
        raise ConfigError(f"{section_name}.end_of_thinking must not be empty")
    prefix = tuple(tokenizer.encode(_section_value(section, "answer_prefix", section_name) or ""))
    reserve = int(_section_value(section, "answer_reserve", section_name))
    if reserve < 1:
        raise ConfigError(f"{section_name}.answer_reserve must be >= 1, got {reserve}")
    budget = int(_section_value(section, "thinking_budget", section_name))
    if budget < 0:
        raise ConfigError(f"{section_name}.thinking_budget must be >= 0, got {budget}")
    if budget == 0:
        budget = max_new_tokens - len(end) - len(prefix) - reserve
        if budget < 1:
            raise ConfigError(
                f"{section_name}.thinking_budget=0 (auto) leaves {budget} thinking tokens: "
                f"max_new_tokens={max_new_tokens} minus the end of thinking ({len(end)} ids), "
                f"the answer prefix ({len(prefix)} ids) and answer_reserve={reserve}"
            )
    num_ignores, ignore = 0, ()
    if mode == "extend":
        num_ignores = int(_section_value(section, "num_ignore", section_name))
        if num_ignores < 0:
            raise ConfigError(f"{section_name}.num_ignore must be >= 0, got {num_ignores}")
        ignore = tuple(
            tokenizer.encode(_section_value(section, "ignore_string", section_name) or "")
        )
        if num_ignores and not ignore:
            raise ConfigError(f"{section_name}.ignore_string must not be empty in extend mode")
    return budget_lib.BudgetForcing(
        end_of_thinking=end,
        max_thinking_tokens=budget,
        max_answer_tokens=reserve,
        num_ignores=num_ignores,
        ignore=ignore,
        answer_prefix=prefix,
    )


def _optional_value(section: Any, name: str, default: Any) -> Any:
    try:
        return section[name]
    except (KeyError, AttributeError):
        return default


def budget_sweep_from_config(
    section: Mapping[str, Any] | Any,
    tokenizer: Any,
    *,
    max_new_tokens: int,
    section_name: str = "eval.budget_forcing",
) -> tuple[tuple[int, int, budget_lib.BudgetForcing], ...]:
    """The sweep points of a ``budget_forcing`` section: ``(budget, num_ignore, settings)``.

    ``thinking_budgets`` lists the budgets (``()``: no sweep); in ``extend`` mode each budget is
    evaluated with every count of ``num_ignores`` (``()``: the section's ``num_ignore``; ``0``
    is a plain cap), in ``cap`` mode with none. Each point is the section with that
    ``thinking_budget`` and ``num_ignore``, through `budget_forcing_from_config`. Sections
    without the two sweep keys sweep nothing.

    Raises:
      r1jax.config.ConfigError: budgets with ``mode=none``, a budget below 1, ``num_ignores``
        outside ``extend`` mode, or a point `budget_forcing_from_config` rejects.

    Example:
      >>> class Chars:
      ...     def encode(self, text):
      ...         return [ord(c) for c in text]
      >>> section = {"mode": "extend", "thinking_budget": 0, "answer_reserve": 4,
      ...            "num_ignore": 1, "ignore_string": "W", "end_of_thinking": "</t>",
      ...            "answer_prefix": "", "thinking_budgets": (8, 16), "num_ignores": (0, 2)}
      >>> [(b, n, bf.num_ignores) for b, n, bf in budget_sweep_from_config(
      ...     section, Chars(), max_new_tokens=64)]
      [(8, 0, 0), (16, 0, 0), (8, 2, 2), (16, 2, 2)]
    """
    budgets = tuple(int(b) for b in _optional_value(section, "thinking_budgets", ()) or ())
    ignores = tuple(int(n) for n in _optional_value(section, "num_ignores", ()) or ())
    mode = _section_value(section, "mode", section_name)
    if not budgets:
        if ignores:
            raise ConfigError(f"{section_name}.num_ignores needs thinking_budgets to sweep")
        return ()
    if mode == "none":
        raise ConfigError(
            f"{section_name}.thinking_budgets={budgets} needs mode cap or extend, not none"
        )
    if any(budget < 1 for budget in budgets):
        raise ConfigError(f"{section_name}.thinking_budgets must all be >= 1, got {budgets}")
    if ignores and mode != "extend":
        raise ConfigError(f"{section_name}.num_ignores={ignores} needs mode=extend")
    if mode == "extend":
        ignores = ignores or (int(_section_value(section, "num_ignore", section_name)),)
    else:
        ignores = (0,)
    keys = ("mode", "answer_reserve", "ignore_string", "end_of_thinking", "answer_prefix")
    base = {key: _section_value(section, key, section_name) for key in keys}
    points = []
    for num_ignore in ignores:
        for budget in budgets:
            point = {**base, "thinking_budget": budget, "num_ignore": num_ignore}
            settings = budget_forcing_from_config(
                point, tokenizer, max_new_tokens=max_new_tokens, section_name=section_name
            )
            points.append((budget, num_ignore, settings))
    return tuple(points)


@dataclasses.dataclass(frozen=True)
class Completions:
    """Sampled completions of ``N`` prompts, ``G`` rows each (``B = N * G``), on the host.

    Attributes:
      texts: ``B`` decoded completions (special tokens skipped).
      tokens: ``B`` completion id lists (inserted budget-forcing ids included).
      lengths: ``[B]`` completion lengths in tokens.
      truncated: ``[B]`` bool, the row hit its length cap.
      thinking_lengths: ``[B]`` tokens up to and including the end of thinking (budget forcing
        only, else None).
      capped: ``[B]`` bool, the thinking was closed by force (budget forcing only).
      num_ignored: ``[B]`` ends of thinking replaced by ``Wait`` (budget forcing only).
    """

    texts: list[str]
    tokens: list[list[int]]
    lengths: np.ndarray
    truncated: np.ndarray
    thinking_lengths: np.ndarray | None = None
    capped: np.ndarray | None = None
    num_ignored: np.ndarray | None = None


def sample_completions(
    params: Any,
    model_config: Any,
    tokenizer: Any,
    prompt_ids: Sequence[Sequence[int]],
    key: jax.Array,
    sampling_params: sampler_lib.SamplingParams,
    settings: EvalSettings,
    mesh: Any = None,
    rules: Any = None,
) -> Completions:
    """Samples every prompt in fixed-size batches (``settings.prompts_per_batch``).

    With ``settings.budget_forcing`` set, each batch goes through
    `r1jax.sampling.budget_forcing.sample_with_budget` (``sampling_params.max_new_tokens`` is
    then unused); otherwise through `r1jax.sampling.sampler.sample`. With several processes
    every process passes the same prompts and gets every row back (`r1jax.distributed.to_host`
    gathers the sampled rows, which live on all hosts' devices).

    Args:
      params: the policy params.
      model_config: its `ModelConfig`.
      tokenizer: decodes the completions.
      prompt_ids: ``N`` prompt id lists.
      key: PRNG key; rows fold in the prompt's index, so batching does not change samples.
      sampling_params: temperature, stops and ``G``.
      settings: batch size, pad id and budget forcing.
      mesh: the device mesh, or None.
      rules: the `r1jax.sharding.ShardingRules` of ``mesh`` (the default rules when None).

    Returns:
      The `Completions` of the ``N * G`` rows, prompt-major.
    """
    group = sampling_params.num_samples_per_prompt
    budget = settings.budget_forcing
    width = padding.bucket_length(
        max(len(p) for p in prompt_ids), padding.power_of_two_buckets(4096, min_length=16)
    )
    tokens, lengths, truncated = [], [], []
    thinking, capped, ignored = [], [], []
    per_batch = settings.prompts_per_batch
    for start in range(0, len(prompt_ids), per_batch):
        chunk = prompt_ids[start : start + per_batch]
        batch = PromptBatch.from_token_lists(
            chunk,
            length_bucket=width,
            batch_bucket=per_batch,
            pad_id=settings.pad_id,
            prompt_ids=range(start, start + len(chunk)),
        )
        keep = len(chunk) * group
        if budget is None:
            rollout = sampler_lib.sample(
                params, model_config, batch, key, sampling_params, mesh=mesh, rules=rules
            )
            rollout = distributed.to_host(rollout)  # every row, on every process
        else:
            forced = budget_lib.sample_with_budget(
                params, model_config, batch, key, sampling_params, budget, mesh=mesh, rules=rules
            )
            rollout = forced.rollout
            thinking.append(np.asarray(forced.thinking_lengths)[:keep])
            capped.append(np.asarray(forced.capped)[:keep])
            ignored.append(np.asarray(forced.num_ignored)[:keep])
        tokens += rollout.completions()[:keep]
        lengths.append(np.asarray(rollout.lengths)[:keep])
        truncated.append(np.asarray(rollout.finish_reason)[:keep] == stopping.FINISH_LENGTH)
    texts = tokenizer.decode_batch(tokens, skip_special_tokens=True)
    if settings.stop_strings is not None:
        texts = [stopping.truncate_after_stop(t, settings.stop_strings.strings) for t in texts]
    return Completions(
        texts=texts,
        tokens=tokens,
        lengths=np.concatenate(lengths),
        truncated=np.concatenate(truncated),
        thinking_lengths=np.concatenate(thinking) if budget is not None else None,
        capped=np.concatenate(capped) if budget is not None else None,
        num_ignored=np.concatenate(ignored) if budget is not None else None,
    )


def _verify(
    task: str, texts: list[str], problems: list[dict], pool: Any, options: Mapping[str, Any]
) -> list[Verdict]:
    """Verdicts of every row; with several processes each verifies a contiguous share.

    The shares' verdicts are gathered in process order, so every process gets the same list
    (a verifier timeout on one host cannot make the processes' metrics differ), and each row
    is verified once.
    """
    processes = jax.process_count()
    if processes > 1:
        bounds = np.linspace(0, len(texts), processes + 1).astype(int)
        mine = slice(bounds[jax.process_index()], bounds[jax.process_index() + 1])
        texts, problems = texts[mine], problems[mine]
    if pool is not None:
        verdicts = pool.verify_batch(task, texts, problems, **options)
    else:
        verdicts = [
            inprocess.verify(task, text, problem, **options)
            for text, problem in zip(texts, problems)
        ]
    if processes == 1:
        return list(verdicts)
    parts = distributed.gather_objects([verdict.to_dict() for verdict in verdicts])
    return [Verdict(**fields) for part in parts for fields in part]


def evaluate(
    params: Any,
    model_config: Any,
    tokenizer: Any,
    problems: Sequence[dict],
    *,
    task: str,
    prompt_fn: Callable[[dict], str],
    key: jax.Array,
    settings: EvalSettings,
    pool: Any = None,
    mesh: Any = None,
    rules: Any = None,
) -> dict[str, Any]:
    """Evaluates ``params`` on ``problems``: accuracy figures, lengths and example completions.

    Args:
      params: the policy params.
      model_config: its `ModelConfig`.
      tokenizer: an `r1jax.tokenizer.Tokenizer` (encode prompts, decode completions).
      problems: ``N`` problem dicts of ``task``.
      task: the verifier's task name (`r1jax.verifiers.TASKS`).
      prompt_fn: ``problem -> prompt text``.
      key: PRNG key of the k samples (row keys fold in the problem index, so results do not
        depend on the batch size).
      settings: see `EvalSettings`.
      pool: a `VerifierPool`, or None to verify in this process.
      mesh: the device mesh, or None.
      rules: the `r1jax.sharding.ShardingRules` the params are sharded with on ``mesh`` (the
        default rules when None).

    Returns:
      A dict with ``pass@1``, ``pass@{k}``, ``maj@{k}``, ``maj@{k}_tie_rate``,
      ``greedy_accuracy`` (when greedy), ``format_rate`` (well-formed fraction of samples),
      ``reflect_rate`` (the fraction of samples with a self-reflection keyword, as the
      trainer's ``reflection/reflect_rate`` counts them on rollouts),
      ``response_length`` and ``truncated_fraction`` of the samples, ``num_problems``,
      ``num_samples``, and ``examples``: a few ``(prompt, completion, correct)`` dicts. With
      budget forcing also ``thinking_length`` (mean thinking tokens, end of thinking
      included), ``capped_fraction`` and ``ignores_per_sample`` of the k samples. With
      ``settings.budget_sweep`` also ``budget_sweep``: per point a dict of its
      ``thinking_budget``, ``num_ignore`` and the figures above (no examples), from the same
      key.
    """
    if not problems:
        raise ValueError("evaluate needs at least one problem")
    problems = list(problems)
    prompts = [prompt_fn(problem) for problem in problems]
    prompt_ids = [tokenizer.encode(text) for text in prompts]
    base = dict(
        max_new_tokens=settings.max_new_tokens,
        stop_token_ids=tuple(settings.stop_token_ids),
        stop_sequences=tuple(tuple(s) for s in settings.stop_sequences),
        stop_strings=settings.stop_strings,
        pad_id=settings.pad_id,
    )
    k = settings.num_samples
    sampled = sampler_lib.SamplingParams(
        temperature=settings.temperature, top_p=settings.top_p, num_samples_per_prompt=k, **base
    )
    samples = sample_completions(
        params, model_config, tokenizer, prompt_ids, key, sampled, settings, mesh, rules
    )
    texts, lengths, truncated = samples.texts, samples.lengths, samples.truncated
    repeated = [problem for problem in problems for _ in range(k)]
    options = dict(settings.verifier_options)
    verdicts = _verify(task, texts, repeated, pool, options)
    correct = np.array([v.correct for v in verdicts], bool).reshape(len(problems), k)
    answers = [[verdicts[i * k + j].answer for j in range(k)] for i in range(len(problems))]
    greedy_correct = None
    if settings.greedy:
        greedy = sampler_lib.SamplingParams(temperature=0.0, num_samples_per_prompt=1, **base)
        greedy_texts = sample_completions(
            params, model_config, tokenizer, prompt_ids, key, greedy, settings, mesh, rules
        ).texts
        greedy_verdicts = _verify(task, greedy_texts, problems, pool, options)
        greedy_correct = np.array([v.correct for v in greedy_verdicts], bool)
    ks = tuple(sorted({min(max(value, 1), k) for value in settings.ks}))
    report = eval_metrics.evaluate_samples(correct, answers, ks=ks, greedy_correct=greedy_correct)
    results: dict[str, Any] = dict(report.means)
    results["format_rate"] = float(np.mean([v.well_formed for v in verdicts]))
    results["reflect_rate"] = reflection.reflection_stats(
        texts, correct.reshape(-1).tolist(), keywords=settings.reflection_keywords
    )["reflect_rate"]
    results["response_length"] = float(lengths.mean())
    results["truncated_fraction"] = float(truncated.mean())
    results["num_problems"] = len(problems)
    results["num_samples"] = k
    if settings.budget_forcing is not None:
        results["thinking_length"] = float(samples.thinking_lengths.mean())
        results["capped_fraction"] = float(samples.capped.mean())
        results["ignores_per_sample"] = float(samples.num_ignored.mean())
    results["examples"] = [
        {"prompt": prompts[i], "completion": texts[i * k], "correct": bool(correct[i, 0])}
        for i in range(min(3, len(problems)))
    ]
    if settings.budget_sweep:
        results["budget_sweep"] = []
        for budget, num_ignore, forcing in settings.budget_sweep:
            point = dataclasses.replace(settings, budget_forcing=forcing, budget_sweep=())
            figures = evaluate(
                params,
                model_config,
                tokenizer,
                problems,
                task=task,
                prompt_fn=prompt_fn,
                key=key,
                settings=point,
                pool=pool,
                mesh=mesh,
                rules=rules,
            )
            figures.pop("examples")
            results["budget_sweep"].append(
                {"thinking_budget": budget, "num_ignore": num_ignore, **figures}
            )
    return results


def format_summary(results: dict[str, Any], *, label: str = "eval") -> str:
    """One line with the headline figures of `evaluate`'s results (and one more line per
    point of a budget sweep).

    Example:
      >>> format_summary({"pass@1": 0.25, "pass@4": 0.5, "num_problems": 8, "num_samples": 4})
      'eval: pass@1 25.0% | pass@4 50.0% (8 problems x 4 samples)'
    """
    parts = []
    for name in ("greedy_accuracy", "pass@1"):
        if name in results:
            parts.append(f"{name.replace('_accuracy', '')} {100 * results[name]:.1f}%")
    for name, value in results.items():
        if name.startswith(("pass@", "maj@")) and name != "pass@1" and "tie" not in name:
            parts.append(f"{name} {100 * value:.1f}%")
    if "reflect_rate" in results:
        parts.append(f"reflect {100 * results['reflect_rate']:.1f}%")
    count = (
        f"({results.get('num_problems', '?')} problems x {results.get('num_samples', '?')} samples)"
    )
    line = f"{label}: " + " | ".join(parts) + " " + count
    for point in results.get("budget_sweep", ()):
        extension = f" + {point['num_ignore']} ignores" if point["num_ignore"] else ""
        figures = format_summary(point, label="").removeprefix(": ").rsplit(" (", 1)[0]
        line += (
            f"\n  thinking budget {point['thinking_budget']}{extension}: {figures} | thinking "
            f"{point['thinking_length']:.1f} tokens, capped {100 * point['capped_fraction']:.0f}%"
        )
    return line
