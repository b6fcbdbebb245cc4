"""Masked token negative log-likelihood, for SFT warm starts and RAFT (arXiv:2304.06767).

``L_{i,t} = −m_{i,t} log π(o_{i,t})``; reduce with ``aggregation.token_mean`` (the usual SFT
loss) or any other aggregator. RAFT is this loss on the highest-reward correct completions only:
select them through the mask.

Not here: log-probs from logits (``r1jax.models``), choosing which samples to imitate.
"""

import jax
import jax.numpy as jnp


def token_nll(logprobs: jax.typing.ArrayLike, completion_mask: jax.typing.ArrayLike) -> jax.Array:
    """Per-token negative log-likelihood, 0 at masked positions.

    Args:
      logprobs: ``[B, T]`` log-probs of the target tokens (differentiated).
      completion_mask: ``[B, T]``; 1 for tokens to imitate.

    Returns:
      ``[B, T]`` unreduced ``−log π``, float32 or wider.

    Example:
      >>> import jax.numpy as jnp
      >>> token_nll(jnp.array([[-0.5, -2.0]]), jnp.array([[1, 0]]))
      Array([[0.5, 0. ]], dtype=float32)
    """
    logprobs = jnp.asarray(logprobs)
    logprobs = logprobs.astype(jnp.promote_types(logprobs.dtype, jnp.float32))
    mask = jnp.asarray(completion_mask).astype(bool)
    return jnp.where(mask, -logprobs, 0.0)
