"""KV-cache sampler: one prefill, then a decode loop compiled as ``lax.while_loop`` programs.

``sample(params, config, prompts, key, sampling_params)`` returns a `Rollout`. The work is two
jitted programs:

1. **Prefill** (``P`` rows): a forward of the left-padded ``[P, Tp]`` prompts on an empty
   ``Tp``-slot cache, logits at the last position only. Each prompt is prefilled once; its
   last-position logits are repeated to its ``G`` sample rows (``B = P * G``) and token 0 of
   every row is drawn from them. The ``P``-row, ``Tp``-slot prompt cache is handed to decode.
2. **Decode** (``B`` rows, the state donated so its buffers are reused for the `Rollout`):
   the prompt cache is repeated to the ``B`` rows once, then step ``t`` feeds token ``t - 1``
   into slot ``Tp + t - 1`` and draws token ``t``. Sampling, stop detection and the output
   writes are fused into the step; the cache is a loop carry, updated in place.

**Growing cache segments.** A decode step at step ``t`` only needs cache slots
``[0, Tp + t)``, but shapes must be static. The steps ``1 .. T - 1`` are therefore split into
segments of ``decode_segment_length`` steps; segment ``j`` is its own ``lax.while_loop`` over a
cache of exactly ``Tp + e_j - 1`` slots, where ``e_j`` is the segment's last step + 1, and the
cache is padded to the next segment's length between loops (one copy per segment). Every step
attends over its whole (current) cache, so no step reads or copies a slice of a larger buffer:
with the default (about 8 segments, multiples of 32 steps) the attention reads at most one
segment length more than needed. Every segment's loop condition also checks that some row is
still running, so the program exits as soon as every row has stopped; later segments then run
zero iterations. The segments are compiled once, together, per (batch bucket, prompt bucket,
``max_new_tokens``).

**Weights on a mesh.** The decode program first gathers every weight over the axes the rows
are split over (``data`` and ``fsdp``; a ``tensor`` split stays), once per call
(`decode_weight_specs`), and every segment's loop reads that one copy. Left sharded, each loop
body all-gathered the weights of every step, and XLA hoisted those gathers out of each loop on
its own: a decode of 8 segments held 8 full copies of the weights (for Qwen2.5-7B on
``fsdp=8``, about 215 GiB of temporaries per device in the XLA:CPU compile, against about 31
GiB gathered once, float32 there). One copy is the price of a decode step that moves no
weights between devices.

**Weight layout.** On CPU with a 16-bit compute dtype (`SamplingParams.kernels_by_rows`) the
params are first copied, in one small jitted program, into the layout of
`r1jax.models.kernels_by_rows` (every kernel output dims first, in the compute dtype), and both
programs run on that copy: a decode step multiplies a few rows by every weight, which XLA:CPU
streams faster from that layout in bfloat16.

**Randomness.** Row ``(p, g)`` uses ``fold_in(fold_in(key, prompt_ids[p]), g)`` and step ``t``
draws one uniform number from ``fold_in(row_key, t)``, so a row's tokens do not depend on its
batch position, the batch size or the mesh. All ``[B, T]`` uniforms are drawn at prefill, in
one vectorised call, so the decode steps run no random-number generator.

**Runtime controls.** Temperature, top-k, top-p, min-p and the stop ids are traced arguments:
changing their values does not recompile (top-k needs no static bound, see ``logits.py``).
Changing the *number* of stop ids or stop sequences (or the longest stop sequence) changes
shapes and recompiles.

What does not live here: logit processing (``logits.py``), stop matching (``stopping.py``),
the output types (``rollout.py``) and budget forcing (``budget_forcing.py``).
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from r1jax import models
from r1jax import sharding as sharding_lib
from r1jax.models import KVCache, ModelConfig, forward
from r1jax.sampling import logits as logits_lib
from r1jax.sampling import stopping
from r1jax.sampling.rollout import PromptBatch, Rollout


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """What to sample. Values marked *runtime* are traced: changing them does not recompile.

    Attributes:
      max_new_tokens: static ``T``, the most tokens generated per row.
      temperature: runtime; ``0`` means greedy (``argmax``), whose log-probs are then taken at
        temperature 1.
      top_k: runtime, ``0`` = off.
      top_p: runtime, ``1`` = off.
      min_p: runtime, ``0`` = off.
      stop_token_ids: runtime values (their count is static): a row stops after emitting any.
      stop_sequences: runtime values (count and longest length static): a row stops after its
        generated tokens end with any of these id sequences.
      stop_strings: a row also stops at the token whose bytes complete any of these strings in
        its decoded text, however the tokenizer split it (`stopping.stop_matchers`); the table
        is a runtime value, its shape static. ``None``: id sequences only.
      num_samples_per_prompt: static ``G``; ``B = P * G``.
      pad_id: token written after a row's stop.
      decode_segment_length: static number of decode steps per cache-length segment; None
        picks ``max(32, T / 8 rounded up to a multiple of 32)``.
      cache_dtype: static dtype of the KV cache; None picks the model's compute dtype, except
        float32 on CPU when that is a 16-bit float: XLA:CPU writes a bfloat16 buffer through
        float32 and copies it whole on every write, which made a ``small`` bfloat16 decode
        about 20% slower than with a float32 cache (reading float32 costs less there).
      kernels_by_rows: static; sample with a copy of the params whose kernels are stored output
        dims first, in the compute dtype (`r1jax.models.kernels_by_rows`), made once per call
        and freed with it. None picks it on CPU for a 16-bit compute dtype: there a decode
        step's few-row bfloat16 matmuls stream that layout 1.4-3x faster (per projection of
        the Qwen2.5-0.5B shape at 8 rows; a whole ``qwen05b`` bfloat16 call 1.5x), while in
        float32 it was slower on one x86-64 machine (``qwen05b`` 0.74x) and within noise on
        ``small``, so float32 keeps the stored layout and no extra copy. GPU and TPU
        compilers choose their own layouts.
    """

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    stop_token_ids: tuple[int, ...] = ()
    stop_sequences: tuple[tuple[int, ...], ...] = ()
    stop_strings: stopping.StopStrings | None = None
    num_samples_per_prompt: int = 1
    pad_id: int = 0
    decode_segment_length: int | None = None
    cache_dtype: str | None = None
    kernels_by_rows: bool | None = None

    def __post_init__(self):
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive int, got {self.max_new_tokens!r}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.min_p <= 1:
            raise ValueError(f"min_p must be in [0, 1], got {self.min_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if self.num_samples_per_prompt < 1:
            raise ValueError(
                f"num_samples_per_prompt must be >= 1, got {self.num_samples_per_prompt}"
            )
        if self.decode_segment_length is not None and self.decode_segment_length < 1:
            raise ValueError(
                f"decode_segment_length must be >= 1, got {self.decode_segment_length}"
            )
        if any(int(t) < 0 for t in self.stop_token_ids):
            raise ValueError(f"stop_token_ids must be >= 0, got {self.stop_token_ids}")
        stopping.pad_stop_sequences(self.stop_sequences)  # validates
        if self.stop_strings is not None and not isinstance(
            self.stop_strings, stopping.StopStrings
        ):
            raise TypeError("stop_strings must come from stopping.stop_matchers(tokenizer, ...)")


@dataclasses.dataclass(frozen=True)
class DecodePlan:
    """The static part of a sampling call (a jit cache key together with the shapes)."""

    group_size: int
    max_new_tokens: int
    pad_id: int
    segment_ends: tuple[int, ...]
    cache_dtype: str | None = None
    kernels_by_rows: bool | None = None


def decode_plan(sampling_params: SamplingParams) -> DecodePlan:
    """The static plan of a call: group size, ``T``, pad id, segment ends, cache dtype, layout.

    Example:
      >>> decode_plan(SamplingParams(max_new_tokens=100, decode_segment_length=32)).segment_ends
      (32, 64, 96, 100)
    """
    total = sampling_params.max_new_tokens
    length = sampling_params.decode_segment_length
    if length is None:
        length = max(32, 32 * math.ceil(math.ceil(total / 8) / 32))
    ends = tuple(min(total, end) for end in range(length, total + length, length))
    return DecodePlan(
        group_size=sampling_params.num_samples_per_prompt,
        max_new_tokens=total,
        pad_id=sampling_params.pad_id,
        segment_ends=ends,
        cache_dtype=sampling_params.cache_dtype,
        kernels_by_rows=sampling_params.kernels_by_rows,
    )


def runtime_controls(sampling_params: SamplingParams) -> dict[str, jax.Array]:
    """The traced arguments of a call: control values and stop ids as arrays."""
    return {
        "temperature": jnp.asarray(sampling_params.temperature, jnp.float32),
        "top_k": jnp.asarray(sampling_params.top_k, jnp.int32),
        "top_p": jnp.asarray(sampling_params.top_p, jnp.float32),
        "min_p": jnp.asarray(sampling_params.min_p, jnp.float32),
        "stop_token_ids": jnp.asarray(
            np.array(sampling_params.stop_token_ids, np.int32).reshape(-1)
        ),
        **stopping.stop_controls(sampling_params.stop_sequences, sampling_params.stop_strings),
    }


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DecodeState:
    """Loop carry of the decode program (``B`` rows).

    The KV cache is not part of it: it is a separate loop carry whose length changes from one
    segment to the next.

    Attributes:
      tokens: ``[B, T]`` generated tokens so far (``pad_id`` where none).
      logprobs: ``[B, T]`` their log-probabilities (0 where none).
      last_token: ``[B]`` the token to feed next.
      step: ``[]`` number of tokens generated so far (the index of the next one).
      done: ``[B]`` whether the row has stopped.
      lengths: ``[B]`` tokens generated per row.
      finish_reason: ``[B]`` finish codes.
      recent: ``[B, Lmax]`` last generated tokens for stop-sequence matching (-1 before any).
      uniforms: ``[B, T]`` the uniform number each row's step ``t`` draws with.
      row_limits: ``[B]`` per-row token limits (``<= T``).
      prompt_lengths: ``[B]`` real prompt lengths (decode positions start there).
      prompt_tokens: ``[B, Tp]`` the prompts, carried into the `Rollout`.
    """

    tokens: jax.Array
    logprobs: jax.Array
    last_token: jax.Array
    step: jax.Array
    done: jax.Array
    lengths: jax.Array
    finish_reason: jax.Array
    recent: jax.Array
    uniforms: jax.Array
    row_limits: jax.Array
    prompt_lengths: jax.Array
    prompt_tokens: jax.Array


def prompt_positions(mask: jax.Array) -> jax.Array:
    """Positions of a left-padded ``[N, Tp]`` mask: ``cumsum(mask) - 1`` clipped at 0.

    Example:
      >>> prompt_positions(jnp.array([[0, 1, 1], [1, 1, 1]]))
      Array([[0, 0, 1],
             [0, 1, 2]], dtype=int32)
    """
    return jnp.maximum(jnp.cumsum(mask, axis=-1) - 1, 0).astype(jnp.int32)


def cache_dtype(config: ModelConfig, plan: DecodePlan) -> jnp.dtype:
    """The KV cache dtype of a call (see `SamplingParams.cache_dtype`).

    Example:
      >>> plan = decode_plan(SamplingParams(max_new_tokens=4))
      >>> cache_dtype(ModelConfig.preset("tiny", dtype="float32"), plan)
      dtype('float32')
    """
    if plan.cache_dtype is not None:
        return jnp.dtype(plan.cache_dtype)
    compute = jnp.dtype(config.dtype)
    if jax.default_backend() == "cpu" and compute.itemsize == 2:
        return jnp.dtype(jnp.float32)
    return compute


def decodes_by_rows(config: ModelConfig, plan: DecodePlan) -> bool:
    """Whether a call decodes with its kernels by rows (see `SamplingParams.kernels_by_rows`).

    Example:
      >>> plan = decode_plan(SamplingParams(max_new_tokens=4))
      >>> decodes_by_rows(ModelConfig.preset("tiny", dtype="float32"), plan)
      False
    """
    if plan.kernels_by_rows is not None:
        return plan.kernels_by_rows
    return jax.default_backend() == "cpu" and jnp.dtype(config.dtype).itemsize == 2


def row_keys(key: jax.Array, prompt_ids: jax.Array, group_size: int) -> jax.Array:
    """``[P * G]`` keys: ``fold_in(fold_in(key, prompt_id), sample_index)``."""
    prompt_keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(prompt_ids)  # [P]
    samples = jnp.arange(group_size, dtype=jnp.int32)
    keys = jax.vmap(lambda k: jax.vmap(lambda g: jax.random.fold_in(k, g))(samples))(prompt_keys)
    return keys.reshape(-1)  # [B]


def row_uniforms(keys: jax.Array, steps: int) -> jax.Array:
    """``[B, T]`` uniforms: entry ``(b, t)`` is ``uniform(fold_in(keys[b], t))``."""

    def row(key):
        return jax.vmap(lambda t: jax.random.uniform(jax.random.fold_in(key, t)))(
            jnp.arange(steps, dtype=jnp.int32)
        )

    return jax.vmap(row)(keys)  # [B, T]


def constrain_cache(cache: KVCache, rules: sharding_lib.ShardingRules | None) -> KVCache:
    """Pins the cache to its logical shardings (a no-op without an active mesh)."""

    def constrain(x, axes):
        return sharding_lib.constrain(x, axes, rules)

    return dataclasses.replace(
        cache,
        keys=tuple(constrain(k, KVCache.KEY_AXES) for k in cache.keys),
        values=tuple(constrain(v, KVCache.VALUE_AXES) for v in cache.values),
        valid=constrain(cache.valid, KVCache.VALID_AXES),
    )


def decode_weight_specs(
    params, rules: sharding_lib.ShardingRules | None = None
) -> tuple[jax.sharding.PartitionSpec, ...]:
    """The `PartitionSpec` of each leaf of ``params`` (in `jax.tree.leaves` order) once the
    decode program has gathered it: the leaf's own spec without the mesh axes that split the
    rows (``rules.batch``, ``data`` and ``fsdp`` by default); a tensor split is kept.

    ``params`` are arrays or `jax.ShapeDtypeStruct` leaves carrying a `NamedSharding`.

    Example:
      >>> mesh = sharding_lib.make_mesh(devices=jax.devices()[:1])
      >>> spec = jax.sharding.PartitionSpec("tensor", "fsdp")
      >>> leaf = jax.ShapeDtypeStruct((4, 4), jnp.float32, sharding=jax.NamedSharding(mesh, spec))
      >>> decode_weight_specs({"w": leaf})
      (P('tensor', None),)
    """
    rules = sharding_lib.ShardingRules() if rules is None else rules
    row_axes = set(sharding_lib._as_tuple(rules.batch))

    def keep(entry):
        kept = tuple(a for a in sharding_lib._as_tuple(entry) if a not in row_axes)
        return None if not kept else kept[0] if len(kept) == 1 else kept

    return tuple(
        jax.sharding.PartitionSpec(*(keep(entry) for entry in leaf.sharding.spec))
        for leaf in jax.tree.leaves(params)
    )


def gather_weights(params, weight_specs: tuple[jax.sharding.PartitionSpec, ...]):
    """``params`` constrained to ``weight_specs`` (`decode_weight_specs`): one all-gather of
    the row-axis shards at the start of the decode program, shared by every segment's loop."""
    leaves, treedef = jax.tree.flatten(params)
    return treedef.unflatten(
        [jax.lax.with_sharding_constraint(x, s) for x, s in zip(leaves, weight_specs, strict=True)]
    )


def _broadcast_prompt_cache(
    prompt_cache: KVCache,
    config: ModelConfig,
    group_size: int,
    cache_length: int,
    rules: sharding_lib.ShardingRules | None,
) -> KVCache:
    """Repeats a ``P``-row prefilled cache to ``B = P * G`` rows of ``cache_length`` slots."""
    prompts, width = prompt_cache.valid.shape
    dtype = prompt_cache.keys[0].dtype
    cache = KVCache.init(config, prompts * group_size, cache_length, dtype=dtype)

    def place(buffer, prefix):
        prefix = jnp.repeat(prefix, group_size, axis=0)  # [B, ...]
        start = (0,) * buffer.ndim
        return jax.lax.dynamic_update_slice(buffer, prefix.astype(buffer.dtype), start)

    cache = dataclasses.replace(
        cache,
        keys=tuple(place(b, p) for b, p in zip(cache.keys, prompt_cache.keys)),
        values=tuple(place(b, p) for b, p in zip(cache.values, prompt_cache.values)),
        valid=place(cache.valid, prompt_cache.valid),
        end=jnp.asarray(width, cache.end.dtype),
    )
    return constrain_cache(cache, rules)


def _grow_cache(
    cache: KVCache, cache_length: int, rules: sharding_lib.ShardingRules | None
) -> KVCache:
    """Pads the cache's slots to ``cache_length`` (new slots empty and not valid)."""
    extra = cache_length - cache.max_length
    if extra == 0:
        return cache

    def pad(buffer, axis):
        widths = [(0, 0)] * buffer.ndim
        widths[axis] = (0, extra)
        return jnp.pad(buffer, widths)

    cache = dataclasses.replace(
        cache,
        keys=tuple(pad(b, 3) for b in cache.keys),  # [B, K, Dh, S]
        values=tuple(pad(b, 2) for b in cache.values),  # [B, K, S, Dh]
        valid=jnp.pad(cache.valid, ((0, 0), (0, extra))),
    )
    return constrain_cache(cache, rules)


def emit_tokens(
    logits: jax.Array,
    uniforms: jax.Array,
    active: jax.Array,
    recent: jax.Array,
    generated: jax.Array,
    row_limits: jax.Array,
    finish_reason: jax.Array,
    controls: dict,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """Draws one token per row and checks the stop conditions (shared by both samplers).

    Args:
      logits: ``[B, V]`` next-token logits.
      uniforms: ``[B]`` the uniform number each row draws with.
      active: ``[B]`` rows still generating (others keep their stop state).
      recent: ``[B, Lmax]`` last generated tokens (stop-sequence matching).
      generated: ``[]`` or ``[B]`` tokens each row will have generated after this one.
      row_limits: ``[B]`` per-row token limits.
      finish_reason: ``[B]`` finish codes so far.
      controls: `runtime_controls`.

    Returns:
      ``(token [B], logprob [B], recent [B, Lmax], stopped [B], finish_reason [B])``;
      ``stopped`` is True for active rows that stop at this token.
    """
    token, logprob = logits_lib.draw_tokens(
        uniforms,
        logits,
        temperature=controls["temperature"],
        top_k=controls["top_k"],
        top_p=controls["top_p"],
        min_p=controls["min_p"],
    )
    recent = jnp.where(active[:, None], stopping.push_recent(recent, token), recent)
    hit_token = active & stopping.matches_stop_token(token, controls["stop_token_ids"])
    hit_sequence = (
        active
        & ~hit_token
        & (
            stopping.matches_stop_sequence(
                recent, controls["stop_sequence_ids"], controls["stop_sequence_mask"]
            )
            | stopping.matches_stop_string(recent, controls["stop_string_table"])
        )
    )
    hit_length = active & ~hit_token & ~hit_sequence & (generated >= row_limits)
    finish_reason = jnp.select(
        [hit_token, hit_sequence, hit_length],
        [stopping.FINISH_STOP_TOKEN, stopping.FINISH_STOP_SEQUENCE, stopping.FINISH_LENGTH],
        finish_reason,
    )
    stopped = hit_token | hit_sequence | hit_length
    return token, logprob, recent, stopped, finish_reason.astype(jnp.int32)


def _emit(state: DecodeState, logits: jax.Array, controls: dict, plan: DecodePlan) -> DecodeState:
    """Draws token ``state.step`` from ``[B, V]`` logits and records it with its stop status."""
    step = state.step
    uniforms = jax.lax.dynamic_index_in_dim(state.uniforms, step, axis=1, keepdims=False)  # [B]
    active = ~state.done
    token, logprob, recent, stopped, finish_reason = emit_tokens(
        logits,
        uniforms,
        active,
        state.recent,
        step + 1,
        state.row_limits,
        state.finish_reason,
        controls,
    )
    written = jnp.where(active, token, plan.pad_id)
    tokens = jax.lax.dynamic_update_slice(state.tokens, written[:, None], (0, step))
    logprobs = jax.lax.dynamic_update_slice(
        state.logprobs, jnp.where(active, logprob, 0.0)[:, None], (0, step)
    )
    return dataclasses.replace(
        state,
        tokens=tokens,
        logprobs=logprobs,
        last_token=token,
        step=step + 1,
        done=state.done | stopped,
        lengths=jnp.where(active, step + 1, state.lengths),
        finish_reason=finish_reason,
        recent=recent,
    )


def next_token_logits(
    params,
    state: DecodeState,
    cache: KVCache,
    config: ModelConfig,
    rules: sharding_lib.ShardingRules | None = None,
    kernels_by_rows: bool = False,
    cache_tiers: tuple = (),
) -> tuple[jax.Array, KVCache]:
    """Feeds ``state.last_token`` at the cache's next slot, attending over the whole cache
    (and the older bands of ``cache_tiers``, `r1jax.models.CacheTier`, for their rows).

    ``kernels_by_rows``: ``params`` are in the layout of `r1jax.models.kernels_by_rows`.

    Returns:
      ``[B, V]`` logits and the updated cache.
    """
    positions = state.prompt_lengths + state.step - 1  # [B]
    logits, cache = forward(
        params,
        state.last_token[:, None],
        positions[:, None],
        config,
        attention_mask=jnp.ones_like(state.last_token)[:, None],
        kv_cache=cache,
        rules=rules,
        kernels_by_rows=kernels_by_rows,
        cache_tiers=cache_tiers,
    )
    return logits[:, 0], cache  # [B, V]


def prefill_logits(
    params,
    prompt_tokens: jax.Array,
    prompt_lengths: jax.Array,
    *,
    config: ModelConfig,
    plan: DecodePlan,
    rules: sharding_lib.ShardingRules | None = None,
) -> tuple[jax.Array, KVCache]:
    """Runs ``[P, Tp]`` left-padded prompts through the model once (shared by both samplers).

    Returns:
      ``[P, V]`` logits at the last prompt position and the ``P``-row, ``Tp``-slot cache.
    """
    prompts, width = prompt_tokens.shape
    mask = (jnp.arange(width)[None, :] >= width - prompt_lengths[:, None]).astype(jnp.int32)
    positions = prompt_positions(mask)  # [P, Tp]
    prompt_cache = KVCache.init(config, prompts, width, dtype=cache_dtype(config, plan))
    logits, prompt_cache = forward(
        params,
        prompt_tokens,
        positions,
        config,
        attention_mask=mask,
        kv_cache=prompt_cache,
        last_position_only=True,
        rules=rules,
        kernels_by_rows=decodes_by_rows(config, plan),
    )
    return logits[:, -1], prompt_cache  # [P, V]


def _prefill(
    params,
    prompt_tokens: jax.Array,
    prompt_lengths: jax.Array,
    prompt_ids: jax.Array,
    key: jax.Array,
    row_limits: jax.Array,
    controls: dict,
    *,
    config: ModelConfig,
    plan: DecodePlan,
    rules: sharding_lib.ShardingRules | None = None,
) -> tuple[DecodeState, KVCache]:
    """Prefills ``[P, Tp]`` prompts once and draws token 0 of each of the ``B`` rows.

    Returns:
      The ``B``-row `DecodeState` after token 0 and the ``P``-row, ``Tp``-slot prompt cache.
    """
    prompts = prompt_tokens.shape[0]
    group = plan.group_size
    batch = prompts * group
    logits, prompt_cache = prefill_logits(
        params, prompt_tokens, prompt_lengths, config=config, plan=plan, rules=rules
    )
    last_logits = jnp.repeat(logits, group, axis=0)  # [B, V]
    total = plan.max_new_tokens
    longest_stop = controls["stop_sequence_ids"].shape[1]
    row_limits = jnp.minimum(row_limits, total).astype(jnp.int32)
    state = DecodeState(
        tokens=jnp.full((batch, total), plan.pad_id, jnp.int32),
        logprobs=jnp.zeros((batch, total), jnp.float32),
        last_token=jnp.zeros((batch,), jnp.int32),
        step=jnp.zeros((), jnp.int32),
        done=row_limits <= 0,
        lengths=jnp.zeros((batch,), jnp.int32),
        finish_reason=jnp.where(row_limits <= 0, stopping.FINISH_LENGTH, stopping.FINISH_NONE),
        recent=jnp.full((batch, longest_stop), -1, jnp.int32),
        uniforms=row_uniforms(row_keys(key, prompt_ids, group), total),
        row_limits=row_limits,
        prompt_lengths=jnp.repeat(prompt_lengths, group, axis=0).astype(jnp.int32),
        prompt_tokens=jnp.repeat(prompt_tokens, group, axis=0).astype(jnp.int32),
    )
    return _emit(state, last_logits, controls, plan), prompt_cache


def _decode(
    params,
    state: DecodeState,
    prompt_cache: KVCache,
    controls: dict,
    *,
    config: ModelConfig,
    plan: DecodePlan,
    rules: sharding_lib.ShardingRules | None = None,
    weight_specs: tuple[jax.sharding.PartitionSpec, ...] | None = None,
) -> tuple[Rollout, DecodeState]:
    """Runs the decode segments (one ``lax.while_loop`` each) and assembles the `Rollout`.

    The final state is returned too, so every donated buffer aliases an output; `sample`
    drops it. ``weight_specs`` (`decode_weight_specs`, static): the weights are gathered to
    these specs once, before the segment loops; None leaves their sharding to XLA.
    """
    prompt_width = state.prompt_tokens.shape[1]
    by_rows = decodes_by_rows(config, plan)
    if weight_specs is not None:
        params = gather_weights(params, weight_specs)
    cache = None
    for segment_end in plan.segment_ends:
        cache_length = prompt_width + segment_end - 1
        if cache is None:
            cache = _broadcast_prompt_cache(
                prompt_cache, config, plan.group_size, cache_length, rules
            )
        else:
            cache = _grow_cache(cache, cache_length, rules)

        def cond(carry, segment_end=segment_end):
            s, _ = carry
            return (s.step < segment_end) & ~jnp.all(s.done)

        def body(carry):
            s, c = carry
            logits, c = next_token_logits(params, s, c, config, rules, by_rows)
            return _emit(s, logits, controls, plan), c

        state, cache = jax.lax.while_loop(cond, body, (state, cache))
    mask = (jnp.arange(plan.max_new_tokens)[None, :] < state.lengths[:, None]).astype(jnp.int32)
    rollout = Rollout(
        tokens=jnp.where(mask > 0, state.tokens, plan.pad_id),
        logprobs=jnp.where(mask > 0, state.logprobs, 0.0),
        mask=mask,
        lengths=state.lengths,
        finish_reason=state.finish_reason,
        prompt_tokens=state.prompt_tokens,
        prompt_lengths=state.prompt_lengths,
    )
    return rollout, state


prefill_program = jax.jit(_prefill, static_argnames=("config", "plan", "rules"))
decode_layout_program = jax.jit(models.kernels_by_rows, static_argnames="config")
decode_program = jax.jit(
    _decode, static_argnames=("config", "plan", "rules", "weight_specs"), donate_argnums=(1,)
)


def sample(
    params,
    config: ModelConfig,
    prompts: PromptBatch | tuple,
    key: jax.Array,
    sampling_params: SamplingParams,
    *,
    mesh: jax.sharding.Mesh | None = None,
    rules: sharding_lib.ShardingRules | None = None,
    max_new_tokens_per_row: jax.typing.ArrayLike | None = None,
) -> Rollout:
    """Samples ``G`` completions for each of ``P`` left-padded prompts.

    Args:
      params: model params (sharded on ``mesh`` when one is given).
      config: the model config (static).
      prompts: a `PromptBatch`, or ``(tokens [P, Tp], lengths [P])`` with prompt ids
        ``0 .. P-1``.
      key: PRNG key; row ``(p, g)`` derives its own key from it (see the module docstring).
      sampling_params: the controls; see `SamplingParams`.
      mesh: a ``data x fsdp x tensor`` mesh; rows are sharded over ``batch`` and the cache's
        KV heads over ``kv_heads`` following ``rules``.
      rules: logical sharding rules; the default `ShardingRules` when None.
      max_new_tokens_per_row: optional ``[B]`` runtime limit per row (``<= T``; 0 makes a row
        generate nothing); budget forcing uses it.

    Returns:
      A `Rollout` with ``B = P * G`` rows and ``T = max_new_tokens`` columns.

    Raises:
      ValueError: for inconsistent prompt shapes or lengths outside ``[1, Tp]`` (checked on the
        host when the lengths are concrete).
    """
    if not isinstance(prompts, PromptBatch):
        tokens, lengths = prompts
        tokens = jnp.asarray(tokens, jnp.int32)
        prompts = PromptBatch(
            tokens=tokens,
            lengths=jnp.asarray(lengths, jnp.int32),
            prompt_ids=jnp.arange(tokens.shape[0], dtype=jnp.int32),
        )
    tokens = jnp.asarray(prompts.tokens, jnp.int32)
    lengths = jnp.asarray(prompts.lengths, jnp.int32)
    prompt_ids = jnp.asarray(prompts.prompt_ids, jnp.int32)
    if tokens.ndim != 2 or lengths.shape != tokens.shape[:1] or prompt_ids.shape != lengths.shape:
        raise ValueError(
            f"prompt tokens {tokens.shape}, lengths {lengths.shape} and prompt_ids "
            f"{prompt_ids.shape} must be [P, Tp], [P], [P]"
        )
    if not isinstance(lengths, jax.core.Tracer):
        host_lengths = np.asarray(lengths)
        bad = np.flatnonzero((host_lengths < 1) | (host_lengths > tokens.shape[1]))
        if bad.size:
            raise ValueError(
                f"prompt row {int(bad[0])} has length {int(host_lengths[bad[0]])}, "
                f"outside [1, {tokens.shape[1]}]"
            )
    plan = decode_plan(sampling_params)
    batch = tokens.shape[0] * plan.group_size
    if max_new_tokens_per_row is None:
        row_limits = jnp.full((batch,), plan.max_new_tokens, jnp.int32)
    else:
        row_limits = jnp.asarray(max_new_tokens_per_row, jnp.int32)
        if row_limits.shape != (batch,):
            raise ValueError(f"max_new_tokens_per_row has shape {row_limits.shape}, want {batch}")
    controls = runtime_controls(sampling_params)
    static = {"config": config, "plan": plan, "rules": rules}
    arguments = (tokens, lengths, prompt_ids, key, row_limits, controls)
    if mesh is None:
        if decodes_by_rows(config, plan):
            params = decode_layout_program(params, config)
        state, prompt_cache = prefill_program(params, *arguments, **static)
        return decode_program(params, state, prompt_cache, controls, **static)[0]
    rows = sharding_lib.logical_sharding(mesh, ("batch", None), rules, shape=tokens.shape)
    vector = sharding_lib.logical_sharding(mesh, ("batch",), rules, shape=lengths.shape)
    tokens, lengths, prompt_ids = jax.device_put(
        (tokens, lengths, prompt_ids), (rows, vector, vector)
    )
    arguments = (tokens, lengths, prompt_ids, key, row_limits, controls)
    with jax.set_mesh(mesh):
        if decodes_by_rows(config, plan):
            params = decode_layout_program(params, config)
        state, prompt_cache = prefill_program(params, *arguments, **static)
        specs = None
        if all(isinstance(x.sharding, jax.NamedSharding) for x in jax.tree.leaves(params)):
            specs = decode_weight_specs(params, rules)
        return decode_program(params, state, prompt_cache, controls, **static, weight_specs=specs)[
            0
        ]
