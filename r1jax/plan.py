"""Memory planner: what one device holds for a GRPO step, from XLA's own compile, no weights.

``python -m r1jax.plan --model qwen2.5-1.5b --devices 64 --mesh data=1,fsdp=64,tensor=1
--batch 512 --max-len 4096`` simulates ``--devices`` CPU devices, builds every input as an
abstract `jax.ShapeDtypeStruct` with its sharding (`jax.eval_shape`: nothing is allocated),
compiles ahead of time (``jit(...).lower(...).compile()``) the update step
(`r1jax.learner.step.compile_train_step`, GRPO's default objective with its reference model)
and the sampler's prefill and decode programs (`r1jax.sampling.sampler`), and prints per
device what ``compiled.memory_analysis()`` reports: argument bytes (parameters, optimizer
state, reference, batch; the KV cache the decode program builds from the prompt cache is
counted under its temporaries and also shown on its own), outputs, temporaries and generated
code. A program's peak is ``arguments + outputs - aliased + temporaries + code``; the sampler
runs while the optimizer state and the reference stay on the device, so its line adds them.

The decode program gathers the weights over the row axes (``data``, ``fsdp``) once per call,
before its segment loops (`r1jax.sampling.sampler.decode_weight_specs`), so its temporaries
hold one full copy of the weights per device (a ``tensor`` split is kept), shown as "decode's
gathered weights". XLA:CPU multiplies 16-bit weights in float32 and holds that copy (and, in
the prefill, every layer's gathered weights) in float32; the "(accelerator)" rows subtract
that float32 excess (`gathered_weight_bytes`) and the fit uses them.

LoRA (``--lora-rank R``, `r1jax.models.lora`): the update step is compiled with the frozen
base and the adapters (only they have gradients and optimizer state; the reference is the base,
no second copy), the sampler with the merged weights it decodes with (a copy of the target
kernels in the compute dtype, made before each sampling call), and a table sets LoRA's
parameters, optimizer state and reference next to full fine-tuning's (from the abstract states,
no compile).

Fit: a program fits an accelerator when its peak is at most ``--usable`` (default 0.9) of the
accelerator's memory (`ACCELERATORS`). The largest micro-batch comes from two more compiles of
the update step, at ``2d`` and ``4d`` micro-batch rows where the batch allows, else ``d`` and
``2d`` (``d`` the data-parallel size; with one row per device XLA:CPU may schedule the step
differently): the temporaries are fitted as a line in the rows (``a + b * rows``) and the line
solved for the memory left after the arguments and the code; the answer is rounded down to a
multiple of ``d`` that divides the mini-batch. When the temporaries do not grow with the rows
the answer is "undetermined", not a number.

What the CPU compile does not see: the fused attention kernels (`r1jax.models.layers`, chosen
by platform: the CPU compile runs the XLA attention, whose ``[B, H, S, S]`` scores a fused
kernel never holds, so long rows over-estimate), and TPU/GPU layouts, padding to tiles,
rematerialisation and fusion decisions, which XLA makes per backend. The numbers are XLA:CPU's
for the same sharded program; treat them as a plan, and check on the accelerator.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

GIB = 1024**3

ACCELERATORS: dict[str, float] = {
    "v4": 32.0,
    "v5e": 16.0,
    "v5p": 95.0,
    "v6e": 32.0,
    "H100": 80.0,
    "H200": 141.0,
}
"""Accelerator name -> memory per chip in GiB (HBM)."""


@dataclasses.dataclass(frozen=True)
class Memory:
    """Per-device bytes of one compiled program, as ``compiled.memory_analysis()`` reports."""

    arguments: int
    outputs: int
    aliased: int
    temporaries: int
    code: int

    @property
    def peak(self) -> int:
        """Arguments + outputs not aliased to an argument + temporaries + generated code."""
        return self.arguments + self.outputs - self.aliased + self.temporaries + self.code

    @classmethod
    def of(cls, compiled: Any) -> Memory:
        stats = compiled.memory_analysis()
        return cls(
            arguments=int(stats.argument_size_in_bytes),
            outputs=int(stats.output_size_in_bytes),
            aliased=int(stats.alias_size_in_bytes),
            temporaries=int(stats.temp_size_in_bytes),
            code=int(stats.generated_code_size_in_bytes),
        )


def fits(peak_bytes: int, accelerator: str, *, usable: float = 0.9) -> bool:
    """Whether ``peak_bytes`` per device fit in ``usable`` of ``accelerator``'s memory.

    Example:
      >>> fits(14 * GIB, "v5e"), fits(15 * GIB, "v5e"), fits(15 * GIB, "v5e", usable=1.0)
      (True, False, True)
    """
    return peak_bytes <= usable * ACCELERATORS[accelerator] * GIB


def largest_micro_batch(
    rows: tuple[int, int],
    temporaries: tuple[int, int],
    fixed_bytes: int,
    capacity_bytes: float,
    *,
    step: int,
    minibatch_rows: int,
) -> int | None:
    """The most micro-batch rows whose fitted temporaries fit next to ``fixed_bytes``.

    The temporaries of the two compiles at ``rows`` are joined by a line ``a + b * rows``,
    solved for ``capacity_bytes - fixed_bytes``, and the answer rounded down to a multiple of
    ``step`` (the data-parallel size) that divides ``minibatch_rows``; 0 when none fits. None
    when the temporaries did not grow with the rows (the compiler chose other schedules for the
    two sizes), so that no line through them predicts anything.

    Example:
      >>> largest_micro_batch((8, 16), (100, 180), 0, 500, step=8, minibatch_rows=64)
      32
      >>> largest_micro_batch((8, 16), (180, 100), 0, 500, step=8, minibatch_rows=64) is None
      True
    """
    (r1, r2), (t1, t2) = rows, temporaries
    if t2 <= t1:
        return None
    slope = (t2 - t1) / (r2 - r1)
    intercept = t1 - slope * r1
    most = (capacity_bytes - fixed_bytes - intercept) / slope
    best = 0
    for candidate in range(step, minibatch_rows + 1, step):
        if candidate <= most and minibatch_rows % candidate == 0:
            best = candidate
    return best


def parse_mesh(text: str) -> dict[str, int]:
    """``"data=1,fsdp=-1,tensor=2"`` -> ``{"data": 1, "fsdp": -1, "tensor": 2}``.

    Example:
      >>> parse_mesh("fsdp=8,tensor=2")
      {'data': 1, 'fsdp': 8, 'tensor': 2}
    """
    sizes = {"data": 1, "fsdp": -1, "tensor": 1}
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        if name.strip() not in sizes:
            raise ValueError(f"--mesh: unknown axis {name!r}; axes are data, fsdp, tensor")
        sizes[name.strip()] = int(value)
    if "fsdp" not in text and sizes["fsdp"] == -1:
        sizes["fsdp"] = -1
    return sizes


def model_config(name: str, *, dtype: str, param_dtype: str) -> Any:
    """A `ModelConfig` from a published shape, a from-scratch preset, or an HF directory."""
    import json

    from r1jax.models import MODEL_PRESETS, ModelConfig
    from r1jax.models.shapes import PUBLISHED_SHAPES, published_config

    dtypes = dict(dtype=dtype, param_dtype=param_dtype)
    if name in PUBLISHED_SHAPES:
        return published_config(name, **dtypes)
    if name in MODEL_PRESETS:
        return ModelConfig.preset(name, **dtypes)
    path = os.path.join(name, "config.json")
    if os.path.isfile(path):
        with open(path) as file:
            return ModelConfig.from_hf_config(json.load(file), **dtypes)
    known = sorted(PUBLISHED_SHAPES) + sorted(MODEL_PRESETS)
    raise ValueError(f"--model {name!r}: not a shape ({', '.join(known)}) nor an HF directory")


def _sharded(tree: Any, shardings: Any) -> Any:
    import jax

    return jax.tree.map(
        lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
        tree,
        shardings,
    )


def _device_bytes(tree: Any) -> int:
    """Bytes one device holds of an abstract tree whose leaves carry shardings."""
    import jax
    import numpy as np

    total = 0
    for leaf in jax.tree.leaves(tree):
        shape = leaf.sharding.shard_shape(leaf.shape)
        total += math.prod(shape) * np.dtype(leaf.dtype).itemsize
    return total


@dataclasses.dataclass
class Setup:
    """The mesh, rules, abstract train state and shardings one plan compiles against."""

    mesh: Any
    rules: Any
    model: Any
    state: Any  # abstract TrainState with shardings
    state_sharding: Any
    policy_sharding: Any
    rows_sharding: Any
    data_parallel: int
    lora: Any = None  # the learner's LoraConfig, or None


def setup(model: Any, mesh_sizes: dict[str, int], learner: Any) -> Setup:
    """Builds the abstract (sharded) train state of ``learner`` on a mesh of all devices."""
    import jax

    from r1jax import distributed
    from r1jax import sharding as sharding_lib
    from r1jax.learner.state import init_train_state, state_shardings
    from r1jax.models import abstract_params, param_shardings

    mesh = sharding_lib.make_mesh(**mesh_sizes)
    rules = sharding_lib.ShardingRules()
    policy_sharding = param_shardings(model, mesh, rules)
    abstract = jax.eval_shape(lambda p: init_train_state(p, learner), abstract_params(model))
    state_sharding = state_shardings(abstract, policy_sharding)
    state = _sharded(abstract, state_sharding)
    return Setup(
        mesh=mesh,
        rules=rules,
        model=model,
        state=state,
        state_sharding=state_sharding,
        policy_sharding=policy_sharding,
        rows_sharding=distributed.row_sharding(mesh, rules),
        data_parallel=distributed.data_parallel_size(mesh, rules),
        lora=learner.lora,
    )


def sampler_params(plan: Setup) -> Any:
    """The abstract params the sampler decodes with: the policy, or with LoRA the adapters
    merged into the base in the compute dtype (`r1jax.models.lora.merge`)."""
    import jax

    from r1jax.models import lora as lora_lib

    state = plan.state
    if plan.lora is None:
        return state.policy
    merged = jax.eval_shape(
        lambda base, adapters: lora_lib.merge(base, adapters, plan.lora, plan.model.dtype),
        state.base,
        state.policy,
    )
    return _sharded(merged, plan.policy_sharding)


def lora_target_bytes(plan: Setup) -> int:
    """Per-device bytes of the base kernels that the merged sampler copy replaces (the base
    keeps them): those LoRA targets, or with an int8 base every kernel and its scale (all are
    dequantized into the copy)."""
    from r1jax.models.layers import KERNEL_SCALE
    from r1jax.models.transformer import flatten_params

    flat = flatten_params(plan.state.base)
    quantized = any(path[-1] == KERNEL_SCALE for path in flat)
    replaced = [
        leaf
        for path, leaf in flat.items()
        if path[-1] == KERNEL_SCALE
        or (path[-1] == "kernel" and len(path) > 1 and (quantized or path[-2] in plan.lora.targets))
    ]
    return _device_bytes(replaced)


def abstract_batch(rows: int, prompt_len: int, completion_len: int, sharding: Any) -> Any:
    """A `Batch` of ``rows`` as abstract arrays in ``sharding`` (reference log-probs left to
    the step, as when dynamic sampling is on)."""
    import jax
    import jax.numpy as jnp

    from r1jax.learner.batch import Batch

    def leaf(shape, dtype):
        return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)

    return Batch(
        prompt_tokens=leaf((rows, prompt_len), jnp.int32),
        prompt_mask=leaf((rows, prompt_len), jnp.bool_),
        completion_tokens=leaf((rows, completion_len), jnp.int32),
        completion_mask=leaf((rows, completion_len), jnp.bool_),
        old_logprobs=leaf((rows, completion_len), jnp.float32),
        is_correct=leaf((rows,), jnp.bool_),
        is_well_formed=leaf((rows,), jnp.bool_),
        is_truncated=leaf((rows,), jnp.bool_),
        scores=leaf((rows,), jnp.float32),
    )


def compile_update(plan: Setup, learner: Any, batch: Any) -> Memory:
    """XLA's per-device memory of the update step for ``learner`` on ``batch``."""
    import jax

    from r1jax.learner.step import compile_train_step

    program = compile_train_step(learner, plan.state_sharding, plan.rows_sharding)
    with jax.set_mesh(plan.mesh):
        compiled = program.lower(plan.state, batch).compile()
    return Memory.of(compiled)


def compile_sampler(
    plan: Setup,
    *,
    prompts: int,
    group_size: int,
    prompt_len: int,
    max_new_tokens: int,
    decode_segment_length: int | None = None,
) -> tuple[Memory, Memory]:
    """XLA's per-device memory of the prefill and the decode programs of one sampling call.

    The cache dtype and the weight layout are the accelerator's (the model's compute dtype,
    kernels as stored), not the CPU choices `r1jax.sampling.sampler` makes on XLA:CPU. The
    decode program gathers the weights once, as `r1jax.sampling.sampler.sample` does on a
    mesh (`r1jax.sampling.sampler.decode_weight_specs`).
    """
    import jax
    import jax.numpy as jnp

    from r1jax import sharding as sharding_lib
    from r1jax.sampling import sampler

    params = sampler_params(plan)
    sampling = sampler.SamplingParams(
        max_new_tokens=max_new_tokens,
        num_samples_per_prompt=group_size,
        stop_token_ids=(0,),
        decode_segment_length=decode_segment_length,
        cache_dtype=plan.model.dtype,
        kernels_by_rows=False,
    )
    decode_plan = sampler.decode_plan(sampling)
    controls = jax.eval_shape(lambda: sampler.runtime_controls(sampling))
    replicated = jax.sharding.NamedSharding(plan.mesh, jax.sharding.PartitionSpec())
    controls = _sharded(controls, jax.tree.map(lambda _: replicated, controls))

    def rows(shape, dtype, axes):
        sharding = sharding_lib.logical_sharding(plan.mesh, axes, plan.rules, shape=shape)
        return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)

    batch = prompts * group_size
    arguments = (
        rows((prompts, prompt_len), jnp.int32, ("batch", None)),
        rows((prompts,), jnp.int32, ("batch",)),
        rows((prompts,), jnp.int32, ("batch",)),
        jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=replicated),
        rows((batch,), jnp.int32, ("batch",)),
        controls,
    )
    static = {"config": plan.model, "plan": decode_plan, "rules": plan.rules}
    with jax.set_mesh(plan.mesh):
        prefill = sampler.prefill_program.lower(params, *arguments, **static).compile()
        state, prompt_cache = prefill.output_shardings
        out_state, out_cache = jax.eval_shape(
            lambda *a: sampler._prefill(*a, **static), params, *arguments
        )
        decode = sampler.decode_program.lower(
            params,
            _sharded(out_state, state),
            _sharded(out_cache, prompt_cache),
            controls,
            **static,
            weight_specs=sampler.decode_weight_specs(params, plan.rules),
        ).compile()
    return Memory.of(prefill), Memory.of(decode)


def gathered_weight_bytes(plan: Setup) -> tuple[int, int]:
    """Per-device bytes of the sampler's weights once the decode program has gathered them
    (`r1jax.sampling.sampler.decode_weight_specs`: no split over the row axes), and the bytes
    XLA:CPU adds by holding that copy's 16-bit float leaves in float32.

    XLA:CPU has no 16-bit matmul here: it converts 16-bit dot operands to float32 and moves the
    convert ahead of the all-gather, so its sampler programs hold the gathered weights in
    float32 where a GPU or TPU holds them in the compute dtype. The second number is that
    difference (0 for float32 weights).
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    from r1jax.sampling import sampler

    params = sampler_params(plan)
    specs = sampler.decode_weight_specs(params, plan.rules)
    native = upcast = 0
    for leaf, spec in zip(jax.tree.leaves(params), specs, strict=True):
        sharding = jax.sharding.NamedSharding(plan.mesh, spec)
        count = math.prod(sharding.shard_shape(leaf.shape))
        dtype = np.dtype(leaf.dtype)
        native += count * dtype.itemsize
        if jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize == 2:
            upcast += count * 2
    return native, upcast


def kv_cache_bytes(plan: Setup, rows: int, length: int) -> int:
    """Per-device bytes of a ``rows x length`` KV cache in the model's compute dtype."""
    import jax

    from r1jax.models import KVCache

    abstract = jax.eval_shape(lambda: KVCache.init(plan.model, rows, length))
    shardings = KVCache.shardings(plan.model, rows, length, plan.mesh, plan.rules)
    return _device_bytes(_sharded(abstract, shardings))


def _gib(value: float) -> str:
    return f"{value / GIB:8.2f}"


def _extrapolate(memories: Sequence[Memory], layers: Sequence[int], target: int) -> Memory:
    """Each field of two compiles at ``layers`` continued on their line to ``target`` layers."""
    (m1, m2), (l1, l2) = memories, layers
    fields = [f.name for f in dataclasses.fields(Memory)]

    def at(name):
        a, b = getattr(m1, name), getattr(m2, name)
        return round(a + (b - a) * (target - l1) / (l2 - l1))

    return Memory(**{name: at(name) for name in fields})


def micro_batch_probes(batch: int, data_parallel: int) -> tuple[int, int]:
    """The two micro-batch sizes compiled for the fit: 2 and 4 rows per device where the batch
    allows (with 1 row per device XLA:CPU may schedule the step differently), else 1 and 2.

    Example:
      >>> micro_batch_probes(512, 8), micro_batch_probes(16, 8)
      ((16, 32), (8, 16))
    """
    d = data_parallel
    return (2 * d, 4 * d) if batch % (4 * d) == 0 else (d, 2 * d)


def _measure(model: Any, args: argparse.Namespace, learner: Any, timings: dict) -> dict:
    """Every compile of one plan at ``model.num_layers`` layers."""
    completion_len = args.max_len - args.prompt_len
    learner = dataclasses.replace(learner, model=model)
    plan = setup(model, parse_mesh(args.mesh), learner)
    d = plan.data_parallel
    batch = abstract_batch(args.batch, args.prompt_len, completion_len, plan.rows_sharding)
    tag = f"{model.num_layers} layers"
    t0 = time.perf_counter()
    programs = {"update step": compile_update(plan, learner, batch)}
    timings[f"update ({tag})"] = time.perf_counter() - t0
    if not args.skip_sampler:
        t0 = time.perf_counter()
        programs["prefill"], programs["decode"] = compile_sampler(
            plan,
            prompts=args.batch // args.group_size,
            group_size=args.group_size,
            prompt_len=args.prompt_len,
            max_new_tokens=completion_len,
        )
        timings[f"sampler ({tag})"] = time.perf_counter() - t0
    if not args.skip_micro_batch and args.batch % (2 * d) == 0:
        t0 = time.perf_counter()
        for rows in micro_batch_probes(args.batch, d):
            micro_learner = dataclasses.replace(learner, micro_batch_size=rows)
            programs[f"micro {rows}"] = compile_update(plan, micro_learner, batch)
        timings[f"micro-batch fit ({tag})"] = time.perf_counter() - t0
    return programs


def run(args: argparse.Namespace, out=print) -> dict[str, Any]:
    """Compiles and reports; returns the numbers printed (for tests and scripts)."""
    import jax

    from r1jax import algorithms
    from r1jax.learner.config import LearnerConfig
    from r1jax.models import lora as lora_lib
    from r1jax.models import num_params

    started = time.perf_counter()
    model = model_config(args.model, dtype=args.dtype, param_dtype=args.param_dtype)
    if args.max_len <= args.prompt_len:
        raise ValueError(f"--max-len {args.max_len} must exceed --prompt-len {args.prompt_len}")
    completion_len = args.max_len - args.prompt_len
    if args.batch % args.group_size:
        raise ValueError(f"--batch {args.batch} is not a multiple of --group-size")
    if args.lora_rank < 0:
        raise ValueError(f"--lora-rank {args.lora_rank} must be >= 0 (0 = full fine-tuning)")
    lora = None
    if args.lora_rank:
        lora = lora_lib.LoraConfig(
            rank=args.lora_rank,
            targets=lora_lib.parse_targets(args.lora_targets),
            base_dtype=args.lora_base_dtype,
        )
    learner = LearnerConfig(
        model=model,
        algorithm=algorithms.policy_gradient.CONFIG(),
        group_size=args.group_size,
        temperature=1.0,
        max_new_tokens=completion_len,
        micro_batch_size=args.micro_batch,
        logprob_chunk_size=args.logprob_chunk,
        remat=not args.no_remat,
        lora=lora,
    )
    plan = setup(model, parse_mesh(args.mesh), learner)
    d = plan.data_parallel
    if args.batch % d or (args.micro_batch and args.micro_batch % d):
        raise ValueError(f"--batch and --micro-batch must be multiples of the data-parallel {d}")
    state = plan.state
    parts = state_parts(state)
    batch = abstract_batch(args.batch, args.prompt_len, completion_len, plan.rows_sharding)
    parts["batch"] = _device_bytes(batch)
    out(
        f"model {args.model}: {num_params(model) / 1e9:.2f}B params, {model.num_layers} layers, "
        f"dtype {model.dtype}, params {model.param_dtype}; {jax.device_count()} simulated "
        f"devices, mesh {dict(plan.mesh.shape)}, data-parallel {d}"
    )
    out(
        f"batch {args.batch} rows x {args.max_len} tokens (prompt {args.prompt_len}, completion "
        f"{completion_len}), group {args.group_size}, micro-batch "
        f"{args.micro_batch or args.batch} rows, remat {learner.remat}"
    )

    timings: dict[str, float] = {}
    layers = model.num_layers
    if args.layers == "full" or layers <= 4:
        programs = _measure(model, args, learner, timings)
        how = f"compiled with all {layers} layers"
    else:
        counts = tuple(
            int(n) for n in (args.layers.split(",") if args.layers != "auto" else (2, 4))
        )
        measured = [
            _measure(dataclasses.replace(model, num_layers=n), args, learner, timings)
            for n in counts
        ]
        programs = {
            name: _extrapolate([m[name] for m in measured], counts, layers) for name in measured[0]
        }
        how = (
            f"compiled at {counts[0]} and {counts[1]} layers and continued linearly to {layers} "
            "(the layers are unrolled: each adds the same parameters, optimizer state and saved "
            "block input; --layers full compiles all of them)"
        )
    out(f"per-device bytes (GiB) from XLA:CPU memory_analysis(), {how}:")
    for name, value in parts.items():
        if name == "parameters" and "frozen base" in parts:
            continue  # LoRA: shown as its two parts
        out(f"  argument  {name:<22}{_gib(value)}")
    resident = parts["optimizer state"] + parts["reference"]
    if lora is not None:  # the sampler's merged copy replaces the base's target kernels
        resident += parts["adapters"] + lora_target_bytes(plan)
    for name in ("prefill", "decode"):
        if name in programs:
            m = programs.pop(name)
            programs[f"{name} (+opt, ref)"] = dataclasses.replace(
                m, arguments=m.arguments + resident
            )
    weights = upcast = 0
    if not args.skip_sampler:
        cache = kv_cache_bytes(plan, args.batch, args.max_len - 1)
        out(f"  decode's KV cache ({args.batch} x {args.max_len - 1} slots){_gib(cache)}")
        weights, upcast = gathered_weight_bytes(plan)
        out(f"  decode's gathered weights (one copy){_gib(weights)}")
    if upcast:  # XLA:CPU's float32 copy of the 16-bit weights; an accelerator holds none
        for name in ("prefill", "decode"):
            m = programs[f"{name} (+opt, ref)"]
            programs[f"{name} (accelerator)"] = dataclasses.replace(
                m, temporaries=max(m.temporaries - upcast, 0)
            )
    micro_measured = {k: programs.pop(k) for k in list(programs) if k.startswith("micro ")}
    out(
        f"  {'program':<22}{'arguments':>10}{'outputs':>10}{'aliased':>10}{'temps':>10}"
        f"{'code':>10}{'peak':>10}"
    )
    for name, m in programs.items():
        out(
            f"  {name:<22}{_gib(m.arguments):>10}{_gib(m.outputs):>10}{_gib(m.aliased):>10}"
            f"{_gib(m.temporaries):>10}{_gib(m.code):>10}{_gib(m.peak):>10}"
        )
    if upcast:
        out(
            "  the sampler's rows: XLA:CPU multiplies 16-bit weights in float32, so its prefill "
            f"and decode temporaries hold the gathered weights in float32 ({_gib(upcast).strip()} "
            "GiB more than in the compute dtype); the (accelerator) rows subtract that and the "
            "fit uses them"
        )
    peak = max(
        m.peak for name, m in programs.items() if not (upcast and name.endswith("(+opt, ref)"))
    )
    names = list(ACCELERATORS) if args.accelerator == "all" else [args.accelerator]
    fit = {name: fits(peak, name, usable=args.usable) for name in names}

    micro = {}
    if micro_measured:
        probes = micro_batch_probes(args.batch, d)
        small, large = (micro_measured[f"micro {rows}"] for rows in probes)
        fixed = small.arguments + small.outputs - small.aliased + small.code
        for name in names:
            micro[name] = largest_micro_batch(
                probes,
                (small.temporaries, large.temporaries),
                fixed,
                args.usable * ACCELERATORS[name] * GIB,
                step=d,
                minibatch_rows=args.batch,
            )
        slope = (large.temporaries - small.temporaries) / (probes[1] - probes[0])
        out(
            f"largest micro-batch: the update step compiled at {probes[0]} and {probes[1]} "
            f"micro-batch rows has {_gib(small.temporaries).strip()} and "
            f"{_gib(large.temporaries).strip()} GiB of temporaries per device "
            f"({slope / 2**20:.1f} MiB more per row); that line is solved for the memory left "
            f"after arguments and code, rounded down to a multiple of {d} dividing the batch"
        )
        if slope <= 0:
            out(
                "  the temporaries did not grow with the rows, so the line predicts nothing: "
                "the largest micro-batch is undetermined (compile the sizes you consider with "
                "--micro-batch and compare their peaks)"
            )
    elif not args.skip_micro_batch:
        out(f"largest micro-batch: skipped, --batch {args.batch} is not a multiple of {2 * d}")
    comparison = None
    if lora is not None:
        comparison = lora_comparison(model, lora, parse_mesh(args.mesh), learner, parts)
        for line in comparison.pop("lines"):
            out(line)
    out(f"peak {_gib(peak).strip()} GiB per device; fits (<= {args.usable:.0%} of memory):")
    for name in names:
        line = f"  {name:<5} {ACCELERATORS[name]:6.0f} GiB  {'fits' if fit[name] else 'no'}"
        if name in micro and micro[name] is None:
            line += "   largest micro-batch undetermined"
        elif name in micro:
            line += f"   largest micro-batch {micro[name]} rows ({micro[name] // d} per device)"
        out(line)
    total = time.perf_counter() - started
    out(
        "compile seconds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
        + f"; total {total:.1f}"
    )
    return {
        "parts": parts,
        "programs": programs,
        "peak": peak,
        "fits": fit,
        "micro_batch": micro,
        "timings": timings,
        "lora": comparison,
        "sampler_weights": {"gathered": weights, "float32_extra": upcast},
    }


def state_parts(state: Any) -> dict[str, int]:
    """Per-device bytes of an abstract sharded train state: ``parameters`` (with LoRA the
    frozen base plus the adapters, also shown as ``frozen base`` and ``adapters``),
    ``optimizer state`` and ``reference``."""
    parts = {}
    if state.base is not None:
        parts["frozen base"] = _device_bytes(state.base)
        parts["adapters"] = _device_bytes(state.policy)
    parts["parameters"] = _device_bytes(state.policy) + parts.get("frozen base", 0)
    parts["optimizer state"] = _device_bytes(state.opt_state)
    parts["reference"] = _device_bytes(state.reference) if state.reference is not None else 0
    return parts


def lora_comparison(
    model: Any, lora: Any, mesh_sizes: dict[str, int], learner: Any, parts: dict[str, int]
) -> dict[str, Any]:
    """LoRA's trainable parameters and per-device state bytes next to full fine-tuning's.

    Full fine-tuning's numbers come from its abstract train state on the same mesh (the same
    learner without ``lora``); nothing is compiled. Returns the numbers and the printed
    ``lines``.
    """
    from r1jax.models import lora as lora_lib
    from r1jax.models import num_params

    full_parts = state_parts(
        setup(model, mesh_sizes, dataclasses.replace(learner, lora=None)).state
    )
    rows = ("parameters", "optimizer state", "reference")
    trainable = {"lora": lora_lib.num_adapter_params(model, lora), "full": num_params(model)}
    lora_total = sum(parts[name] for name in rows)
    full_total = sum(full_parts[name] for name in rows)
    base_dtype = lora.base_dtype or model.param_dtype
    lines = [
        f"LoRA rank {lora.rank} on {','.join(lora.targets)} (base {base_dtype}) against full "
        "fine-tuning, per device (GiB; the reference is the base, so LoRA keeps none):",
        f"  {'':<22}{'LoRA':>12}{'full':>12}",
        f"  {'trainable params':<22}{trainable['lora'] / 1e6:>11.2f}M"
        f"{trainable['full'] / 1e6:>11.2f}M",
    ]
    for name in rows:
        lines.append(f"  {name:<22}{_gib(parts[name]):>12}{_gib(full_parts[name]):>12}")
    lines.append(f"  {'total':<22}{_gib(lora_total):>12}{_gib(full_total):>12}")
    return {
        "trainable_params": trainable,
        "lora": {name: parts[name] for name in rows},
        "full": {name: full_parts[name] for name in rows},
        "lines": lines,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m r1jax.plan",
        description="Per-device memory of a GRPO step and its sampler, from XLA's compile.",
    )
    p.add_argument("--model", required=True, help="published shape, preset, or HF directory")
    p.add_argument("--devices", type=int, required=True, help="simulated devices")
    p.add_argument("--mesh", default="data=1,fsdp=-1,tensor=1", help="data=..,fsdp=..,tensor=..")
    p.add_argument("--batch", type=int, default=256, help="rows per step (prompts x group)")
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--max-len", type=int, default=2048, help="prompt + completion tokens")
    p.add_argument("--prompt-len", type=int, default=256)
    p.add_argument("--micro-batch", type=int, default=0, help="rows per micro-batch; 0 = all")
    p.add_argument("--logprob-chunk", type=int, default=256)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--param-dtype", default="float32")
    p.add_argument("--no-remat", action="store_true")
    p.add_argument("--accelerator", default="all", choices=["all", *ACCELERATORS])
    p.add_argument("--usable", type=float, default=0.9, help="fraction of memory a plan may use")
    p.add_argument(
        "--layers",
        default="auto",
        help="auto (models over 4 layers: compile at 2 and 4, continue linearly), full, or N1,N2",
    )
    p.add_argument("--lora-rank", type=int, default=0, help="LoRA rank; 0 = full fine-tuning")
    p.add_argument(
        "--lora-targets", default="all", help="LoRA projections: all, attention, mlp or names"
    )
    p.add_argument(
        "--lora-base-dtype",
        default="",
        help="LoRA's frozen base dtype: float32, bfloat16 or int8 ('' = --param-dtype)",
    )
    p.add_argument("--skip-sampler", action="store_true")
    p.add_argument("--skip-micro-batch", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    if "jax" in sys.modules:
        import jax
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            if jax.device_count() != args.devices or jax.default_backend() != "cpu":
                raise SystemExit(
                    f"JAX already runs {jax.device_count()} {jax.default_backend()} devices; "
                    f"run python -m r1jax.plan in a fresh process for {args.devices}"
                )
            return run(args)
    import jax

    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", args.devices)
    return run(args)


if __name__ == "__main__":
    main()
