"""Held-out evaluation of a policy: greedy accuracy, pass@1 over k samples, pass@k and maj@k.

Lives here: `EvalSettings` (what to sample) and `evaluate`, which encodes the problems' prompts,
samples ``k`` completions per problem (and one greedy completion when asked) with the KV-cache
sampler in fixed-shape batches, verifies them with the task's verifier (through a
`r1jax.verifiers.VerifierPool` when one is given), and reduces the verdicts with
`r1jax.eval_metrics.evaluate_samples` (ALGORITHMS.md §9: pass@1 averaged over the k samples,
unbiased pass@k, maj@k with earliest-index ties). The trainer calls it periodically; the
``python -m r1jax.eval`` command line (`r1jax.eval`) calls it on a checkpoint.

Not here: the metric formulas (`r1jax.eval_metrics`), the sampler (`r1jax.sampling`), the
verification rules (`r1jax.tasks`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from r1jax import eval_metrics
from r1jax.data import padding
from r1jax.sampling import sampler as sampler_lib
from r1jax.sampling import stopping
from r1jax.sampling.rollout import PromptBatch
from r1jax.verifiers import inprocess


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
      pad_id: the tokenizer's pad id.
      ks: extra k values for pass@k / maj@k (each ``<= num_samples``).
    """

    num_samples: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    greedy: bool = True
    max_new_tokens: int = 256
    prompts_per_batch: int = 64
    stop_token_ids: tuple[int, ...] = ()
    stop_sequences: tuple[tuple[int, ...], ...] = ()
    pad_id: int = 0
    ks: tuple[int, ...] = (1,)


def _sample_texts(
    params: Any,
    model_config: Any,
    tokenizer: Any,
    prompt_ids: Sequence[Sequence[int]],
    key: jax.Array,
    sampling_params: sampler_lib.SamplingParams,
    settings: EvalSettings,
    mesh: Any,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Samples every prompt in fixed-size batches; texts, lengths and truncation flags."""
    group = sampling_params.num_samples_per_prompt
    width = padding.bucket_length(
        max(len(p) for p in prompt_ids), padding.power_of_two_buckets(4096, min_length=16)
    )
    texts, lengths, truncated = [], [], []
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
        rollout = sampler_lib.sample(params, model_config, batch, key, sampling_params, mesh=mesh)
        keep = len(chunk) * group
        completions = rollout.completions()[:keep]
        texts += tokenizer.decode_batch(completions, skip_special_tokens=True)
        lengths.append(np.asarray(rollout.lengths)[:keep])
        truncated.append(np.asarray(rollout.finish_reason)[:keep] == stopping.FINISH_LENGTH)
    return texts, np.concatenate(lengths), np.concatenate(truncated)


def _verify(task: str, texts: list[str], problems: list[dict], pool: Any) -> list[Any]:
    if pool is not None:
        return pool.verify_batch(task, texts, problems)
    return [inprocess.verify(task, text, problem) for text, problem in zip(texts, problems)]


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

    Returns:
      A dict with ``pass@1``, ``pass@{k}``, ``maj@{k}``, ``maj@{k}_tie_rate``,
      ``greedy_accuracy`` (when greedy), ``format_rate`` (well-formed fraction of samples),
      ``response_length`` and ``truncated_fraction`` of the samples, ``num_problems``,
      ``num_samples``, and ``examples``: a few ``(prompt, completion, correct)`` dicts.
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
        pad_id=settings.pad_id,
    )
    k = settings.num_samples
    sampled = sampler_lib.SamplingParams(
        temperature=settings.temperature, top_p=settings.top_p, num_samples_per_prompt=k, **base
    )
    texts, lengths, truncated = _sample_texts(
        params, model_config, tokenizer, prompt_ids, key, sampled, settings, mesh
    )
    repeated = [problem for problem in problems for _ in range(k)]
    verdicts = _verify(task, texts, repeated, pool)
    correct = np.array([v.correct for v in verdicts], bool).reshape(len(problems), k)
    answers = [[verdicts[i * k + j].answer for j in range(k)] for i in range(len(problems))]
    greedy_correct = None
    if settings.greedy:
        greedy = sampler_lib.SamplingParams(temperature=0.0, num_samples_per_prompt=1, **base)
        greedy_texts, _, _ = _sample_texts(
            params, model_config, tokenizer, prompt_ids, key, greedy, settings, mesh
        )
        greedy_verdicts = _verify(task, greedy_texts, problems, pool)
        greedy_correct = np.array([v.correct for v in greedy_verdicts], bool)
    ks = tuple(sorted({min(max(value, 1), k) for value in settings.ks}))
    report = eval_metrics.evaluate_samples(correct, answers, ks=ks, greedy_correct=greedy_correct)
    results: dict[str, Any] = dict(report.means)
    results["format_rate"] = float(np.mean([v.well_formed for v in verdicts]))
    results["response_length"] = float(lengths.mean())
    results["truncated_fraction"] = float(truncated.mean())
    results["num_problems"] = len(problems)
    results["num_samples"] = k
    results["examples"] = [
        {"prompt": prompts[i], "completion": texts[i * k], "correct": bool(correct[i, 0])}
        for i in range(min(3, len(problems)))
    ]
    return results


def format_summary(results: dict[str, Any], *, label: str = "eval") -> str:
    """One line with the headline figures of `evaluate`'s results.

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
    count = (
        f"({results.get('num_problems', '?')} problems x {results.get('num_samples', '?')} samples)"
    )
    return f"{label}: " + " | ".join(parts) + " " + count
