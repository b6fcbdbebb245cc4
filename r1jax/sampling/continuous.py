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
prefilled once, and on CPU a gather of pages every step costs more than it saves. The price is
that every step attends over ``Smax`` columns (masked where invalid), where the static sampler's
growing segments attend over fewer early on.

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
import time
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from r1jax import sharding as sharding_lib
from r1jax.models import KVCache, ModelConfig, forward
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
) -> tuple[SlotState, KVCache]:
    """Decode steps over all ``N`` slots until ``free_target`` slots are free (done or empty),
    ``max_steps`` steps ran or no row is running."""
    by_rows = sampler.decodes_by_rows(config, plan)
    ring = cache.max_length
    cache = sampler.constrain_cache(cache, rules)

    def cond(carry):
        s, _, i = carry
        free = jnp.sum(s.done.astype(jnp.int32))
        return (i < max_steps) & (free < free_target) & ~jnp.all(s.done)

    def body(carry):
        s, c, i = carry
        c = dataclasses.replace(c, end=s.column)
        positions = jnp.maximum(s.prompt_lengths + s.step - 1, 0)  # [N]
        logits, c = forward(
            params,
            s.last_token[:, None],
            positions[:, None],
            config,
            attention_mask=jnp.ones_like(s.last_token)[:, None],
            kv_cache=c,
            rules=rules,
            kernels_by_rows=by_rows,
        )
        s = _emit_slots(s, logits[:, 0], controls, plan)
        s = dataclasses.replace(s, column=(s.column + 1) % ring, decode_steps=s.decode_steps + 1)
        return s, c, i + 1

    state, cache, _ = jax.lax.while_loop(cond, body, (state, cache, jnp.zeros((), jnp.int32)))
    return state, cache


init_program = jax.jit(_init, static_argnums=(0, 1, 2), static_argnames=("config", "plan", "rules"))
refill_program = jax.jit(
    _refill, static_argnames=("config", "plan", "rules"), donate_argnums=(1, 2)
)
decode_program = jax.jit(
    _decode, static_argnames=("config", "plan", "rules"), donate_argnums=(1, 2)
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
) -> Rollout:
    """`r1jax.sampling.sample` through ``num_slots`` continuous-batching slots.

    Same arguments and the same `Rollout` layout (``B = P * G`` rows in the submitted order,
    ``T = max_new_tokens`` columns, host numpy arrays) and, row for row, the same tokens.
    """
    continuous = ContinuousSampler(
        params,
        config,
        sampling_params,
        num_slots,
        prompt_length=int(np.asarray(prompts.tokens).shape[1]),
        mesh=mesh,
        rules=rules,
    )
    ids = continuous.submit(prompts, key, max_new_tokens_per_row=max_new_tokens_per_row)
    by_id = {group.group_id: group for group in continuous.generate()}
    return groups_to_rollout([by_id[i] for i in ids])
