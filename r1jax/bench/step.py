"""One GRPO training step, end to end: sample, verify, update (and peak memory).

``python -m r1jax.bench step --model {tiny,small} [--dtype {float32,bfloat16}] [--json]
[--vs-trl] [--lengths {fixed,longtail} [--micro-batch-tokens N]]``

Random weights (Qwen2 architecture, presets from `ModelConfig`). ``--dtype bfloat16`` runs the
matmuls of sampling and update in bfloat16 with float32 accumulation, float32 master weights
and optimizer state (``ModelConfig.preset(model, dtype="bfloat16", param_dtype="float32")``);
the default is float32 throughout. Workload: ``P = 8`` prompts of ``Tp = 32`` random tokens,
``G = 8`` samples each, exactly ``T = 128`` new tokens per row (no stop ids), temperature 1;
the completions are decoded with a byte-level BPE tokenizer and verified by a `VerifierPool`
(multiplication task, 2 workers); then one `r1jax.learner.train_step`: GRPO with a k3 KL term
(``β = 0.04``) against a frozen reference, AdamW, global-norm clipping. Times are per phase
(``sample``, ``verify``, ``update``) and for the whole step, each the median of ``--repeats``
steps after one compiling step. Peak memory is the process's peak resident set size (CPU) or
the device's ``peak_bytes_in_use`` (GPU/TPU). After the timed steps, the update's weight matmuls
are timed alone (`r1jax.bench.matmuls.update_seconds`: the reference's forward and the
policy's forward and backward over the full batch, nothing else; best of ``--repeats``, run
after the peak memory is read), a floor for the update on this machine.

``--lengths longtail`` draws each row's completion length from the long-tailed distribution
of the sampling benchmark (`r1jax.bench.longtail.draw_lengths`: lognormal, median ``T / 8``,
5% at ``T``; fixed seed) and enforces it as the row's token limit, then times the update
twice on every step's batch, side by side from the same initial weights: padded (``[B, T]``,
``--micro-batch-size`` rows per micro-batch) and length-grouped (``optim.micro_batch_tokens =
--micro-batch-tokens``, `r1jax.learner.length_groups`); the matmul floor is not timed then.

``--vs-trl`` then runs TRL's ``GRPOTrainer`` on the same workload, starting from the same
weights (the frozen reference, i.e. the initial params, saved as a float32 Hugging Face
directory) and the same prompt token ids, in a subprocess (`r1jax.bench.trl_step`, which
lists the TRL settings and how its workload differs), always in float32; it prints both and
the ratio. TRL is not a dependency of r1jax: without it (``pip install trl`` beside the test
extra), ``--vs-trl`` says so and falls back to the figures recorded on the reference 2-core
CPU machine (TRL 1.16: 1.07 s/step on ``tiny``, 28.0 s on ``small``), labelled as recorded.
"""

import argparse
import dataclasses
import resource
import statistics
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from r1jax import learner
from r1jax.algorithms.policy_gradient import PolicyGradient
from r1jax.bench import longtail as longtail_lib
from r1jax.bench import matmuls, trl_step
from r1jax.learner import length_groups
from r1jax.models import ModelConfig, init_params, num_params
from r1jax.sampling.rollout import PromptBatch
from r1jax.sampling.sampler import SamplingParams, sample
from r1jax.tasks import multiplication
from r1jax.tokenizer import Tokenizer
from r1jax.verifiers import VerifierPool

TRL_SECONDS_PER_STEP = {"tiny": 1.07, "small": 28.0}
"""TRL 1.16 GRPOTrainer, same workload, measured on the reference 2-core CPU machine: the
fallback of ``--vs-trl`` when TRL is not installed."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=("tiny", "small"), default="tiny")
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="compute dtype of sampling and update (params and optimizer stay float32)",
    )
    parser.add_argument("--prompts", type=int, default=8, help="P")
    parser.add_argument("--samples", type=int, default=8, help="G")
    parser.add_argument("--prompt-length", type=int, default=32, help="Tp")
    parser.add_argument("--new-tokens", type=int, default=128, help="T")
    parser.add_argument("--kl-coef", type=float, default=0.04)
    parser.add_argument("--micro-batch-size", type=int, default=0, help="rows per micro-batch")
    parser.add_argument(
        "--lengths",
        choices=("fixed", "longtail"),
        default="fixed",
        help="fixed: every row T tokens; longtail: lognormal lengths, padded vs length-grouped",
    )
    parser.add_argument(
        "--micro-batch-tokens",
        type=int,
        default=2048,
        help="token budget of the length-grouped micro-batches (--lengths longtail)",
    )
    parser.add_argument(
        "--length-buckets",
        type=int,
        default=learner.LearnerConfig.length_buckets,
        help="bucket lengths T, T/2 ... of the length-grouped micro-batches",
    )
    parser.add_argument("--remat", action="store_true", help="rematerialise blocks (less memory)")
    parser.add_argument(
        "--logprob-chunk-size",
        type=int,
        default=learner.LearnerConfig.logprob_chunk_size,
        help="positions per chunk of the log-softmax (less memory when smaller)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed steps (median is kept)")
    parser.add_argument("--workers", type=int, default=2, help="verifier processes")
    parser.add_argument(
        "--vs-trl",
        action="store_true",
        help="also run TRL's GRPOTrainer on the same workload (recorded figures without TRL)",
    )
    parser.add_argument("--seed", type=int, default=0)


def _peak_memory_bytes() -> int:
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"])
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _tokenizer() -> Tokenizer:
    rng = np.random.default_rng(0)
    problems = [multiplication.generate(rng) for _ in range(200)]
    texts = [multiplication.reference_completion(p) for p in problems]
    return Tokenizer.train(texts, vocab_size=512)


def run(args: argparse.Namespace) -> dict:
    model_config = ModelConfig.preset(args.model, dtype=args.dtype, param_dtype="float32")
    policy = init_params(model_config, jax.random.key(args.seed))
    config = learner.LearnerConfig(
        model=model_config,
        algorithm=PolicyGradient(kl_coef=args.kl_coef),  # GRPO
        optimizer=learner.OptimizerConfig(learning_rate=1e-6),
        group_size=args.samples,
        max_new_tokens=args.new_tokens,
        micro_batch_size=args.micro_batch_size,
        remat=args.remat,
        logprob_chunk_size=args.logprob_chunk_size,
    )
    longtail = args.lengths == "longtail"
    if longtail:
        grouped_config = dataclasses.replace(
            config, micro_batch_tokens=args.micro_batch_tokens, length_buckets=args.length_buckets
        )
        grouped_state = learner.init_train_state(jax.tree.map(jnp.copy, policy), grouped_config)
    state = learner.init_train_state(policy, config)
    tokenizer = _tokenizer()
    sampling = SamplingParams(
        max_new_tokens=args.new_tokens, temperature=1.0, num_samples_per_prompt=args.samples
    )
    rng = np.random.default_rng(args.seed)
    problems = [multiplication.generate(rng) for _ in range(args.prompts)]
    rows_problems = [p for p in problems for _ in range(args.samples)]
    prompt_ids = rng.integers(1, model_config.vocab_size, (args.prompts, args.prompt_length))
    prompts = PromptBatch.from_token_lists(prompt_ids.tolist())
    rows = args.prompts * args.samples
    lengths = None
    if longtail:
        lengths = longtail_lib.draw_lengths(rows, args.new_tokens, args.seed)
    timings = {"sample": [], "verify": [], "update": [], "total": []}
    if longtail:
        timings["update_grouped"] = []
    with VerifierPool(args.workers, timeout_seconds=10.0) as pool:
        for step in range(args.repeats + 1):
            start = time.perf_counter()
            rollout = sample(
                state.policy,
                model_config,
                prompts,
                jax.random.key(step),
                sampling,
                max_new_tokens_per_row=lengths,
            )
            rollout = jax.block_until_ready(rollout)
            sampled = time.perf_counter()
            ids = [[t % tokenizer.vocab_size for t in row] for row in rollout.completions()]
            texts = tokenizer.decode_batch(ids, skip_special_tokens=True)
            verdicts = pool.verify_batch("multiplication", texts, rows_problems)
            verified = time.perf_counter()
            batch = learner.Batch.from_rollout(rollout).with_verdicts(
                jnp.asarray([v.correct for v in verdicts]),
                jnp.asarray([v.well_formed or v.correct for v in verdicts]),
                jnp.asarray([v.score for v in verdicts], jnp.float32),
            )
            state, metrics = learner.train_step(state, batch, config=config)
            jax.block_until_ready((state, metrics))
            done = time.perf_counter()
            if longtail:
                grouped_state, grouped_metrics = learner.train_step(
                    grouped_state, batch, config=grouped_config
                )
                jax.block_until_ready((grouped_state, grouped_metrics))
                grouped_seconds = time.perf_counter() - done
            if step == 0:
                compile_seconds = done - start
                if longtail:
                    grouped_compile_seconds = grouped_seconds
                continue
            if longtail:
                timings["update_grouped"].append(grouped_seconds)
            timings["sample"].append(sampled - start)
            timings["verify"].append(verified - sampled)
            timings["update"].append(done - verified)
            timings["total"].append(done - start)
    results = {
        "model": args.model,
        "dtype": args.dtype,
        "params_millions": num_params(model_config) / 1e6,
        "workload": f"{args.prompts} prompts x {args.samples} samples, Tp={args.prompt_length}, "
        f"T={args.new_tokens}, KL {args.kl_coef}, AdamW, log-prob chunk {args.logprob_chunk_size}, "
        f"micro-batch "
        f"{args.micro_batch_size or 'none'}, remat {args.remat}",
        "devices": str(jax.devices()[0].device_kind),
        "first_step_seconds": compile_seconds,
        "peak_memory_gib": _peak_memory_bytes() / 2**30,
    }
    for name, values in timings.items():
        results[f"{name}_seconds"] = statistics.median(values)
    if longtail:
        _add_longtail_results(results, args, lengths, grouped_compile_seconds, metrics)
        if not args.json:
            _print_longtail(results, args.repeats)
        return results
    # After the peak memory is read: the full-batch logits here are not the update's.
    results["update_matmuls_seconds"] = matmuls.update_seconds(
        state.policy,
        state.reference,
        model_config,
        rows=rows * (args.prompt_length + args.new_tokens),
        scored_rows=rows * args.new_tokens,
        repeats=args.repeats,
    )
    results["update_matmuls_share_of_update"] = (
        results["update_matmuls_seconds"] / results["update_seconds"]
    )
    if args.vs_trl:
        # The reference holds the initial params (the policy's buffers were donated).
        initial = state.policy if state.reference is None else state.reference
        results.update(_trl_results(args, model_config, initial, prompt_ids.tolist()))
        results["speedup_vs_trl"] = results["trl_seconds"] / results["total_seconds"]
    if not args.json:
        print(
            f"r1jax step bench: {args.model} ({results['params_millions']:.2f}M params), "
            f"{args.dtype}, {results['workload']}, on {results['devices']}"
        )
        print(
            f"  sample {results['sample_seconds']:.3f} s | verify {results['verify_seconds']:.3f} s"
            f" | update {results['update_seconds']:.3f} s | total {results['total_seconds']:.3f} s"
            f" (median of {args.repeats}; first step with compilation "
            f"{compile_seconds:.1f} s)"
        )
        print(f"  peak memory {results['peak_memory_gib']:.2f} GiB")
        print(
            f"  update matmuls only {results['update_matmuls_seconds']:.3f} s (the reference's "
            f"forward and the policy's forward and backward weight matmuls, full batch, nothing "
            f"else): {100 * results['update_matmuls_share_of_update']:.1f}% of the update"
        )
        if args.vs_trl:
            _print_trl(results, args.repeats)
    return results


def _add_longtail_results(
    results: dict, args: argparse.Namespace, lengths: Any, compile_seconds: float, metrics: dict
) -> None:
    """The long-tail figures: the drawn lengths and the length-grouped update beside the
    padded one (``update_seconds``)."""
    results["workload"] += (
        f", long-tailed lengths (median {int(np.median(lengths))}, mean {np.mean(lengths):.1f}, "
        f"{np.mean(lengths == args.new_tokens):.0%} at T)"
    )
    results["completion_tokens"] = int(np.sum(lengths))
    results["padded_completion_tokens"] = int(lengths.size * args.new_tokens)
    results["micro_batch_tokens"] = args.micro_batch_tokens
    results["length_buckets"] = length_groups.bucket_lengths(args.new_tokens, args.length_buckets)
    results["update_grouped_first_seconds"] = compile_seconds
    results["update_speedup"] = results["update_seconds"] / results["update_grouped_seconds"]
    results["loss_tokens"] = float(metrics["loss_tokens"])


def _print_longtail(results: dict, repeats: int) -> None:
    print(
        f"r1jax step bench: {results['model']} ({results['params_millions']:.2f}M params), "
        f"{results['dtype']}, {results['workload']}, on {results['devices']}"
    )
    print(
        f"  completion tokens {results['completion_tokens']} of "
        f"{results['padded_completion_tokens']} padded "
        f"({results['completion_tokens'] / results['padded_completion_tokens']:.0%})"
    )
    print(
        f"  sample {results['sample_seconds']:.3f} s | verify {results['verify_seconds']:.3f} s"
        f" (median of {repeats})"
    )
    print(
        f"  update, padded:         {results['update_seconds']:.3f} s (median of {repeats}; "
        f"first step with compilation {results['first_step_seconds']:.1f} s, whole step)"
    )
    print(
        f"  update, length-grouped: {results['update_grouped_seconds']:.3f} s (median of "
        f"{repeats}; first with compilation {results['update_grouped_first_seconds']:.1f} s; "
        f"{results['micro_batch_tokens']} tokens per micro-batch, buckets "
        f"{list(results['length_buckets'])})"
    )
    print(
        f"  length grouping: {results['update_speedup']:.2f}x faster update; "
        f"peak memory {results['peak_memory_gib']:.2f} GiB (both states in one process)"
    )


def _trl_results(
    args: argparse.Namespace, model_config: ModelConfig, params: Any, prompt_ids: list[list[int]]
) -> dict:
    """TRL's figures for the same workload: measured when TRL is installed, else recorded."""
    if trl_step.trl_version() is None:
        print(
            "TRL is not installed, so it is not measured: `pip install trl` beside the test "
            "extra to run it side by side; using the figures recorded on the reference machine.",
            file=sys.stderr,
        )
        return {"trl_source": "recorded", "trl_seconds": TRL_SECONDS_PER_STEP[args.model]}
    trl = trl_step.measure(
        model_config,
        params,
        prompt_ids,
        samples=args.samples,
        new_tokens=args.new_tokens,
        kl_coef=args.kl_coef,
        repeats=args.repeats,
        micro_batch_size=args.micro_batch_size,
        remat=args.remat,
        seed=args.seed,
    )
    return {
        "trl_source": "measured",
        "trl_version": trl["trl_version"],
        "trl_seconds": trl["total_seconds"],
        "trl_generate_seconds": trl["generate_seconds"],
        "trl_update_seconds": trl["update_seconds"],
        "trl_first_step_seconds": trl["first_step_seconds"],
        "trl_peak_memory_gib": trl["peak_memory_gib"],
        "trl_threads": trl["threads"],
        "trl_completions_per_step": trl["completions_per_step"],
        "trl_completion_lengths": trl["completion_lengths"],
        "trl_settings": {**trl["settings"], **trl["generation"], "dtype": trl["model_dtype"]},
    }


def _print_trl(results: dict, repeats: int) -> None:
    speedup, trl = results["speedup_vs_trl"], results["trl_seconds"]
    if results["trl_source"] == "recorded":
        print(
            f"  TRL 1.16 GRPOTrainer (recorded on the reference 2-core CPU machine, not measured "
            f"here): {trl:.2f} s/step -> r1jax is {speedup:.2f}x faster than TRL (recorded)"
        )
        return
    print(
        f"  TRL {results['trl_version']} GRPOTrainer (measured, same weights and prompts, "
        f"float32, {results['trl_threads']} threads): generate "
        f"{results['trl_generate_seconds']:.3f} s | rest {results['trl_update_seconds']:.3f} s "
        f"| total {trl:.3f} s (median of {repeats}; first step "
        f"{results['trl_first_step_seconds']:.1f} s); peak memory "
        f"{results['trl_peak_memory_gib']:.2f} GiB"
    )
    print(
        f"  r1jax is {speedup:.2f}x faster than TRL ({results['total_seconds']:.3f} s vs "
        f"{trl:.3f} s per step)"
    )
