"""Long-tailed sampling benchmark: the static sampler against continuous batching.

``python -m r1jax.bench sample --workload longtail [--model small] [--mode static|continuous|both]
[--partial] [--vs-transformers] [--slots N] [--attention-tiers B1,B2|none]``

Workload: ``P = 32`` prompts of ``Tp = 32`` random tokens, ``G = 8`` samples each, at most
``T = 1024`` new tokens, random weights. Each row's length is drawn in advance (lognormal with
median ``T / 8`` and 5% of rows at ``T``, fixed seed) and enforced as the row's token limit
(`max_new_tokens_per_row`); no stop ids. The scheduler never reads the drawn lengths: they are
runtime limits inside the rows, as budget forcing's are.

* ``static``: `r1jax.sampling.sample` over all ``B = 256`` rows in one call.
* ``continuous``: `r1jax.sampling.continuous.ContinuousSampler` with ``--slots`` slots over
  the same rows (same keys, so the same tokens), its decode attention in the bands of
  ``--attention-tiers`` (the sampler's default; ``none`` attends over every whole ring).
* ``--partial``: four consecutive RL steps' generation with partial rollouts, scheduled as the
  trainer schedules them: each step needs 32 groups and keeps the slots full from an endless
  prompt stream (lengths drawn the same way) until its 32nd group finishes; the rows still
  decoding carry into the next step.
* ``--vs-transformers``: transformers' ``generate`` (float32, batch 64) on the same rows, each
  row's EOS forced at its drawn length by a logits processor.
* ``--floor``: per slot count (32, 64, 128, 256 = static), the decode steps the scheduler runs
  on the drawn lengths (`scheduled_decode_steps`), what their weight matmuls alone cost and
  what one read of every slot's KV ring per step costs: a floor for a sampler with that many
  slots and a ring per slot on this machine, also at full utilization (the bound partial
  rollouts approach); and an attention floor, the weight matmuls plus the decode attention
  alone over every ring (`_attention_seconds`), the bound with the attention kernels as they
  run.

Figures: useful tokens/s (generated tokens over the wall time of the compiled call), slot
utilization (useful tokens over slot-steps, the drain included: a static call steps all ``B``
rows until its longest row stops), wall time, and memory: the KV cache and decode state the
mode holds, and the process's peak memory (peak RSS on CPU, the device's peak bytes in use on
an accelerator). With ``--mode both`` each mode runs in its own process, so peaks do not mix.
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from r1jax.bench import matmuls
from r1jax.bench.sample import bench_config
from r1jax.models import ModelConfig, init_params
from r1jax.models.layers import attend
from r1jax.sampling import continuous
from r1jax.sampling.rollout import PromptBatch
from r1jax.sampling.sampler import SamplingParams, sample


def draw_lengths(rows: int, max_new_tokens: int, seed: int) -> np.ndarray:
    """``[rows]`` lengths: lognormal, median ``T / 8``, 5% at ``T`` (clipped to ``[1, T]``).

    Example:
      >>> lengths = draw_lengths(4096, 1024, seed=0)
      >>> int(np.median(lengths)), round(float(np.mean(lengths == 1024)), 2)
      (129, 0.05)
    """
    rng = np.random.default_rng([seed, 1])
    sigma = math.log(8.0) / 1.6448536  # P(X >= T) = 5% for a median of T / 8
    drawn = np.exp(rng.normal(math.log(max_new_tokens / 8), sigma, rows))
    return np.clip(np.ceil(drawn), 1, max_new_tokens).astype(np.int32)


def _peak_memory_bytes() -> int:
    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _prompts(config, prompts: int, prompt_length: int, seed: int, first_id: int = 0):
    rng = np.random.default_rng([seed, 2, first_id])
    tokens = rng.integers(1, config.vocab_size, (prompts, prompt_length)).astype(np.int32)
    return tokens, PromptBatch.from_token_lists(
        tokens.tolist(), prompt_ids=range(first_id, first_id + prompts)
    )


def _static(params, config, batch, key, sampling_params, lengths) -> dict:
    rows = lengths.shape[0]
    warm = np.ones_like(lengths)  # same shapes, stops after one token: compiles everything
    jax.block_until_ready(
        sample(params, config, batch, key, sampling_params, max_new_tokens_per_row=warm)
    )
    start = time.perf_counter()
    rollout = jax.block_until_ready(
        sample(params, config, batch, key, sampling_params, max_new_tokens_per_row=lengths)
    )
    seconds = time.perf_counter() - start
    produced = np.asarray(rollout.lengths)
    assert np.array_equal(produced, lengths), "every row must stop at its drawn length"
    useful = int(produced.sum())
    slot_steps = rows * int(produced.max())
    tp = batch.tokens.shape[1]
    ring = tp + sampling_params.max_new_tokens - 1
    cache = continuous.bytes_per_slot(config, sampling_params, tp) - ring  # same per-row buffers
    return {
        "seconds": seconds,
        "useful_tokens": useful,
        "tokens_per_second": useful / seconds,
        "slot_steps": slot_steps,
        "utilization": useful / slot_steps,
        "rows_in_flight": rows,
        "state_bytes": rows * cache,
    }


def attention_tiers(text: str) -> tuple[int, ...]:
    """``--attention-tiers``: ``"256,512"`` -> ``(256, 512)``; ``"none"`` -> ``()``.

    Example:
      >>> attention_tiers("256,512"), attention_tiers("none")
      ((256, 512), ())
    """
    if text.strip().lower() in ("none", ""):
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f"--attention-tiers must be comma-separated integers or 'none', got {text!r}"
        ) from None


def _continuous(params, config, batch, key, sampling_params, lengths, slots, tiers) -> dict:
    tp = batch.tokens.shape[1]
    group = sampling_params.num_samples_per_prompt
    warm = continuous.ContinuousSampler(
        params, config, sampling_params, slots, prompt_length=tp, attention_tiers=tiers
    )
    warm.submit(
        PromptBatch(batch.tokens[:1], batch.lengths[:1], batch.prompt_ids[:1]),
        key,
        max_new_tokens_per_row=np.full(group, 2, np.int32),
    )
    warm.generate()
    del warm
    sampler = continuous.ContinuousSampler(
        params, config, sampling_params, slots, prompt_length=tp, attention_tiers=tiers
    )
    start = time.perf_counter()
    sampler.submit(batch, key, max_new_tokens_per_row=lengths)
    groups = sampler.generate()
    seconds = time.perf_counter() - start
    produced = np.concatenate([g.lengths for g in sorted(groups, key=lambda g: g.group_id)])
    assert np.array_equal(produced, lengths), "every row must stop at its drawn length"
    stats = sampler.last_call_stats
    return {
        "seconds": seconds,
        "useful_tokens": stats.generated_tokens,
        "tokens_per_second": stats.generated_tokens / seconds,
        "slot_steps": stats.slot_steps,
        "utilization": stats.utilization,
        "decode_steps": stats.decode_steps,
        "rows_in_flight": slots,
        "state_bytes": slots * continuous.bytes_per_slot(config, sampling_params, tp),
        "attention_bands": list(sampler.tiering.bounds) if sampler.tiering else [],
    }


def _prompt_stream(config, args, group: int, max_new_tokens: int):
    """Endless ``(one-prompt PromptBatch, [G] drawn lengths)``: batch ``k`` of ``P`` prompts is
    `_prompts` with ``first_id = k * P`` and lengths drawn with seed ``seed + 1000 k`` (batch 0
    is the static and continuous modes' workload)."""
    k = 0
    while True:
        _, batch = _prompts(
            config, args.prompts, args.prompt_length, args.seed, first_id=k * args.prompts
        )
        lengths = draw_lengths(args.prompts * group, max_new_tokens, args.seed + 1000 * k)
        for p in range(args.prompts):
            one = PromptBatch(
                batch.tokens[p : p + 1], batch.lengths[p : p + 1], batch.prompt_ids[p : p + 1]
            )
            yield one, lengths[p * group : (p + 1) * group]
        k += 1


def _partial(params, config, sampling_params, args, slots, calls: int = 4) -> list[dict]:
    """``calls`` RL steps' generation as the trainer runs it with partial rollouts
    (`r1jax.continuous_rollouts.GroupStream.collect`): a step needs ``P`` groups; while it does,
    free slots are refilled from the prompt stream (drawn ahead, so the slots stay full); the
    step's generation ends when its ``P``-th group finishes, and the rows still decoding keep
    their slots for the next step (under the next policy version)."""
    group = sampling_params.num_samples_per_prompt
    wanted, slot_groups = args.prompts, slots // group
    sampler = continuous.ContinuousSampler(
        params,
        config,
        sampling_params,
        slots,
        prompt_length=args.prompt_length,
        partial_rollouts=True,
        attention_tiers=attention_tiers(args.attention_tiers),
    )
    _, warm_batch = _prompts(config, 1, args.prompt_length, args.seed, first_id=10**6)
    warm = continuous.ContinuousSampler(
        params,
        config,
        sampling_params,
        slots,
        prompt_length=args.prompt_length,
        attention_tiers=attention_tiers(args.attention_tiers),
    )
    warm.submit(warm_batch, jax.random.key(0), max_new_tokens_per_row=np.full(group, 2))
    warm.generate()
    stream = _prompt_stream(config, args, group, sampling_params.max_new_tokens)
    key = jax.random.key(args.seed + 1)
    outstanding: set[int] = set()

    def top_up(returned: int) -> None:  # keep the slots full while the step needs groups
        need = max(wanted - returned - len(outstanding), slot_groups - sampler.num_pending)
        for _ in range(need):
            prompt, lengths = next(stream)
            outstanding.update(sampler.submit(prompt, key, max_new_tokens_per_row=lengths))

    results = []
    for call in range(calls):
        returned = []
        start = time.perf_counter()
        top_up(0)
        iterator = sampler.finished_groups()
        try:
            for finished in iterator:
                outstanding.discard(finished.group_id)
                returned.append(finished)
                if len(returned) >= wanted:
                    break
                top_up(len(returned))
        finally:
            iterator.close()
        seconds = time.perf_counter() - start
        stats = sampler.last_call_stats
        sampler.update_params(params, policy_version=call + 1)
        ages = stats.carried_ages
        results.append(
            {
                "call": call,
                "seconds": seconds,
                "groups_returned": len(returned),
                "useful_tokens": stats.generated_tokens,
                "tokens_per_second": stats.generated_tokens / seconds,
                "slot_steps": stats.slot_steps,
                "utilization": stats.utilization,
                "carried_rows": stats.carried_rows,
                "carried_age_mean": float(np.mean(ages)) if ages else 0.0,
                "carried_age_max": max(ages) if ages else 0,
                "returned_rows_started_earlier": int(
                    sum(int(np.sum(g.start_versions < call)) for g in returned)
                ),
            }
        )
    return results


class _ForceEos:
    """A transformers logits processor that forces EOS at each row's drawn length."""

    def __init__(self, lengths, prompt_length: int, eos: int):
        import torch

        self.lengths = torch.as_tensor(lengths, dtype=torch.long)  # [rows]
        self.prompt_length = prompt_length
        self.eos = eos

    def __call__(self, input_ids, scores):
        generated = input_ids.shape[1] - self.prompt_length  # tokens so far
        force = (generated + 1) >= self.lengths.to(scores.device)  # the row's last token
        scores[:, self.eos] = -float("inf")  # EOS only where forced
        scores[force] = -float("inf")
        scores[force, self.eos] = 0.0
        return scores


def _transformers(config, params, tokens, lengths, samples, batch_rows: int = 64) -> dict:
    import tempfile

    import torch
    import transformers

    from r1jax.models import save_pretrained

    torch.set_num_threads(os.cpu_count() or 1)
    float_config = ModelConfig(**{**config.__dict__, "dtype": "float32", "param_dtype": "float32"})
    float_params = jax.tree.map(lambda x: np.asarray(x, np.float32), params)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, config.dtype) if device == "cuda" else torch.float32
    with tempfile.TemporaryDirectory() as path:
        save_pretrained(path, float_config, float_params)
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.to(device).eval()
    eos = config.vocab_size - 1
    prompts_per_batch = batch_rows // samples
    kwargs = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, pad_token_id=0)
    kwargs.update(num_return_sequences=samples, eos_token_id=eos)
    useful = 0
    with torch.inference_mode():
        ids = torch.from_numpy(tokens[:1].astype(np.int64)).to(device)
        model.generate(ids, max_new_tokens=2, **{**kwargs, "num_return_sequences": 1})
        start = time.perf_counter()
        for first in range(0, tokens.shape[0], prompts_per_batch):
            ids = torch.from_numpy(tokens[first : first + prompts_per_batch].astype(np.int64))
            ids = ids.to(device)
            rows = lengths[first * samples : (first + prompts_per_batch) * samples]
            processor = _ForceEos(rows, tokens.shape[1], eos)
            out = model.generate(
                ids,
                max_new_tokens=int(rows.max()),
                logits_processor=transformers.LogitsProcessorList([processor]),
                **kwargs,
            )
            is_eos = (out[:, tokens.shape[1] :] == eos).cpu().numpy()  # [64, T'], one EOS per row
            produced = np.where(is_eos.any(1), is_eos.argmax(1) + 1, is_eos.shape[1])
            assert np.array_equal(produced, rows), "every row must stop at its drawn length"
            useful += int(produced.sum())
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "useful_tokens": useful, "tokens_per_second": useful / seconds}


def scheduled_decode_steps(lengths: np.ndarray, group: int, slots: int) -> int:
    """Decode steps `ContinuousSampler` runs for rows of ``lengths`` (``[P * G]``, groups in
    submission order) on ``slots`` slots without partial rollouts: a group starts when ``G``
    slots are free (its refill draws token 0), each decode step advances every running row, and
    the call ends when the last row stops. ``slots = P * G`` is the static sampler's schedule.

    Example:
      >>> int(scheduled_decode_steps(np.array([3, 1, 2, 2]), group=2, slots=2))  # 2 + 1
      3
    """
    pending = list(np.asarray(lengths).reshape(-1, group))
    running = np.zeros(0, np.int64)  # tokens each running row has still to generate
    steps = 0
    while pending or running.size:
        while pending and slots - running.size >= group:
            running = np.concatenate([running, pending.pop(0) - 1])
            running = running[running > 0]
        if running.size:
            running = running - 1
            running = running[running > 0]
            steps += 1
    return steps


def _ring_read_seconds(config, slots: int, ring: int, steps: int = 8, repeats: int = 3) -> float:
    """Seconds per step to read ``slots`` float32 KV rings of ``ring`` columns once (a jitted
    loop summing the whole cache, scaled by a number that depends on the previous step so the
    sum is not hoisted out of the loop; scaling and sum fuse into one pass): the memory traffic
    of attention over every slot's ring, without its arithmetic."""
    shape = (2 * config.num_layers, slots, config.num_kv_heads, ring, config.head_dim)
    cache = jnp.ones(shape, jnp.float32)

    @jax.jit
    def loop(cache):
        def step(_, total):
            return total + jnp.sum(cache * (1.0 + 1e-30 * total))

        return jax.lax.fori_loop(0, steps, step, jnp.zeros((), jnp.float32))

    jax.block_until_ready(loop(cache))
    return matmuls.best_time(lambda: loop(cache), repeats) / steps


def _attention_seconds(config, slots: int, ring: int, steps: int = 8, repeats: int = 3) -> float:
    """Seconds per decode step of the attention alone: `r1jax.models.layers.attend` of one
    query per slot over every slot's whole float32 ring, in each layer (each layer's output is
    the next one's query, so nothing is hoisted out of the loop). Scores, softmax and both
    products as the sampler runs them, without the projections, the cache write or sampling:
    what reading the ring costs at the rate this machine's attention kernels reach, where
    `_ring_read_seconds` is one whole-cache reduction's rate."""
    k, dh = config.num_kv_heads, config.head_dim
    keys = tuple(jnp.ones((slots, k, dh, ring), jnp.float32) for _ in range(config.num_layers))
    values = tuple(jnp.ones((slots, k, ring, dh), jnp.float32) for _ in range(config.num_layers))
    mask = jnp.ones((slots, 1, ring), jnp.bool_)

    @jax.jit
    def loop(keys, values):
        def step(_, q):
            for layer_keys, layer_values in zip(keys, values):
                q = attend(q, layer_keys, layer_values, mask, jnp.float32)
            return q

        query = jnp.ones((slots, 1, config.num_heads, dh), jnp.float32)
        return jax.lax.fori_loop(0, steps, step, query)

    jax.block_until_ready(loop(keys, values))
    return matmuls.best_time(lambda: loop(keys, values), repeats) / steps


def _floor(params, config, sampling_params, lengths, prompt_length: int) -> dict:
    """Per slot count (32, 64, 128, 256 = all rows, the static sampler's batch): the scheduler's
    decode steps on the drawn lengths, what those steps' weight matmuls alone cost
    (`r1jax.bench.matmuls.decode_seconds` at the slot count's rows), and what reading every
    slot's whole KV ring once per step costs (the continuous sampler's attention traffic; the
    static sampler's growing segments read less early on). No sampler with that many slots and
    a ring per slot runs faster than their sum. ``ideal`` is the same at full utilization (what
    partial rollouts approach). ``attention_floor`` replaces the ring read by the attention
    itself (`_attention_seconds`): the bound for this sampler's decode step with its attention
    kernels as they are."""
    group = sampling_params.num_samples_per_prompt
    ring = continuous.ring_length(prompt_length, sampling_params.max_new_tokens)
    useful = int(lengths.sum())
    rows = {}
    for slots in (32, 64, 128, 256):
        matmul = matmuls.decode_seconds(params, config, rows=slots, steps=32, repeats=3)[0] / 32
        read = _ring_read_seconds(config, slots, ring)
        attention = _attention_seconds(config, slots, ring)
        steps = scheduled_decode_steps(lengths, group, slots)
        rows[str(slots)] = {
            "decode_steps": steps,
            "utilization": useful / (slots * steps + lengths.size),
            "matmul_seconds_per_step": matmul,
            "ring_read_seconds_per_step": read,
            "floor_seconds": steps * (matmul + read),
            "ideal_floor_seconds": useful / slots * (matmul + read),
            "attention_seconds_per_step": attention,
            "attention_floor_seconds": steps * (matmul + attention),
        }
    return {"useful_tokens": useful, "slots": rows}


def _run_mode(args, mode: str) -> dict:
    samples = args.samples or 8
    new_tokens = args.new_tokens or 1024
    config = bench_config(args.model, args.dtype)
    params = init_params(config, jax.random.key(args.seed))
    tokens, batch = _prompts(config, args.prompts, args.prompt_length, args.seed)
    lengths = draw_lengths(args.prompts * samples, new_tokens, args.seed)
    sampling_params = SamplingParams(
        max_new_tokens=new_tokens, temperature=1.0, num_samples_per_prompt=samples
    )
    key = jax.random.key(args.seed + 1)
    if mode == "static":
        result = _static(params, config, batch, key, sampling_params, lengths)
    elif mode == "continuous":
        tiers = attention_tiers(args.attention_tiers)
        result = _continuous(
            params, config, batch, key, sampling_params, lengths, args.slots, tiers
        )
    elif mode == "partial":
        result = {"calls": _partial(params, config, sampling_params, args, args.slots)}
    elif mode == "floor":
        result = _floor(params, config, sampling_params, lengths, args.prompt_length)
    else:
        result = _transformers(config, params, tokens, lengths, samples)
    result["peak_memory_bytes"] = _peak_memory_bytes()
    return result


def _child(args, mode: str) -> dict:
    argv = [sys.executable, "-m", "r1jax.bench", "sample", "--workload", "longtail", "--json"]
    argv += ["--model", args.model, "--dtype", args.dtype, "--mode", f"_{mode}"]
    argv += ["--slots", str(args.slots), "--prompts", str(args.prompts), "--seed", str(args.seed)]
    argv += ["--prompt-length", str(args.prompt_length)]
    argv += ["--attention-tiers", args.attention_tiers]
    if args.samples:
        argv += ["--samples", str(args.samples)]
    if args.new_tokens:
        argv += ["--new-tokens", str(args.new_tokens)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> dict:
    if args.mode.startswith("_"):  # one mode in this process (a child of run)
        return _run_mode(args, args.mode[1:])
    modes = {"static": ["static"], "continuous": ["continuous"], "both": ["static", "continuous"]}
    modes = list(modes[args.mode])
    if args.partial:
        modes.append("partial")
    if args.vs_transformers:
        modes.append("transformers")
    if args.floor:
        modes.append("floor")
    samples = args.samples or 8
    new_tokens = args.new_tokens or 1024
    lengths = draw_lengths(args.prompts * samples, new_tokens, args.seed)
    results = {
        "workload": "longtail",
        "model": args.model,
        "dtype": args.dtype,
        "rows": int(lengths.size),
        "prompts": args.prompts,
        "samples_per_prompt": samples,
        "new_tokens": new_tokens,
        "drawn_length_median": float(np.median(lengths)),
        "drawn_length_mean": float(np.mean(lengths)),
        "drawn_at_budget": float(np.mean(lengths == new_tokens)),
        "slots": args.slots,
        "attention_tiers": args.attention_tiers,
        "band_bytes_per_slot": continuous.band_bytes_per_slot(
            bench_config(args.model, args.dtype),
            SamplingParams(max_new_tokens=new_tokens, num_samples_per_prompt=samples),
            args.prompt_length,
            args.slots,
            attention_tiers(args.attention_tiers),
        ),
        "bytes_per_slot": continuous.bytes_per_slot(
            bench_config(args.model, args.dtype),
            SamplingParams(max_new_tokens=new_tokens, num_samples_per_prompt=samples),
            args.prompt_length,
        ),
        "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
    }
    for mode in modes:
        results[mode] = _child(args, mode) if len(modes) > 1 else _run_mode(args, mode)
    base = results.get("static", {}).get("tokens_per_second")
    for mode in ("continuous", "transformers"):
        if base and mode in results:
            results[mode]["speedup_vs_static"] = results[mode]["tokens_per_second"] / base
    if "partial" in results:
        calls = results["partial"]["calls"]
        tokens = sum(c["useful_tokens"] for c in calls)
        results["partial"]["tokens_per_second"] = tokens / sum(c["seconds"] for c in calls)
        results["partial"]["utilization"] = tokens / sum(c["slot_steps"] for c in calls)
        if base:
            speedup = results["partial"]["tokens_per_second"] / base
            results["partial"]["speedup_vs_static"] = speedup
    if "transformers" in results:
        for mode in ("continuous", "partial"):
            if mode in results:
                results[mode]["speedup_vs_transformers"] = (
                    results[mode]["tokens_per_second"]
                    / results["transformers"]["tokens_per_second"]
                )
    if not args.json:
        _print(results)
    return results


def _print(results: dict) -> None:
    print(
        f"sample longtail {results['model']} {results['dtype']}: {results['rows']} rows "
        f"({results['prompts']} prompts x {results['samples_per_prompt']}), "
        f"T={results['new_tokens']}, drawn lengths median {results['drawn_length_median']:.0f}, "
        f"mean {results['drawn_length_mean']:.1f}, {100 * results['drawn_at_budget']:.1f}% at T; "
        f"{results['slots']} slots of {results['bytes_per_slot'] / 2**20:.2f} MiB (KV ring and "
        f"row state); attention bands {results['attention_tiers']} (up to "
        f"{results['band_bytes_per_slot'] / 2**20:.2f} MiB per slot); {results['devices']}"
    )
    print(
        f"  {'mode':<13}{'useful tok/s':>13}{'utilization':>13}{'wall s':>9}"
        f"{'cache+state MiB':>17}{'peak MiB':>10}{'vs static':>11}"
    )
    for mode in ("static", "continuous", "transformers"):
        if mode not in results:
            continue
        r = results[mode]
        utilization = f"{100 * r['utilization']:.1f}%" if "utilization" in r else "-"
        state = f"{r['state_bytes'] / 2**20:.1f}" if "state_bytes" in r else "-"
        speedup = f"{r['speedup_vs_static']:.2f}x" if "speedup_vs_static" in r else "-"
        print(
            f"  {mode:<13}{r['tokens_per_second']:>13,.0f}{utilization:>13}{r['seconds']:>9.1f}"
            f"{state:>17}{r['peak_memory_bytes'] / 2**20:>10.0f}{speedup:>11}"
        )
    if "partial" in results:
        for c in results["partial"]["calls"]:
            print(
                f"  partial {c['call']}    {c['tokens_per_second']:>13,.0f}"
                f"{100 * c['utilization']:>12.1f}%{c['seconds']:>9.1f}  carried "
                f"{c['carried_rows']} rows (age mean {c['carried_age_mean']:.2f}, max "
                f"{c['carried_age_max']}), {c['groups_returned']} groups returned"
            )
        p = results["partial"]
        speedup = f", {p['speedup_vs_static']:.2f}x static" if "speedup_vs_static" in p else ""
        print(
            f"  partial (4 calls) {p.get('tokens_per_second', 0):,.0f} tok/s, utilization "
            f"{100 * p.get('utilization', 0):.1f}%{speedup}, peak "
            f"{p['peak_memory_bytes'] / 2**20:.0f} MiB"
        )
    if "floor" in results:
        static = results.get("static", {}).get("tokens_per_second")
        useful = results["floor"]["useful_tokens"]
        print(
            "  floor: per decode step, the weight matmuls alone and one read of every slot's KV "
            "ring; the attention floor: the matmuls and the decode attention alone over every "
            f"ring; {useful:,} useful tokens"
        )
        print(
            f"  {'slots':>7}{'decode steps':>14}{'utilization':>13}{'matmul ms':>11}"
            f"{'ring ms':>9}{'floor s':>9}{'ceiling tok/s':>15}{'vs static':>11}"
            f"{'full-utilization ceiling':>27}{'attention ms':>14}{'attention floor s':>19}"
            f"{'vs static':>11}"
        )
        for slots, f in sorted(results["floor"]["slots"].items(), key=lambda kv: int(kv[0])):
            ceiling, ideal = useful / f["floor_seconds"], useful / f["ideal_floor_seconds"]
            versus = f"{ceiling / static:.2f}x" if static else "-"
            attention_ceiling = useful / f["attention_floor_seconds"]
            attention_versus = f"{attention_ceiling / static:.2f}x" if static else "-"
            ideal_text = f"{ideal:,.0f} tok/s" + (f" ({ideal / static:.2f}x)" if static else "")
            print(
                f"  {slots:>7}{f['decode_steps']:>14,}{100 * f['utilization']:>12.1f}%"
                f"{1000 * f['matmul_seconds_per_step']:>11.1f}"
                f"{1000 * f['ring_read_seconds_per_step']:>9.1f}{f['floor_seconds']:>9.1f}"
                f"{ceiling:>15,.0f}{versus:>11}{ideal_text:>27}"
                f"{1000 * f['attention_seconds_per_step']:>14.1f}"
                f"{f['attention_floor_seconds']:>19.1f}{attention_versus:>11}"
            )
    for mode in ("continuous", "partial"):
        if mode in results and "speedup_vs_transformers" in results[mode]:
            print(f"  {mode} vs transformers: {results[mode]['speedup_vs_transformers']:.2f}x")
