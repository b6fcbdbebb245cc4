"""The one compiled update step of r1jax: rollout + verdicts in, new train state + metrics out.

Lives here: `TrainState` (policy, reference or None, optimizer state, step, non-finite
counters) as a pytree; `UpdateBatch` (one rollout laid out for the learner); `UpdateConfig`
and `OptimizerConfig` (frozen, hashable: the static part of the step, so a change recompiles);
`make_optimizer` (AdamW with warm-up, constant/cosine/linear decay and global-norm clipping);
`update_step`, a single `jax.jit` that donates the state. Inside it, in order:

1. policy log-probs of the completion tokens, with gradients (``token_logprobs``,
   ``target_start = Tp``, the sampler's temperature);
2. reference log-probs under ``stop_gradient`` (skipped when ``kl_coef == 0``);
3. shaped rewards from the verifier's ``is_correct`` / ``is_well_formed`` arrays (cosine length
   reward, soft overlong penalty, n-gram repetition penalty on token ids), all on device;
4. advantages (group-relative, RLOO, or batch-whitened REINFORCE++) over the full batch, with
   a reward-placed KL per row or, for REINFORCE++, per token;
5. the clipped surrogate (token or sequence-level ratio), the KL term and an entropy bonus,
   each reduced with an ``(numerator, denominator)`` aggregate whose denominator is taken over
   the full batch, so ``lax.scan`` over micro-batches gives exactly the full-batch gradient;
6. gradients, global-norm clipping and the optax update, skipped inside the jit (``jnp.where``
   on every leaf) when the loss or a gradient is not finite; the skip is counted in the state;
7. a dict of scalar metrics (left on device: the host fetches it only when it logs).

Supervised fine-tuning (``algorithm="sft"``) runs through the same step: the loss is the
token-mean negative log-likelihood of the completion under its loss mask.

Not here: sampling, verification, data, checkpoints and the host loop (`r1jax.train`); the
per-token losses and advantage estimators themselves (`r1jax.objectives`) and reward shaping
formulas (`r1jax.rewards`), which this step only composes.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from r1jax.models import ModelConfig, token_logprobs
from r1jax.objectives import advantages as advantage_estimators
from r1jax.objectives import aggregation, kl, policy_loss
from r1jax.rewards import length as length_rewards
from r1jax.rewards import repetition as repetition_rewards
from r1jax.sampling import stopping
from r1jax.sampling.rollout import Rollout
from r1jax.sharding import ShardingRules

ALGORITHMS = ("grpo", "dr_grpo", "dapo", "gspo", "reinforce_pp", "rloo", "sft")
ADVANTAGE_ESTIMATORS = ("group", "rloo", "reinforce_pp", "reinforce_pp_baseline")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """AdamW with a learning-rate schedule and global-norm clipping.

    Attributes:
      learning_rate: peak learning rate.
      warmup_steps: linear warm-up from 0 to ``learning_rate`` over this many updates.
      decay: ``"constant"``, ``"cosine"`` or ``"linear"`` after the warm-up.
      total_steps: updates at which the decay reaches ``end_fraction * learning_rate``.
      end_fraction: final learning rate as a fraction of the peak (cosine / linear).
      weight_decay: decoupled weight decay (AdamW).
      b1: Adam first-moment decay.
      b2: Adam second-moment decay.
      eps: Adam epsilon.
      max_grad_norm: clip the global gradient norm to this; ``0`` disables clipping.
    """

    learning_rate: float = 1e-6
    warmup_steps: int = 0
    decay: str = "constant"
    total_steps: int = 1000
    end_fraction: float = 0.0
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    max_grad_norm: float = 1.0

    def __post_init__(self):
        if self.decay not in ("constant", "cosine", "linear"):
            raise ValueError(
                f"optim.decay must be 'constant', 'cosine' or 'linear', got {self.decay!r}"
            )


def learning_rate_schedule(config: OptimizerConfig) -> optax.Schedule:
    """The warm-up + decay schedule of ``config`` as an optax schedule of the update count.

    Example:
      >>> schedule = learning_rate_schedule(OptimizerConfig(learning_rate=1.0, warmup_steps=2))
      >>> [float(schedule(step)) for step in range(4)]
      [0.0, 0.5, 1.0, 1.0]
    """
    peak, warmup = config.learning_rate, config.warmup_steps
    end = peak * config.end_fraction
    decay_steps = max(config.total_steps - warmup, 1)
    if config.decay == "constant":
        after = optax.constant_schedule(peak)
    elif config.decay == "cosine":
        after = optax.cosine_decay_schedule(peak, decay_steps, alpha=config.end_fraction)
    else:
        after = optax.linear_schedule(peak, end, decay_steps)
    if warmup == 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), after], [warmup])


def make_optimizer(
    config: OptimizerConfig, *, updates_per_step: int = 1
) -> optax.GradientTransformation:
    """AdamW under ``learning_rate_schedule(config)``, after global-norm clipping.

    Args:
      config: the optimizer settings.
      updates_per_step: optimizer updates per training step (PPO epochs x mini-batches); the
        schedule advances once per training step, not per update.
    """
    schedule = learning_rate_schedule(config)
    adamw = optax.adamw(
        lambda count: schedule(count // updates_per_step),
        b1=config.b1,
        b2=config.b2,
        eps=config.eps,
        weight_decay=config.weight_decay,
    )
    if config.max_grad_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), adamw)
    return adamw


@dataclasses.dataclass(frozen=True)
class UpdateConfig:
    """Static settings of `update_step`: hashable, so a change recompiles the step.

    Field names follow the config keys they come from (``objective.*``, ``rewards.*``,
    ``optim.*``); only `r1jax.train` builds one from a config.

    Attributes:
      model: the policy's `ModelConfig`.
      optimizer: the `OptimizerConfig`.
      algorithm: one of ``ALGORITHMS``; ``"sft"`` switches the loss to the token-mean NLL.
      group_size: ``G``, completions per prompt (rows ``p*G:(p+1)*G`` share prompt ``p``).
      advantage: one of ``ADVANTAGE_ESTIMATORS`` (see `algorithm_defaults`).
      std: ``"unbiased"``, ``"population"`` or ``"none"`` (no division: Dr. GRPO's centring).
      advantage_eps: added to the group std.
      aggregation: a mode of `r1jax.objectives.aggregation.AGGREGATION_MODES`.
      aggregation_constant: ``C`` of the Dr. GRPO modes; ``0`` means ``max_new_tokens``.
      sequence_level_ratio: GSPO's length-normalised sequence ratio instead of per-token ratios.
      clip_eps_low: ``ε_low`` of the clipped surrogate.
      clip_eps_high: ``ε_high`` (``> clip_eps_low`` is DAPO's clip-higher).
      dual_clip: dual-clip constant ``c`` for negative advantages; ``0`` disables it.
      logratio_clamp: clamp on log ratios before ``exp``.
      kl_coef: ``β``; ``0`` means no reference model at all.
      kl_estimator: ``"k1"``, ``"k2"``, ``"k3"`` or ``"k3+"`` (k3 value, k2 gradient).
      kl_placement: ``"loss"`` (GRPO: ``β·KL`` aggregated like the policy loss) or ``"reward"``
        (``−β·k1(π_old, π_ref)`` folded into the rewards before the advantages: summed over
        the row for the group and RLOO estimators, per token for REINFORCE++, whose returns
        then carry ``−β·Σ_{k≥t} k1_k``).
      entropy_coef: weight of the entropy bonus (subtracted from the loss).
      temperature: sampling temperature; log-probs are taken under ``log_softmax(logits/τ)``.
      max_new_tokens: ``T`` of this context stage (length rewards, Dr. GRPO's ``C``).
      correctness_weight: weight of the verifier's 0/1 correctness.
      format_weight: weight of the 0/1 well-formed term.
      truncated_is_incorrect: a completion that hit the length limit counts as wrong and
        malformed whatever the verifier said (Dr. GRPO, ORZ).
      cosine_enabled: replace correctness with the cosine length-scaled reward (§4.1);
        ``cosine_*`` are its end points, exceed value, margin and ``L_max`` (0: ``T``).
      overlong_enabled: add DAPO's soft overlong penalty over the last ``overlong_cache_length``
        tokens, scaled by ``overlong_penalty_factor``.
      repetition_enabled: add the n-gram repetition penalty (``repetition_ngram_size``,
        ``repetition_penalty`` per token of a repeated n-gram, or only at its start with
        ``repetition_only_start``; summed over the completion into the sequence reward).
      mask_truncated: DAPO's overlong filtering (truncated completions get no loss; their
        rewards, reward-KL penalty and returns still enter the baselines and whitening).
      num_iterations: ``μ``, passes over the rollout (``π_old`` = the sampler's log-probs).
      minibatches_per_step: optimizer updates per pass; rows are split into this many
        mini-batches (each should hold whole groups for the per-mini-batch denominators).
      micro_batch_size: rows per gradient-accumulation micro-batch (``lax.scan``); ``0`` = a
        whole mini-batch at once.
      logprob_chunk_size: sequence chunk of the chunked log-softmax.
      remat: rematerialise transformer blocks in the backward pass.
      rules: logical sharding rules for the activation constraints inside the model (applied
        when the step runs under ``jax.set_mesh``); None uses the default rules.
    """

    model: ModelConfig
    optimizer: OptimizerConfig = OptimizerConfig()
    algorithm: str = "grpo"
    group_size: int = 8
    advantage: str = "group"
    std: str = "unbiased"
    advantage_eps: float = 1e-6
    aggregation: str = "seq-mean-token-mean"
    aggregation_constant: int = 0
    sequence_level_ratio: bool = False
    clip_eps_low: float = 0.2
    clip_eps_high: float = 0.2
    dual_clip: float = 0.0
    logratio_clamp: float = 20.0
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    kl_placement: str = "loss"
    entropy_coef: float = 0.0
    temperature: float = 1.0
    max_new_tokens: int = 256
    correctness_weight: float = 1.0
    format_weight: float = 0.0
    truncated_is_incorrect: bool = True
    cosine_enabled: bool = False
    cosine_max_correct: float = 2.0
    cosine_min_correct: float = 1.0
    cosine_max_wrong: float = 0.0
    cosine_min_wrong: float = -10.0
    cosine_exceed: float = -10.0
    cosine_margin: int = 16
    cosine_max_length: int = 0
    overlong_enabled: bool = False
    overlong_cache_length: int = 256
    overlong_penalty_factor: float = 1.0
    repetition_enabled: bool = False
    repetition_ngram_size: int = 40
    repetition_penalty: float = -0.05
    repetition_only_start: bool = False
    mask_truncated: bool = False
    num_iterations: int = 1
    minibatches_per_step: int = 1
    micro_batch_size: int = 0
    logprob_chunk_size: int = 256
    remat: bool = False
    rules: ShardingRules | None = None

    def __post_init__(self):
        def check(name, value, allowed):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")

        check("objective.algorithm", self.algorithm, ALGORITHMS)
        check("advantage estimator", self.advantage, ADVANTAGE_ESTIMATORS)
        check("objective.std", self.std, ("unbiased", "population", "none"))
        check("objective.aggregation", self.aggregation, aggregation.AGGREGATION_MODES)
        check("objective.kl_estimator", self.kl_estimator, ("k1", "k2", "k3", "k3+"))
        check("objective.kl_placement", self.kl_placement, ("loss", "reward"))
        for name in ("group_size", "num_iterations", "minibatches_per_step", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.micro_batch_size < 0:
            raise ValueError(f"optim.micro_batch_size must be >= 0, got {self.micro_batch_size}")
        if self.logprob_chunk_size < 1:
            raise ValueError(
                f"optim.logprob_chunk_size must be positive, got {self.logprob_chunk_size}"
            )

    @property
    def uses_reference(self) -> bool:
        """Whether the step needs reference log-probs (a KL term with a non-zero weight)."""
        return self.kl_coef != 0 and self.algorithm != "sft"

    @property
    def updates_per_step(self) -> int:
        """Optimizer updates per call of `update_step`."""
        return self.num_iterations * self.minibatches_per_step


def algorithm_defaults(algorithm: str) -> dict[str, Any]:
    """The `UpdateConfig` values that define each algorithm (ALGORITHMS.md §2-3).

    - ``grpo``: group mean/std advantages, per-sequence token means, k3 KL in the loss
      (DeepSeekMath, R1).
    - ``dr_grpo``: group-centred advantages without std, token sums over a constant ``C``, no KL.
    - ``dapo``: clip-higher (0.2 / 0.28), token-mean loss, soft overlong penalty, no KL; dynamic
      sampling is the host loop's ``objective.dynamic_sampling``.
    - ``gspo``: sequence-level length-normalised ratio with a narrow clip (3e-4 / 4e-4,
      arXiv:2507.18071 §5.1), per-sequence mean.
    - ``reinforce_pp``: Logic-RL's REINFORCE++: batch-whitened returns, token-mean loss, k3 KL
      in the loss (§3.4).
    - ``rloo``: leave-one-out baseline, token-mean loss (§3.5).
    - ``sft``: token-mean NLL.

    Example:
      >>> algorithm_defaults("dapo")["clip_eps_high"]
      0.28
    """
    table = {
        "grpo": dict(advantage="group", aggregation="seq-mean-token-mean"),
        "dr_grpo": dict(
            advantage="group", std="none", aggregation="seq-mean-token-sum-norm", kl_coef=0.0
        ),
        "dapo": dict(
            advantage="group",
            aggregation="token-mean",
            clip_eps_low=0.2,
            clip_eps_high=0.28,
            overlong_enabled=True,
            kl_coef=0.0,
        ),
        "gspo": dict(
            advantage="group",
            aggregation="seq-mean-token-mean",
            sequence_level_ratio=True,
            clip_eps_low=3e-4,
            clip_eps_high=4e-4,
        ),
        "reinforce_pp": dict(advantage="reinforce_pp", aggregation="token-mean"),
        "rloo": dict(advantage="rloo", aggregation="token-mean"),
        "sft": dict(aggregation="token-mean", kl_coef=0.0),
    }
    if algorithm not in table:
        raise ValueError(f"objective.algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    return dict(table[algorithm], algorithm=algorithm)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class UpdateBatch:
    """One rollout laid out for the learner (``B = P*G`` rows, group rows adjacent).

    Attributes:
      prompt_tokens: ``[B, Tp]`` int32 prompt ids, left-padded.
      prompt_mask: ``[B, Tp]`` bool, True on real prompt tokens.
      completion_tokens: ``[B, T]`` int32 sampled (or, for SFT, target) ids.
      completion_mask: ``[B, T]`` bool, True on generated tokens up to and including the stop
        (for SFT: the loss mask).
      old_logprobs: ``[B, T]`` float32 log-probs under the sampling policy (``π_old``).
      is_correct: ``[B]`` bool verdicts.
      is_well_formed: ``[B]`` bool verdicts (an answer was found where the task expects it).
      is_truncated: ``[B]`` bool, True where the completion hit the length limit.
      reference_logprobs: optional ``[B, T]`` reference log-probs computed ahead of the step
        (`reference_logprobs`, dispatched while the host verifies); None computes them inside.
    """

    prompt_tokens: jax.Array
    prompt_mask: jax.Array
    completion_tokens: jax.Array
    completion_mask: jax.Array
    old_logprobs: jax.Array
    is_correct: jax.Array
    is_well_formed: jax.Array
    is_truncated: jax.Array
    reference_logprobs: jax.Array | None = None

    @classmethod
    def from_rollout(
        cls,
        rollout: Rollout,
        is_correct: Any = None,
        is_well_formed: Any = None,
        *,
        reference_logprobs: jax.Array | None = None,
        xp: Any = jnp,
    ) -> UpdateBatch:
        """The learner's view of a sampler `Rollout` and the verifier's ``[B]`` verdicts.

        Verdicts left as None are all False (e.g. to compute reference log-probs before the
        verifiers answer). ``xp=np`` builds host arrays (to place with explicit shardings,
        e.g. `r1jax.distributed.put_rows`); the default builds device arrays.
        """
        rows, width = rollout.prompt_tokens.shape
        prompt_mask = xp.arange(width)[None, :] >= (
            width - xp.asarray(rollout.prompt_lengths)[:, None]
        )  # [B, Tp]
        false = xp.zeros((rows,), bool)
        return cls(
            prompt_tokens=xp.asarray(rollout.prompt_tokens, xp.int32),
            prompt_mask=prompt_mask,
            completion_tokens=xp.asarray(rollout.tokens, xp.int32),
            completion_mask=xp.asarray(rollout.mask).astype(bool),
            old_logprobs=xp.asarray(rollout.logprobs, xp.float32),
            is_correct=false if is_correct is None else xp.asarray(is_correct, bool),
            is_well_formed=false if is_well_formed is None else xp.asarray(is_well_formed, bool),
            is_truncated=xp.asarray(rollout.finish_reason) == stopping.FINISH_LENGTH,
            reference_logprobs=reference_logprobs,
        )

    @classmethod
    def from_sft(cls, tokens: Any, loss_mask: Any, lengths: Any, *, xp: Any = jnp) -> UpdateBatch:
        """A supervised batch (right-padded ``[B, S]`` tokens and loss mask) in this layout.

        The first token plays the prompt and the other ``S - 1`` the completion, so the
        learner scores ``tokens[:, 1:]`` under ``loss_mask[:, 1:]``; verdict fields are unused.
        ``xp=np`` builds host arrays (see `from_rollout`).
        """
        tokens = xp.asarray(tokens, xp.int32)
        rows, width = tokens.shape
        valid = xp.arange(width)[None, :] < xp.asarray(lengths)[:, None]  # [B, S]
        mask = xp.asarray(loss_mask).astype(bool) & valid
        false = xp.zeros((rows,), bool)
        return cls(
            prompt_tokens=tokens[:, :1],
            prompt_mask=xp.ones((rows, 1), bool),
            completion_tokens=tokens[:, 1:],
            completion_mask=mask[:, 1:],
            old_logprobs=xp.zeros((rows, width - 1), xp.float32),
            is_correct=false,
            is_well_formed=false,
            is_truncated=false,
        )


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything the update step changes, as one pytree (checkpointed as a whole).

    Attributes:
      policy: the policy params pytree.
      reference: the frozen reference params (same pytree type), or None without a KL term.
      opt_state: the optax state of the policy.
      step: int32 scalar, number of `update_step` calls.
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


def init_train_state(policy: Any, config: UpdateConfig, *, reference: Any = None) -> TrainState:
    """A fresh `TrainState` at step 0 for ``policy``.

    Args:
      policy: the initial policy params.
      config: the update config; it decides whether a reference is kept (``kl_coef != 0``).
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
        opt_state=make_optimizer(config.optimizer, updates_per_step=config.updates_per_step).init(
            policy
        ),
        step=jnp.zeros((), jnp.int32),
        nonfinite_streak=jnp.zeros((), jnp.int32),
        nonfinite_total=jnp.zeros((), jnp.int32),
    )


# ---------------------------------------------------------------------------------------------
# Inside the step.
# ---------------------------------------------------------------------------------------------


def _sequence_inputs(batch: UpdateBatch) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Prompt and completion joined: tokens, positions and key mask, each ``[B, S]``.

    Positions count real tokens only (left padding does not advance them), the sampler's
    convention: the first completion token sits at position ``prompt_length``.
    """
    tokens = jnp.concatenate([batch.prompt_tokens, batch.completion_tokens], axis=1)  # [B, S]
    mask = jnp.concatenate(
        [batch.prompt_mask.astype(bool), jnp.ones(batch.completion_tokens.shape, bool)], axis=1
    )  # [B, S]
    positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0).astype(jnp.int32)  # [B, S]
    return tokens.astype(jnp.int32), positions, mask


def _completion_logprobs(
    params: Any, batch: UpdateBatch, config: UpdateConfig, *, with_entropy: bool
) -> tuple[jax.Array, jax.Array | None]:
    """``[B, T]`` log-probs of the completion tokens (and entropies when asked)."""
    tokens, positions, mask = _sequence_inputs(batch)
    out = token_logprobs(
        params,
        tokens,
        positions,
        config.model,
        attention_mask=mask,
        target_start=batch.prompt_tokens.shape[1],
        temperature=1.0 if config.algorithm == "sft" else config.temperature,
        chunk_size=config.logprob_chunk_size,
        remat=config.remat,
        return_entropy=with_entropy,
        rules=config.rules,
    )
    return out if with_entropy else (out, None)


def _rows_in_chunks(fn: Any, batch: UpdateBatch, rows_per_chunk: int) -> jax.Array:
    """``fn(batch_chunk) -> [b, ...]`` over chunks of rows with ``lax.map``; ``[B, ...]``."""
    rows = batch.completion_tokens.shape[0]
    if rows_per_chunk <= 0 or rows_per_chunk >= rows or rows % rows_per_chunk:
        return fn(batch)
    chunks = _split(batch, rows // rows_per_chunk)
    out = jax.lax.map(fn, chunks)  # [n, b, ...]
    return out.reshape(rows, *out.shape[2:])


def reference_logprobs_fn(reference: Any, batch: UpdateBatch, config: UpdateConfig) -> jax.Array:
    """``[B, T]`` reference log-probs of the completions (no gradient), in micro-batches."""

    def score(chunk):
        return _completion_logprobs(reference, chunk, config, with_entropy=False)[0]

    return jax.lax.stop_gradient(_rows_in_chunks(score, batch, config.micro_batch_size))


reference_logprobs = jax.jit(reference_logprobs_fn, static_argnames="config")


def shaped_rewards(
    batch: UpdateBatch, config: UpdateConfig, *, reward_kl: jax.Array | None = None
) -> dict[str, jax.Array]:
    """Per-row reward terms ``[B]`` from the verdicts and token ids; ``"total"`` is their sum.

    Args:
      batch: the rollout (verdicts, completion tokens and mask, truncation flags).
      config: reward settings.
      reward_kl: ``[B]`` ``k1(π_old, π_ref)`` summed over each row's sampled tokens when the
        KL sits in the reward (the ``"kl"`` term is ``−β`` times it).

    Returns:
      A dict of ``[B]`` float32 arrays: ``"correctness"`` (cosine-shaped when enabled),
      ``"format"``, ``"overlong"``, ``"repetition"`` and ``"kl"`` when active, and ``"total"``.
    """
    lengths = jnp.sum(batch.completion_mask, axis=-1).astype(jnp.int32)  # [B]
    max_length = config.max_new_tokens
    correct = batch.is_correct.astype(bool)
    well_formed = batch.is_well_formed.astype(bool) | correct
    if config.truncated_is_incorrect:
        correct = correct & ~batch.is_truncated
        well_formed = well_formed & ~batch.is_truncated
    terms = {}
    if config.cosine_enabled:
        terms["correctness"] = config.correctness_weight * length_rewards.cosine_length_reward(
            correct,
            lengths,
            max_length=config.cosine_max_length or max_length,
            r0_correct=config.cosine_max_correct,
            rL_correct=config.cosine_min_correct,
            r0_wrong=config.cosine_min_wrong,
            rL_wrong=config.cosine_max_wrong,
            r_exceed=config.cosine_exceed,
            exceed_margin=config.cosine_margin,
        )
    else:
        terms["correctness"] = config.correctness_weight * correct.astype(jnp.float32)
    if config.format_weight:
        terms["format"] = config.format_weight * well_formed.astype(jnp.float32)
    if config.overlong_enabled:
        terms["overlong"] = length_rewards.overlong_penalty(
            lengths,
            max_length=max_length,
            cache_length=min(config.overlong_cache_length, max_length),
            penalty_factor=config.overlong_penalty_factor,
        )
    if config.repetition_enabled:
        per_token = repetition_rewards.repetition_penalty(
            batch.completion_tokens,
            lengths,
            ngram_size=config.repetition_ngram_size,
            penalty=config.repetition_penalty,
            only_start=config.repetition_only_start,
        )  # [B, T]
        terms["repetition"] = jnp.sum(per_token, axis=-1)  # [B]
    if reward_kl is not None:
        terms["kl"] = -config.kl_coef * reward_kl
    terms["total"] = sum(terms.values()).astype(jnp.float32)
    return terms


def compute_advantages(
    rewards: jax.Array,
    completion_mask: jax.Array,
    config: UpdateConfig,
    *,
    token_kl: jax.Array | None = None,
) -> jax.Array:
    """``[B, T]`` advantages from ``[B]`` rewards, over the full batch (before any split).

    Args:
      rewards: ``[B]`` outcome rewards, without any KL penalty.
      completion_mask: ``[B, T]`` the tokens whose returns and whitening statistics count.
      config: the estimator (``config.advantage``) and ``β = config.kl_coef``.
      token_kl: ``[B, T]`` ``k1(π_old, π_ref)`` per sampled token (zero at padding) when the KL
        sits in the reward, else None. The outcome estimators (group, RLOO) take the row reward
        ``R − β·Σ_t k1_t``; REINFORCE++ takes the token rewards ``1[t = last]·R − β·k1_t``, so
        the return ``G_t`` carries only the KL of tokens ``k ≥ t`` (ALGORITHMS.md §3.3, verl).

    Returns:
      ``[B, T]`` advantages, zero outside ``completion_mask``.
    """
    mask = completion_mask.astype(bool)
    if config.advantage in ("reinforce_pp", "reinforce_pp_baseline"):
        baseline = config.advantage == "reinforce_pp_baseline"
        token_advantages, _ = advantage_estimators.reinforce_pp_advantages(
            rewards,
            mask,
            kl=token_kl,
            kl_coef=config.kl_coef if token_kl is not None else 0.0,
            group_size=config.group_size if baseline else None,
        )  # [B, T]
        return token_advantages
    total_rewards = rewards
    if token_kl is not None:
        total_rewards = rewards + -config.kl_coef * jnp.sum(token_kl, axis=-1)  # [B]
    if config.advantage == "group":
        per_row = advantage_estimators.group_relative_advantages(
            total_rewards,
            group_size=config.group_size,
            scale_by_std=config.std != "none",
            unbiased_std=config.std == "unbiased",
            eps=config.advantage_eps,
        )  # [B]
    else:
        per_row = advantage_estimators.rloo_advantages(total_rewards, group_size=config.group_size)
    return jnp.where(mask, per_row[:, None], 0.0)  # [B, T]


def _aggregate(values: jax.Array, mask: jax.Array, config: UpdateConfig) -> aggregation.Aggregate:
    return aggregation.aggregate(
        values,
        mask,
        mode=config.aggregation,
        max_length=config.aggregation_constant or config.max_new_tokens,
    )


def _micro_batch_loss(
    policy: Any,
    micro: tuple[UpdateBatch, jax.Array, jax.Array],
    reference: Any,
    denominator: jax.Array,
    config: UpdateConfig,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """One micro-batch's loss, already over the mini-batch denominator, and its metric sums.

    Every entry of the returned sums adds up over micro-batches.
    """
    batch, advantages, loss_mask = micro
    logprobs, entropy = _completion_logprobs(policy, batch, config, with_entropy=True)
    sums = {}
    if config.algorithm == "sft":
        nll = -logprobs  # [B, T]
        loss = _aggregate(nll, loss_mask, config).numerator / denominator
        sums["nll"] = jnp.sum(jnp.where(loss_mask, nll, 0.0))
    else:
        if config.sequence_level_ratio:
            surrogate = policy_loss.gspo_surrogate_loss(
                logprobs,
                batch.old_logprobs,
                advantages,
                loss_mask,
                eps_low=config.clip_eps_low,
                eps_high=config.clip_eps_high,
                log_ratio_clip=config.logratio_clamp,
            )
        else:
            surrogate = policy_loss.clipped_surrogate_loss(
                logprobs,
                batch.old_logprobs,
                advantages,
                eps_low=config.clip_eps_low,
                eps_high=config.clip_eps_high,
                dual_clip=config.dual_clip or None,
                log_ratio_clip=config.logratio_clamp,
            )
        pg_numerator = _aggregate(surrogate.loss, loss_mask, config).numerator
        loss = pg_numerator / denominator
        clipped = surrogate.clipped_low + surrogate.clipped_high + surrogate.clipped_dual > 0
        sums["pg_loss"] = jax.lax.stop_gradient(pg_numerator / denominator)
        sums["clipped_tokens"] = jnp.sum(loss_mask & clipped)
        log_ratio = jnp.where(loss_mask, logprobs - batch.old_logprobs, 0.0)  # [B, T]
        sums["abs_log_ratio"] = jnp.sum(jnp.abs(log_ratio))
        if config.uses_reference and config.kl_placement == "loss":
            if batch.reference_logprobs is not None:
                ref = batch.reference_logprobs
            else:
                ref = _completion_logprobs(reference, batch, config, with_entropy=False)[0]
            kl_per_token = kl.kl_penalty(
                logprobs, jax.lax.stop_gradient(ref), estimator=config.kl_estimator
            )  # [B, T]
            kl_numerator = _aggregate(kl_per_token, loss_mask, config).numerator
            loss = loss + config.kl_coef * kl_numerator / denominator
            sums["kl"] = jnp.sum(jnp.where(loss_mask, jax.lax.stop_gradient(kl_per_token), 0.0))
    if config.entropy_coef:
        entropy_numerator = _aggregate(entropy, loss_mask, config).numerator
        loss = loss - config.entropy_coef * entropy_numerator / denominator
    sums["entropy"] = jnp.sum(jnp.where(loss_mask, jax.lax.stop_gradient(entropy), 0.0))
    sums["loss"] = jax.lax.stop_gradient(loss)
    sums["tokens"] = jnp.sum(loss_mask).astype(jnp.float32)
    return loss, sums


def _split(tree: Any, parts: int) -> Any:
    """Reshapes every ``[B, ...]`` leaf to ``[parts, B/parts, ...]``."""

    def split(x):
        if x.shape[0] % parts:
            raise ValueError(f"batch of {x.shape[0]} rows does not split into {parts} parts")
        return x.reshape(parts, x.shape[0] // parts, *x.shape[1:])

    return jax.tree.map(split, tree)


def _is_finite_tree(tree: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _gradients(
    policy: Any, minibatch: tuple, reference: Any, config: UpdateConfig
) -> tuple[Any, dict[str, jax.Array]]:
    """Gradients and metric sums of one mini-batch, accumulated exactly over micro-batches."""
    loss_mask = minibatch[2]
    denominator = _aggregate(jnp.zeros(loss_mask.shape, jnp.float32), loss_mask, config).denominator
    grad_fn = jax.grad(functools.partial(_micro_batch_loss, config=config), has_aux=True)
    rows = loss_mask.shape[0]
    micro_rows = config.micro_batch_size
    if micro_rows <= 0 or micro_rows >= rows:
        return grad_fn(policy, minibatch, reference, denominator)
    if rows % micro_rows:
        raise ValueError(
            f"optim.micro_batch_size={micro_rows} does not divide the {rows}-row mini-batch"
        )
    micro_batches = _split(minibatch, rows // micro_rows)

    def accumulate(carry, micro):
        grads, sums = grad_fn(policy, micro, reference, denominator)
        return jax.tree.map(jnp.add, carry, (grads, sums)), None

    first = jax.tree.map(lambda x: x[0], micro_batches)
    shapes = jax.eval_shape(grad_fn, policy, first, reference, denominator)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    (grads, sums), _ = jax.lax.scan(accumulate, zeros, micro_batches)
    return grads, sums


def _optimizer_update(
    state: TrainState, minibatch: tuple, config: UpdateConfig
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer update on one mini-batch; skipped (and counted) when not finite."""
    grads, sums = _gradients(state.policy, minibatch, state.reference, config)
    optimizer = make_optimizer(config.optimizer, updates_per_step=config.updates_per_step)
    updates, new_opt_state = optimizer.update(grads, state.opt_state, state.policy)
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


def update_step_fn(
    state: TrainState, batch: UpdateBatch, config: UpdateConfig
) -> tuple[TrainState, dict[str, jax.Array]]:
    """The body of `update_step` (see the module docstring for the order of work).

    Args:
      state: the current `TrainState` (donated by the jitted wrapper).
      batch: the rollout, ``B`` rows.
      config: the static `UpdateConfig`.

    Returns:
      ``(new_state, metrics)``: the state after ``num_iterations * minibatches_per_step``
      optimizer updates (an update with a non-finite loss or gradient leaves params and
      optimizer state unchanged and is counted), and a dict of scalar float32 metrics.
    """
    loss_mask = batch.completion_mask.astype(bool)  # [B, T]
    if config.mask_truncated and config.algorithm != "sft":
        loss_mask = loss_mask & ~batch.is_truncated[:, None]
    metrics = {}
    if config.algorithm == "sft":
        advantages = jnp.zeros(loss_mask.shape, jnp.float32)
    else:
        # Overlong filtering (mask_truncated) takes truncated rows out of the loss only: their
        # rewards, their reward-KL penalty over every sampled token and their returns stay in
        # the group baselines and the REINFORCE++ whitening, as in an unfiltered batch. (The
        # penalty is about the tokens sampled; dropping it, or the rows, would move the
        # baseline the other rows are measured against.)
        sampled = batch.completion_mask.astype(bool)  # [B, T]
        token_kl = None
        if config.uses_reference and config.kl_placement == "reward":
            ref = batch.reference_logprobs
            if ref is None:
                ref = reference_logprobs_fn(state.reference, batch, config)
            k1 = kl.kl_penalty(batch.old_logprobs, ref, estimator="k1")  # [B, T]
            token_kl = jnp.where(sampled, k1, 0.0)  # [B, T]
        reward_kl = None if token_kl is None else jnp.sum(token_kl, axis=-1)  # [B]
        terms = shaped_rewards(batch, config, reward_kl=reward_kl)
        outcome = sum(value for name, value in terms.items() if name not in ("kl", "total"))
        advantages = compute_advantages(outcome, sampled, config, token_kl=token_kl)  # [B, T]
        advantages = jnp.where(loss_mask, advantages, 0.0)  # [B, T]
        for name, value in terms.items():
            metrics[f"reward/{name}"] = jnp.mean(value)
            metrics[f"reward/{name}_std"] = jnp.std(value)
        grouped = terms["total"].reshape(-1, config.group_size)  # [P, G]
        metrics["reward/equal_group_fraction"] = jnp.mean(
            jnp.all(grouped == grouped[:, :1], axis=-1).astype(jnp.float32)
        )
        metrics["advantage/abs_mean"] = aggregation.masked_mean(jnp.abs(advantages), loss_mask)

    minibatches = _split((batch, advantages, loss_mask), config.minibatches_per_step)
    order = jnp.tile(jnp.arange(config.minibatches_per_step), config.num_iterations)

    def one_update(state, index):
        minibatch = jax.tree.map(lambda x: x[index], minibatches)
        return _optimizer_update(state, minibatch, config)

    if config.updates_per_step == 1:
        state, sums = one_update(state, 0)
        sums = jax.tree.map(lambda x: x[None], sums)
    else:
        state, sums = jax.lax.scan(one_update, state, order)  # each leaf [U]
    state = state.replace(step=state.step + 1)

    tokens = jnp.maximum(jnp.sum(sums["tokens"]), 1.0)
    metrics["loss"] = jnp.mean(sums["loss"])
    metrics["grad_norm"] = jnp.mean(sums["grad_norm"])
    metrics["skipped_updates"] = jnp.sum(sums["skipped_updates"])
    metrics["nonfinite_streak"] = state.nonfinite_streak
    applied = (state.step - 1) * config.updates_per_step - state.nonfinite_total
    metrics["learning_rate"] = learning_rate_schedule(config.optimizer)(
        jnp.maximum(applied, 0) // config.updates_per_step
    )
    for name in ("entropy", "nll", "kl", "abs_log_ratio"):
        if name in sums:
            metrics[name] = jnp.sum(sums[name]) / tokens
    if "pg_loss" in sums:
        metrics["pg_loss"] = jnp.mean(sums["pg_loss"])
        metrics["clip_fraction"] = jnp.sum(sums["clipped_tokens"]) / tokens
    metrics["loss_tokens"] = jnp.sum(loss_mask).astype(jnp.float32)
    return state, {name: jnp.asarray(value, jnp.float32) for name, value in metrics.items()}


update_step = jax.jit(update_step_fn, static_argnames="config", donate_argnames="state")


def _replicated_like(shardings: Any) -> jax.sharding.NamedSharding:
    mesh = jax.tree.leaves(shardings)[0].mesh
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def compile_update_step(config: UpdateConfig, state_sharding: Any, batch_sharding: Any) -> Any:
    """`update_step_fn` jitted with declared in/out shardings (replicated metrics).

    The metrics are replicated on every device, so every process can read them.

    Args:
      config: the static `UpdateConfig` (bound here, not an argument of the result).
      state_sharding: a `TrainState` of shardings (`state_shardings`).
      batch_sharding: one sharding for every batch leaf, or an `UpdateBatch` of them.

    Returns:
      ``fn(state, batch) -> (state, metrics)`` with ``state`` donated.
    """
    return jax.jit(
        functools.partial(update_step_fn, config=config),
        in_shardings=(state_sharding, batch_sharding),
        out_shardings=(state_sharding, _replicated_like(state_sharding)),
        donate_argnums=0,
    )


def compile_reference_logprobs(config: UpdateConfig, params_sharding: Any, rows_sharding: Any):
    """`reference_logprobs_fn` jitted with declared shardings: ``fn(reference, batch) -> [B, T]``.

    The result has ``rows_sharding``, so it can go into the batch of `compile_update_step`.

    Args:
      config: the static `UpdateConfig`.
      params_sharding: the reference params' shardings.
      rows_sharding: one sharding for every batch leaf (and the result).
    """
    return jax.jit(
        functools.partial(reference_logprobs_fn, config=config),
        in_shardings=(params_sharding, rows_sharding),
        out_shardings=rows_sharding,
    )


def compile_init_train_state(config: UpdateConfig, state_sharding: Any):
    """`init_train_state` jitted so the state is created in ``state_sharding``.

    Returns:
      ``fn(policy) -> TrainState``; ``policy`` is donated (the state's policy reuses it).
    """
    return jax.jit(
        functools.partial(init_train_state, config=config),
        out_shardings=state_sharding,
        donate_argnums=0,
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
    leaves = jax.tree.leaves(policy_sharding)
    mesh = leaves[0].mesh
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


class CompiledSteps:
    """The compiled programs of one run on one mesh, one set per `UpdateConfig` (cached).

    `init` creates a `TrainState` in its shardings, `update` runs `update_step_fn` (state
    donated), `reference` computes reference log-probs; each runs under ``jax.set_mesh(mesh)``
    so the model's activation constraints apply. With a 1x1x1 mesh they are the single-device
    programs.

    Args:
      mesh: the device mesh.
      policy_sharding: the params' shardings (`r1jax.models.param_shardings`).
      rows_sharding: the sharding of every `UpdateBatch` leaf (rows over the batch axes).
      abstract_state: a (possibly abstract) `TrainState` of the run, for its structure.
    """

    def __init__(self, mesh, policy_sharding: Any, rows_sharding: Any, abstract_state: TrainState):
        self.mesh, self.policy_sharding, self.rows_sharding = mesh, policy_sharding, rows_sharding
        self.state_sharding = state_shardings(abstract_state, policy_sharding)
        self._programs: dict[tuple[str, UpdateConfig], Any] = {}

    def _program(self, kind: str, config: UpdateConfig) -> Any:
        if (kind, config) not in self._programs:
            if kind == "init":
                program = compile_init_train_state(config, self.state_sharding)
            elif kind == "update":
                program = compile_update_step(config, self.state_sharding, self.rows_sharding)
            else:
                program = compile_reference_logprobs(
                    config, self.policy_sharding, self.rows_sharding
                )
            self._programs[(kind, config)] = program
        return self._programs[(kind, config)]

    def init(self, policy: Any, config: UpdateConfig) -> TrainState:
        """A fresh state at step 0 in its shardings; ``policy`` is donated."""
        with jax.set_mesh(self.mesh):
            return self._program("init", config)(policy)

    def update(
        self, state: TrainState, batch: UpdateBatch, config: UpdateConfig
    ) -> tuple[TrainState, dict[str, jax.Array]]:
        """One update step: ``(new state, replicated metrics)``; ``state`` is donated."""
        with jax.set_mesh(self.mesh):
            return self._program("update", config)(state, batch)

    def reference(self, reference: Any, batch: UpdateBatch, config: UpdateConfig) -> jax.Array:
        """``[B, T]`` reference log-probs in the rows' sharding."""
        with jax.set_mesh(self.mesh):
            return self._program("reference", config)(reference, batch)
