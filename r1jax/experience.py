"""Experience collection: prompts -> sampler -> decoded text -> verifier pool -> device batch.

`ExperienceCollector.collect` runs one RL step's sampling: it samples ``G`` completions per
prompt with the policy, copies to the host only what must be decoded (the completion tokens,
their lengths and finish reasons), submits the texts to the verifier pool, dispatches the
reference's log-probs to the device while the workers verify, and fills the verdicts into a
`r1jax.learner.Batch` that was built on the device from the sampler's output: the rollout
never travels device -> host -> device. With DAPO's dynamic sampling it keeps drawing prompt
groups until the batch holds ``data.prompts_per_step`` groups whose rewards differ (or
``max_rounds`` is reached, then it fills up with the other groups to keep shapes fixed).
With ``sampling.mode = "continuous"`` the groups come from one continuous-batching sampler kept
across steps (`r1jax.continuous_rollouts`): exactly the groups the step needs are submitted,
one more for each group dynamic sampling rejects, each group is verified as it finishes, and
the `Experience` has the same structure as in static mode (built from the finished groups,
which that sampler hands back on the host).

`rollout_metrics` computes the host-side metrics of the kept rows (accuracy, format rate,
lengths, pass@group, verifier reasons, reflection rates).

Not here: the update (`r1jax.learner`), the prompts' data pipeline (`r1jax.data`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import jax
import numpy as np

from r1jax import continuous_rollouts, distributed
from r1jax.data import mixture as mixture_data
from r1jax.data import prompts as prompt_data
from r1jax.learner import Batch, CompiledSteps, LearnerConfig, TrainState
from r1jax.metrics import Timer
from r1jax.sampling import sampler as sampler_lib
from r1jax.sampling import stopping
from r1jax.sampling.rollout import PromptBatch
from r1jax.tasks.verdict import Verdict
from r1jax.verifiers import reflection_stats, routing


@dataclasses.dataclass
class Experience:
    """One step's kept rows: the device batch (verdicts filled in) and their host view.

    Attributes:
      batch: the `Batch` of ``B = P*G`` rows in the rows' sharding, with reference log-probs
        when they were computed ahead of the update.
      texts: ``B`` decoded completions.
      problems: ``B`` problem dicts (each group's problem repeated ``G`` times).
      verdicts: ``B`` verdicts.
      lengths: ``[B]`` generated tokens per row (host).
      finish_reason: ``[B]`` finish codes (host).
      metrics: host-side timing and dynamic-sampling counts.
      problem_ids: ``B`` problem ids (`r1jax.data.prompts.PromptBatch.ids`, per row).
      policy_versions: ``[B]`` the policy version that sampled each row, when the caller
        tracks versions (`r1jax.async_rollouts`); None otherwise.
    """

    batch: Batch
    texts: list[str]
    problems: list[dict]
    verdicts: list[Verdict]
    lengths: np.ndarray
    finish_reason: np.ndarray
    metrics: dict[str, float]
    problem_ids: list[str] = dataclasses.field(default_factory=list)
    policy_versions: np.ndarray | None = None


def verdict_arrays(verdicts: list[Verdict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[B]`` correct, well-formed (a correct answer is well formed) and score arrays."""
    return (
        np.array([v.correct for v in verdicts], bool),
        np.array([v.well_formed or v.correct for v in verdicts], bool),
        np.array([v.score for v in verdicts], np.float32),
    )


def gather_verdicts(verdicts: list[Verdict]) -> list[Verdict]:
    """Every process's verdicts, in process order (the rows of the global batch)."""
    if jax.process_count() == 1:
        return verdicts
    parts = distributed.gather_objects([v.to_dict() for v in verdicts])
    return [Verdict(**fields) for part in parts for fields in part]


def global_prompt_batch(prompts: prompt_data.PromptBatch, pad_id: int) -> PromptBatch:
    """This process's prompts joined with every other process's: one global host batch.

    Processes whose longest prompts fall in different buckets left-pad to the widest, so the
    global batch has one shape (the bucket one process reading every prompt would pick).
    """
    tokens = np.asarray(prompts.tokens, np.int32)
    width = distributed.global_max(tokens.shape[1])
    tokens = np.pad(tokens, ((0, 0), (width - tokens.shape[1], 0)), constant_values=pad_id)
    local = {
        "tokens": tokens,
        "lengths": np.asarray(prompts.lengths, np.int32),
        "prompt_ids": (np.asarray(prompts.indices) % (2**31 - 1)).astype(np.int32),
    }
    return PromptBatch(**distributed.gather_rows(local))


@dataclasses.dataclass
class _Round:
    """One sampling round: its device batch (no verdicts) and the host view of its rows."""

    batch: Batch
    texts: list[str]
    problems: list[dict]
    lengths: np.ndarray
    finish_reason: np.ndarray
    handle: Any  # the verifier pool's handle of this process's rows
    problem_ids: list[str]  # per row


class ExperienceCollector:
    """Samples, verifies and batches one RL step's rollouts (see the module docstring).

    Args:
      config: the resolved run config (``sampling.*``, ``data.*``, ``objective.dynamic_sampling``,
        ``verifier.options``).
      tokenizer: decodes completions.
      model_config: the policy's model config.
      mesh, rules: the sampler's device mesh and logical sharding rules: the learner's, or
        a rollout mesh of its own (`r1jax.async_rollouts`), from which each rollout is moved
        to the learner's rows (``steps.rows_sharding``).
      steps: the run's `CompiledSteps` (reference log-probs, the rows' sharding).
      pool: the verifier pool.
      task: the task name or import path the pool verifies with.
      routes: several tasks in one batch (`r1jax.mixture`): the problem's task name
        (``r1jax.data.mixture.TASK_KEY``) -> its `r1jax.verifiers.routing.Route`; each row
        is verified by its own task's verifier (``task`` and ``verifier.options`` unused).
      stops: the stop token ids, token sequences and stop strings (`r1jax.build.StopSettings`).
      timer: the run's section timer.
      continuous: continuous mode's settings (`r1jax.continuous_rollouts.settings_from_config`);
        None samples each round with the static sampler.
    """

    def __init__(
        self,
        config,
        *,
        tokenizer,
        model_config,
        mesh,
        rules,
        steps: CompiledSteps,
        pool,
        task: str,
        stops,
        timer: Timer,
        routes: dict[str, routing.Route] | None = None,
        continuous: continuous_rollouts.ContinuousSettings | None = None,
    ):
        self.config, self.tokenizer, self.model_config = config, tokenizer, model_config
        # The sampler may run in another compute dtype (sampling.dtype) than the learner.
        self.sampler_model_config = dataclasses.replace(
            model_config, dtype=config.sampling.dtype or model_config.dtype
        )
        self.mesh, self.rules, self.steps, self.pool, self.task = mesh, rules, steps, pool, task
        self.stops, self.timer, self.routes = stops, timer, routes
        self.verifier_options = dict(config.verifier.options.to_dict())
        self.stream = None
        if continuous is not None:  # one sampler for the whole run
            self.stream = continuous_rollouts.GroupStream(
                continuous,
                model_config=self.sampler_model_config,
                prompt_length=max(config.data.bucket_sizes),
                mesh=mesh,
                rules=rules,
            )

    def _submit(self, texts: list[str], problems: list[dict]) -> Any:
        """Queues this process's rows in the verifier pool (each with its task's verifier)."""
        if self.routes:
            return routing.submit_by_task(
                self.pool, self.routes, texts, problems, task_key=mixture_data.TASK_KEY
            )
        return self.pool.submit_batch(self.task, texts, problems, **self.verifier_options)

    def _sampling_params(self, max_new_tokens: int, group_size: int) -> sampler_lib.SamplingParams:
        s = self.config.sampling
        return sampler_lib.SamplingParams(
            max_new_tokens=max_new_tokens,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            min_p=s.min_p,
            stop_token_ids=self.stops.token_ids,
            stop_sequences=self.stops.sequences,
            stop_strings=self.stops.strings,
            num_samples_per_prompt=group_size,
            pad_id=self.tokenizer.pad_token_id,
        )

    def _decode(self, tokens: np.ndarray, lengths: np.ndarray) -> list[str]:
        """``[B, T]`` completion tokens (host) -> ``B`` texts, cut after a stop string."""
        completions = [tokens[row, : lengths[row]].tolist() for row in range(tokens.shape[0])]
        texts = self.tokenizer.decode_batch(completions, skip_special_tokens=True)
        if self.stops.texts:  # a stop string can end inside the last token: cut after it
            texts = [stopping.truncate_after_stop(text, self.stops.texts) for text in texts]
        return texts

    def _sample_round(self, params, prompts, key, max_new_tokens: int, group: int) -> _Round:
        """Samples the global batch on the device and submits this process's rows to the pool."""
        with self.timer.section("sample"):
            rollout = sampler_lib.sample(
                params,
                self.sampler_model_config,
                global_prompt_batch(prompts, self.tokenizer.pad_token_id),
                key,
                self._sampling_params(max_new_tokens, group),
                mesh=self.mesh,
                rules=self.rules,
            )
            # Only what the host decodes and logs leaves the device.
            tokens, lengths, finish = distributed.to_host(
                (rollout.tokens, rollout.lengths, rollout.finish_reason)
            )
        texts = self._decode(tokens, lengths)
        local_problems = [p for p in prompts.problems for _ in range(group)]
        mine = distributed.process_rows(len(texts))
        handle = self._submit(texts[mine], local_problems)
        problems = [p for part in distributed.gather_objects(local_problems) for p in part]
        ids = [i for part in distributed.gather_objects(list(prompts.ids)) for i in part]
        if self.mesh != self.steps.mesh:  # sampled on a rollout mesh (r1jax.async_rollouts)
            with self.timer.section("rollout_transfer"):
                rollout = jax.device_put(rollout, self.steps.rows_sharding)
        batch = self.steps.batch_from_rollout(rollout)
        return _Round(
            batch,
            texts,
            problems,
            np.asarray(lengths),
            np.asarray(finish),
            handle,
            [i for i in ids for _ in range(group)],
        )

    def collect(
        self,
        state: TrainState,
        prompt_iterator,
        key: jax.Array,
        learner_config: LearnerConfig,
        *,
        policy_version: int = 0,
        policy: Any = None,
        with_reference: bool = True,
    ) -> Experience:
        """One step's experience: ``data.prompts_per_step`` groups, verified, on the device.

        ``policy_version`` (the step) labels the policy in continuous mode, where rows carried
        by partial rollouts record the version they started at. ``policy``: the sampler's
        params (on this collector's mesh) instead of ``state``'s policy; then ``state`` may be
        None if ``with_reference`` is False (the reference log-probs are left to the caller).
        """
        if self.stream is not None:
            return self._collect_continuous(
                state, prompt_iterator, key, learner_config, policy_version
            )
        dynamic = self.config.objective.dynamic_sampling
        max_rounds = dynamic.max_rounds if dynamic.max_rounds > 0 else 1_000_000
        wanted, group = self.config.data.prompts_per_step, learner_config.group_size
        kept, spare = [], []  # (round, verdicts, group index)
        verify_wait = verify_total = 0.0
        reference = None
        rounds = 0
        # With LoRA: the adapters merged into the base, in the sampler's compute dtype.
        if policy is None:
            policy = self.steps.policy_params(
                state, learner_config, self.sampler_model_config.dtype
            )
        while True:
            sampled = self._sample_round(
                policy,
                next(prompt_iterator),
                jax.random.fold_in(key, rounds),
                learner_config.max_new_tokens,
                group,
            )
            submitted = time.perf_counter()
            if learner_config.uses_reference and not dynamic.enabled and with_reference:
                # The device computes the reference log-probs while the workers verify.
                reference = self.steps.reference(
                    state.reference, sampled.batch, learner_config, state.base
                )
            waited = time.perf_counter()
            verdicts = gather_verdicts(sampled.handle.result())
            done = time.perf_counter()
            verify_wait += done - waited
            verify_total += done - submitted
            rounds += 1
            correct = verdict_arrays(verdicts)[0].reshape(-1, group)
            informative = correct.any(axis=1) & ~correct.all(axis=1)
            for index in range(correct.shape[0]):
                keep = (informative[index] or not dynamic.enabled) and len(kept) < wanted
                (kept if keep else spare).append((sampled, verdicts, index))
            if not dynamic.enabled or len(kept) >= wanted or rounds >= max_rounds:
                break
        informative_groups = len(kept)
        kept += spare[: wanted - len(kept)]  # refill to keep shapes fixed
        experience = self._assemble(kept, group)
        if reference is not None:
            experience.batch = experience.batch.replace(reference_logprobs=reference)
        experience.metrics.update(
            {
                "time/verify_total": verify_total,
                "time/verify_wait": verify_wait,
                "time/verify_hidden": max(verify_total - verify_wait, 0.0),
            }
        )
        if dynamic.enabled:
            experience.metrics["dynamic_sampling/rounds"] = float(rounds)
            experience.metrics["dynamic_sampling/kept_groups"] = float(informative_groups)
        return experience

    def _collect_continuous(
        self, state: TrainState, prompt_iterator, key, learner_config: LearnerConfig, version: int
    ) -> Experience:
        """`collect` through the run's continuous sampler: groups verified as they finish;
        with dynamic sampling one more group is submitted for each group rejected."""
        dynamic = self.config.objective.dynamic_sampling
        max_rounds = dynamic.max_rounds if dynamic.max_rounds > 0 else 1_000_000
        wanted = self.config.data.prompts_per_step
        waits = []

        def next_prompts():
            prompts = next(prompt_iterator)
            batch = global_prompt_batch(prompts, self.tokenizer.pad_token_id)
            return batch, list(prompts.problems), list(prompts.ids)

        def accept(group: continuous_rollouts.SampledGroup) -> bool:
            finished = group.finished
            group.texts = self._decode(finished.tokens, finished.lengths)
            group.handle = self._submit(group.texts, [group.problem] * len(group.texts))
            if not dynamic.enabled:
                return True  # verdicts are collected at the end, while nothing waits on them
            started = time.perf_counter()
            group.verdicts = group.handle.result()
            waits.append(time.perf_counter() - started)
            correct = verdict_arrays(group.verdicts)[0]
            return bool(correct.any() and not correct.all())

        policy = self.steps.policy_params(state, learner_config, self.sampler_model_config.dtype)
        with self.timer.section("sample"):
            step = self.stream.collect(
                policy,
                version,
                next_prompts,
                key,
                self._sampling_params(learner_config.max_new_tokens, learner_config.group_size),
                wanted=wanted,
                max_rounds=max_rounds if dynamic.enabled else 1_000_000,
                accept=accept,
            )
        groups = step.kept + step.spare[: wanted - len(step.kept)]  # refill: fixed shapes
        rollout = continuous_rollouts.groups_rollout(groups, self.config.data.bucket_sizes)
        batch = self.steps.batch_from_rollout(rollout)
        reference = None
        if learner_config.uses_reference and not dynamic.enabled:
            reference = self.steps.reference(state.reference, batch, learner_config, state.base)
        started = time.perf_counter()
        verdicts = [v for g in groups for v in (g.verdicts or g.handle.result())]
        waits.append(time.perf_counter() - started)
        correct, well_formed, scores = (
            distributed.put_rows(array, self.steps.rows_sharding)
            for array in verdict_arrays(verdicts)
        )
        if reference is not None:
            batch = batch.replace(reference_logprobs=reference)
        experience = Experience(
            batch=batch.with_verdicts(correct, well_formed, scores),
            texts=[t for g in groups for t in g.texts],
            problems=[g.problem for g in groups for _ in g.texts],
            verdicts=verdicts,
            lengths=np.asarray(rollout.lengths),
            finish_reason=np.asarray(rollout.finish_reason),
            metrics={"time/verify_wait": float(sum(waits)), **step.metrics},
            problem_ids=[g.problem_id for g in groups for _ in g.texts],
        )
        if dynamic.enabled:
            experience.metrics["dynamic_sampling/rounds"] = float(step.rounds)
            experience.metrics["dynamic_sampling/kept_groups"] = float(len(step.kept))
        return experience

    def _assemble(self, kept: list, group: int) -> Experience:
        """The kept groups as one `Experience` (a single whole round's batch is used as is)."""
        rounds = list({id(r): r for r, _, _ in kept}.values())
        offsets = np.cumsum([0] + [r.batch.rows for r in rounds])
        start = {id(r): int(offset) for r, offset in zip(rounds, offsets)}
        rows, texts, problems, verdicts, lengths, finish, ids = [], [], [], [], [], [], []
        for sampled, round_verdicts, index in kept:
            span = slice(index * group, (index + 1) * group)
            rows.extend(range(start[id(sampled)] + span.start, start[id(sampled)] + span.stop))
            texts += sampled.texts[span]
            problems += sampled.problems[span]
            verdicts += round_verdicts[span]
            ids += sampled.problem_ids[span]
            lengths.append(sampled.lengths[span])
            finish.append(sampled.finish_reason[span])
        if rows == list(range(rounds[0].batch.rows)):
            batch = rounds[0].batch  # one round kept whole, in order
        else:
            batch = self.steps.select_rows([r.batch for r in rounds], np.array(rows))
        correct, well_formed, scores = (
            distributed.put_rows(array, self.steps.rows_sharding)
            for array in verdict_arrays(verdicts)
        )
        return Experience(
            batch=batch.with_verdicts(correct, well_formed, scores),
            texts=texts,
            problems=problems,
            verdicts=verdicts,
            lengths=np.concatenate(lengths),
            finish_reason=np.concatenate(finish),
            metrics={},
            problem_ids=ids,
        )


def rollout_metrics(
    experience: Experience, *, group_size: int, reflection_keywords: str
) -> dict[str, float]:
    """Host-side metrics of a step's kept rows.

    Returns:
      ``accuracy``, ``format_rate``, ``response_length/mean`` and ``/max``,
      ``truncated_fraction``, ``pass@group``, ``verifier/<reason>`` counts, the reflection
      rates of `r1jax.verifiers.reflection_stats` where defined, and ``tokens`` (generated).
    """
    correct, well_formed, _ = verdict_arrays(experience.verdicts)
    lengths = experience.lengths
    out = {
        "accuracy": float(correct.mean()),
        "format_rate": float(well_formed.mean()),
        "response_length/mean": float(lengths.mean()),
        "response_length/max": float(lengths.max()),
        "truncated_fraction": float((experience.finish_reason == stopping.FINISH_LENGTH).mean()),
        "pass@group": float(correct.reshape(-1, group_size).any(axis=1).mean()),
        "tokens": float(lengths.sum()),
    }
    for verdict in experience.verdicts:
        name = f"verifier/{verdict.reason}"
        out[name] = out.get(name, 0.0) + 1.0
    stats = reflection_stats(
        experience.texts, correct.tolist(), keywords=reflection_keywords, lengths=lengths
    )
    for name in ("reflect_rate", "ssr_rate", "acc_given_reflect"):
        if name in stats and np.isfinite(stats[name]):  # rates over empty groups are undefined
            out[f"reflection/{name}"] = float(stats[name])
    return out


PROBLEM_REWARDS_FILE = "problem_rewards.jsonl"
"""Per-problem rewards of each RL step in the workdir (read by ``python -m r1jax.select``)."""


def append_problem_rewards(path: str, step: int, experience: Experience, group_size: int) -> None:
    """Appends one JSON line per group: ``{"step", "problem_id", "reward"}``.

    ``reward`` is the group's mean verifier correctness (its accuracy, LIMR's ``r_i^k``,
    arXiv:2502.11886 §2). Called by process 0 only.
    """
    correct = verdict_arrays(experience.verdicts)[0].reshape(-1, group_size)  # [P, G]
    with open(path, "a") as f:
        for index, accuracy in enumerate(correct.mean(axis=1)):
            problem_id = experience.problem_ids[index * group_size]
            record = {"step": step, "problem_id": problem_id, "reward": float(accuracy)}
            f.write(json.dumps(record) + "\n")
