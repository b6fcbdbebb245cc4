"""Sampler throughput: generated tokens per second, compile time and achieved FLOP/s.

``python -m r1jax.bench sample --model {tiny,small,qwen05b} [--dtype float32|bfloat16]
[--vs-transformers] [--json]``

Random weights (Qwen2 architecture, presets from `ModelConfig`). Workload: ``P`` prompts of
``Tp`` random tokens, ``G`` samples each, exactly ``T`` new tokens per row (no stop ids),
temperature 1. Defaults: 8 prompts x 8 samples, ``Tp = 32``, ``T = 128``; ``qwen05b`` uses 8
prompts x 1 sample and ``T = 64``. Tokens/s counts the ``B * T`` generated tokens over the wall
time of one whole `sample` call (prefill + decode, compiled), the best of ``--repeats``.
Compile time is the first call minus a compiled call.

Achieved FLOP/s uses `r1jax.models.flops_per_token` (matmul FLOPs, attention included, at each
token's actual context length; the prefill unembeds the last prompt position only) over prefill
and decode, as a fraction of this machine's matmul peak measured in the same run: a jitted
``N x N`` matmul in the benchmark dtype with float32 accumulation, the best of several runs.
A bfloat16 run also measures the float32 peak and prints its fraction of that.

Decoding a few rows is bound by memory, not arithmetic: every step reads all the weights and the
attended cache. So the run also measures the memory read bandwidth (a jitted float32
matrix-vector product over ``--bandwidth-mib`` of data) and reports a roofline: per phase
(the prefill, then each decode step) the larger of ``FLOPs / peak`` and ``bytes read /
bandwidth``, summed over the call, against the measured time (bytes: every weight once plus the
attended KV cache, per step).

Small decode matmuls run below the peak of the large square matmul that defines it, so the run
also times the decode steps' weight matmuls alone (`r1jax.bench.matmuls.decode_seconds`: every
projection and the unembedding at the workload's rows, in one compiled loop, nothing else, in
the sampler's weight layout): their fraction of the peak is a ceiling no sampler reaches at
these shapes, and their share of the call's time is what attention over the cache, norms,
sampling and per-op overhead leave.

``--kernels-by-rows`` / ``--no-kernels-by-rows`` choose the sampler's weight layout
(`SamplingParams.kernels_by_rows`; the default is by rows on CPU in bfloat16); the call's time
includes building that copy of the weights. ``--layout-rounds N`` then alternates calls in the
two layouts for ``N`` rounds and prints the median per-round ratio: a noisy shared machine
affects both alike.

``--vs-transformers`` writes the same weights as a Hugging Face directory, loads them with
transformers (float32, ``torch.set_num_threads`` = CPU cores) and times ``generate`` with its
KV cache on the same prompts (``num_return_sequences = G``, ``do_sample``, temperature 1,
``top_k = 0``, ``min_new_tokens = max_new_tokens = T``), then prints the speed ratio.
"""

import argparse
import dataclasses
import os
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from r1jax.bench import matmuls
from r1jax.models import ModelConfig, flops_per_token, init_params, num_params, save_pretrained
from r1jax.sampling.continuous import ATTENTION_TIERS
from r1jax.sampling.rollout import PromptBatch
from r1jax.sampling.sampler import (
    SamplingParams,
    cache_dtype,
    decode_plan,
    decodes_by_rows,
    sample,
)

WORKLOADS = {  # model -> (prompts, samples per prompt, new tokens)
    "tiny": (8, 8, 128),
    "small": (8, 8, 128),
    "qwen05b": (8, 1, 64),
    "qwen15b": (8, 1, 64),
}
QWEN15B = dict(  # the Qwen2.5-1.5B shape, over the qwen05b preset (same vocab and rope)
    hidden_size=1536, num_layers=28, num_heads=12, num_kv_heads=2, head_dim=128, mlp_dim=8960
)


def bench_config(model: str, dtype: str) -> ModelConfig:
    """The benchmark's model config: a `ModelConfig` preset, or ``qwen15b``.

    Example:
      >>> bench_config("qwen15b", "bfloat16").num_layers
      28
    """
    if model == "qwen15b":
        return ModelConfig.preset("qwen05b", dtype=dtype, param_dtype=dtype, **QWEN15B)
    return ModelConfig.preset(model, dtype=dtype, param_dtype=dtype)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workload",
        choices=("fixed", "longtail"),
        default="fixed",
        help="fixed: every row generates exactly T tokens; longtail: see r1jax.bench.longtail",
    )
    parser.add_argument(
        "--model", choices=sorted(WORKLOADS), default=None, help="tiny (longtail: small)"
    )
    parser.add_argument(
        "--mode",
        choices=(
            "static",
            "continuous",
            "both",
            "_static",
            "_continuous",
            "_partial",
            "_transformers",
            "_floor",
        ),
        default="both",
        help="longtail: the static sampler, continuous batching or both side by side",
    )
    parser.add_argument(
        "--partial", action="store_true", help="longtail: four calls with partial rollouts"
    )
    parser.add_argument("--slots", type=int, default=64, help="longtail: continuous slots")
    parser.add_argument(
        "--attention-tiers",
        default=",".join(str(b) for b in ATTENTION_TIERS),
        help="longtail: the continuous decode's attention band bounds, comma-separated "
        "(r1jax.sampling.continuous.tiering); 'none' attends over every whole ring",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="longtail: what the decode's weight matmuls alone cost at 32-256 slots",
    )
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--vs-transformers", action="store_true", help="also time HF generate")
    parser.add_argument("--prompts", type=int, default=None, help="P (default per model)")
    parser.add_argument("--samples", type=int, default=None, help="G (default per model)")
    parser.add_argument("--prompt-length", type=int, default=32, help="Tp")
    parser.add_argument("--new-tokens", type=int, default=None, help="T (default per model)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls (best is kept)")
    parser.add_argument("--peak-size", type=int, default=2048, help="N of the peak matmul")
    parser.add_argument(
        "--bandwidth-mib", type=int, default=512, help="data read by the bandwidth probe"
    )
    parser.add_argument(
        "--kernels-by-rows",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="decode with kernels stored output dims first (default: the sampler's choice)",
    )
    parser.add_argument(
        "--layout-rounds",
        type=int,
        default=0,
        help="then alternate by-rows and stored-layout calls for N rounds and print the ratio",
    )
    parser.add_argument("--seed", type=int, default=0)


def measure_matmul_peak(dtype: str, size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a jitted ``size x size`` matmul in ``dtype`` with float32 accumulation."""
    a = jnp.ones((size, size), dtype)
    b = jnp.ones((size, size), dtype)
    matmul = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
    jax.block_until_ready(matmul(a, b))
    return 2 * size**3 / matmuls.best_time(lambda: matmul(a, b), repeats)


def measure_memory_bandwidth(mib: int = 512, repeats: int = 5) -> float:
    """Bytes/s read by a jitted float32 ``[N, 1024] x [1024]`` product over ``mib`` MiB."""
    rows = mib * 2**20 // (4 * 1024)
    matrix = jnp.ones((rows, 1024), jnp.float32)
    vector = jnp.ones((1024,), jnp.float32)
    matvec = jax.jit(jnp.dot)
    jax.block_until_ready(matvec(matrix, vector))
    return matrix.nbytes / matmuls.best_time(lambda: matvec(matrix, vector), repeats)


def _unembed_flops(config: ModelConfig) -> int:
    return 2 * config.hidden_size * config.vocab_size


def workload_flops(
    config: ModelConfig, prompts: int, samples: int, prompt_length: int, new_tokens: int
) -> int:
    """Matmul FLOPs of one call: ``P`` prompts prefilled once (logits at the last position
    only), then ``B`` rows decoded."""
    prefill = sum(flops_per_token(config, t + 1) for t in range(prompt_length))
    prefill -= (prompt_length - 1) * _unembed_flops(config)
    decode = sum(flops_per_token(config, prompt_length + t) for t in range(1, new_tokens))
    return prefill * prompts + decode * prompts * samples


def roofline_seconds(
    config: ModelConfig,
    prompts: int,
    samples: int,
    prompt_length: int,
    new_tokens: int,
    *,
    peak_flops: float,
    bandwidth: float,
) -> float:
    """Lower bound on one call's time: per phase the larger of compute and memory time.

    The prefill reads every weight once; decode step ``t`` (``1 .. T-1``) reads every weight and
    the ``B`` rows' keys and values over the cache the sampler holds at that step (its segment's
    length, `r1jax.sampling.sampler.decode_plan`, in the cache's dtype).
    """
    weight_bytes = num_params(config) * jnp.dtype(config.param_dtype).itemsize
    rows = prompts * samples
    plan = decode_plan(SamplingParams(max_new_tokens=new_tokens))
    itemsize = cache_dtype(config, plan).itemsize
    kv_bytes_per_slot = 2 * config.num_layers * config.num_kv_heads * config.head_dim * itemsize
    prefill_flops = workload_flops(config, prompts, samples, prompt_length, 1)
    seconds = max(prefill_flops / peak_flops, weight_bytes / bandwidth)
    for step in range(1, new_tokens):
        segment_end = next(end for end in plan.segment_ends if step < end)
        cache_slots = prompt_length + segment_end - 1
        step_bytes = weight_bytes + rows * cache_slots * kv_bytes_per_slot
        step_flops = rows * flops_per_token(config, prompt_length + step)
        seconds += max(step_flops / peak_flops, step_bytes / bandwidth)
    return seconds


def _time_transformers(config, params, tokens: np.ndarray, samples: int, new_tokens: int) -> float:
    import torch
    import transformers

    torch.set_num_threads(os.cpu_count() or 1)
    float_config = ModelConfig(**{**config.__dict__, "dtype": "float32", "param_dtype": "float32"})
    float_params = jax.tree.map(lambda x: np.asarray(x, np.float32), params)
    # On a GPU, transformers runs there in the benchmark's dtype; on CPU in float32.
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, config.dtype) if device == "cuda" else torch.float32
    with tempfile.TemporaryDirectory() as path:
        save_pretrained(path, float_config, float_params)
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.to(device).eval()
    input_ids = torch.from_numpy(tokens.astype(np.int64)).to(device)
    kwargs = dict(
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        num_return_sequences=samples,
        pad_token_id=0,
        eos_token_id=None,
    )
    with torch.inference_mode():
        model.generate(input_ids, max_new_tokens=2, min_new_tokens=2, **kwargs)  # warm-up
        start = time.perf_counter()
        out = model.generate(
            input_ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs
        )
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    assert out.shape == (tokens.shape[0] * samples, tokens.shape[1] + new_tokens), out.shape
    return elapsed


def compare_layouts(params, config, batch, key, sampling_params, rounds: int) -> dict:
    """Alternates `sample` calls with the kernels by rows and as stored for ``rounds`` rounds
    (the order flips every round), so both layouts see the same machine load.

    Returns:
      the median seconds of each layout and the median and range of the per-round ratio
      ``stored / by rows`` (above 1: by rows is faster).
    """
    layouts = {
        layout: dataclasses.replace(sampling_params, kernels_by_rows=layout)
        for layout in (True, False)
    }
    for layout_params in layouts.values():  # compile both first
        jax.block_until_ready(sample(params, config, batch, key, layout_params))
    seconds = {True: [], False: []}
    for round_index in range(rounds):
        order = (True, False) if round_index % 2 == 0 else (False, True)
        for layout in order:
            start = time.perf_counter()
            jax.block_until_ready(sample(params, config, batch, key, layouts[layout]))
            seconds[layout].append(time.perf_counter() - start)
    ratios = [s / r for r, s in zip(seconds[True], seconds[False], strict=True)]
    return {
        "by_rows_seconds": statistics.median(seconds[True]),
        "stored_seconds": statistics.median(seconds[False]),
        "stored_over_by_rows": statistics.median(ratios),
        "stored_over_by_rows_range": (min(ratios), max(ratios)),
        "rounds": rounds,
    }


def run(args: argparse.Namespace) -> dict:
    if args.workload == "longtail":
        from r1jax.bench import longtail

        args.model = args.model or "small"
        args.prompts = args.prompts or 32
        return longtail.run(args)
    args.model = args.model or "tiny"
    default_prompts, default_samples, default_tokens = WORKLOADS[args.model]
    prompts = args.prompts or default_prompts
    samples = args.samples or default_samples
    new_tokens = args.new_tokens or default_tokens
    prompt_length = args.prompt_length
    rows = prompts * samples
    config = bench_config(args.model, args.dtype)
    peak = measure_matmul_peak(args.dtype, args.peak_size)
    float32_peak = (
        peak if args.dtype == "float32" else measure_matmul_peak("float32", args.peak_size)
    )
    bandwidth = measure_memory_bandwidth(args.bandwidth_mib)
    params = init_params(config, jax.random.key(args.seed))
    rng = np.random.default_rng(args.seed)
    tokens = rng.integers(0, config.vocab_size, (prompts, prompt_length)).astype(np.int32)
    batch = PromptBatch.from_token_lists(tokens.tolist())
    sampling_params = SamplingParams(
        max_new_tokens=new_tokens,
        temperature=1.0,
        num_samples_per_prompt=samples,
        kernels_by_rows=args.kernels_by_rows,
    )
    by_rows = decodes_by_rows(config, decode_plan(sampling_params))
    key = jax.random.key(args.seed + 1)

    def call():
        return sample(params, config, batch, key, sampling_params)

    start = time.perf_counter()
    rollout = jax.block_until_ready(call())
    first = time.perf_counter() - start
    assert int(np.min(rollout.lengths)) == new_tokens, "every row must generate exactly T tokens"
    seconds = matmuls.best_time(call, args.repeats)
    tokens_per_second = rows * new_tokens / seconds
    flops = workload_flops(config, prompts, samples, prompt_length, new_tokens)
    roofline = roofline_seconds(
        config,
        prompts,
        samples,
        prompt_length,
        new_tokens,
        peak_flops=peak,
        bandwidth=bandwidth,
    )
    decode_steps = new_tokens - 1
    matmul_seconds, matmul_flops = matmuls.decode_seconds(
        params, config, rows, decode_steps, args.repeats, by_rows
    )
    results = {
        "model": args.model,
        "dtype": args.dtype,
        "rows": rows,
        "prompts": prompts,
        "samples_per_prompt": samples,
        "kernels_by_rows": by_rows,
        "prompt_length": prompt_length,
        "new_tokens": new_tokens,
        "seconds": seconds,
        "tokens_per_second": tokens_per_second,
        "compile_seconds": max(first - seconds, 0.0),
        "flops_per_second": flops / seconds,
        "peak_flops_per_second": peak,
        "fraction_of_peak": flops / seconds / peak,
        "float32_peak_flops_per_second": float32_peak,
        "fraction_of_float32_peak": flops / seconds / float32_peak,
        "memory_bandwidth_bytes_per_second": bandwidth,
        "roofline_seconds": roofline,
        "fraction_of_roofline": roofline / seconds,
        "weight_matmuls_seconds": matmul_seconds,
        "weight_matmuls_fraction_of_peak": matmul_flops / matmul_seconds / peak,
        "weight_matmuls_share_of_call": matmul_seconds / seconds,
        "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
    }
    if args.layout_rounds > 0:
        results["layouts"] = compare_layouts(
            params, config, batch, key, sampling_params, args.layout_rounds
        )
    if args.vs_transformers:
        hf_seconds = _time_transformers(config, params, tokens, samples, new_tokens)
        results["transformers_tokens_per_second"] = rows * new_tokens / hf_seconds
        results["speedup_vs_transformers"] = (
            tokens_per_second / results["transformers_tokens_per_second"]
        )
    if not args.json:
        print(
            f"sample {args.model} {args.dtype}: {rows} rows ({prompts} prompts x {samples}), "
            f"Tp={prompt_length}, T={new_tokens} on {results['devices']}, "
            f"kernels {'by rows' if by_rows else 'as stored'}"
        )
        print(f"  r1jax        {tokens_per_second:12,.0f} tok/s  ({seconds:.3f} s per call)")
        print(f"  compile      {results['compile_seconds']:12.2f} s")
        print(
            f"  achieved     {results['flops_per_second'] / 1e9:12.1f} GFLOP/s = "
            f"{100 * results['fraction_of_peak']:.1f}% of measured {args.dtype} matmul peak "
            f"{peak / 1e9:.1f} GFLOP/s"
        )
        if args.dtype != "float32":
            print(
                f"{'':30}= {100 * results['fraction_of_float32_peak']:.1f}% of "
                f"measured float32 matmul peak {float32_peak / 1e9:.1f} GFLOP/s"
            )
        print(
            f"  roofline     {roofline:12.3f} s per call (measured read bandwidth "
            f"{bandwidth / 1e9:.1f} GB/s): {100 * results['fraction_of_roofline']:.1f}% of it"
        )
        print(
            f"  matmuls only {matmul_seconds:12.3f} s per call ({decode_steps} decode steps' "
            f"weight matmuls, {rows} rows, nothing else): "
            f"{100 * results['weight_matmuls_fraction_of_peak']:.1f}% of peak, "
            f"{100 * results['weight_matmuls_share_of_call']:.1f}% of the call's time"
        )
        if args.layout_rounds > 0:
            layouts = results["layouts"]
            low, high = layouts["stored_over_by_rows_range"]
            print(
                f"  layouts      by rows {layouts['by_rows_seconds']:.3f} s, stored "
                f"{layouts['stored_seconds']:.3f} s per call (medians of {args.layout_rounds} "
                f"alternating rounds): stored / by rows {layouts['stored_over_by_rows']:.2f}x "
                f"(rounds {low:.2f}-{high:.2f})"
            )
        if args.vs_transformers:
            print(
                f"  transformers {results['transformers_tokens_per_second']:12,.0f} tok/s "
                f"(float32 generate)  ratio {results['speedup_vs_transformers']:.2f}x"
            )
    return results
