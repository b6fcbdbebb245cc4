"""PPO value (critic) loss with optional value clipping.

``L^V_t = ½ max((V_t − R_t)², (clip(V_t, V^old_t − c, V^old_t + c) − R_t)²)``
[repo:verl/trainer/ppo/core_algos.py ``compute_value_loss``; TinyZero uses ``c = 0.5``]. ORZ's
value loss is the unclipped ``½ (V_t − R_t)²`` (ORZ paper eq. 2): pass ``clip_range=None``.
The return targets ``R_t`` come from ``advantages.gae_advantages``.

Not here: the critic model and its value head (``r1jax.models``), GAE (``advantages``).
"""

import jax
import jax.numpy as jnp


def clipped_value_loss(
    values: jax.typing.ArrayLike,
    old_values: jax.typing.ArrayLike,
    returns: jax.typing.ArrayLike,
    *,
    clip_range: float | None = 0.5,
) -> tuple[jax.Array, jax.Array]:
    """Per-token clipped value loss and an indicator of where the clipped branch is taken.

    Args:
      values: ``[B, T]`` critic values ``V_t`` (differentiated).
      old_values: ``[B, T]`` values at rollout time ``V^old_t``.
      returns: ``[B, T]`` targets ``R_t`` (no gradient).
      clip_range: ``c``; ``None`` gives the unclipped ``½ (V − R)²``.

    Returns:
      ``(loss, clipped)``: ``[B, T]`` unreduced losses and float 0/1 flags where the clipped
      error is the larger one (the verl ``vf_clipfrac``). Reduce with ``aggregation``.

    Example:
      >>> import jax.numpy as jnp
      >>> loss, clipped = clipped_value_loss(
      ...     jnp.array([[2.0, 0.0]]), jnp.array([[0.0, 0.0]]), jnp.array([[0.0, 1.0]]))
      >>> loss, clipped
      (Array([[2. , 0.5]], dtype=float32), Array([[0., 0.]], dtype=float32))
    """
    values = jnp.asarray(values)
    values = values.astype(jnp.promote_types(values.dtype, jnp.float32))
    returns = jax.lax.stop_gradient(jnp.asarray(returns, values.dtype))
    unclipped = jnp.square(values - returns)
    if clip_range is None:
        return 0.5 * unclipped, jnp.zeros_like(unclipped)
    old_values = jnp.asarray(old_values, values.dtype)
    clipped_values = old_values + jnp.clip(values - old_values, -clip_range, clip_range)
    clipped = jnp.square(clipped_values - returns)
    return 0.5 * jnp.maximum(unclipped, clipped), (clipped > unclipped).astype(values.dtype)
