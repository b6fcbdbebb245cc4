"""`LearnerConfig`: the static (hashable) settings of one compiled update step.

A change of any field recompiles the step, so the trainer builds one per phase and context
stage (`r1jax.train`). The algorithm is a field: a frozen config object of one module of
`r1jax.algorithms` whose methods the generic step calls (see `r1jax.algorithms.base`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import optax

from r1jax.learner.optimizer import OptimizerConfig, make_optimizer
from r1jax.models import ModelConfig
from r1jax.models.lora import LoraConfig
from r1jax.rewards.shaping import RewardConfig
from r1jax.sharding import ShardingRules


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    """Static settings of `r1jax.learner.step.train_step_fn`.

    Attributes:
      model: the policy's `ModelConfig`.
      algorithm: a frozen algorithm config (`r1jax.algorithms`), e.g. a
        `r1jax.algorithms.policy_gradient.PolicyGradient`.
      optimizer: the `OptimizerConfig`.
      rewards: the `RewardConfig` that turns verdicts into reward terms.
      group_size: ``G``, completions per prompt (rows ``p*G:(p+1)*G`` share prompt ``p``).
      temperature: log-probs are taken under ``log_softmax(logits / temperature)`` (the
        sampler's temperature for RL, 1 for supervised steps).
      max_new_tokens: ``T`` of this context stage (length rewards, Dr. GRPO's ``C``).
      minibatches_per_step: optimizer updates per pass; rows are split into this many
        mini-batches (each should hold whole groups for the per-mini-batch denominators).
      micro_batch_size: rows per gradient-accumulation micro-batch (``lax.scan``); ``0`` = a
        whole mini-batch at once.
      logprob_chunk_size: sequence chunk of the chunked log-softmax.
      remat: rematerialise transformer blocks in the backward pass.
      rules: logical sharding rules for the activation constraints inside the model (applied
        when the step runs under ``jax.set_mesh``); None uses the default rules.
      lora: low-rank adapters (`r1jax.models.lora`): the state's policy is the adapters, the
        frozen base sits next to them, and only the adapters are trained; None trains every
        parameter.
    """

    model: ModelConfig
    algorithm: Any
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    rewards: RewardConfig = dataclasses.field(default_factory=RewardConfig)
    group_size: int = 8
    temperature: float = 1.0
    max_new_tokens: int = 256
    minibatches_per_step: int = 1
    micro_batch_size: int = 0
    micro_batch_tokens: int = 0
    length_buckets: int = 4
    logprob_chunk_size: int = 256
    remat: bool = False
    rules: ShardingRules | None = None
    lora: LoraConfig | None = None

    def __post_init__(self):
        for name in ("group_size", "minibatches_per_step", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.micro_batch_size < 0:
            raise ValueError(f"optim.micro_batch_size must be >= 0, got {self.micro_batch_size}")
        if self.micro_batch_tokens < 0:
            raise ValueError(
                f"optim.micro_batch_tokens must be >= 0 (0 = padded row micro-batches), got "
                f"{self.micro_batch_tokens}"
            )
        if self.length_buckets < 1:
            raise ValueError(f"optim.length_buckets must be >= 1, got {self.length_buckets}")
        if self.micro_batch_tokens and getattr(self.algorithm, "loss_couples_rows", False):
            raise ValueError(
                f"optim.micro_batch_tokens={self.micro_batch_tokens} sorts rows by length, "
                f"but this algorithm's loss couples rows of a group "
                f"({type(self.algorithm).__name__}); set optim.micro_batch_tokens=0"
            )
        if self.logprob_chunk_size < 1:
            raise ValueError(
                f"optim.logprob_chunk_size must be positive, got {self.logprob_chunk_size}"
            )

    @property
    def uses_reference(self) -> bool:
        """Whether the step needs reference log-probs (the algorithm's KL term)."""
        return self.algorithm.uses_reference

    @property
    def auxiliary_models(self) -> tuple:
        """The algorithm's second trainable models (`r1jax.learner.auxiliary.AuxiliaryModel`),
        e.g. PPO's critic; ``()`` for most algorithms."""
        return tuple(getattr(self.algorithm, "auxiliary_models", ()))

    @property
    def policy_frozen_steps(self) -> int:
        """Steps at the start of the phase in which only the auxiliary models train (PPO's
        critic warm-up); the policy's schedule starts after them."""
        return int(getattr(self.algorithm, "policy_frozen_steps", 0))

    @property
    def updates_per_step(self) -> int:
        """Optimizer updates per call of the step: passes x mini-batches."""
        return self.algorithm.num_iterations * self.minibatches_per_step

    @property
    def forward_passes_per_token(self) -> int:
        """Forward-pass equivalents per trained token of one step: forward + backward (3) per
        pass over the batch, and the reference's forward when it is used (for MFU)."""
        return 3 * self.algorithm.num_iterations + int(self.uses_reference)

    def make_optimizer(self) -> optax.GradientTransformation:
        """The optax transformation of this config (its schedule advances once per step)."""
        return make_optimizer(self.optimizer, updates_per_step=self.updates_per_step)
