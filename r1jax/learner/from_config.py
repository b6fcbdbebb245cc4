"""The one translation of a resolved config into the learner's frozen settings.

`r1jax.config.load_config` has already applied the algorithm's preset and the user's values
(base defaults < preset < experiment file < command line), so the translation copies keys: the
``objective.*`` keys into the algorithm's config class (`r1jax.algorithms`), ``rewards.*``
into `RewardConfig`, ``optim.*`` (or ``sft.*`` for the warm start) into `OptimizerConfig`,
``lora.*`` into `r1jax.models.lora.LoraConfig`.
Nothing is overridden here: a value the learner cannot use is a `ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from r1jax import algorithms
from r1jax import config as config_lib
from r1jax.algorithms import rollout_correction
from r1jax.learner import auxiliary as auxiliary_lib
from r1jax.learner.config import LearnerConfig
from r1jax.learner.optimizer import OptimizerConfig
from r1jax.models import ModelConfig
from r1jax.models import lora as lora_lib
from r1jax.rewards.shaping import RewardConfig

SCHEDULES = ("constant", "cosine", "linear")


def reward_config(section: ml_collections.ConfigDict) -> RewardConfig:
    """``rewards.*`` -> `RewardConfig` (``rewards.cosine.enabled`` -> ``cosine_enabled``...)."""
    flat = {}
    for name, value in section.items():
        if isinstance(value, ml_collections.ConfigDict):
            flat.update({f"{name}_{key}": item for key, item in value.items()})
        else:
            flat[name] = value
    return config_lib.to_dataclass(RewardConfig, flat)


def optimizer_config(config: ml_collections.ConfigDict, *, sft: bool) -> OptimizerConfig:
    """AdamW settings of ``optim.*``; the warm start takes its lr and schedule from ``sft.*``
    (its schedule ends with ``sft.steps``)."""
    opt = config.optim
    if sft:
        schedule, section = config.sft, "sft"
        total_steps = max(schedule.steps, schedule.warmup_steps + 1)
    else:
        schedule, section = opt, "optim"
        total_steps = opt.warmup_steps + (
            opt.decay_steps or max(config.steps - opt.warmup_steps, 1)
        )
    if schedule.schedule not in SCHEDULES:
        raise config_lib.ConfigError(
            f"{section}.schedule={schedule.schedule!r}: must be one of {', '.join(SCHEDULES)}"
        )
    return OptimizerConfig(
        learning_rate=config.sft.lr if sft else opt.lr,
        warmup_steps=schedule.warmup_steps,
        decay=schedule.schedule,
        total_steps=total_steps,
        end_fraction=schedule.min_lr_ratio,
        weight_decay=opt.weight_decay,
        b1=opt.b1,
        b2=opt.b2,
        eps=opt.eps,
        max_grad_norm=opt.grad_clip_norm,
    )


def auxiliary_fields(cls: type, config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The fields of algorithm class ``cls`` that come from the group of an auxiliary model.

    A field whose default is an `AuxiliaryModel` named ``N`` (PPO's ``critic``, PRIME's
    ``prm``) is built from the ``N.*`` keys (``init``, ``minibatches_per_step`` and the AdamW
    keys ``lr``, ``lr_warmup_steps``, ``b1``, ``b2``, ``eps``, ``weight_decay``,
    ``grad_clip_norm``; a constant schedule); any other key ``N.k`` fills the field ``N_k``.
    """
    fields = {field.name: field for field in dataclasses.fields(cls)}
    resolved = {}
    for name, field in fields.items():
        if not isinstance(field.default, auxiliary_lib.AuxiliaryModel):
            continue
        section = config[name]
        resolved[name] = dataclasses.replace(
            field.default,
            init=section.init,
            minibatches_per_step=section.minibatches_per_step,
            optimizer=OptimizerConfig(
                learning_rate=section.lr,
                warmup_steps=section.lr_warmup_steps,
                weight_decay=section.weight_decay,
                b1=section.b1,
                b2=section.b2,
                eps=section.eps,
                max_grad_norm=section.grad_clip_norm,
            ),
        )
        for key, value in section.items():
            if f"{name}_{key}" in fields:
                resolved[f"{name}_{key}"] = value
    return resolved


def algorithm_config(config: ml_collections.ConfigDict) -> Any:
    """The frozen algorithm object of ``objective.algorithm`` from the ``objective.*`` keys."""
    objective = config.objective
    module = algorithms.module_of(objective.algorithm)
    resolved = {}
    if "rollout_correction" in {field.name for field in dataclasses.fields(module.CONFIG)}:
        resolved["rollout_correction"] = rollout_correction.from_config(
            objective.rollout_correction.to_dict(),
            sampler_dtype=config.sampling.dtype or config.model.dtype,
            learner_dtype=config.model.dtype,
            stale_rows=bool(config.sampling.partial_rollouts),
        )
    resolved.update(auxiliary_fields(module.CONFIG, config))
    algorithm = config_lib.to_dataclass(module.CONFIG, objective, **resolved)
    if config.reference.mode == "none" and algorithm.uses_reference:
        raise config_lib.ConfigError(
            f"reference.mode='none' keeps no reference model, but objective.algorithm="
            f"{objective.algorithm} with objective.kl_coef={objective.kl_coef} needs one: "
            "set reference.mode=frozen (or objective.kl_coef=0 where the algorithm allows it)"
        )
    return algorithm


def lora_config(config: ml_collections.ConfigDict) -> lora_lib.LoraConfig | None:
    """``lora.*`` -> `LoraConfig`, or None when ``lora.rank`` is 0 (full fine-tuning).

    The reference keeps its own adapter copy when it can move away from the base: R1's
    reference reset (``reference.mode=reset_every``) or a warm start (``sft.mode=warmup``),
    whose adapters the RL reference starts from.

    Raises:
      r1jax.config.ConfigError: a negative rank, an unknown target, a dropout outside
        ``[0, 1)``, a bad ``base_dtype``, or an algorithm with auxiliary models (a critic,
        a PRM), which LoRA does not cover.
    """
    section = config.lora
    if section.rank < 0:
        raise config_lib.ConfigError(f"lora.rank={section.rank}: must be >= 0 (0 = no LoRA)")
    if section.rank == 0:
        return None
    fields = dataclasses.fields(algorithms.module_of(config.objective.algorithm).CONFIG)
    auxiliary = [f.name for f in fields if isinstance(f.default, auxiliary_lib.AuxiliaryModel)]
    if auxiliary:
        raise config_lib.ConfigError(
            f"lora.rank={section.rank} with objective.algorithm={config.objective.algorithm}: "
            f"LoRA trains the policy's adapters only, and this algorithm also trains "
            f"{', '.join(auxiliary)} (a full second model); set lora.rank=0"
        )
    try:
        return lora_lib.LoraConfig(
            rank=section.rank,
            alpha=section.alpha,
            targets=lora_lib.parse_targets(section.targets),
            dropout=section.dropout,
            base_dtype=section.base_dtype,
            merge_for_sampling=section.merge_for_sampling,
            reference_adapters=(
                config.reference.mode == "reset_every" or config.sft.mode == "warmup"
            ),
            seed=config.seed,
        )
    except ValueError as error:
        raise config_lib.ConfigError(str(error)) from None


def learner_config(
    config: ml_collections.ConfigDict,
    model_config: ModelConfig,
    *,
    sft: bool,
    max_new_tokens: int,
    group_size: int | None = None,
    rules: Any = None,
) -> LearnerConfig:
    """The `LearnerConfig` of one phase (the warm start when ``sft``) and context stage
    (``max_new_tokens`` and ``group_size``; None = ``sampling.group_size``).

    Raises:
      r1jax.config.ConfigError: a value the learner rejects, naming its key.
    """
    try:
        algorithm = algorithms.sft.CONFIG() if sft else algorithm_config(config)
        return LearnerConfig(
            model=model_config,
            algorithm=algorithm,
            optimizer=optimizer_config(config, sft=sft),
            rewards=reward_config(config.rewards),
            group_size=group_size or config.sampling.group_size,
            temperature=1.0 if sft else config.sampling.temperature,
            max_new_tokens=max_new_tokens,
            minibatches_per_step=1 if sft else config.optim.minibatches_per_step,
            micro_batch_size=config.optim.micro_batch_size,
            micro_batch_tokens=config.optim.micro_batch_tokens,
            length_buckets=config.optim.length_buckets,
            logprob_chunk_size=config.optim.logprob_chunk_size,
            remat=config.model.remat,
            rules=rules,
            lora=lora_config(config),
        )
    except config_lib.ConfigError:
        raise
    except ValueError as error:  # a value the learner's dataclasses reject
        raise config_lib.ConfigError(str(error)) from error
