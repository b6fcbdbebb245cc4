"""RL steps sampled through one `ContinuousSampler` kept across steps (``sampling.mode``).

`settings_from_config` reads and checks ``sampling.mode / slots / partial_rollouts /
partial_step_budget``. `GroupStream.collect` runs one RL step's generation: it submits exactly
the prompt groups the step needs (prompt batches drawn from the data iterator, batch ``r`` of
the step with ``fold_in(key, r)``, the key the static sampler's round ``r`` uses), hands each
finished group to the caller's ``accept`` (the verifier and, with dynamic sampling, the
"rewards differ" test) and submits one more group for each one rejected, until ``wanted``
groups are accepted. Rejected groups are returned as ``spare`` (the caller fills up with them
when ``max_rounds`` prompt batches did not give enough).

**Determinism.** Without partial rollouts a step samples the same prompts with the same keys
as the static sampler's rounds, and a row's tokens depend on its prompt and key only
(`r1jax.sampling.continuous`), so without dynamic sampling a step's rollout is the static one
row for row (the same tokens; log-probs to float rounding), in the same order.

**Partial rollouts** (``sampling.partial_rollouts``): the step's generation runs in calls of
``partial_step_budget`` decode steps (0: ``max_new_tokens``). While the step still needs
groups, free slots are refilled with the next prompts (drawn ahead from the data iterator), so
the slots stay full; the step's generation ends as soon as its ``wanted``-th group is
accepted, so no slot idles in a drain. Rows still decoding then keep their slot and continue in the next step under the
next policy: their earlier tokens keep the log-probs of the policy that sampled them, which
reach the learner as ``Batch.old_logprobs`` (the sampler log-probs that the rollout
correction, ``objective.rollout_correction``, weighs against). Groups accepted beyond
``wanted`` wait for the next step, oldest first.

**Checkpoints** do not hold this state: rows in flight, groups waiting and prompts drawn ahead
are dropped when a run resumes, and the resumed run refills its slots from the data
iterator's saved position (the dropped prompts are not revisited). The run resumes, but with
partial rollouts it does not repeat the uninterrupted run's tokens. A change of
``max_new_tokens`` (``schedule.context_stages``) also starts a new sampler and drops them.

What does not live here: the decode slots (`r1jax.sampling.continuous`), verification and
the batch (`r1jax.experience`).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from r1jax import distributed, schedule
from r1jax.config import ConfigError
from r1jax.data import padding
from r1jax.sampling import continuous
from r1jax.sampling.rollout import PromptBatch, Rollout
from r1jax.sampling.sampler import SamplingParams

MODES = ("static", "continuous")


@dataclasses.dataclass(frozen=True)
class ContinuousSettings:
    """The checked ``sampling.*`` keys of continuous mode.

    Attributes:
      slots: ``N`` decode slots (a multiple of ``G``).
      partial_rollouts: unfinished rows continue in the next step.
      step_budget: decode steps per generation call with partial rollouts (0: ``T``).
      attention_tiers: the decode attention's band bounds (`continuous.tiering`).
    """

    slots: int
    partial_rollouts: bool
    step_budget: int
    attention_tiers: tuple[int, ...] = continuous.ATTENTION_TIERS


def settings_from_config(config, mesh=None, rules=None) -> ContinuousSettings | None:
    """The continuous-mode settings, or None for ``sampling.mode = "static"``.

    ``sampling.slots = 0`` means ``data.prompts_per_step * sampling.group_size`` (with the
    largest group size of ``schedule.context_stages``: one slot per row of the batch). With a mesh, the slots (the sampler's batch axis) must split over the
    data-parallel axes.

    Raises:
      ConfigError: naming the key: an unknown mode, continuous-only keys set in static mode,
        slots that are not a positive multiple of the group size, a negative budget, a budget
        without partial rollouts, or several processes.

    Example:
      >>> from r1jax import config as config_lib
      >>> c = config_lib.base_config()
      >>> settings_from_config(c) is None
      True
      >>> c.sampling.mode = "continuous"
      >>> settings_from_config(c)
      ContinuousSettings(slots=64, partial_rollouts=False, step_budget=0, attention_tiers=(256,))
    """
    s = config.sampling
    if s.mode not in MODES:
        raise ConfigError(f"sampling.mode={s.mode!r}: must be one of {', '.join(MODES)}")
    if s.mode == "static":
        defaults = (
            ("slots", 0),
            ("partial_rollouts", False),
            ("partial_step_budget", 0),
            ("attention_tiers", continuous.ATTENTION_TIERS),
        )
        for key, default in defaults:
            value = tuple(s[key]) if isinstance(default, tuple) else s[key]
            if value != default:
                raise ConfigError(
                    f"sampling.{key}={s[key]!r} applies to continuous batching only: set "
                    "sampling.mode=continuous (or leave the key at its default)"
                )
        return None
    group = s.group_size
    if s.slots < 0:
        raise ConfigError(f"sampling.slots={s.slots}: must be >= 0 (0 = one slot per batch row)")
    slots = s.slots or config.data.prompts_per_step * max(schedule.group_sizes(config))
    for size in schedule.group_sizes(config):
        if slots < size or slots % size:
            what = (
                "sampling.group_size" if size == group else "a schedule.context_stages group size"
            )
            raise ConfigError(
                f"sampling.slots={s.slots}: must be a multiple of {what}={size} and "
                "hold at least one group (a group's rows start together)"
            )
    if s.partial_step_budget < 0:
        raise ConfigError(f"sampling.partial_step_budget={s.partial_step_budget}: must be >= 0")
    if s.partial_step_budget and not s.partial_rollouts:
        raise ConfigError(
            f"sampling.partial_step_budget={s.partial_step_budget} applies to partial rollouts "
            "only: set sampling.partial_rollouts=true"
        )
    tiers = tuple(s.attention_tiers)
    try:
        continuous.check_attention_tiers(tiers)
    except ValueError:
        raise ConfigError(
            f"sampling.attention_tiers={tiers!r}: must be increasing positive column counts, "
            "or () to attend over every whole ring"
        ) from None
    if jax.process_count() > 1:
        raise ConfigError(
            f"sampling.mode=continuous runs in one process ({jax.process_count()} here): the "
            "host schedules the slots; use sampling.mode=static with several processes"
        )
    if mesh is not None:
        distributed.check_batch_rows(slots, "sampling.slots", mesh, rules)
    return ContinuousSettings(slots, bool(s.partial_rollouts), int(s.partial_step_budget), tiers)


@dataclasses.dataclass
class SampledGroup:
    """A finished group, its prompt's problem, and what the caller's ``accept`` attached.

    Attributes:
      finished: the sampler's `FinishedGroup` (``tokens [G, T]`` ...).
      problem: the prompt's problem dict.
      problem_id: the problem's id.
      texts: ``G`` decoded completions (set by the caller).
      handle: the verifier pool's handle of its rows (set by the caller).
      verdicts: ``G`` verdicts once known (set by the caller).
    """

    finished: continuous.FinishedGroup
    problem: dict
    problem_id: str
    texts: list[str] = dataclasses.field(default_factory=list)
    handle: Any = None
    verdicts: list | None = None


@dataclasses.dataclass(frozen=True)
class _Prompt:
    batch: PromptBatch  # one prompt: tokens [1, Tp], lengths [1], prompt_ids [1]
    key: jax.Array
    problem: dict
    problem_id: str


@dataclasses.dataclass
class StepGroups:
    """One step's generation.

    Attributes:
      kept: the accepted groups for the batch (at most ``wanted``), oldest submission first.
      spare: the rejected groups, in finish order.
      rounds: prompt batches drawn from the data iterator in this step.
      metrics: ``sampling/*`` host metrics (slot utilization, decode steps, carried rows).
    """

    kept: list[SampledGroup]
    spare: list[SampledGroup]
    rounds: int
    metrics: dict[str, float]


NextPrompts = Callable[[], tuple[PromptBatch, list[dict], list[str]]]
"""Draws the next prompt batch: ``(P prompts, P problems, P problem ids)`` on the host."""


class GroupStream:
    """The trainer's `ContinuousSampler` and what it has in flight (see the module docstring).

    Args:
      settings: the checked settings.
      model_config: the sampler's model config.
      prompt_length: ``Tp`` of the slots (the largest prompt bucket).
      mesh, rules: the device mesh and logical sharding rules.
    """

    def __init__(self, settings: ContinuousSettings, *, model_config, prompt_length, mesh, rules):
        self.settings = settings
        self.model_config, self.prompt_length = model_config, prompt_length
        self.mesh, self.rules = mesh, rules
        self.sampler: continuous.ContinuousSampler | None = None
        self._prompts: collections.deque[_Prompt] = collections.deque()  # drawn, not submitted
        self._outstanding: dict[int, _Prompt] = {}  # group id -> prompt, submitted, unfinished
        self._waiting: list[SampledGroup] = []  # accepted beyond a step's need

    def _sampler_for(self, params, version: int, sampling_params: SamplingParams):
        """The sampler for these controls with ``params`` installed (a new one, and nothing in
        flight, when the controls changed)."""
        if self.sampler is None or self.sampler.sampling_params != sampling_params:
            self._prompts.clear()
            self._outstanding.clear()
            self._waiting.clear()
            self.sampler = continuous.ContinuousSampler(
                params,
                self.model_config,
                sampling_params,
                self.settings.slots,
                prompt_length=self.prompt_length,
                mesh=self.mesh,
                rules=self.rules,
                partial_rollouts=self.settings.partial_rollouts,
                policy_version=version,
                attention_tiers=self.settings.attention_tiers,
            )
        else:
            self.sampler.update_params(params, policy_version=version)
        return self.sampler

    def collect(
        self,
        params,
        policy_version: int,
        next_prompts: NextPrompts,
        key: jax.Array,
        sampling_params: SamplingParams,
        *,
        wanted: int,
        max_rounds: int,
        accept: Callable[[SampledGroup], bool],
    ) -> StepGroups:
        """One step's groups: ``wanted`` accepted ones when ``max_rounds`` prompt batches allow.

        Args:
          params: the policy's params (sampler layout and dtype) at ``policy_version``.
          policy_version: the step; recorded per row, carried rows' age is measured in it.
          next_prompts: draws the next prompt batch from the data iterator.
          key: the step's sampling key; batch ``r`` of the step samples with ``fold_in(key, r)``.
          sampling_params: the controls (``T``, ``G``, temperature, stops ...).
          wanted: groups the batch needs (``data.prompts_per_step``).
          max_rounds: prompt batches the step may draw.
          accept: called once per finished group; False rejects it and submits another.
        """
        sampler = self._sampler_for(params, policy_version, sampling_params)
        partial = self.settings.partial_rollouts
        slot_groups = self.settings.slots // sampler.group_size
        rounds = 0

        def submit(count: int) -> None:
            nonlocal rounds
            for _ in range(count):
                if not self._prompts:
                    if rounds >= max_rounds:
                        return
                    self._draw(next_prompts, jax.random.fold_in(key, rounds))
                    rounds += 1
                prompt = self._prompts.popleft()
                [group_id] = sampler.submit(prompt.batch, prompt.key)
                self._outstanding[group_id] = prompt

        kept, spare, calls = self._waiting, [], []
        self._waiting = []

        def top_up() -> None:  # submit what the step still needs; keep the slots full (partial)
            need = wanted - len(kept) - len(self._outstanding)
            if partial and len(kept) < wanted:  # a queued group for every slot that may free
                need = max(need, slot_groups - sampler.num_pending)
            submit(max(need, 0))

        top_up()
        budget = (self.settings.step_budget or sampling_params.max_new_tokens) if partial else None
        while len(kept) < wanted and self._outstanding:
            iterator = sampler.finished_groups(max_decode_steps=budget)
            try:
                for finished in iterator:
                    prompt = self._outstanding.pop(finished.group_id)
                    group = SampledGroup(finished, prompt.problem, prompt.problem_id)
                    (kept if accept(group) else spare).append(group)
                    if partial and len(kept) >= wanted:
                        break  # the rows still decoding continue in the next step
                    top_up()
            finally:
                iterator.close()
            calls.append(sampler.last_call_stats)
        if not partial:  # nothing is kept across steps
            self._prompts.clear()
            self._outstanding.clear()
        kept.sort(key=lambda g: g.finished.group_id)
        kept, self._waiting = kept[:wanted], kept[wanted:]
        return StepGroups(kept, spare, rounds, self._metrics(calls, kept, policy_version))

    def _draw(self, next_prompts: NextPrompts, key: jax.Array) -> None:
        batch, problems, ids = next_prompts()
        tokens, lengths = np.asarray(batch.tokens), np.asarray(batch.lengths)
        prompt_ids = np.asarray(batch.prompt_ids)
        for p, (problem, problem_id) in enumerate(zip(problems, ids)):
            one = PromptBatch(tokens[p : p + 1], lengths[p : p + 1], prompt_ids[p : p + 1])
            self._prompts.append(_Prompt(one, key, problem, problem_id))

    def _metrics(self, calls: list, kept: list[SampledGroup], version: int) -> dict[str, float]:
        """``sampling/slot_utilization`` (generated tokens / slot-steps over the step's calls),
        ``sampling/decode_steps``, ``sampling/calls``; with partial rollouts also
        ``sampling/partial/carried_rows`` (rows in flight when the step began) and their age
        in steps (``carried_age_mean`` / ``_max``), ``stale_rows`` (batch rows started under
        an older policy) and ``waiting_groups``."""
        slot_steps = sum(c.slot_steps for c in calls)
        out = {
            "sampling/slot_utilization": (
                sum(c.generated_tokens for c in calls) / slot_steps if slot_steps else 0.0
            ),
            "sampling/decode_steps": float(sum(c.decode_steps for c in calls)),
            "sampling/calls": float(len(calls)),
        }
        if self.settings.partial_rollouts:
            ages = np.asarray(calls[0].carried_ages if calls else (), np.float64)
            starts = np.concatenate([g.finished.start_versions for g in kept] or [np.zeros(0)])
            out |= {
                "sampling/partial/carried_rows": float(ages.size),
                "sampling/partial/carried_age_mean": float(ages.mean()) if ages.size else 0.0,
                "sampling/partial/carried_age_max": float(ages.max()) if ages.size else 0.0,
                "sampling/partial/stale_rows": float(np.sum(starts < version)),
                "sampling/partial/waiting_groups": float(len(self._waiting)),
            }
        return out


def groups_rollout(groups: list[SampledGroup], buckets) -> Rollout:
    """The groups' rows as one host `Rollout`, prompts left-padded to the smallest of
    ``buckets`` that fits (the width the static sampler's batch of these prompts has)."""
    rollout = continuous.groups_to_rollout([g.finished for g in groups])
    width = rollout.prompt_tokens.shape[1]
    longest = int(np.max(rollout.prompt_lengths))
    fits = [b for b in sorted(buckets) if b >= longest]
    if fits and fits[0] < width:
        width = padding.bucket_length(longest, sorted(buckets))
        rollout = dataclasses.replace(rollout, prompt_tokens=rollout.prompt_tokens[:, -width:])
    return rollout
