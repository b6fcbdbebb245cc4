"""The r1jax trainer: ``python -m r1jax.train --config experiments/NAME.py[:preset] --workdir DIR``.

`run(config, workdir)` is the R1-Zero loop, also callable from a notebook without flag parsing:

    data -> prompts -> sampler (policy) -> text -> verifier pool -> compiled update -> metrics

Read top to bottom: setup (devices, tokenizer, model, learner configs, train state, data),
resume, the warm-start phase (``sft.mode = "warmup"``: supervised steps through the same
compiled step with `r1jax.algorithms.sft`), the RL phase (`r1jax.experience` collects a
step's verified rollouts on the device, `r1jax.learner.CompiledSteps.update` applies the
``objective.algorithm`` of `r1jax.algorithms`), evaluation and export.

Devices: the ``mesh.*`` sizes give a ``data x fsdp x tensor`` mesh over all devices of all
processes (1x1x1 on one device). Params are created (or read from an HF checkpoint) directly
in their shardings and every program has declared in/out shardings. Batch rows are split over
the ``rules.batch`` axes, so ``data.prompts_per_step * sampling.group_size`` (and
``sft.batch_size``) must divide by that data-parallel size. With several processes
(``distributed.*``) each reads its share of every batch (`r1jax.distributed`).

Randomness: every stream folds the global step into the root key (``fold_in(key, step)``), so a
resumed run draws exactly what an uninterrupted run would. Checkpoints (``checkpoint.every``)
hold the train state and a host state (data iterator positions, phase, context stage, config
hash); the run resumes from the newest one in ``workdir/checkpoints`` and refuses one that does
not fit. SIGTERM saves and returns. With ``sampling.mode = "continuous"`` and partial rollouts,
the rows in flight are not checkpointed: a resumed run drops them and refills its slots from
the data iterator's saved position (`r1jax.continuous_rollouts`). With ``rollout.mode = "async"``
the devices split into a rollout mesh that samples and a learner mesh that updates, and the
rollouts of the next steps (at most ``rollout.staleness`` policy versions old) are generated
while a step updates (`r1jax.async_rollouts`).

A model preset (``model.name`` = tiny / small / ...) trains from scratch; without
``tokenizer.path`` a small byte-level BPE tokenizer is fit on the task's prompts and traces
(``workdir/tokenizer``) and the vocab is sized to it, rounded up to ``model.vocab_multiple``.
The data's config conventions are `r1jax.data.from_config`'s; the learner's are
`r1jax.learner.from_config`'s.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from r1jax import (
    async_rollouts,
    build,
    checkpointing,
    continuous_rollouts,
    distributed,
    eval_sets,
    evaluate,
    experience,
    learner,
    metrics,
    mixture,
    schedule,
)
from r1jax import config as config_lib
from r1jax.learner import from_config as learner_setup
from r1jax.models import (
    flops_per_token,
    num_params,
    param_shardings,
    save_pretrained,
)
from r1jax.verifiers import VerifierPool

# Stream constants folded into the root key, so sampling, evaluation and init never share keys.
INIT_STREAM, SAMPLE_STREAM, EVAL_STREAM = 0, 1, 2


class TrainingError(RuntimeError):
    """The run cannot go on (e.g. non-finite updates in a row); the message says why."""


# ------------------------------------------------------------------------------------ setup


# ------------------------------------------------------------------------------- the trainer


class Trainer:
    """One run: everything `run` sets up, and the phases that use it.

    Args:
      config: a resolved config (`r1jax.config.load_config`).
      workdir: the run directory (absolute, created).
      devices: the devices of the ``mesh.*`` mesh; all of ``jax.devices()`` when None.
    """

    def __init__(self, config, workdir: str, devices: Sequence[jax.Device] | None = None):
        self.config, self.workdir = config, workdir
        self.main_process = distributed.is_main_process()
        self.log = print if self.main_process else distributed.quiet
        # Tasks (one, or several: data.mixture), devices and the model.
        self.run_tasks = mixture.run_tasks(config)
        self.task = self.run_tasks[0].module
        # rollout.mode=async: the last rollout.devices sample, the others learn.
        devices = list(jax.devices() if devices is None else devices)
        self.async_settings = async_rollouts.settings_from_config(config, len(devices))
        self.rollout_mesh = self.rollouts = None
        if self.async_settings is not None:
            devices, rollout_devices = async_rollouts.split_devices(self.async_settings, devices)
            self.rollout_mesh = distributed.mesh_from_config(config, rollout_devices)
            self.rollout_rules = distributed.rules_from_config(config, self.rollout_mesh)
            distributed.check_layout(config, self.rollout_mesh, self.rollout_rules, sft=False)
        self.mesh = distributed.mesh_from_config(config, devices)
        self.rules = distributed.rules_from_config(config, self.mesh)
        self.sft_steps = config.sft.steps if config.sft.mode == "warmup" else 0
        self.total_steps = self.sft_steps + config.steps
        distributed.check_layout(config, self.mesh, self.rules, sft=bool(self.sft_steps))
        # sampling.mode=continuous: checked before anything is built.
        self.continuous = continuous_rollouts.settings_from_config(config, self.mesh, self.rules)
        fit = {}  # a tokenizer fit from scratch sees every task, tokenizer.merges_per_task each
        if mixture.is_mixture(config):
            fit = dict(
                texts=functools.partial(mixture.tokenizer_texts, self.run_tasks),
                num_tasks=len(self.run_tasks),
            )
        self.tokenizer = build.tokenizer(config, workdir, self.task, **fit)
        init_key = jax.random.fold_in(jax.random.key(config.seed), INIT_STREAM)
        self.model_config, params = build.model(
            config, self.tokenizer, init_key, self.mesh, self.rules
        )
        self.prompt_fns = {  # each task's prompt wording
            task.name: build.prompt_fn(task.config, task.module, self.tokenizer)
            for task in self.run_tasks
        }
        self.prompt_fn = self.prompt_fns[self.run_tasks[0].name]
        # The learner: one state structure for both phases (a reference only if RL uses one).
        self._learners: dict[tuple[bool, int], learner.LearnerConfig] = {}
        self.shape_learner = self.learner_config(sft=False, rl_step=0)
        abstract = jax.eval_shape(lambda p: learner.init_train_state(p, self.shape_learner), params)
        policy_sharding = param_shardings(self.model_config, self.mesh, self.rules)
        rows = distributed.row_sharding(self.mesh, self.rules)
        self.steps = learner.CompiledSteps(self.mesh, policy_sharding, rows, abstract)
        loaded = learner.auxiliary.load_pretrained_models(
            self.shape_learner, mesh=self.mesh, rules=self.rules
        )  # the algorithm's second models read from checkpoints (PPO's critic.init=DIR)
        self.state = self.steps.init(params, self.shape_learner, **self._auxiliary_init(loaded))
        del params, loaded  # donated to / copied into the state
        # Data, verification and evaluation.
        self.prompts = mixture.prompt_iterator(
            config, self.run_tasks, self.tokenizer, self.prompt_fns
        )
        self.sft_batches = None
        if self.sft_steps:
            self.sft_batches = mixture.sft_iterator(
                config, self.run_tasks, self.tokenizer, self.prompt_fns
            )
        self.stops = build.stop_settings(config, self.tokenizer, self.model_config.vocab_size)
        self.eval_sets = eval_sets.build_sets(
            config, self.run_tasks, self.tokenizer, self.stops, self.prompt_fn
        )
        self.root_key = jax.random.key(config.seed)
        self.timer = metrics.Timer()
        self.config_hash = config_lib.config_hash(config)
        self.summary: dict[str, Any] = {"stopped": "completed"}

    def _auxiliary_init(self, loaded: dict[str, Any]) -> dict[str, Any]:
        """`init_train_state`'s arguments for the algorithm's auxiliary models: those read
        from checkpoints and the key of new heads (none without auxiliary models)."""
        if not self.shape_learner.auxiliary_models:
            return {}
        key = jax.random.fold_in(jax.random.key(self.config.seed), INIT_STREAM)
        return {"auxiliary": loaded, "key": jax.random.fold_in(key, 1)}

    def learner_config(self, *, sft: bool, rl_step: int = 0) -> learner.LearnerConfig:
        """The `LearnerConfig` of the warm start, or of the RL step's context stage
        (`r1jax.schedule`: its completion cap and group size)."""
        max_new_tokens = self.config.sampling.max_new_tokens
        group_size = self.config.sampling.group_size
        if not sft:
            stage = schedule.stage_at(self.config, rl_step)
            max_new_tokens, group_size = stage.max_new_tokens, stage.group_size
        key = (sft, max_new_tokens, group_size)
        if key not in self._learners:
            self._learners[key] = learner_setup.learner_config(
                self.config,
                self.model_config,
                sft=sft,
                max_new_tokens=max_new_tokens,
                group_size=group_size,
                rules=self.rules,
            )
        return self._learners[key]

    # ---------------------------------------------------------------------------- phases

    def _check_finite(self, where: str, streak: int) -> None:
        if streak >= self.config.max_nonfinite_in_a_row:
            raise TrainingError(
                f"{where}: {streak} optimizer updates in a row had a non-finite loss or "
                f"gradient (max_nonfinite_in_a_row={self.config.max_nonfinite_in_a_row}); the "
                "last finite state is in the latest checkpoint. Lower the learning rate or "
                "check the data."
            )

    def sft_step(self, step: int) -> tuple[Any, dict[str, float], list]:
        """One supervised step on this process's share of the batch (rows of all processes)."""
        batch = next(self.sft_batches)
        tokens, loss_mask = np.asarray(batch.tokens), np.asarray(batch.loss_mask)
        extra = distributed.global_max(tokens.shape[1]) - tokens.shape[1]  # one width
        tokens = np.pad(tokens, ((0, 0), (0, extra)), constant_values=self.tokenizer.pad_token_id)
        loss_mask = np.pad(loss_mask, ((0, 0), (0, extra)))
        local = learner.Batch.from_sft(tokens, loss_mask, batch.lengths, xp=np)
        placed = distributed.put_local_rows(local, self.steps.rows_sharding)
        config = self.learner_config(sft=True)
        with self.timer.section("update"):
            self.state, device_metrics = self.steps.update(self.state, placed, config)
            self._check_finite("supervised warm start", int(self.state.nonfinite_streak))
        skipped = self.sft_batches.counts.get("skipped_overlong", 0)
        counts = np.array([[loss_mask.sum(), skipped]], float)
        tokens_total, skipped = distributed.gather_rows(counts).sum(axis=0)
        host = {"tokens": float(tokens_total), "sft/skipped_overlong": float(skipped)}
        host["forward_passes"] = float(config.forward_passes_per_token)
        return device_metrics, host, []

    def rl_step(self, step: int) -> tuple[Any, dict[str, float], list]:
        """One RL step: collect verified experience, then one update."""
        rl_step = step - self.sft_steps
        if rl_step == 0 and self.sft_steps:
            # Warm start done: fresh optimizer, reference = the warm-started policy.
            kept = {  # auxiliary models read from checkpoints keep their weights
                spec.name: self.state.aux[spec.name]["params"]
                for spec in self.shape_learner.auxiliary_models
                if spec.init != learner.auxiliary.FROM_POLICY
            }
            if self.shape_learner.lora is None:
                self.state = self.steps.init(
                    self.state.policy, self.shape_learner, **self._auxiliary_init(kept)
                )
            else:  # LoRA: the base with the warm-started adapters
                self.state = self.steps.init(
                    self.state.base, self.shape_learner, adapters=self.state.policy
                )
            if self.eval_sets:
                self.summary["eval_after_sft"] = self.evaluate("eval after SFT", step)
        self._maybe_reset_reference(rl_step)
        if self.config.data.curriculum:  # the prompts of this step's curriculum stage
            self.prompts.set_step(rl_step)
        config = self.learner_config(sft=False, rl_step=rl_step)
        pipeline = {}
        if self.rollouts is None:
            key = jax.random.fold_in(jax.random.fold_in(self.root_key, SAMPLE_STREAM), step)
            collected = self.collector.collect(
                self.state, self.prompts, key, config, policy_version=step
            )
            with self.timer.section("update"):
                self.state, device_metrics = self.steps.update(self.state, collected.batch, config)
                streak = int(self.state.nonfinite_streak)
        else:  # rollout.mode=async: this step's rows may have been sampled during the last
            update = functools.partial(self._async_update, config=config)
            collected, device_metrics, pipeline = self.rollouts.step(
                rl_step, self.state.policy, update
            )
            streak = int(self.state.nonfinite_streak)
        host = experience.rollout_metrics(
            collected,
            group_size=config.group_size,
            reflection_keywords=self.config.logging.reflection_keywords,
        )
        if mixture.is_mixture(self.config):  # rollout/<task>/accuracy, /reward_mean, ...
            host.update(
                mixture.task_metrics(
                    [task.name for task in self.run_tasks],
                    collected.problems,
                    collected.verdicts,
                    collected.lengths,
                    mixture.outcome_rewards(collected.batch, config, self.mesh),
                    group_size=config.group_size,
                )
            )
        host.update(collected.metrics)
        host.update(pipeline)
        if self.config.data.curriculum:
            host["data/curriculum_stage"] = float(self.prompts.stage)
        host["forward_passes"] = 1.0 + config.forward_passes_per_token  # sampling + update
        if self.main_process:  # each problem's accuracy, for python -m r1jax.select (LIMR)
            path = os.path.join(self.workdir, experience.PROBLEM_REWARDS_FILE)
            group = config.group_size
            experience.append_problem_rewards(path, step + 1, collected, group)
        samples = [
            {"prompt": problem, "completion": text, "reason": verdict.reason}
            for problem, text, verdict in zip(
                collected.problems, collected.texts, collected.verdicts
            )
        ][: self.config.logging.samples_to_log]
        self._check_finite(f"step {step}", streak)
        return device_metrics, host, samples

    def _collect_ahead(self, rl_step: int, params: Any, version: int) -> experience.Experience:
        """RL step ``rl_step``'s experience sampled on the rollout mesh with ``params``
        (policy ``version``): `r1jax.async_rollouts.RolloutPipeline`'s ``collect``."""
        if self.config.data.curriculum:
            self.prompts.set_step(rl_step)
        config = self.learner_config(sft=False, rl_step=rl_step)
        step = self.sft_steps + rl_step  # the synchronous run's sampling key
        key = jax.random.fold_in(jax.random.fold_in(self.root_key, SAMPLE_STREAM), step)
        return self.collector.collect(
            None,
            self.prompts,
            key,
            config,
            policy_version=version,
            policy=params,
            with_reference=False,
        )

    def _async_update(self, collected: experience.Experience, config: learner.LearnerConfig):
        """Dispatches the update on ``collected`` (the reference log-probs first, as the
        synchronous collector does): ``(metrics, metrics, new policy)`` for the pipeline."""
        batch = collected.batch
        if config.uses_reference and not self.config.objective.dynamic_sampling.enabled:
            reference = self.steps.reference(self.state.reference, batch, config, self.state.base)
            batch = batch.replace(reference_logprobs=reference)
        self.state, device_metrics = self.steps.update(self.state, batch, config)
        state = self.state
        return device_metrics, device_metrics, lambda: state.policy

    def _maybe_reset_reference(self, rl_step: int) -> None:
        """R1's reference reset: every ``reference.reset_every`` RL steps, reference <- policy."""
        every = self.config.reference.reset_every
        if self.config.reference.mode != "reset_every" or not every:
            return
        if self.state.reference is not None and rl_step and rl_step % every == 0:
            copy = learner.reference_copy(self.state.policy, self.model_config)
            reference = jax.device_put(copy, self.steps.state_sharding.reference)
            self.state = self.state.replace(reference=reference)

    def evaluate(self, label: str, step: int) -> dict[str, Any]:
        """Held-out pass@1 / pass@k / maj@k of the current policy on every evaluation set
        (`r1jax.eval_sets`), logged and printed; the `r1jax.eval_sets.summary` entry."""
        key = jax.random.fold_in(self.root_key, EVAL_STREAM)  # the same keys at every eval
        with self.timer.section("eval"):
            results = eval_sets.evaluate_sets(
                self.eval_sets,
                self.steps.policy_params(self.state, self.shape_learner, self.model_config.dtype),
                self.model_config,
                self.tokenizer,
                key=key,
                pool=self.pool,
                mesh=self.mesh,
                rules=self.rules,
            )
        texts = {}
        for eval_set in self.eval_sets:
            result = results[eval_set.name]
            if self.main_process:  # every process has the same results
                name = f" {eval_set.name}" if eval_set.named else ""
                line = evaluate.format_summary(result, label=f"{label}{name} (step {step})")
                print(line, flush=True)
            texts[eval_sets.example_texts_key(eval_set)] = json.dumps(result["examples"])
        self.logger.writer.write_scalars(max(step, 0), eval_sets.scalars(self.eval_sets, results))
        self.logger.writer.write_texts(max(step, 0), texts)
        return eval_sets.summary(self.eval_sets, results)

    # ----------------------------------------------------------------------- the run

    def host_state(self, step: int) -> dict[str, Any]:
        """What a checkpoint holds besides the train state."""
        sft = self.sft_batches
        return {
            "config_hash": self.config_hash,
            "step": step,
            "phase": "sft" if step < self.sft_steps else "rl",
            "context_stage": schedule.stage_at(self.config, max(step - self.sft_steps, 0)).index,
            "seed": self.config.seed,
            "prompt_data": distributed.per_process(
                self.prompts.get_state() if self.rollouts is None else self.rollouts.prompt_state()
            ),
            "sft_data": None if sft is None else distributed.per_process(sft.get_state()),
            "summary": {k: v for k, v in self.summary.items() if k.startswith("eval")},
        }

    def restore(self) -> int:
        """Resumes from the newest checkpoint in the workdir; the step to start at."""
        abstract_tree = checkpointing.abstract_like(self.state.to_tree())  # with the shardings
        base = self.state.base  # LoRA: the frozen base is rebuilt, never checkpointed
        if self.checkpointer.latest_step() is not None:
            self.state = None  # free the fresh state before the checkpoint is read
        restored = checkpointing.restore_latest_or_none(
            self.checkpointer,
            abstract_train_state=abstract_tree,
            expected_config_hash=self.config_hash,
        )
        if restored is None:
            return 0
        start, tree, host_state = restored
        self.state = learner.TrainState.from_tree(tree, base=base)
        where = f"checkpoint {self.workdir}/checkpoints/{start}"
        self.prompts.set_state(distributed.this_process(host_state["prompt_data"], where))
        if self.sft_batches is not None and host_state.get("sft_data") is not None:
            self.sft_batches.set_state(distributed.this_process(host_state["sft_data"], where))
        self.summary.update(host_state.get("summary", {}))
        self.log(f"r1jax: resumed {self.workdir} at step {start}", flush=True)
        return start

    def save(self, step: int, *, force: bool = False) -> None:
        self.checkpointer.save(
            step, train_state=self.state.to_tree(), host_state=self.host_state(step), force=force
        )

    def train(self) -> dict[str, Any]:
        """The loop: warm-start steps, RL steps, evaluations; then the final save and export."""
        config, step = self.config, self.start
        with checkpointing.PreemptionGuard() as guard:
            if step == 0 and config.eval.at_start and self.eval_sets:
                self.summary["eval_at_start"] = self.evaluate("eval at start", 0)
            while step < self.total_steps:
                if distributed.any_process(guard.stop_requested):
                    self.save(step, force=True)
                    self.checkpointer.wait_until_finished()
                    self.log(f"r1jax: SIGTERM at step {step}: saved and stopping", flush=True)
                    self.summary["stopped"] = "preempted"
                    return self.summary | {"final_step": step}
                self.timer.reset()
                started = time.perf_counter()
                phase = self.sft_step if step < self.sft_steps else self.rl_step
                device_metrics, host, samples = phase(step)
                step += 1
                elapsed = time.perf_counter() - started
                if self.checkpointer.should_save(step):
                    self.save(step)
                if step % config.logging.every == 0 or step == self.total_steps:
                    host["phase_sft"] = float(step <= self.sft_steps)
                    self.logger.log(step, elapsed, device_metrics, host, samples, self.timer)
                rl_steps = step - self.sft_steps
                every = config.eval.every
                if every and rl_steps > 0 and rl_steps % every == 0 and step < self.total_steps:
                    self.evaluate("eval", step)
        return self.finish(step)

    def finish(self, step: int) -> dict[str, Any]:
        """The last evaluation, the final checkpoint and the export (``workdir/export``)."""
        summary = self.summary
        if self.eval_sets and self.total_steps > self.sft_steps:
            summary["eval_final"] = self.evaluate("eval after RL", step)
        elif self.eval_sets and self.sft_steps and "eval_after_sft" not in summary:
            summary["eval_after_sft"] = self.evaluate("eval after SFT", step)
        self.save(step, force=True)
        export = os.path.join(self.workdir, "export")
        # With LoRA, the adapters merged into the base (W + alpha/r A B) in the params dtype.
        merged = self.steps.policy_params(
            self.state, self.shape_learner, self.model_config.params_dtype, merge=True
        )
        policy = distributed.to_host(merged)  # every process takes part
        if self.main_process:
            save_pretrained(export, self.model_config, policy, self.tokenizer)
        summary["export"] = export
        return summary | {"final_step": step}

    def open(self) -> None:
        """Checkpointer, metric writers, progress bar and verifier pool; then resume."""
        config = self.config
        self.checkpointer = checkpointing.Checkpointer(
            os.path.join(self.workdir, "checkpoints"),
            save_every=config.checkpoint.every,
            keep=config.checkpoint.keep,
            async_save=config.checkpoint.async_save,
        )
        self.start = self.restore()
        self.logger = metrics.StepLogger(
            config,
            self.workdir,
            total_steps=self.total_steps,
            start=self.start,
            flops_per_token=flops_per_token(self.model_config, config.sampling.max_new_tokens),
        )
        self.pool = VerifierPool(
            build.pool_workers(config), timeout_seconds=config.verifier.timeout_seconds
        )
        self.collector = experience.ExperienceCollector(
            config,
            tokenizer=self.tokenizer,
            model_config=self.model_config,
            mesh=self.mesh,
            rules=self.rules,
            steps=self.steps,
            pool=self.pool,
            task=config.data.task,
            stops=self.stops,
            timer=self.timer,
            routes=mixture.routes(self.run_tasks) if mixture.is_mixture(config) else None,
            continuous=self.continuous,
        )
        if self.async_settings is not None:  # samples on the rollout mesh
            self.collector.mesh, self.collector.rules = self.rollout_mesh, self.rollout_rules
            self.rollouts = async_rollouts.RolloutPipeline(
                self.async_settings,
                rollout_policy_sharding=param_shardings(
                    self.model_config, self.rollout_mesh, self.rollout_rules
                ),
                collect=self._collect_ahead,
                prompt_state=self.prompts.get_state,
                total_rl_steps=config.steps,
            )

    def close(self) -> None:
        for closer in ("logger", "pool", "checkpointer"):
            if hasattr(self, closer):
                getattr(self, closer).close()


# ------------------------------------------------------------------------------------- run


def run(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    devices: Sequence[jax.Device] | None = None,
) -> dict[str, Any]:
    """Trains as ``config`` says, writing checkpoints, metrics and exports under ``workdir``.

    Resumes from the newest checkpoint in ``workdir/checkpoints`` when there is one (into the
    current mesh's shardings, whatever mesh wrote it). With several processes (see
    ``distributed.*`` and `r1jax.distributed`), every process calls `run` with the same config;
    process 0 writes metrics, the summary and the export, and all of them write checkpoints.

    Args:
      config: a resolved config (`r1jax.config.load_config`).
      workdir: the run directory (created when missing); shared by all processes.
      devices: the devices of the ``mesh.*`` mesh; all of ``jax.devices()`` when None.

    Returns:
      A summary: ``final_step``, the evaluation results ``eval_after_sft`` / ``eval_final``
      (when evaluations ran), ``stopped`` (``"completed"`` or ``"preempted"``) and the paths of
      the metrics file and the exported model.

    Raises:
      r1jax.config.ConfigError: a config value the trainer cannot use.
      r1jax.checkpointing.CheckpointError: a checkpoint in ``workdir`` that cannot be resumed.
      TrainingError: too many non-finite updates in a row.
    """
    distributed.initialize(config.distributed)
    workdir = os.path.abspath(os.fspath(workdir))
    os.makedirs(workdir, exist_ok=True)
    if distributed.is_main_process():
        config_lib.save_config(config, workdir)  # the resolved values (presets applied)
    trainer = Trainer(config, workdir, devices)
    model = trainer.model_config
    rollout_mesh = ""  # rollout.mode=async: the sampler's own mesh
    if trainer.rollout_mesh is not None:
        rollout_mesh = (
            f"+ rollout mesh {dict(trainer.rollout_mesh.shape)} "
            f"(rollout.staleness={trainer.async_settings.staleness}) "
        )
    trainer.log(
        f"r1jax: {config.objective.algorithm} on {mixture.describe(trainer.run_tasks)}, "
        f"model {config.model.name} "
        f"({num_params(model) / 1e6:.2f}M params, vocab {model.vocab_size}), "
        f"{trainer.sft_steps} SFT + {config.steps} RL steps, mesh {dict(trainer.mesh.shape)} "
        f"{rollout_mesh}over {jax.process_count()} process(es), workdir {workdir}",
        flush=True,
    )
    try:
        trainer.open()
        summary = trainer.train()
    finally:
        trainer.close()
    summary["metrics_file"] = os.path.join(workdir, metrics.METRICS_FILE)
    for key in ("eval_after_sft", "eval_final"):
        if key in summary:
            summary[key] = eval_sets.without_examples(summary[key])
    if distributed.is_main_process():
        with open(os.path.join(workdir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2, default=str)
    return summary


# ------------------------------------------------------------------------------------- CLI


def default_experiment() -> str:
    """Path of the default experiment (what no arguments runs): ``experiments/default.py`` of
    a source checkout, or its copy inside an installed wheel (`r1jax.config.experiment_path`)."""
    return config_lib.experiment_path("default")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m r1jax.train [--config FILE[:preset]] [--config.key=value ...] --workdir DIR``.

    With no arguments, runs ``experiments/default.py`` into a fresh directory under the
    current folder and prints where.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        workdir = os.path.join(os.getcwd(), "r1jax_runs", f"default-{stamp}")
        print(f"r1jax: no arguments: running {default_experiment()} into {workdir}", flush=True)
        argv = ["--config", default_experiment(), "--workdir", workdir]
    cli = config_lib.parse_command_line(argv, prog="python -m r1jax.train")
    summary = run(cli.config, cli.workdir)
    if distributed.is_main_process():
        print(f"r1jax: done: {json.dumps(summary, default=str)}", flush=True)
    return summary


if __name__ == "__main__":
    main()
