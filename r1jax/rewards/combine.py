"""Format rewards from verifier verdicts, and weighted combinations of named reward terms.

The verifiers on the host return verdicts (``is_correct``, ``well_formed``); the shaping terms
(``length``, ``repetition``) turn them into numbers on the device; :func:`combine_rewards` adds
the named ``[B]`` terms with weights and keeps each weighted term so it can be logged. Open-R1's
demo recipe combines accuracy, format and tag count 1:1:1 (huggingface/open-r1 src/open_r1/rewards.py); R1-Zero uses
accuracy plus a format reward (R1 §2.2).

Not here: per-token rewards (the dense repetition penalty goes into the token rewards of
``objectives.advantages``), the verifiers themselves (``r1jax.verifiers``).
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp


def format_reward(
    well_formed: jax.typing.ArrayLike, *, reward: float = 1.0, penalty: float = 0.0
) -> jax.Array:
    """``reward`` where the verifier found the completion well formed, else ``penalty``.

    Args:
      well_formed: ``[B]`` bool verdicts (e.g. ``<think>…</think><answer>…</answer>`` present).
      reward: value for a well-formed completion.
      penalty: value otherwise (0, or negative to punish malformed output).

    Returns:
      ``[B]`` float32.

    Example:
      >>> import jax.numpy as jnp
      >>> format_reward(jnp.array([True, False]), reward=0.5, penalty=-1.0)
      Array([ 0.5, -1. ], dtype=float32)
    """
    ok = jnp.asarray(well_formed).astype(bool)
    return jnp.where(ok, jnp.float32(reward), jnp.float32(penalty))


def combine_rewards(
    terms: Mapping[str, jax.typing.ArrayLike],
    weights: Mapping[str, float] | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted sum of named ``[B]`` reward terms, keeping each weighted term for logging.

    ``total = Σ_k w_k · term_k``. With ``weights=None`` every weight is 1. ``weights`` must name
    exactly the terms given, so a typo is an error instead of a silently dropped term.

    Args:
      terms: name → ``[B]`` reward term (bool terms count as 0/1).
      weights: name → weight, or ``None`` for all ones.

    Returns:
      ``(total, weighted)``: ``[B]`` float32 total, and name → ``[B]`` weighted term.

    Example:
      >>> import jax.numpy as jnp
      >>> total, parts = combine_rewards(
      ...     {"correct": jnp.array([1.0, 0.0]), "format": jnp.array([True, False])},
      ...     {"correct": 1.0, "format": 0.5})
      >>> total
      Array([1.5, 0. ], dtype=float32)
      >>> parts["format"]
      Array([0.5, 0. ], dtype=float32)
    """
    if not terms:
        raise ValueError("combine_rewards needs at least one reward term")
    if weights is not None and set(weights) != set(terms):
        missing = sorted(set(terms) - set(weights))
        unknown = sorted(set(weights) - set(terms))
        raise ValueError(f"reward weights do not match terms: missing {missing}, unknown {unknown}")
    weighted = {}
    shape = None
    for name, term in terms.items():
        term = jnp.asarray(term)
        if term.ndim != 1:
            raise ValueError(f"reward term {name!r} must have shape [B], got {term.shape}")
        if shape is not None and term.shape != shape:
            raise ValueError(f"reward term {name!r} has shape {term.shape}, expected {shape}")
        shape = term.shape
        weight = 1.0 if weights is None else weights[name]
        weighted[name] = weight * term.astype(jnp.float32)
    total = sum(weighted.values())
    return total, weighted
