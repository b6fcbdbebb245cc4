"""Auxiliary models: second models an algorithm trains next to the policy (PPO's critic,
PRIME's implicit process reward model).

An algorithm declares them with ``auxiliary_models`` (a tuple of `AuxiliaryModel`): a name, a
kind (``"value"``: the policy's architecture with a scalar head, `r1jax.models.value_head`;
``"causal_lm"``: a copy of the policy's language model), where its weights start (``"policy"``
or a Hugging Face directory of the same architecture), its own optimizer and its own number of
mini-batches per step. The learner keeps each one in ``TrainState.aux[name] = {"params",
"opt_state"}``, sharded like the policy, checkpointed with the state and never exported.

The generic step (`r1jax.learner.step`) calls the algorithm's ``score_auxiliary`` once on the
full batch (no gradient; e.g. the old values), hands the scores to ``prepare``, and after the
policy's updates runs each auxiliary model's updates on mini-batches of the same prepared
batch with the algorithm's ``auxiliary_denominator`` / ``auxiliary_loss`` /
``auxiliary_summarize`` (see `r1jax.algorithms.base`).

Not here: the losses (the algorithm modules), checkpoint files (`r1jax.checkpointing`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from r1jax.learner.batch import Batch
from r1jax.learner.logprobs import sequence_inputs
from r1jax.learner.optimizer import OptimizerConfig, make_optimizer
from r1jax.models import ModelConfig, load_pretrained
from r1jax.models import value_head as value_model

KINDS = ("value", "causal_lm")
FROM_POLICY = "policy"


@dataclasses.dataclass(frozen=True)
class AuxiliaryModel:
    """A second trainable model of an algorithm.

    Attributes:
      name: its key in ``TrainState.aux`` and the prefix of its metrics (``critic``, ``prm``).
      kind: ``"value"`` (trunk + scalar head) or ``"causal_lm"`` (the policy's architecture).
      init: ``"policy"`` (the policy's weights when the state is created: the base model, or
        the warm-started one after ``sft.mode=warmup``) or a Hugging Face directory of a
        model with the policy's architecture (a value model reads its trunk from it and starts
        a fresh head).
      optimizer: its AdamW settings and schedule.
      minibatches_per_step: its optimizer updates per step (rows split into this many
        mini-batches; ORZ's critic takes 12).
      num_iterations: passes over each batch.
    """

    name: str
    kind: str
    init: str = FROM_POLICY
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    minibatches_per_step: int = 1
    num_iterations: int = 1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.minibatches_per_step < 1 or self.num_iterations < 1:
            raise ValueError(f"{self.name}.minibatches_per_step must be >= 1")

    @property
    def updates_per_step(self) -> int:
        return self.minibatches_per_step * self.num_iterations

    def make_optimizer(self) -> optax.GradientTransformation:
        return make_optimizer(self.optimizer, updates_per_step=self.updates_per_step)


def init_params(spec: AuxiliaryModel, policy: Any, model: ModelConfig, key: jax.Array) -> Any:
    """``spec``'s params initialised from the policy's (a value model gets a fresh head)."""
    if spec.kind == "value":
        return value_model.value_params_from_policy(policy, model, key)
    return jax.tree.map(jnp.copy, policy)


def from_pretrained(spec: AuxiliaryModel, loaded: Any, model: ModelConfig, key: jax.Array) -> Any:
    """``spec``'s params from given weights: a loaded HF checkpoint of the policy's
    architecture (a value model gets a fresh head) or the model's own params."""
    if spec.kind == "value" and value_model.VALUE_HEAD not in loaded:
        return value_model.value_params_from_policy(loaded, model, key)
    return loaded


def load_pretrained_models(config: Any, *, mesh: Any, rules: Any) -> dict[str, Any]:
    """``{name: params}`` of the auxiliary models whose ``init`` is a checkpoint directory,
    read into the policy's shardings with the policy's dtypes.

    Raises:
      ValueError: a checkpoint with another architecture than the policy.
    """
    loaded = {}
    for spec in config.auxiliary_models:
        if spec.init == FROM_POLICY:
            continue
        model_config, params = load_pretrained(
            spec.init,
            dtype=config.model.dtype,
            param_dtype=config.model.param_dtype,
            mesh=mesh,
            rules=rules,
        )
        checked_pretrained(spec, model_config, config.model)
        loaded[spec.name] = params
    return loaded


def param_shardings(params: Any, policy_sharding: Any) -> Any:
    """Shardings of auxiliary params: the policy's sharding at every path the policy has,
    replicated elsewhere (a value head)."""
    mesh = jax.tree.leaves(policy_sharding)[0].mesh
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    table = dict(jax.tree_util.tree_flatten_with_path(policy_sharding)[0])

    def sharding(path, _):
        return table.get(path, replicated)

    return jax.tree_util.tree_map_with_path(sharding, params)


def completion_values(params: Any, batch: Batch, config: Any) -> jax.Array:
    """``[B, T]`` values ``V(s_t)`` of a value model for the batch's completion tokens."""
    tokens, positions, mask = sequence_inputs(batch)
    return value_model.token_values(
        params,
        tokens,
        positions,
        config.model,
        attention_mask=mask,
        target_start=batch.prompt_tokens.shape[1],
        remat=config.remat,
        rules=config.rules,
    )


def checked_pretrained(spec: AuxiliaryModel, loaded_config: ModelConfig, model: ModelConfig):
    """Raises ValueError when a checkpoint for ``spec`` has another architecture."""
    fields = ("vocab_size", "hidden_size", "mlp_dim", "num_layers", "num_heads", "num_kv_heads")
    differ = [f for f in fields if getattr(loaded_config, f, None) != getattr(model, f, None)]
    if differ:
        raise ValueError(
            f"{spec.name}.init={spec.init!r} has another architecture than the policy "
            f"(differs in {', '.join(differ)})"
        )
