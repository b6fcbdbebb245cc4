"""The learner's optimizer: AdamW with warm-up, a constant / cosine / linear decay and
global-norm clipping, built from a frozen (hashable) `OptimizerConfig`.

Not here: which params it updates (`r1jax.learner.state`), when it runs (`r1jax.learner.step`).
"""

from __future__ import annotations

import dataclasses

import optax


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
