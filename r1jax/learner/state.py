"""`TrainState`: everything the update step changes, as one pytree, and its shardings.

Not here: the step itself (`r1jax.learner.step`), checkpoint files (`r1jax.checkpointing`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from r1jax.learner.config import LearnerConfig
from r1jax.models import ModelConfig


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything the update step changes, as one pytree (checkpointed as a whole).

    Attributes:
      policy: the policy params pytree.
      reference: the frozen reference params (same pytree type), or None without a KL term.
      opt_state: the optax state of the policy.
      step: int32 scalar, number of update-step calls.
      nonfinite_streak: int32 scalar, consecutive optimizer updates skipped for a non-finite
        loss or gradient.
      nonfinite_total: int32 scalar, all optimizer updates skipped so far.
    """

    policy: Any
    reference: Any
    opt_state: Any
    step: jax.Array
    nonfinite_streak: jax.Array
    nonfinite_total: jax.Array

    def replace(self, **changes: Any) -> TrainState:
        return dataclasses.replace(self, **changes)

    def to_tree(self) -> dict[str, Any]:
        """The state as a dict for checkpoints (no ``reference`` key when there is none)."""
        tree = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        if tree["reference"] is None:
            del tree["reference"]
        return tree

    @classmethod
    def from_tree(cls, tree: dict[str, Any]) -> TrainState:
        """The inverse of `to_tree`."""
        return cls(**{"reference": None, **tree})


def reference_copy(params: Any, model: ModelConfig) -> Any:
    """The frozen reference's copy of ``params``: kernels and embeddings in the compute dtype.

    Every use of a kernel or an embedding casts it to the compute dtype first, so a reference
    stored in that dtype gives the same log-probs bit for bit, and under bfloat16 compute with
    float32 params it takes half the memory. Norm scales and biases, applied in float32, keep
    their dtype.
    """
    compute = jnp.dtype(model.compute_dtype)

    def copy(path, leaf):
        name = getattr(path[-1], "key", None)
        if name in ("kernel", "embedding") and jnp.dtype(leaf.dtype).itemsize > compute.itemsize:
            return leaf.astype(compute)
        return jnp.copy(leaf)

    return jax.tree_util.tree_map_with_path(copy, params)


def init_train_state(policy: Any, config: LearnerConfig, *, reference: Any = None) -> TrainState:
    """A fresh `TrainState` at step 0 for ``policy``.

    Args:
      policy: the initial policy params.
      config: the learner config; its algorithm decides whether a reference is kept.
      reference: the reference params; a copy of ``policy`` when needed and not given.
        Either is stored as `reference_copy` makes it.

    Returns:
      The state, with a fresh optimizer state and the reference (or None).
    """
    if config.uses_reference:
        reference = reference_copy(policy if reference is None else reference, config.model)
    else:
        reference = None
    return TrainState(
        policy=policy,
        reference=reference,
        opt_state=config.make_optimizer().init(policy),
        step=jnp.zeros((), jnp.int32),
        nonfinite_streak=jnp.zeros((), jnp.int32),
        nonfinite_total=jnp.zeros((), jnp.int32),
    )


def state_shardings(state: TrainState, policy_sharding: Any) -> TrainState:
    """A `TrainState` of shardings: params and their optimizer moments like ``policy_sharding``,
    scalars replicated.

    Args:
      state: a (possibly abstract) `TrainState`.
      policy_sharding: the params pytree of `NamedSharding`s (`r1jax.models.param_shardings`).

    Returns:
      A `TrainState` whose leaves are shardings.
    """
    mesh = jax.tree.leaves(policy_sharding)[0].mesh
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    params_structure = jax.tree.structure(state.policy)

    def opt_sharding(subtree):
        if jax.tree.structure(subtree) == params_structure:
            return policy_sharding
        return jax.tree.map(lambda _: replicated, subtree)

    opt = jax.tree.map(
        opt_sharding,
        state.opt_state,
        is_leaf=lambda x: jax.tree.structure(x) == params_structure,
    )
    return TrainState(
        policy=policy_sharding,
        reference=None if state.reference is None else policy_sharding,
        opt_state=opt,
        step=replicated,
        nonfinite_streak=replicated,
        nonfinite_total=replicated,
    )
