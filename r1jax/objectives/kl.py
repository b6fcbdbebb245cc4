"""KL divergence to the reference policy: sampled-token estimators and exact full-vocabulary KL.

With ``Δ = log π_θ(a) − log π_ref(a)`` for a sampled token ``a`` (Schulman, "Approximating KL
divergence"; [repo:verl/trainer/ppo/core_algos.py ``kl_penalty_forward``]):

- ``k1 = Δ``: unbiased for KL(π_θ‖π_ref) when ``a ~ π_θ``, high variance, can be negative.
- ``k2 = ½ Δ²``: biased, low variance; its gradient is the right one in expectation.
- ``k3 = exp(−Δ) − 1 + Δ``: unbiased and ≥ 0; GRPO's estimator (DeepSeekMath eq. 4, R1 eq. 2).
  Guards as in verl: ``−Δ`` is clamped to ``[−20, 20]`` before the exponential (computed as
  ``expm1``, as oat does) and the result to ``[−10, 10]``.
- ``k3+``: the k3 value with the k2 gradient (straight-through, verl ``low_var_kl+``).
- ``abs = |Δ|``.

Two places to use them: as a loss term ``β · agg(k3)`` (GRPO, Logic-RL, DeepScaleR), with
gradients through ``logprobs``; or as a per-token reward penalty ``r_t −= β · k1_t`` computed from
the sampler's log-probs (PPO/REINFORCE++ style), constant in θ (pass it to
``advantages.reinforce_pp_advantages(kl=...)``).

The exact ``KL(π_θ‖π_ref)`` and entropy over the vocabulary are computed from logits
``[B, T, V]`` in chunks over ``T``, so only one chunk of softmax is alive at a time; use them for
logging, or as a loss term.

Not here: the log-probs themselves (``r1jax.models``), aggregation (``aggregation``).
"""

import jax
import jax.numpy as jnp

KL_ESTIMATORS = ("k1", "k2", "k3", "k3+", "abs")


def _log_ratio(logprobs: jax.typing.ArrayLike, ref_logprobs: jax.typing.ArrayLike) -> jax.Array:
    logprobs = jnp.asarray(logprobs)
    ref_logprobs = jnp.asarray(ref_logprobs)
    dtype = jnp.promote_types(jnp.result_type(logprobs, ref_logprobs), jnp.float32)
    return logprobs.astype(dtype) - ref_logprobs.astype(dtype)


def kl_k1(logprobs: jax.typing.ArrayLike, ref_logprobs: jax.typing.ArrayLike) -> jax.Array:
    """``k1 = log π_θ − log π_ref`` per token.

    Args:
      logprobs: ``[B, T]`` log-probs of the sampled tokens under the policy.
      ref_logprobs: ``[B, T]`` under the reference.

    Returns:
      ``[B, T]`` float32 (or wider).

    Example:
      >>> import jax.numpy as jnp
      >>> kl_k1(jnp.array([-1.0]), jnp.array([-1.5]))
      Array([0.5], dtype=float32)
    """
    return _log_ratio(logprobs, ref_logprobs)


def kl_k2(logprobs: jax.typing.ArrayLike, ref_logprobs: jax.typing.ArrayLike) -> jax.Array:
    """``k2 = ½ (log π_θ − log π_ref)²`` per token.

    Args:
      logprobs: ``[B, T]``.
      ref_logprobs: ``[B, T]``.

    Returns:
      ``[B, T]``.

    Example:
      >>> import jax.numpy as jnp
      >>> kl_k2(jnp.array([-1.0]), jnp.array([-1.5]))
      Array([0.125], dtype=float32)
    """
    return 0.5 * jnp.square(_log_ratio(logprobs, ref_logprobs))


def kl_k3(
    logprobs: jax.typing.ArrayLike,
    ref_logprobs: jax.typing.ArrayLike,
    *,
    log_ratio_clip: float = 20.0,
    value_clip: float = 10.0,
) -> jax.Array:
    """``k3 = exp(−Δ) − 1 + Δ`` per token, with verl's guards.

    ``−Δ = log π_ref − log π_θ`` is clamped to ``[−log_ratio_clip, log_ratio_clip]`` before the
    exponential, evaluated as ``expm1(−Δ) − (−Δ)``, and the result is clamped to
    ``[−value_clip, value_clip]`` (the lower clamp never binds since ``k3 ≥ 0``).

    Args:
      logprobs: ``[B, T]``.
      ref_logprobs: ``[B, T]``.
      log_ratio_clip: clamp on ``−Δ`` (verl 20; oat 40).
      value_clip: clamp on the estimate (verl 10).

    Returns:
      ``[B, T]``, non-negative.

    Example:
      >>> import jax.numpy as jnp
      >>> kl_k3(jnp.array([-1.0, -2.0]), jnp.array([-1.0, -1.0])).round(4)
      Array([0.    , 0.7183], dtype=float32)
    """
    neg_delta = jnp.clip(-_log_ratio(logprobs, ref_logprobs), -log_ratio_clip, log_ratio_clip)
    return jnp.clip(jnp.expm1(neg_delta) - neg_delta, -value_clip, value_clip)


def kl_penalty(
    logprobs: jax.typing.ArrayLike,
    ref_logprobs: jax.typing.ArrayLike,
    *,
    estimator: str = "k3",
) -> jax.Array:
    """A per-token KL estimate by name: ``k1``, ``k2``, ``k3`` (default), ``k3+`` or ``abs``.

    ``k3+`` returns ``k2 + stop_gradient(k3 − k2)``: the k3 value with the k2 gradient, the
    gradient whose expectation matches the KL's [repo:verl core_algos.py ``kl_penalty``].

    Args:
      logprobs: ``[B, T]`` policy log-probs (with gradient when used as a loss term; the
        sampler's log-probs when used as a reward penalty).
      ref_logprobs: ``[B, T]`` reference log-probs.
      estimator: one of ``KL_ESTIMATORS``.

    Returns:
      ``[B, T]`` unreduced estimates; aggregate with the mask (``aggregation``).

    Example:
      >>> import jax.numpy as jnp
      >>> kl_penalty(jnp.array([-1.0]), jnp.array([-1.5]), estimator="abs")
      Array([0.5], dtype=float32)
    """
    if estimator == "k1":
        return kl_k1(logprobs, ref_logprobs)
    if estimator == "k2":
        return kl_k2(logprobs, ref_logprobs)
    if estimator == "k3":
        return kl_k3(logprobs, ref_logprobs)
    if estimator == "k3+":
        k2 = kl_k2(logprobs, ref_logprobs)
        return k2 + jax.lax.stop_gradient(kl_k3(logprobs, ref_logprobs) - k2)
    if estimator == "abs":
        return jnp.abs(kl_k1(logprobs, ref_logprobs))
    raise ValueError(f"unknown KL estimator {estimator!r}; expected one of {KL_ESTIMATORS}")


def _chunked_over_time(fn, arrays: tuple[jax.Array, ...], chunk_size: int) -> jax.Array:
    """Applies ``fn(*chunks) -> [B, c]`` over ``T`` in chunks of ``chunk_size``, rematerialised.

    ``jax.lax.map`` runs one chunk at a time and ``jax.checkpoint`` keeps only the chunk's inputs
    for the backward pass, so at most one ``[B, c, V]`` softmax is alive at once.
    """
    batch, length = arrays[0].shape[:2]
    chunk_size = max(1, min(chunk_size, length))
    num_chunks = -(-length // chunk_size)
    padded = num_chunks * chunk_size
    chunked = []
    for array in arrays:
        array = jnp.pad(array, ((0, 0), (0, padded - length), (0, 0)))  # [B, T', V]
        array = array.reshape(batch, num_chunks, chunk_size, array.shape[-1])
        chunked.append(jnp.moveaxis(array, 1, 0))  # [n, B, c, V]
    out = jax.lax.map(lambda xs: jax.checkpoint(fn)(*xs), tuple(chunked))  # [n, B, c]
    return jnp.moveaxis(out, 0, 1).reshape(batch, padded)[:, :length]  # [B, T]


def _entropy_chunk(logits: jax.Array) -> jax.Array:
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    log_probs = jax.nn.log_softmax(logits, axis=-1)  # [B, c, V]
    return -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)  # [B, c]


def _kl_chunk(logits: jax.Array, ref_logits: jax.Array) -> jax.Array:
    dtype = jnp.promote_types(logits.dtype, jnp.float32)
    log_p = jax.nn.log_softmax(logits.astype(dtype), axis=-1)  # [B, c, V]
    log_q = jax.nn.log_softmax(ref_logits.astype(dtype), axis=-1)  # [B, c, V]
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)  # [B, c]


def entropy_from_logits(logits: jax.typing.ArrayLike, *, chunk_size: int = 128) -> jax.Array:
    """Exact per-position entropy ``H_t = −Σ_v p_v log p_v`` of ``softmax(logits)``.

    Pass logits already divided by the sampling temperature if the policy samples at ``τ ≠ 1``.
    Computed in float32 (or wider), over chunks of ``chunk_size`` positions.

    Args:
      logits: ``[B, T, V]``.
      chunk_size: positions per chunk; memory is ``O(B · chunk_size · V)``.

    Returns:
      ``[B, T]`` entropies in nats.

    Example:
      >>> import jax.numpy as jnp
      >>> entropy_from_logits(jnp.zeros((1, 2, 4))).round(4)
      Array([[1.3863, 1.3863]], dtype=float32)
    """
    logits = jnp.asarray(logits)
    return _chunked_over_time(_entropy_chunk, (logits,), chunk_size)


def full_kl_from_logits(
    logits: jax.typing.ArrayLike, ref_logits: jax.typing.ArrayLike, *, chunk_size: int = 128
) -> jax.Array:
    """Exact per-position ``KL(π_θ‖π_ref) = Σ_v p_v (log p_v − log q_v)`` over the vocabulary.

    Args:
      logits: ``[B, T, V]`` policy logits (temperature-scaled as sampled).
      ref_logits: ``[B, T, V]`` reference logits.
      chunk_size: positions per chunk.

    Returns:
      ``[B, T]`` KL in nats, ``≥ 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> logits = jnp.log(jnp.array([[[0.5, 0.5]]]))
      >>> ref_logits = jnp.log(jnp.array([[[0.25, 0.75]]]))
      >>> full_kl_from_logits(logits, ref_logits).round(4)
      Array([[0.1438]], dtype=float32)
    """
    logits = jnp.asarray(logits)
    ref_logits = jnp.asarray(ref_logits)
    if logits.shape != ref_logits.shape:
        raise ValueError(f"logits {logits.shape} and ref_logits {ref_logits.shape} differ")
    return _chunked_over_time(_kl_chunk, (logits, ref_logits), chunk_size)
