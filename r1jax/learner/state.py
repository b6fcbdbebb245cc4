"""`TrainState`: everything the update step changes, as one pytree, and its shardings.

With LoRA (`LearnerConfig.lora`) the state's ``policy`` is the adapters tree, ``base`` holds
the frozen base params (never checkpointed: a run rebuilds it from its config), and
``reference`` is None (the base with the adapters off) or a copy of the adapters.

Not here: the step itself (`r1jax.learner.step`), checkpoint files (`r1jax.checkpointing`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from r1jax.learner import auxiliary as auxiliary_lib
from r1jax.learner.config import LearnerConfig
from r1jax.models import ModelConfig
from r1jax.models import lora as lora_lib

# Streams folded into ``jax.random.key(LoraConfig.seed)``.
LORA_INIT_STREAM, LORA_DROPOUT_STREAM = 0, 1


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything the update step changes, as one pytree (checkpointed as a whole).

    Attributes:
      policy: the policy params pytree (with LoRA: the adapters, `r1jax.models.lora`).
      reference: the frozen reference params (same pytree type), or None without a KL term
        (with LoRA: None means the base with the adapters off).
      opt_state: the optax state of the policy.
      step: int32 scalar, number of update-step calls.
      nonfinite_streak: int32 scalar, consecutive optimizer updates skipped for a non-finite
        loss or gradient.
      nonfinite_total: int32 scalar, all optimizer updates skipped so far.
      aux: the algorithm's auxiliary models (`r1jax.learner.auxiliary`), ``{name: {"params":
        ..., "opt_state": ...}}``; empty for algorithms without any.
      base: with LoRA, the frozen base params the adapters apply to; None otherwise. Not
        trained, not in the optimizer state and not checkpointed.
    """

    policy: Any
    reference: Any
    opt_state: Any
    step: jax.Array
    nonfinite_streak: jax.Array
    nonfinite_total: jax.Array
    aux: dict = dataclasses.field(default_factory=dict)
    base: Any = None

    def replace(self, **changes: Any) -> TrainState:
        return dataclasses.replace(self, **changes)

    def to_tree(self) -> dict[str, Any]:
        """The state as a dict for checkpoints (no ``reference`` or ``aux`` key when there is
        none; never the LoRA ``base``)."""
        tree = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        del tree["base"]
        if tree["reference"] is None:
            del tree["reference"]
        if not tree["aux"]:
            del tree["aux"]
        return tree

    @classmethod
    def from_tree(cls, tree: dict[str, Any], *, base: Any = None) -> TrainState:
        """The inverse of `to_tree`; ``base``: the LoRA base the run rebuilt."""
        return cls(**{"reference": None, "aux": {}, **tree}, base=base)


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


def init_train_state(
    policy: Any,
    config: LearnerConfig,
    *,
    reference: Any = None,
    auxiliary: dict[str, Any] | None = None,
    key: jax.Array | None = None,
    adapters: Any = None,
) -> TrainState:
    """A fresh `TrainState` at step 0 for ``policy``.

    With ``config.lora``, ``policy`` becomes the frozen base (in ``lora.base_dtype``) and the
    state's policy is ``adapters`` (fresh from `r1jax.models.lora.init_adapters` when None);
    the optimizer state covers the adapters only.

    Args:
      policy: the initial policy params.
      config: the learner config; its algorithm decides whether a reference is kept and
        which auxiliary models (``config.auxiliary_models``) are trained.
      reference: the reference params; a copy of ``policy`` when needed and not given.
        Either is stored as `reference_copy` makes it.
      auxiliary: ``{name: params}`` of auxiliary models read from checkpoints; the others
        start from ``policy`` (`r1jax.learner.auxiliary.init_params`).
      key: RNG key of new auxiliary heads (a value head); a fixed key when None.
      adapters: with LoRA, adapters to keep training (after a warm start).

    Returns:
      The state, with fresh optimizer states, the reference (or None) and the auxiliary
      models.
    """
    base, lora = None, config.lora
    if lora is not None:
        base = lora_lib.cast_base(policy, lora)
        if adapters is None:
            init_key = jax.random.fold_in(jax.random.key(lora.seed), LORA_INIT_STREAM)
            adapters = lora_lib.init_adapters(config.model, lora, init_key)
        policy = adapters
    if lora is not None and not lora.reference_adapters:
        reference = None  # the base with the adapters off
    elif config.uses_reference:
        reference = reference_copy(policy if reference is None else reference, config.model)
    else:
        reference = None
    aux = {}
    for index, spec in enumerate(config.auxiliary_models):
        head_key = jax.random.fold_in(jax.random.key(0) if key is None else key, index)
        given = (auxiliary or {}).get(spec.name)
        if given is None:
            params = auxiliary_lib.init_params(spec, policy, config.model, head_key)
        else:
            params = auxiliary_lib.from_pretrained(spec, given, config.model, head_key)
        aux[spec.name] = {"params": params, "opt_state": spec.make_optimizer().init(params)}
    return TrainState(
        policy=policy,
        reference=reference,
        opt_state=config.make_optimizer().init(policy),
        step=jnp.zeros((), jnp.int32),
        nonfinite_streak=jnp.zeros((), jnp.int32),
        nonfinite_total=jnp.zeros((), jnp.int32),
        aux=aux,
        base=base,
    )


def state_shardings(state: TrainState, policy_sharding: Any) -> TrainState:
    """A `TrainState` of shardings: params and their optimizer moments like ``policy_sharding``,
    scalars replicated. With LoRA the base is sharded like ``policy_sharding`` and each
    adapter leaf like its kernel's dims (`r1jax.models.lora.adapter_shardings`).

    Args:
      state: a (possibly abstract) `TrainState`.
      policy_sharding: the params pytree of `NamedSharding`s (`r1jax.models.param_shardings`).

    Returns:
      A `TrainState` whose leaves are shardings (auxiliary models: their params like the
      policy's at the paths the policy has, replicated elsewhere, and their moments alike).
    """
    mesh = jax.tree.leaves(policy_sharding)[0].mesh
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

    def opt_shardings(opt_state, params, params_sharding):
        params_structure = jax.tree.structure(params)

        def opt_sharding(subtree):
            if jax.tree.structure(subtree) == params_structure:
                return params_sharding
            return jax.tree.map(lambda _: replicated, subtree)

        return jax.tree.map(
            opt_sharding, opt_state, is_leaf=lambda x: jax.tree.structure(x) == params_structure
        )

    base_sharding = None
    if state.base is not None:  # LoRA: the policy is the adapters
        base_sharding = policy_sharding
        policy_sharding = lora_lib.adapter_shardings(state.policy, base_sharding)
    opt = opt_shardings(state.opt_state, state.policy, policy_sharding)
    aux = {}
    for name, model in state.aux.items():
        params_sharding = auxiliary_lib.param_shardings(
            model["params"], policy_sharding if base_sharding is None else base_sharding
        )
        aux[name] = {
            "params": params_sharding,
            "opt_state": opt_shardings(model["opt_state"], model["params"], params_sharding),
        }
    return TrainState(
        policy=policy_sharding,
        reference=None if state.reference is None else policy_sharding,
        opt_state=opt,
        step=replicated,
        nonfinite_streak=replicated,
        nonfinite_total=replicated,
        aux=aux,
        base=None if state.base is None else lora_lib.base_shardings(state.base, base_sharding),
    )
