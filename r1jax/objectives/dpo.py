"""Pairwise preference loss: DPO with label smoothing, for iterative (online) DPO.

With ``h = [log π(y_w) − log π_ref(y_w)] − [log π(y_l) − log π_ref(y_l)]`` over whole
completions (sums of token log-probs), the sigmoid loss with label smoothing ``α`` is

    L = −(1 − α) log σ(β h) − α log σ(−β h)

(DPO, arXiv:2305.18290; conservative DPO smoothing as in TRL's ``sigmoid`` loss). Online-DPO-R1
uses ``α = 0.1`` and TRL's default ``β = 0.1`` (the β is not stated in the recipe's text we read);
r1jax defaults to ``α = 0`` (plain DPO), pass ``label_smoothing=0.1`` for that recipe.

Not here: building chosen/rejected pairs from rewards (the trainer's data path), per-token
log-probs (``r1jax.models``).
"""

import jax
import jax.numpy as jnp


def sequence_logprobs(
    logprobs: jax.typing.ArrayLike, completion_mask: jax.typing.ArrayLike
) -> jax.Array:
    """Log-probability of each whole completion: ``Σ_t m_t log π(o_t)``.

    Args:
      logprobs: ``[B, T]`` per-token log-probs.
      completion_mask: ``[B, T]``.

    Returns:
      ``[B]`` sums, float32 or wider; 0 for a fully masked row.

    Example:
      >>> import jax.numpy as jnp
      >>> sequence_logprobs(jnp.array([[-1.0, -2.0, -9.0]]), jnp.array([[1, 1, 0]]))
      Array([-3.], dtype=float32)
    """
    logprobs = jnp.asarray(logprobs)
    logprobs = logprobs.astype(jnp.promote_types(logprobs.dtype, jnp.float32))
    mask = jnp.asarray(completion_mask).astype(bool)
    return jnp.sum(jnp.where(mask, logprobs, 0.0), axis=-1)


def dpo_loss(
    chosen_logprobs: jax.typing.ArrayLike,
    rejected_logprobs: jax.typing.ArrayLike,
    ref_chosen_logprobs: jax.typing.ArrayLike,
    ref_rejected_logprobs: jax.typing.ArrayLike,
    *,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> jax.Array:
    """Per-pair DPO sigmoid loss ``−(1 − α) log σ(β h) − α log σ(−β h)``.

    Args:
      chosen_logprobs: ``[N]`` sequence log-probs of the preferred completions under the policy.
      rejected_logprobs: ``[N]`` of the rejected completions under the policy.
      ref_chosen_logprobs: ``[N]`` of the preferred completions under the reference.
      ref_rejected_logprobs: ``[N]`` of the rejected completions under the reference.
      beta: ``β`` (TRL default 0.1).
      label_smoothing: ``α`` in ``[0, 0.5)``; Online-DPO-R1 uses 0.1.

    Returns:
      ``[N]`` unreduced losses; ``jnp.mean`` them over the pairs.

    Example:
      >>> import jax.numpy as jnp
      >>> dpo_loss(jnp.zeros(1), jnp.zeros(1), jnp.zeros(1), jnp.zeros(1)).round(4)
      Array([0.6931], dtype=float32)
    """
    arrays = [jnp.asarray(x) for x in (chosen_logprobs, rejected_logprobs)]
    refs = [jnp.asarray(x) for x in (ref_chosen_logprobs, ref_rejected_logprobs)]
    dtype = jnp.promote_types(jnp.result_type(*arrays, *refs), jnp.float32)
    chosen, rejected = (x.astype(dtype) for x in arrays)
    ref_chosen, ref_rejected = (jax.lax.stop_gradient(x.astype(dtype)) for x in refs)
    margin = beta * ((chosen - ref_chosen) - (rejected - ref_rejected))  # [N]
    return -(1.0 - label_smoothing) * jax.nn.log_sigmoid(margin) - label_smoothing * (
        jax.nn.log_sigmoid(-margin)
    )
