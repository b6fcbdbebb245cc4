"""Continuous batching: a fixed number of decode slots refilled from a queue of prompt groups.

Long-tailed RL rollouts waste most of a static batch: every row of `r1jax.sampling.sample` is
stepped until the longest row of the batch stops. `ContinuousSampler` keeps ``N`` decode slots
(``N`` rows of state and KV cache) and, whenever ``G`` slots are free, prefills the next pending
prompt group once and copies its cache into the group's ``G`` free slots. Finished groups are
handed back as they finish. Everything on the device is one of two compiled programs with fixed
shapes, so after the first call of each nothing recompiles (a test counts the jit caches):

1. **Refill** (one group): prefill the ``[1, Tp]`` prompt (`sampler.prefill_logits`), write its
   cache into ``G`` slots, draw token 0 of each row (`sampler.emit_tokens`).
2. **Decode** (``N`` slots): a ``lax.while_loop`` of decode steps that exits when enough slots
   are free for the next group, when a step budget is spent or when no row is running.

**Cache layout: one contiguous ring per slot.** Each slot owns ``Smax = Tp + T - 1`` cache
columns, the most one row can fill, so the cache is sized by slots, not by rows requested
(`bytes_per_slot`). All slots write the same column at each step (``column``, advancing modulo
``Smax``), so the model's one-token decode writes one ``dynamic_update_slice`` column as in the
static sampler; a refilled row's prompt is placed, rotated, in the ``Tp`` columns just before the
column it writes next, and its ``valid`` bits are reset, so it never sees the previous row's
entries. A row lives at most ``T - 1`` steps, so its ring never wraps onto its own prompt.
Positions (RoPE) are explicit, so where a key lies in the ring does not matter. Why not a paged
cache: pages pay off when rows of very different maximum lengths share a pool, or when prompts
share prefix pages; here every slot can reach ``T`` tokens, a group's ``G`` rows are already
prefilled once, and on CPU a gather of pages every step costs more than it saves.

**Attention in bands** (`tiering`, ``attention_tiers``). Attending every slot over its whole
ring reads mostly masked columns when most rows are short. So the decode runs in chunks of
``chunk_steps``: each chunk copies band 0 (the newest ``b_1`` columns and the chunk's write
columns) of every slot out of the ring, and each older band only for the rows whose oldest
entry reaches into it, at a few compiled row capacities; the model merges the bands' partial
softmaxes (`r1jax.models.layers.attend_tiered`), and band 0's new columns are written back at
the chunk's end. A chunk where more than half the slots reach into a band attends over the
whole rings instead.

**Per-row determinism.** Row ``(p, g)`` draws with ``fold_in(fold_in(key, prompt_id), g)``
exactly as the static sampler does, at its own step ``t`` (not the slot's or the loop's), so its
tokens depend on its prompt and key only, never on its slot or the refill order. Log-probs agree
with the static sampler to float rounding (the attended columns are summed in another order).

**Partial rollouts** (``partial_rollouts=True``): a `generate` call may end (a step budget, or
enough groups finished) with rows unfinished; they keep their slots and cache and continue in
the next call, after `update_params` may have installed a newer policy. Their earlier tokens
keep the log-probs of the policy that sampled them, and each row records the policy version it
started at (`FinishedGroup.start_versions`); `CallStats` counts the carried rows and their age.
Without partial rollouts, rows unfinished when a call ends are discarded.

What does not live here: prefill, logit processing, stop matching and keys (``sampler.py``,
``logits.py``, ``stopping.py``), the output types (``rollout.py``).
"""

import collections
import dataclasses
import functools
import time
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from r1jax import sharding as sharding_lib
from r1jax.models import CacheTier, KVCache, ModelConfig
from r1jax.sampling import sampler, stopping
from r1jax.sampling.rollout import PromptBatch, Rollout


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SlotState:
    """Decode state of ``N`` slots (a loop carry; the cache is carried beside it).

    Attributes:
      tokens: ``[N, T]`` the slot's row's generated tokens (``pad_id`` where none).
      logprobs: ``[N, T]`` their log-probabilities (0 where none).
      last_token: ``[N]`` the token to feed next.
      step: ``[N]`` tokens the row has generated (the index of its next one).
      done: ``[N]`` the row stopped, or the slot is empty: the slot may be refilled.
      finish_reason: ``[N]`` finish codes.
      recent: ``[N, Lmax]`` last generated tokens for stop-sequence matching.
      uniforms: ``[N, T]`` the uniform number the row's step ``t`` draws with.
      row_limits: ``[N]`` per-row token limits (``<= T``).
      prompt_lengths: ``[N]`` real prompt lengths (decode positions start there).
      column: ``[]`` the ring column the next decode step writes.
      decode_steps: ``[]`` decode steps run so far (all calls).
    """

    tokens: jax.Array
    logprobs: jax.Array
    last_token: jax.Array
    step: jax.Array
    done: jax.Array
    finish_reason: jax.Array
    recent: jax.Array
    uniforms: jax.Array
    row_limits: jax.Array
    prompt_lengths: jax.Array
    column: jax.Array
    decode_steps: jax.Array


def ring_length(prompt_length: int, max_new_tokens: int) -> int:
    """``Smax = Tp + T - 1``: the cache columns one slot needs (at least ``Tp``).

    Example:
      >>> ring_length(32, 1024)
      1055
    """
    return prompt_length + max(max_new_tokens - 1, 0)


def bytes_per_slot(
    config: ModelConfig, sampling_params: sampler.SamplingParams, prompt_length: int
) -> int:
    """Device bytes one decode slot holds: its KV ring and its `SlotState` row.

    Example:
      >>> params = sampler.SamplingParams(max_new_tokens=8)
      >>> bytes_per_slot(ModelConfig.preset("tiny", dtype="float32"), params, prompt_length=8)
      15496
    """
    plan = sampler.decode_plan(sampling_params)
    ring = ring_length(prompt_length, plan.max_new_tokens)
    itemsize = sampler.cache_dtype(config, plan).itemsize
    cache = config.num_layers * 2 * config.num_kv_heads * config.head_dim * ring * itemsize
    longest_stop = sampler.runtime_controls(sampling_params)["stop_sequence_ids"].shape[1]
    state = 3 * 4 * plan.max_new_tokens + 4 * (5 + longest_stop) + 1
    return cache + ring + state


def _init(
    num_slots: int, prompt_length: int, longest_stop: int, *, config, plan, rules
) -> tuple[SlotState, KVCache]:
    total = plan.max_new_tokens
    ring = ring_length(prompt_length, total)
    state = SlotState(
        tokens=jnp.full((num_slots, total), plan.pad_id, jnp.int32),
        logprobs=jnp.zeros((num_slots, total), jnp.float32),
        last_token=jnp.zeros((num_slots,), jnp.int32),
        step=jnp.zeros((num_slots,), jnp.int32),
        done=jnp.ones((num_slots,), bool),
        finish_reason=jnp.zeros((num_slots,), jnp.int32),
        recent=jnp.full((num_slots, longest_stop), -1, jnp.int32),
        uniforms=jnp.zeros((num_slots, total), jnp.float32),
        row_limits=jnp.zeros((num_slots,), jnp.int32),
        prompt_lengths=jnp.ones((num_slots,), jnp.int32),
        column=jnp.zeros((), jnp.int32),
        decode_steps=jnp.zeros((), jnp.int32),
    )
    cache = KVCache.init(config, num_slots, ring, dtype=sampler.cache_dtype(config, plan))
    return state, sampler.constrain_cache(cache, rules)


def _refill(
    params,
    state: SlotState,
    cache: KVCache,
    prompt_tokens: jax.Array,
    prompt_length: jax.Array,
    prompt_id: jax.Array,
    key: jax.Array,
    slots: jax.Array,
    row_limits: jax.Array,
    controls: dict,
    *,
    config: ModelConfig,
    plan: sampler.DecodePlan,
    rules: sharding_lib.ShardingRules | None = None,
) -> tuple[SlotState, KVCache]:
    """Prefills one ``[1, Tp]`` prompt and starts its ``G`` rows in ``slots [G]``.

    ``row_limits [G]`` are the rows' token limits; ``prompt_length [1]``, ``prompt_id [1]``.
    """
    group, total = plan.group_size, plan.max_new_tokens
    width = prompt_tokens.shape[1]
    ring = cache.max_length
    logits, prompt_cache = sampler.prefill_logits(
        params, prompt_tokens, prompt_length, config=config, plan=plan, rules=rules
    )  # [1, V]
    shift = (state.column - width) % ring

    def place(buffer, prefix, axis):  # prefix [1, ..., Tp, ...] -> rows `slots` of buffer
        widths = [(0, 0)] * prefix.ndim
        widths[axis] = (0, ring - width)
        row = jnp.roll(jnp.pad(prefix, widths), shift, axis=axis)  # [1, ..., Smax, ...]
        rows = jnp.broadcast_to(row, (group, *row.shape[1:])).astype(buffer.dtype)
        return buffer.at[slots].set(rows)

    cache = dataclasses.replace(
        cache,
        keys=tuple(place(b, p, 3) for b, p in zip(cache.keys, prompt_cache.keys)),
        values=tuple(place(b, p, 2) for b, p in zip(cache.values, prompt_cache.values)),
        valid=place(cache.valid, prompt_cache.valid, 1),
    )
    cache = sampler.constrain_cache(cache, rules)
    uniforms = sampler.row_uniforms(sampler.row_keys(key, prompt_id, group), total)  # [G, T]
    row_limits = jnp.minimum(row_limits, total).astype(jnp.int32)
    active = row_limits > 0
    longest_stop = state.recent.shape[1]
    token, logprob, recent, stopped, finish_reason = sampler.emit_tokens(
        jnp.repeat(logits, group, axis=0),
        uniforms[:, 0],
        active,
        jnp.full((group, longest_stop), -1, jnp.int32),
        jnp.ones((), jnp.int32),
        row_limits,
        jnp.where(active, stopping.FINISH_NONE, stopping.FINISH_LENGTH).astype(jnp.int32),
        controls,
    )
    first = jnp.arange(total)[None, :] == 0  # [1, T]
    tokens = jnp.where(first & active[:, None], token[:, None], plan.pad_id)  # [G, T]
    logprobs = jnp.where(first & active[:, None], logprob[:, None], 0.0)  # [G, T]
    state = dataclasses.replace(
        state,
        tokens=state.tokens.at[slots].set(tokens),
        logprobs=state.logprobs.at[slots].set(logprobs),
        last_token=state.last_token.at[slots].set(token),
        step=state.step.at[slots].set(active.astype(jnp.int32)),
        done=state.done.at[slots].set(~active | stopped),
        finish_reason=state.finish_reason.at[slots].set(finish_reason),
        recent=state.recent.at[slots].set(recent),
        uniforms=state.uniforms.at[slots].set(uniforms),
        row_limits=state.row_limits.at[slots].set(row_limits),
        prompt_lengths=state.prompt_lengths.at[slots].set(
            jnp.broadcast_to(prompt_length.astype(jnp.int32), (group,))
        ),
    )
    return state, cache


def _emit_slots(
    state: SlotState, logits: jax.Array, controls: dict, plan: sampler.DecodePlan
) -> SlotState:
    """Draws each running row's next token (at the row's own step) from ``[N, V]`` logits."""
    total = plan.max_new_tokens
    active = ~state.done
    index = jnp.minimum(state.step, total - 1)
    uniforms = jnp.take_along_axis(state.uniforms, index[:, None], axis=1)[:, 0]  # [N]
    token, logprob, recent, stopped, finish_reason = sampler.emit_tokens(
        logits,
        uniforms,
        active,
        state.recent,
        state.step + 1,
        state.row_limits,
        state.finish_reason,
        controls,
    )
    write = active[:, None] & (jnp.arange(total)[None, :] == state.step[:, None])  # [N, T]
    return dataclasses.replace(
        state,
        tokens=jnp.where(write, token[:, None], state.tokens),
        logprobs=jnp.where(write, logprob[:, None], state.logprobs),
        last_token=jnp.where(active, token, state.last_token),
        step=state.step + active.astype(jnp.int32),
        done=state.done | stopped,
        finish_reason=finish_reason,
        recent=recent,
    )


ATTENTION_TIERS = (256,)
"""Default band bounds of the decode attention (`tiering`): band 0 holds a row's newest 256
columns (plus a chunk's 32), one older band the rest. On the long-tailed benchmark (small, 64
slots, T = 1024) one bound at 256 beat 192, 320 and 384 and two bands (256, 512), whose extra
merge cost more than the columns it saved (README, "Long-tailed sampling")."""


@dataclasses.dataclass(frozen=True)
class Tiering:
    """How a decode step splits each slot's ring into bands (static; see `tiering`).

    Attributes:
      bounds: ``(b_1, ..., b_m)`` increasing column counts back from the chunk's first write
        column: band 0 is the newest ``b_1`` columns plus the chunk's ``chunk_steps`` write
        columns (every slot attends over it), band ``j`` the columns ``[b_j, b_{j+1})`` back
        (the last band ends where the ring does) for the slots whose row reaches that far.
      chunk_steps: decode steps per chunk (bands are copied out of the ring once per chunk).
      profiles: the ``(C_1, ..., C_m)`` row capacities compiled, one branch each; a chunk
        runs the first profile whose capacities hold every band's rows, or, where none does,
        attends over every whole ring as an untiered step does.
    """

    bounds: tuple[int, ...]
    chunk_steps: int
    profiles: tuple[tuple[int, ...], ...]

    def band_columns(self, num_slots: int, ring: int) -> int:
        """The most band-buffer columns a chunk holds per slot (band 0's and the older
        bands' at their largest capacity, averaged over the slots)."""
        edges = (*self.bounds, ring - self.chunk_steps)
        older = sum(
            max(p[j] for p in self.profiles) * (edges[j + 1] - edges[j])
            for j in range(len(self.bounds))
        )
        return self.bounds[0] + self.chunk_steps + -(-older // num_slots)


def check_attention_tiers(bounds) -> None:
    """Raises ValueError unless ``bounds`` are increasing positive integers (``()`` is fine).

    Example:
      >>> check_attention_tiers((256, 512)); check_attention_tiers(())
      >>> check_attention_tiers((512, 256))
      Traceback (most recent call last):
      ...
      ValueError: attention tier bounds must be increasing positive column counts, got (512, 256)
    """
    bounds = tuple(bounds)
    valid = all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in bounds)
    if not valid or list(bounds) != sorted(set(bounds)):
        raise ValueError(
            f"attention tier bounds must be increasing positive column counts, got {bounds}"
        )


def tiering(
    num_slots: int, ring: int, bounds: tuple[int, ...], chunk_steps: int = 32
) -> Tiering | None:
    """The `Tiering` of ``num_slots`` rings of ``ring`` columns, or None where no band fits.

    Bounds that leave no older band (``b + chunk_steps >= ring``) are dropped. Capacities
    are 0 and ``N / 8, N / 4, N / 2`` (rounded up), non-increasing from band to band (a row in
    band ``j`` is in every band before it); more rows than that in a band and the chunk
    attends over the whole rings instead (so the band buffers stay under half the cache).

    Example:
      >>> t = tiering(64, 1055, (256, 512))
      >>> t.bounds, len(t.profiles), t.profiles[:4]
      ((256, 512), 10, ((0, 0), (8, 0), (8, 8), (16, 0)))
      >>> t.band_columns(64, 1055)
      672
      >>> tiering(8, 47, (256, 512)) is None
      True
    """
    if chunk_steps < 1:
        raise ValueError(f"chunk_steps must be >= 1, got {chunk_steps}")
    check_attention_tiers(bounds)
    kept = tuple(int(b) for b in bounds if b + chunk_steps < ring)
    if not kept:
        return None
    sizes = sorted({0, *(-(-num_slots // d) for d in (8, 4, 2))})
    profiles = [()]
    for _ in kept:
        profiles = [(*p, c) for p in profiles for c in sizes if not p or c <= p[-1]]
    profiles.sort(key=lambda p: (sum(p), p))
    return Tiering(kept, chunk_steps, tuple(profiles))


def band_bytes_per_slot(
    config: ModelConfig,
    sampling_params: sampler.SamplingParams,
    prompt_length: int,
    num_slots: int,
    attention_tiers: tuple[int, ...] = ATTENTION_TIERS,
) -> int:
    """Device bytes per slot, at most, of the attention bands a decode chunk copies out of the
    rings (`tiering`; 0 without bands), on top of `bytes_per_slot`.

    Example:
      >>> params = sampler.SamplingParams(max_new_tokens=1024)
      >>> config = ModelConfig.preset("small", dtype="float32")
      >>> band_bytes_per_slot(config, params, 32, 64) / bytes_per_slot(config, params, 32)
      0.63...
    """
    plan = sampler.decode_plan(sampling_params)
    ring = ring_length(prompt_length, plan.max_new_tokens)
    tiers = tiering(num_slots, ring, tuple(attention_tiers))
    if tiers is None:
        return 0
    columns = tiers.band_columns(num_slots, ring)
    itemsize = sampler.cache_dtype(config, plan).itemsize
    return (
        config.num_layers * 2 * config.num_kv_heads * config.head_dim * columns * itemsize + columns
    )


def _ring_read(buffer: jax.Array, start: jax.Array, width: int, axis: int) -> jax.Array:
    """Columns ``(start + j) % R`` for ``j < width`` of a ring along ``axis``.

    Fixed-size slices only (``width`` columns each, never a copy of the whole ring): the
    columns up to the ring's end and, where the band wraps, the ring's first columns.
    """
    ring = buffer.shape[axis]
    start = start % ring
    wrapped = jnp.maximum(start + width - ring, 0)  # columns read from the ring's front
    body = lax.dynamic_slice_in_dim(buffer, jnp.minimum(start, ring - width), width, axis=axis)
    head = lax.slice_in_dim(buffer, 0, width, axis=axis)
    shape = [1] * buffer.ndim
    shape[axis] = width
    index = jnp.arange(width).reshape(shape)
    return jnp.where(
        index < width - wrapped,
        jnp.roll(body, -wrapped, axis=axis),  # body[j + wrapped] = column start + j
        jnp.roll(head, width - wrapped, axis=axis),  # head[j - (width - wrapped)]
    )


def _ring_write(buffer: jax.Array, block: jax.Array, start: jax.Array, axis: int) -> jax.Array:
    """``buffer`` with columns ``(start + j) % R`` along ``axis`` set to ``block``'s ``j``.

    Two fixed-size writes whether or not the block wraps: the part up to the ring's end at
    ``min(start, R - W)`` (merged with what is there), the wrapped part at 0.
    """
    ring, width = buffer.shape[axis], block.shape[axis]
    start = start % ring
    wrapped = jnp.maximum(start + width - ring, 0)  # columns that wrap to the front
    rolled = jnp.roll(block, wrapped, axis=axis)  # rolled[j] = block[j - wrapped]
    shape = [1] * block.ndim
    shape[axis] = width
    index = jnp.arange(width).reshape(shape)
    at = jnp.minimum(start, ring - width)
    tail = lax.dynamic_slice_in_dim(buffer, at, width, axis=axis)
    buffer = lax.dynamic_update_slice_in_dim(
        buffer, jnp.where(index >= wrapped, rolled, tail), at, axis=axis
    )
    head = lax.slice_in_dim(buffer, 0, width, axis=axis)  # after the first write: they may meet
    return lax.dynamic_update_slice_in_dim(
        buffer, jnp.where(index < wrapped, rolled, head), 0, axis=axis
    )


def _row_spans(state: SlotState, cache: KVCache) -> jax.Array:
    """``[N]`` ring columns each running row reaches back from the next write column (its
    oldest valid entry; 0 for done or empty slots)."""
    ring = cache.max_length
    back = (state.column - 1 - jnp.arange(ring)) % ring + 1  # [R] columns back, 1 = newest
    spans = jnp.max(jnp.where(cache.valid, back[None, :], 0), axis=1)  # [N]
    return jnp.where(state.done, 0, spans)


def _decode_step(params, s, c, controls, tiers, *, config, plan, rules, by_rows, ring):
    """One decode step of every slot: feed each row's last token, draw its next one."""
    logits, c = sampler.next_token_logits(params, s, c, config, rules, by_rows, cache_tiers=tiers)
    s = _emit_slots(s, logits, controls, plan)
    s = dataclasses.replace(s, column=(s.column + 1) % ring, decode_steps=s.decode_steps + 1)
    return s, c


def _decode(
    params,
    state: SlotState,
    cache: KVCache,
    controls: dict,
    max_steps: jax.Array,
    free_target: jax.Array,
    *,
    config: ModelConfig,
    plan: sampler.DecodePlan,
    rules: sharding_lib.ShardingRules | None = None,
    tiers: Tiering | None = None,
) -> tuple[SlotState, KVCache]:
    """Decode steps over all ``N`` slots until ``free_target`` slots are free (done or empty),
    ``max_steps`` steps ran or no row is running.

    Without ``tiers`` every step attends over every slot's whole ring. With them the steps run
    in chunks: each chunk copies band 0 of every slot and the older bands of the rows that
    reach into them out of the ring, decodes up to ``chunk_steps`` steps writing into band 0
    (`attend_tiered` merges the bands), and writes band 0's new columns back.
    """
    by_rows = sampler.decodes_by_rows(config, plan)
    ring = cache.max_length
    cache = sampler.constrain_cache(cache, rules)
    step = functools.partial(
        _decode_step,
        params,
        controls=controls,
        config=config,
        plan=plan,
        rules=rules,
        by_rows=by_rows,
        ring=ring,
    )

    def running(s, i):
        free = jnp.sum(s.done.astype(jnp.int32))
        return (i < max_steps) & (free < free_target) & ~jnp.all(s.done)

    def cond(carry):
        s, _, i = carry
        return running(s, i)

    def body(carry):
        s, c, i = carry
        s, c = step(s, dataclasses.replace(c, end=s.column), tiers=())
        return s, c, i + 1

    if tiers is None:
        state, cache, _ = lax.while_loop(cond, body, (state, cache, jnp.zeros((), jnp.int32)))
        return state, cache

    chunk, bounds = tiers.chunk_steps, tiers.bounds
    edges = (*bounds, ring - chunk)  # band j: columns [edges[j-1], edges[j]) back (j >= 1)
    window = bounds[0] + chunk  # band 0: [start - b_1, start + chunk)
    new = slice(bounds[0], window)  # band 0's write columns

    def chunk_loop(s, c, i, bands):
        """Up to ``chunk`` steps writing to ``c``: band 0 (at ``b_1 + k`` in step ``k``) when
        there are ``bands``, else the rings (at the slots' column)."""

        def chunk_cond(carry):
            s, _, i, k = carry
            return (k < chunk) & running(s, i)

        def chunk_body(carry):
            s, c, i, k = carry
            end = bounds[0] + k if bands is not None else s.column
            s, c = step(s, dataclasses.replace(c, end=end), tiers=bands or ())
            return s, c, i + 1, k + 1

        s, c, i, _ = lax.while_loop(chunk_cond, chunk_body, (s, c, i, jnp.zeros((), jnp.int32)))
        return s, c, i

    def banded_chunk(capacities, s, c, i, spans):
        """A chunk over band 0 and the older bands of profile ``capacities``."""
        start = s.column
        band0 = KVCache(
            keys=tuple(_ring_read(k, start - bounds[0], window, 3) for k in c.keys),
            values=tuple(_ring_read(v, start - bounds[0], window, 2) for v in c.values),
            valid=_ring_read(c.valid, start - bounds[0], window, 1),
            end=jnp.asarray(bounds[0], jnp.int32),  # reset at each step
        )
        bands = []
        for j, capacity in enumerate(capacities):
            if capacity == 0:
                continue
            near, far = edges[j], edges[j + 1]
            reaches = spans > near  # [N]
            rows = jnp.argsort(~reaches, stable=True)[:capacity].astype(jnp.int32)  # [C]
            first, width = start - far, far - near
            valid = _ring_read(c.valid[rows], first, width, 1) & reaches[rows][:, None]
            bands.append(  # the band's rows first, then their columns: C of N rings copied
                CacheTier(
                    rows=rows,
                    keys=tuple(_ring_read(k[rows], first, width, 3) for k in c.keys),
                    values=tuple(_ring_read(v[rows], first, width, 2) for v in c.values),
                    valid=valid,
                )
            )
        s, band0, i = chunk_loop(s, band0, i, tuple(bands))
        c = dataclasses.replace(
            c,
            keys=tuple(_ring_write(k, b[..., new], start, 3) for k, b in zip(c.keys, band0.keys)),
            values=tuple(
                _ring_write(v, b[:, :, new], start, 2) for v, b in zip(c.values, band0.values)
            ),
            valid=_ring_write(c.valid, band0.valid[:, new], start, 1),
        )
        return s, c, i

    def whole_ring_chunk(s, c, i, spans):
        """A chunk where too many rows reach back: every step attends over every whole ring."""
        return chunk_loop(s, c, i, None)

    branches = [functools.partial(banded_chunk, p) for p in tiers.profiles]
    branches.append(whole_ring_chunk)
    capacity = jnp.asarray(tiers.profiles, jnp.int32)  # [P, m]

    def chunk_body(carry):
        s, c, i = carry
        spans = _row_spans(s, c)
        needed = jnp.stack([jnp.sum(spans > e) for e in bounds])  # [m] rows per older band
        fits = jnp.all(capacity >= needed[None, :], axis=1)  # [P]
        branch = jnp.where(jnp.any(fits), jnp.argmax(fits), len(tiers.profiles))
        s, c, i = lax.switch(branch, branches, s, c, i, spans)
        return s, sampler.constrain_cache(c, rules), i

    state, cache, _ = lax.while_loop(cond, chunk_body, (state, cache, jnp.zeros((), jnp.int32)))
    return state, cache


init_program = jax.jit(_init, static_argnums=(0, 1, 2), static_argnames=("config", "plan", "rules"))
refill_program = jax.jit(
    _refill, static_argnames=("config", "plan", "rules"), donate_argnums=(1, 2)
)
decode_program = jax.jit(
    _decode, static_argnames=("config", "plan", "rules", "tiers"), donate_argnums=(1, 2)
)


@dataclasses.dataclass(frozen=True)
class FinishedGroup:
    """The ``G`` finished rows of one submitted prompt (host numpy arrays).

    Attributes:
      group_id: submission index (0, 1, ... over the sampler's life).
      prompt_id: the id folded into the rows' keys.
      tokens: ``[G, T]`` generated tokens, ``pad_id`` after the stop.
      logprobs: ``[G, T]`` their log-probs (each from the policy that sampled it), 0 after.
      lengths: ``[G]`` generated tokens per row.
      finish_reason: ``[G]`` finish codes.
      prompt_tokens: ``[Tp]`` the left-padded prompt.
      prompt_length: real prompt length.
      start_versions: ``[G]`` the policy version each row started at.
      finish_version: the policy version when the group finished.
    """

    group_id: int
    prompt_id: int
    tokens: np.ndarray
    logprobs: np.ndarray
    lengths: np.ndarray
    finish_reason: np.ndarray
    prompt_tokens: np.ndarray
    prompt_length: int
    start_versions: np.ndarray
    finish_version: int


@dataclasses.dataclass(frozen=True)
class CallStats:
    """What one `ContinuousSampler.generate` call (or `finished_groups` loop) did.

    Attributes:
      decode_steps: decode steps run (each steps all ``N`` slots).
      rows_started: rows refilled into slots (each drew its token 0 at prefill).
      generated_tokens: tokens generated in this call (rows finished or not).
      slot_steps: ``N * decode_steps + rows_started``.
      utilization: ``generated_tokens / slot_steps``.
      carried_rows: rows in flight when the call began (partial rollouts).
      carried_ages: ``[carried_rows]`` policy versions since each carried row started.
      discarded_rows: unfinished rows dropped at the end (without partial rollouts).
      seconds: wall time of the call.
    """

    decode_steps: int
    rows_started: int
    generated_tokens: int
    slot_steps: int
    utilization: float
    carried_rows: int
    carried_ages: tuple[int, ...]
    discarded_rows: int
    seconds: float


@dataclasses.dataclass
class _Group:
    group_id: int
    prompt_id: int
    prompt_tokens: np.ndarray
    prompt_length: int
    key: jax.Array
    row_limits: np.ndarray
    tokens: np.ndarray
    logprobs: np.ndarray
    lengths: np.ndarray
    finish_reason: np.ndarray
    start_versions: np.ndarray
    rows_done: int = 0


class ContinuousSampler:
    """``N`` decode slots refilled from a queue of prompt groups (see the module docstring).

    Example (the trainer's loop with dynamic sampling)::

      sampler = ContinuousSampler(params, config, sampling_params, num_slots=64,
                                  prompt_length=Tp)
      sampler.submit(prompts, key)                  # P groups of G rows
      for group in sampler.finished_groups():       # FinishedGroup, as groups finish
          keep(group) or sampler.submit(more_prompts, key)   # draw more until enough
          if enough: break                          # unfinished rows: dropped or carried
      sampler.update_params(new_params, policy_version=step + 1)

    Args:
      params: model params (the stored layout; copied by rows where the sampler would be).
      config: the model config.
      sampling_params: the controls; ``max_new_tokens`` is ``T``, ``num_samples_per_prompt``
        is ``G``; temperature, top-k/p, min-p and the stop ids are runtime values.
      num_slots: ``N >= G`` decode slots (rows on the device at once).
      prompt_length: ``Tp``, the prompt bucket; shorter prompts are left-padded to it.
      mesh: optional ``data x fsdp x tensor`` mesh (slots are the ``batch`` axis).
      rules: logical sharding rules.
      partial_rollouts: keep unfinished rows across calls instead of discarding them.
      policy_version: the version of ``params`` (recorded per row).
      attention_tiers: band bounds of the decode attention (`tiering`); ``()`` attends over
        every slot's whole ring at every step.
    """

    def __init__(
        self,
        params,
        config: ModelConfig,
        sampling_params: sampler.SamplingParams,
        num_slots: int,
        *,
        prompt_length: int,
        mesh: jax.sharding.Mesh | None = None,
        rules: sharding_lib.ShardingRules | None = None,
        partial_rollouts: bool = False,
        policy_version: int = 0,
        attention_tiers: tuple[int, ...] = ATTENTION_TIERS,
    ):
        group = sampling_params.num_samples_per_prompt
        if num_slots < group:
            raise ValueError(f"num_slots={num_slots} must be >= the group size {group}")
        if prompt_length < 1:
            raise ValueError(f"prompt_length must be >= 1, got {prompt_length}")
        self.config = config
        self.sampling_params = sampling_params
        self.num_slots = num_slots
        self.prompt_length = prompt_length
        self.partial_rollouts = partial_rollouts
        self._mesh = mesh
        self._rules = rules
        self._plan = sampler.decode_plan(sampling_params)
        self._controls = sampler.runtime_controls(sampling_params)
        self._static = {"config": config, "plan": self._plan, "rules": rules}
        ring = ring_length(prompt_length, self._plan.max_new_tokens)
        self.tiering = tiering(num_slots, ring, tuple(attention_tiers))
        longest_stop = int(self._controls["stop_sequence_ids"].shape[1])
        with self._mesh_context():
            self._state, self._cache = init_program(
                num_slots, prompt_length, longest_stop, **self._static
            )
        self._pending: collections.deque[_Group] = collections.deque()
        self._slot_rows: list[tuple[_Group, int] | None] = [None] * num_slots
        self._finished: collections.deque[FinishedGroup] = collections.deque()
        self._next_group_id = 0
        self._rows_started = 0
        self._harvested_tokens = 0
        self.last_call_stats: CallStats | None = None
        self.update_params(params, policy_version)

    def _mesh_context(self):
        if self._mesh is None:
            return _NullContext()
        return jax.set_mesh(self._mesh)

    def update_params(self, params, policy_version: int | None = None) -> None:
        """Installs new policy params (rows in flight continue with them)."""
        with self._mesh_context():
            if sampler.decodes_by_rows(self.config, self._plan):
                params = sampler.decode_layout_program(params, self.config)
        self._params = params
        if policy_version is not None:
            self.policy_version = int(policy_version)

    @property
    def group_size(self) -> int:
        """``G``."""
        return self._plan.group_size

    def submit(
        self,
        prompts: PromptBatch,
        key: jax.Array,
        *,
        max_new_tokens_per_row: jax.typing.ArrayLike | None = None,
    ) -> list[int]:
        """Queues ``P`` prompts, each a group of ``G`` rows; returns their group ids.

        Args:
          prompts: ``P`` left-padded prompts of width ``<= Tp``.
          key: PRNG key; row ``(p, g)`` draws as `r1jax.sampling.sample` would with this key.
          max_new_tokens_per_row: optional ``[P * G]`` limits (``<= T``), as in `sample`;
            they travel with the rows into whichever slots they get.
        """
        tokens = np.asarray(prompts.tokens, np.int32)
        lengths = np.asarray(prompts.lengths, np.int32)
        prompt_ids = np.asarray(prompts.prompt_ids, np.int32)
        count, width = tokens.shape
        group, total = self.group_size, self._plan.max_new_tokens
        if width > self.prompt_length:
            raise ValueError(f"prompts are {width} wide, more than prompt_length")
        if np.any(lengths < 1) or np.any(lengths > width):
            raise ValueError(f"prompt lengths must be in [1, {width}], got {lengths.tolist()}")
        if max_new_tokens_per_row is None:
            limits = np.full((count * group,), total, np.int32)
        else:
            limits = np.asarray(max_new_tokens_per_row, np.int32)
            if limits.shape != (count * group,):
                raise ValueError(
                    f"max_new_tokens_per_row has shape {limits.shape}, want {count * group}"
                )
        padded = np.full((count, self.prompt_length), self.sampling_params.pad_id, np.int32)
        padded[:, self.prompt_length - width :] = tokens
        ids = []
        for p in range(count):
            ids.append(self._next_group_id)
            self._pending.append(
                _Group(
                    group_id=self._next_group_id,
                    prompt_id=int(prompt_ids[p]),
                    prompt_tokens=padded[p],
                    prompt_length=int(lengths[p]),
                    key=key,
                    row_limits=np.minimum(limits[p * group : (p + 1) * group], total),
                    tokens=np.full((group, total), self.sampling_params.pad_id, np.int32),
                    logprobs=np.zeros((group, total), np.float32),
                    lengths=np.zeros((group,), np.int32),
                    finish_reason=np.zeros((group,), np.int32),
                    start_versions=np.zeros((group,), np.int64),
                )
            )
            self._next_group_id += 1
        return ids

    @property
    def num_pending(self) -> int:
        """Groups queued and not started."""
        return len(self._pending)

    @property
    def num_in_flight(self) -> int:
        """Rows in slots and not finished."""
        return sum(row is not None for row in self._slot_rows)

    def _free_slots(self) -> list[int]:
        return [slot for slot, row in enumerate(self._slot_rows) if row is None]

    def _refill(self) -> None:
        group_size = self.group_size
        while self._pending:
            free = self._free_slots()
            if len(free) < group_size:
                return
            group = self._pending.popleft()
            slots = free[:group_size]
            with self._mesh_context():
                self._state, self._cache = refill_program(
                    self._params,
                    self._state,
                    self._cache,
                    jnp.asarray(group.prompt_tokens[None]),
                    jnp.asarray([group.prompt_length], jnp.int32),
                    jnp.asarray([group.prompt_id], jnp.int32),
                    group.key,
                    jnp.asarray(slots, jnp.int32),
                    jnp.asarray(group.row_limits),
                    self._controls,
                    **self._static,
                )
            for index, slot in enumerate(slots):
                self._slot_rows[slot] = (group, index)
                group.start_versions[index] = self.policy_version
            self._rows_started += group_size
            self._harvest()

    def _harvest(self) -> None:
        """Moves finished rows out of their slots; completes groups."""
        done = np.asarray(jax.device_get(self._state.done))
        slots = [s for s, row in enumerate(self._slot_rows) if row is not None and done[s]]
        if not slots:
            return
        fields = (
            self._state.tokens,
            self._state.logprobs,
            self._state.step,
            self._state.finish_reason,
        )
        tokens, logprobs, steps, reasons = (np.asarray(jax.device_get(f))[slots] for f in fields)
        for index, slot in enumerate(slots):
            group, row = self._slot_rows[slot]
            self._slot_rows[slot] = None
            group.tokens[row] = tokens[index]
            group.logprobs[row] = logprobs[index]
            group.lengths[row] = steps[index]
            group.finish_reason[row] = reasons[index]
            self._harvested_tokens += int(steps[index])
            group.rows_done += 1
            if group.rows_done == self.group_size:
                self._finished.append(
                    FinishedGroup(
                        group_id=group.group_id,
                        prompt_id=group.prompt_id,
                        tokens=group.tokens,
                        logprobs=group.logprobs,
                        lengths=group.lengths,
                        finish_reason=group.finish_reason,
                        prompt_tokens=group.prompt_tokens,
                        prompt_length=group.prompt_length,
                        start_versions=group.start_versions,
                        finish_version=self.policy_version,
                    )
                )

    def _decode(self, max_steps: int) -> None:
        free = len(self._free_slots())
        if self._pending:
            target = self.group_size
        else:
            target = min(self.num_slots, free + self.group_size)
        with self._mesh_context():
            self._state, self._cache = decode_program(
                self._params,
                self._state,
                self._cache,
                self._controls,
                jnp.asarray(max_steps, jnp.int32),
                jnp.asarray(target, jnp.int32),
                **self._static,
                tiers=self.tiering,
            )
        self._harvest()

    def _in_flight_tokens(self) -> int:
        steps = np.asarray(jax.device_get(self._state.step))
        return int(sum(steps[s] for s, row in enumerate(self._slot_rows) if row is not None))

    def finished_groups(self, *, max_decode_steps: int | None = None) -> Iterator[FinishedGroup]:
        """Yields groups as they finish until nothing is pending or in flight, or until
        ``max_decode_steps`` decode steps ran. The caller may `submit` more while iterating
        (dynamic sampling) and may stop early; rows then unfinished are kept for the next
        call with partial rollouts and discarded without. `last_call_stats` is set at the end.
        """
        start_time = time.perf_counter()
        start_steps = int(jax.device_get(self._state.decode_steps))
        start_rows = self._rows_started
        carried = [
            self.policy_version - int(group.start_versions[row])
            for entry in self._slot_rows
            if entry is not None
            for group, row in [entry]
        ]
        start_tokens = self._harvested_tokens + self._in_flight_tokens()
        budget = np.iinfo(np.int32).max if max_decode_steps is None else int(max_decode_steps)
        discarded = 0
        try:
            while True:
                while self._finished:
                    yield self._finished.popleft()
                self._refill()
                if self._finished:
                    continue
                steps = int(jax.device_get(self._state.decode_steps)) - start_steps
                if self.num_in_flight == 0 or steps >= budget:
                    break
                self._decode(budget - steps)
        finally:
            if not self.partial_rollouts:
                discarded = self._discard_in_flight()
            steps = int(jax.device_get(self._state.decode_steps)) - start_steps
            rows = self._rows_started - start_rows
            generated = self._harvested_tokens + self._in_flight_tokens() - start_tokens
            slot_steps = self.num_slots * steps + rows
            self.last_call_stats = CallStats(
                decode_steps=steps,
                rows_started=rows,
                generated_tokens=generated,
                slot_steps=slot_steps,
                utilization=generated / slot_steps if slot_steps else 0.0,
                carried_rows=len(carried),
                carried_ages=tuple(carried),
                discarded_rows=discarded,
                seconds=time.perf_counter() - start_time,
            )

    def generate(
        self, num_groups: int | None = None, *, max_decode_steps: int | None = None
    ) -> list[FinishedGroup]:
        """Runs until ``num_groups`` groups finished (None: everything submitted) or
        ``max_decode_steps`` decode steps ran; returns the finished groups in finish order."""
        groups = []
        iterator = self.finished_groups(max_decode_steps=max_decode_steps)
        try:
            for group in iterator:
                groups.append(group)
                if num_groups is not None and len(groups) >= num_groups:
                    break
        finally:
            iterator.close()
        return groups

    def _discard_in_flight(self) -> int:
        """Frees the slots of unfinished rows (their groups are dropped)."""
        slots = [s for s, row in enumerate(self._slot_rows) if row is not None]
        if not slots:
            return 0
        for slot in slots:
            self._slot_rows[slot] = None
        self._state = dataclasses.replace(
            self._state, done=self._state.done.at[jnp.asarray(slots)].set(True)
        )
        return len(slots)


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def groups_to_rollout(groups: list[FinishedGroup]) -> Rollout:
    """Stacks groups into a `Rollout` (``B = len(groups) * G`` rows, in the given order)."""
    group = groups[0].tokens.shape[0]
    total = groups[0].tokens.shape[1]
    lengths = np.concatenate([g.lengths for g in groups]).astype(np.int32)
    return Rollout(
        tokens=np.concatenate([g.tokens for g in groups]),
        logprobs=np.concatenate([g.logprobs for g in groups]),
        mask=(np.arange(total)[None, :] < lengths[:, None]).astype(np.int32),
        lengths=lengths,
        finish_reason=np.concatenate([g.finish_reason for g in groups]).astype(np.int32),
        prompt_tokens=np.repeat(np.stack([g.prompt_tokens for g in groups]), group, axis=0),
        prompt_lengths=np.repeat(np.array([g.prompt_length for g in groups], np.int32), group),
    )


def sample_continuous(
    params,
    config: ModelConfig,
    prompts: PromptBatch,
    key: jax.Array,
    sampling_params: sampler.SamplingParams,
    *,
    num_slots: int,
    mesh: jax.sharding.Mesh | None = None,
    rules: sharding_lib.ShardingRules | None = None,
    max_new_tokens_per_row: jax.typing.ArrayLike | None = None,
    attention_tiers: tuple[int, ...] = ATTENTION_TIERS,
) -> Rollout:
    """`r1jax.sampling.sample` through ``num_slots`` continuous-batching slots.

    Same arguments and the same `Rollout` layout (``B = P * G`` rows in the submitted order,
    ``T = max_new_tokens`` columns, host numpy arrays) and, row for row, the same tokens.
    ``attention_tiers``: see `ContinuousSampler`.
    """
    continuous = ContinuousSampler(
        params,
        config,
        sampling_params,
        num_slots,
        prompt_length=int(np.asarray(prompts.tokens).shape[1]),
        mesh=mesh,
        rules=rules,
        attention_tiers=attention_tiers,
    )
    ids = continuous.submit(prompts, key, max_new_tokens_per_row=max_new_tokens_per_row)
    by_id = {group.group_id: group for group in continuous.generate()}
    return groups_to_rollout([by_id[i] for i in ids])
