"""The one compiled update step of r1jax, generic over algorithms: batch in, new state out.

`train_step_fn(state, batch, config)` is a single ``jax.jit`` that donates the state. In order:

1. the reference's ``[B, T]`` log-probs when the algorithm needs them and the batch does not
   carry them (the trainer usually computes them while the host verifies); likewise the
   policy's own log-probs before any update (``Batch.learner_logprobs``) when the algorithm's
   ``uses_learner_logprobs`` says so (rollout correction);
2. ``config.algorithm.prepare``: rewards, advantages and the loss mask on the full batch;
3. for each of ``num_iterations x minibatches_per_step`` optimizer updates: the mini-batch's
   loss denominator (``algorithm.denominator``), then gradients of ``algorithm.loss`` summed
   exactly over micro-batches with ``lax.scan`` (each micro-batch's loss is its share of the
   mini-batch loss, so the sum of the micro-batch gradients is the mini-batch gradient;
   with ``micro_batch_tokens`` the micro-batches are rows sorted by length, cut to a bucket
   length and filled to a token budget, `r1jax.learner.length_groups`), global-norm
   clipping and the optax update, skipped inside the jit (``jnp.where`` on every
   leaf) when the loss or a gradient is not finite; the skip is counted in the state;
4. for each auxiliary model of the algorithm (``config.auxiliary_models``, e.g. PPO's critic,
   `r1jax.learner.auxiliary`): its ``minibatches_per_step`` updates with its own optimizer on
   the same prepared batch (``algorithm.auxiliary_loss``); its scores before any update
   (``algorithm.score_auxiliary``) reach ``prepare`` in step 2. During the first
   ``config.policy_frozen_steps`` steps (a critic warm-up) only these updates run;
5. a dict of scalar metrics: the step's own (loss, gradient norm, learning rate, skipped
   updates), the algorithm's (``algorithm.summarize``) and each auxiliary model's
   (``<name>/...``), left on the device.

The step holds no algorithm branches: everything algorithm-specific is a method of
``config.algorithm`` (`r1jax.algorithms.base`).

With LoRA (``config.lora``) the state's policy is the adapters: the gradients, the clipping and
the optimizer see only them, and every forward applies them to ``state.base``
(`r1jax.learner.logprobs.model_params`); the reference is the base with the adapters off
unless it keeps its own adapter copy.

`CompiledSteps` holds the programs of one run on one mesh with declared in/out shardings.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from r1jax.learner import length_groups
from r1jax.learner.batch import Batch, concat_batches
from r1jax.learner.config import LearnerConfig
from r1jax.learner.logprobs import (
    completion_logprobs,
    model_params,
    reference_logprobs_fn,
    split_rows,
)
from r1jax.learner.optimizer import learning_rate_schedule
from r1jax.learner.state import (
    LORA_DROPOUT_STREAM,
    TrainState,
    init_train_state,
    state_shardings,
)
from r1jax.models import lora as lora_lib


def _is_finite_tree(tree: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _gradients(
    policy: Any,
    batch: Batch,
    prepared: dict[str, jax.Array],
    config: LearnerConfig,
    *,
    base: Any = None,
    dropout_key: jax.Array | None = None,
) -> tuple[Any, dict[str, jax.Array]]:
    """Gradients and metric sums of one mini-batch, accumulated exactly over micro-batches.

    With LoRA, ``policy`` is the adapters and ``base`` the frozen base; ``dropout_key`` (LoRA
    dropout) gives each row a key, and each micro-batch uses its first row's.
    """
    algorithm = config.algorithm
    denominator = algorithm.denominator(prepared, config)
    row_keys = None
    if dropout_key is not None:
        row_keys = jax.random.key_data(jax.random.split(dropout_key, batch.rows))  # [B, 2]

    def micro_batch_loss(params, micro):
        micro_batch, micro_prepared, micro_keys = micro
        key = None if micro_keys is None else jax.random.wrap_key_data(micro_keys[0])
        params = model_params(params, base, config, dropout_key=key)
        logprobs, entropy = completion_logprobs(params, micro_batch, config, with_entropy=True)
        return algorithm.loss(logprobs, entropy, micro_batch, micro_prepared, denominator, config)

    grad_fn = jax.grad(micro_batch_loss, has_aux=True)
    return _accumulated(grad_fn, policy, (batch, prepared, row_keys), config)


def _accumulated(grad_fn: Any, params: Any, inputs: tuple, config: LearnerConfig):
    """``grad_fn(params, inputs)`` summed over the micro-batches of ``inputs = (batch,
    prepared, *rest)``: length-grouped ones (`r1jax.learner.length_groups`) when
    ``config.micro_batch_tokens`` is set, else ``config.micro_batch_size`` rows each."""
    if config.micro_batch_tokens:
        return length_groups.accumulate(
            grad_fn,
            params,
            inputs,
            budget=config.micro_batch_tokens,
            buckets=config.length_buckets,
        )
    return _accumulated_rows(grad_fn, params, inputs, config.micro_batch_size)


def _accumulated_rows(grad_fn: Any, params: Any, inputs: Any, micro_rows: int):
    """``grad_fn(params, inputs)`` summed over micro-batches of ``micro_rows`` rows of every
    ``[B, ...]`` leaf of ``inputs`` with ``lax.scan`` (the whole mini-batch at once when
    ``micro_rows`` is 0 or too large)."""
    rows = jax.tree.leaves(inputs)[0].shape[0]
    if micro_rows <= 0 or micro_rows >= rows:
        return grad_fn(params, inputs)
    if rows % micro_rows:
        raise ValueError(
            f"optim.micro_batch_size={micro_rows} does not divide the {rows}-row mini-batch"
        )
    micro_batches = split_rows(inputs, rows // micro_rows)

    def accumulate(carry, micro):
        return jax.tree.map(jnp.add, carry, grad_fn(params, micro)), None

    first = jax.tree.map(lambda x: x[0], micro_batches)
    shapes = jax.eval_shape(grad_fn, params, first)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    (grads, sums), _ = jax.lax.scan(accumulate, zeros, micro_batches)
    return grads, sums


def _dropout_key(state: TrainState, update: jax.Array, config: LearnerConfig) -> Any:
    """The LoRA dropout key of update ``update`` of this step (None without dropout)."""
    lora = config.lora
    if lora is None or lora.dropout == 0:
        return None
    key = jax.random.fold_in(jax.random.key(lora.seed), LORA_DROPOUT_STREAM)
    return jax.random.fold_in(jax.random.fold_in(key, state.step), update)


def _optimizer_update(
    state: TrainState, minibatch: tuple, config: LearnerConfig, update: Any = 0
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer update on one mini-batch; skipped (and counted) when not finite.

    ``update``: the update's index within the step (distinct LoRA dropout masks).
    """
    grads, sums = _gradients(
        state.policy,
        *minibatch,
        config,
        base=state.base,
        dropout_key=_dropout_key(state, update, config),
    )
    updates, new_opt_state = config.make_optimizer().update(grads, state.opt_state, state.policy)
    new_policy = optax.apply_updates(state.policy, updates)
    grad_norm = optax.tree.norm(grads)
    is_finite = jnp.isfinite(sums["loss"]) & jnp.isfinite(grad_norm) & _is_finite_tree(new_policy)

    def keep_if_finite(new, old):
        return jax.tree.map(lambda n, o: jnp.where(is_finite, n, o), new, old)

    new_state = state.replace(
        policy=keep_if_finite(new_policy, state.policy),
        opt_state=keep_if_finite(new_opt_state, state.opt_state),
        nonfinite_streak=jnp.where(is_finite, 0, state.nonfinite_streak + 1).astype(jnp.int32),
        nonfinite_total=state.nonfinite_total + (~is_finite).astype(jnp.int32),
    )
    sums = dict(sums, grad_norm=grad_norm, skipped_updates=(~is_finite).astype(jnp.float32))
    return new_state, sums


def train_step_fn(
    state: TrainState, batch: Batch, config: LearnerConfig
) -> tuple[TrainState, dict[str, jax.Array]]:
    """The body of `train_step` (see the module docstring for the order of work).

    Args:
      state: the current `TrainState` (donated by the jitted wrappers).
      batch: the rollout or supervised batch, ``B`` rows.
      config: the static `LearnerConfig`.

    Returns:
      ``(new_state, metrics)``: the state after ``config.updates_per_step`` optimizer updates
      (an update with a non-finite loss or gradient leaves params and optimizer state
      unchanged and is counted), and a dict of scalar float32 metrics.
    """
    algorithm = config.algorithm
    if config.uses_reference and batch.reference_logprobs is None:
        batch = batch.replace(
            reference_logprobs=reference_logprobs_fn(state.reference, batch, config, state.base)
        )
    if getattr(algorithm, "uses_learner_logprobs", False) and batch.learner_logprobs is None:
        # The learner's own π_old (rollout correction): the policy before any update.
        batch = batch.replace(
            learner_logprobs=reference_logprobs_fn(state.policy, batch, config, state.base)
        )
    if config.auxiliary_models:
        # Scores of the auxiliary models before any update (e.g. PPO's old values).
        aux_params = {name: model["params"] for name, model in state.aux.items()}
        scores = algorithm.score_auxiliary(aux_params, batch, config)
        prepared, metrics = algorithm.prepare(batch, config, auxiliary=scores)
    else:
        prepared, metrics = algorithm.prepare(batch, config)
    minibatches = split_rows((batch, prepared), config.minibatches_per_step)

    def one_update(state, update):
        # Passes over the mini-batches in order: update u uses mini-batch u mod M.
        minibatch = jax.tree.map(lambda x: x[update % config.minibatches_per_step], minibatches)
        return _optimizer_update(state, minibatch, config, update)

    def policy_updates(state):
        if config.updates_per_step == 1:
            state, sums = one_update(state, 0)
            return state, jax.tree.map(lambda x: x[None], sums)
        return jax.lax.scan(one_update, state, jnp.arange(config.updates_per_step))  # [U] each

    if config.policy_frozen_steps:
        state, sums = _unless_policy_frozen(policy_updates, state, config)
    else:
        state, sums = policy_updates(state)
    for spec in config.auxiliary_models:
        state, auxiliary_metrics = _auxiliary_updates(state, spec, batch, prepared, config)
        metrics.update(auxiliary_metrics)
    state = state.replace(step=state.step + 1)

    metrics["loss"] = jnp.mean(sums["loss"])
    metrics["grad_norm"] = jnp.mean(sums["grad_norm"])
    metrics["skipped_updates"] = jnp.sum(sums["skipped_updates"])
    metrics["nonfinite_streak"] = state.nonfinite_streak
    policy_steps = state.step - 1 - config.policy_frozen_steps
    applied = policy_steps * config.updates_per_step - state.nonfinite_total
    metrics["learning_rate"] = learning_rate_schedule(config.optimizer)(
        jnp.maximum(applied, 0) // config.updates_per_step
    )
    metrics.update(algorithm.summarize(sums))
    metrics["loss_tokens"] = jnp.sum(prepared["loss_mask"]).astype(jnp.float32)
    return state, {name: jnp.asarray(value, jnp.float32) for name, value in metrics.items()}


def _unless_policy_frozen(policy_updates: Any, state: TrainState, config: LearnerConfig):
    """``policy_updates(state)`` from step ``config.policy_frozen_steps`` on; before it the
    policy and its optimizer state stay as they are and its metric sums are 0."""
    sums_shapes = jax.eval_shape(policy_updates, state)[1]

    def frozen(state):
        return state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), sums_shapes)

    return jax.lax.cond(state.step >= config.policy_frozen_steps, policy_updates, frozen, state)


def _auxiliary_updates(
    state: TrainState, spec: Any, batch: Batch, prepared: dict[str, jax.Array], config: Any
) -> tuple[TrainState, dict[str, jax.Array]]:
    """The updates of auxiliary model ``spec`` on mini-batches of the prepared batch.

    Each update accumulates the gradient of ``algorithm.auxiliary_loss`` over micro-batches
    (``optim.micro_batch_size`` rows) and applies the model's own optimizer; an update with a
    non-finite loss or gradient is skipped (reported as ``<name>/skipped_updates``).
    """
    algorithm, name = config.algorithm, spec.name
    minibatches = split_rows((batch, prepared), spec.minibatches_per_step)
    order = jnp.tile(jnp.arange(spec.minibatches_per_step), spec.num_iterations)
    optimizer = spec.make_optimizer()

    def one_update(model, index):
        mini_batch, mini_prepared = jax.tree.map(lambda x: x[index], minibatches)
        denominator = algorithm.auxiliary_denominator(name, mini_prepared, config)

        def micro_batch_loss(params, micro):
            micro_batch, micro_prepared = micro
            return algorithm.auxiliary_loss(
                name, params, micro_batch, micro_prepared, denominator, config
            )

        grad_fn = jax.grad(micro_batch_loss, has_aux=True)
        grads, sums = _accumulated(grad_fn, model["params"], (mini_batch, mini_prepared), config)
        updates, opt_state = optimizer.update(grads, model["opt_state"], model["params"])
        params = optax.apply_updates(model["params"], updates)
        grad_norm = optax.tree.norm(grads)
        is_finite = jnp.isfinite(sums["loss"]) & jnp.isfinite(grad_norm) & _is_finite_tree(params)
        new = {"params": params, "opt_state": opt_state}
        model = jax.tree.map(lambda n, o: jnp.where(is_finite, n, o), new, model)
        return model, dict(sums, grad_norm=grad_norm, skipped_updates=(~is_finite).astype(float))

    model = state.aux[name]
    if spec.updates_per_step == 1:
        model, sums = one_update(model, 0)
        sums = jax.tree.map(lambda x: x[None], sums)
    else:
        model, sums = jax.lax.scan(one_update, model, order)  # each leaf [U]
    metrics = dict(algorithm.auxiliary_summarize(name, sums))
    metrics["grad_norm"] = jnp.mean(sums["grad_norm"])
    metrics["skipped_updates"] = jnp.sum(sums["skipped_updates"])
    metrics["learning_rate"] = learning_rate_schedule(spec.optimizer)(state.step)
    metrics = {f"{name}/{key}": value for key, value in metrics.items()}
    return state.replace(aux={**state.aux, name: model}), metrics


train_step = jax.jit(train_step_fn, static_argnames="config", donate_argnames="state")
"""`train_step_fn` jitted on the default device(s): ``train_step(state, batch, config=...)``."""


def _replicated_like(shardings: Any) -> jax.sharding.NamedSharding:
    mesh = jax.tree.leaves(shardings)[0].mesh
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def compile_train_step(config: LearnerConfig, state_sharding: Any, rows_sharding: Any) -> Any:
    """`train_step_fn` jitted with declared in/out shardings (metrics replicated, so every
    process can read them): ``fn(state, batch) -> (state, metrics)``, ``state`` donated."""
    return jax.jit(
        functools.partial(train_step_fn, config=config),
        in_shardings=(state_sharding, rows_sharding),
        out_shardings=(state_sharding, _replicated_like(state_sharding)),
        donate_argnums=0,
    )


def compile_reference_logprobs(
    config: LearnerConfig, params_sharding: Any, rows_sharding: Any, base_sharding: Any = None
):
    """`reference_logprobs_fn` jitted: ``fn(reference, batch, base) -> [B, T]`` in
    ``rows_sharding`` (``base``: the LoRA base, or None)."""

    def reference_logprobs(reference, batch, base):
        return reference_logprobs_fn(reference, batch, config, base)

    return jax.jit(
        reference_logprobs,
        in_shardings=(params_sharding, rows_sharding, base_sharding),
        out_shardings=rows_sharding,
    )


def compile_policy_params(lora: Any, dtype: Any, params_sharding: Any) -> Any:
    """`r1jax.models.lora.merge` jitted into the base's shardings: ``fn(base, adapters) ->
    params`` with each target kernel ``W + (alpha / r) A B`` in ``dtype``."""
    return jax.jit(
        functools.partial(lora_lib.merge, lora=lora, dtype=dtype), out_shardings=params_sharding
    )


def compile_init_train_state(config: LearnerConfig, state_sharding: Any) -> Any:
    """`init_train_state` jitted into ``state_sharding``: ``fn(policy) -> TrainState``
    (``policy`` donated: the state's policy reuses it)."""
    return jax.jit(
        functools.partial(init_train_state, config=config),
        out_shardings=state_sharding,
        donate_argnums=0,
    )


class CompiledSteps:
    """The compiled programs of one run on one mesh, one set per `LearnerConfig` (cached).

    `init` creates a `TrainState` in its shardings, `update` runs `train_step_fn` (state
    donated, metrics replicated so every process can read them), `reference` computes
    reference log-probs in the rows' sharding; each runs under ``jax.set_mesh(mesh)`` so the
    model's activation constraints apply. With a 1x1x1 mesh they are the single-device
    programs.

    Args:
      mesh: the device mesh.
      policy_sharding: the params' shardings (`r1jax.models.param_shardings`).
      rows_sharding: the sharding of every `Batch` leaf (rows over the batch axes).
      abstract_state: a (possibly abstract) `TrainState` of the run, for its structure.
    """

    def __init__(self, mesh, policy_sharding: Any, rows_sharding: Any, abstract_state: TrainState):
        self.mesh, self.policy_sharding, self.rows_sharding = mesh, policy_sharding, rows_sharding
        self.state_sharding = state_shardings(abstract_state, policy_sharding)
        self._programs: dict[tuple[str, LearnerConfig], Any] = {}
        self._layout: dict[str, Any] = {}  # batch layout programs (no config)

    def _program(self, kind: str, config: LearnerConfig) -> Any:
        if (kind, config) not in self._programs:
            if kind == "init":
                program = compile_init_train_state(config, self.state_sharding)
            elif kind == "update":
                program = compile_train_step(config, self.state_sharding, self.rows_sharding)
            else:
                # With LoRA the reference is the state's adapter copy (or None) on the base.
                lora = config.lora is not None
                program = compile_reference_logprobs(
                    config,
                    self.state_sharding.reference if lora else self.policy_sharding,
                    self.rows_sharding,
                    self.state_sharding.base if lora else None,
                )
            self._programs[(kind, config)] = program
        return self._programs[(kind, config)]

    def batch_from_rollout(self, rollout: Any) -> Batch:
        """The sampler's device `Rollout` as a `Batch` in the rows' sharding, on the device."""
        if "from_rollout" not in self._layout:
            self._layout["from_rollout"] = jax.jit(
                Batch.from_rollout, out_shardings=self.rows_sharding
            )
        with jax.set_mesh(self.mesh):
            return self._layout["from_rollout"](rollout)

    def select_rows(self, batches: list[Batch], rows: Any) -> Batch:
        """Rows ``rows`` (host ints) of the batches laid end to end, in the rows' sharding."""
        if "select" not in self._layout:

            def select(batches, rows):
                return jax.tree.map(lambda x: x[rows], concat_batches(batches))

            self._layout["select"] = jax.jit(select, out_shardings=self.rows_sharding)
        with jax.set_mesh(self.mesh):
            return self._layout["select"](batches, jnp.asarray(rows, jnp.int32))

    def init(self, policy: Any, config: LearnerConfig, **auxiliary: Any) -> TrainState:
        """A fresh state at step 0 in its shardings; ``policy`` is donated. ``auxiliary``:
        the ``auxiliary=`` / ``key=`` arguments of `init_train_state` (auxiliary models)."""
        with jax.set_mesh(self.mesh):
            return self._program("init", config)(policy, **auxiliary)

    def update(
        self, state: TrainState, batch: Batch, config: LearnerConfig
    ) -> tuple[TrainState, dict[str, jax.Array]]:
        """One update step: ``(new state, replicated metrics)``; ``state`` is donated."""
        with jax.set_mesh(self.mesh):
            return self._program("update", config)(state, batch)

    def reference(
        self, reference: Any, batch: Batch, config: LearnerConfig, base: Any = None
    ) -> jax.Array:
        """``[B, T]`` reference log-probs in the rows' sharding (with LoRA: ``reference`` is
        the state's adapter copy or None, applied to ``base``)."""
        with jax.set_mesh(self.mesh):
            return self._program("reference", config)(reference, batch, base)

    def policy_params(
        self, state: TrainState, config: LearnerConfig, dtype: Any = None, *, merge: Any = None
    ) -> Any:
        """The policy as model params, for the sampler, evaluation and export.

        Without LoRA, ``state.policy`` itself. With LoRA and ``merge`` (None:
        ``lora.merge_for_sampling``; the export passes True), one jitted program merges the adapters into the base, ``W + (alpha / r) A B`` per target
        kernel in ``dtype`` (None: the base's dtype), into the base's shardings: a copy of the
        target kernels that lives while the caller holds it. Otherwise the base with the
        adapter leaves added (`r1jax.models.lora.combine`; no copy, every forward adds the
        low-rank term).
        """
        lora = config.lora
        if lora is None:
            return state.policy
        if not (lora.merge_for_sampling if merge is None else merge):
            return lora_lib.combine(state.base, state.policy, lora)
        key = ("merge", lora, None if dtype is None else jax.numpy.dtype(dtype).name)
        if key not in self._layout:
            self._layout[key] = compile_policy_params(lora, dtype, self.policy_sharding)
        with jax.set_mesh(self.mesh):
            return self._layout[key](state.base, state.policy)
