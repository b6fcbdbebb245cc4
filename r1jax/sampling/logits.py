"""Logit processing and token sampling as pure functions of ``[B, V]`` logits and keys.

Order of the controls, as in transformers' ``generate``: temperature, then top-k, then top-p,
then min-p, then a categorical draw, or ``argmax`` when the temperature is 0 (greedy). Every
control value is a traced scalar, so changing it does not recompile, and no control needs a
static bound: the top-k and top-p thresholds are found by an exact bisection over the float32
bit patterns of the probabilities (32 ``O(V)`` passes, run only when the control is on, via
``lax.cond``), never by sorting the vocabulary or by ``lax.top_k``.

The draw is an inverse-CDF draw with one uniform number per row over the unnormalised weights
``exp(logits / temperature - max)`` (zeroed where filtered): a two-level search (block sums,
then one block) keeps it ``O(V)`` without a full-vocabulary ``cumsum``, and costs one random
number per row instead of ``V`` Gumbel numbers.

The log-probability reported for a token is ``log_softmax(logits / temperature)`` at that token,
*before* top-k / top-p / min-p truncation: the quantity the learner recomputes with the same
temperature (as verl scores the rollout's log-probs). For greedy rows (temperature 0) it is taken at temperature 1.

What does not live here: the decode loop and stop handling (``sampler.py``, ``stopping.py``).
"""

import math

import jax
import jax.numpy as jnp


def scale_by_temperature(logits: jax.Array, temperature: jax.typing.ArrayLike) -> jax.Array:
    """Divides ``[B, V]`` logits by the temperature; a temperature of 0 (greedy) divides by 1.

    Example:
      >>> scale_by_temperature(jnp.array([[1.0, 2.0]]), 0.5)
      Array([[2., 4.]], dtype=float32)
    """
    temperature = jnp.asarray(temperature, jnp.float32)
    return logits / jnp.where(temperature > 0, temperature, 1.0)


def _largest_threshold(weights: jax.Array, is_enough) -> jax.Array:
    """Largest ``t`` among the ``[B, V]`` non-negative weights with ``is_enough(weights >= t)``.

    ``is_enough`` maps a ``[B, V]`` keep-mask to ``[B, 1]`` bools and must be monotone (true
    for small ``t``, false above some point). Bisection over the int32 bit patterns, which order
    like the non-negative floats they encode, so the result is one of the weights exactly.
    """
    bits = jax.lax.bitcast_convert_type(weights, jnp.int32)  # [B, V]

    def body(_, bounds):
        low, high = bounds  # is_enough(low) holds, is_enough(high) does not
        mid = low + (high - low) // 2
        ok = is_enough(bits >= mid)
        return jnp.where(ok, mid, low), jnp.where(ok, high, mid)

    low = jnp.zeros((weights.shape[0], 1), jnp.int32)  # [B, 1]
    high = jnp.max(bits, axis=-1, keepdims=True) + 1
    low, _ = jax.lax.fori_loop(0, 32, body, (low, high))
    return jax.lax.bitcast_convert_type(low, jnp.float32)  # [B, 1]


def top_k_threshold(weights: jax.Array, top_k: jax.typing.ArrayLike) -> jax.Array:
    """``[B, 1]`` k-th largest of ``[B, V]`` non-negative weights (k clipped to ``[1, V]``).

    Example:
      >>> top_k_threshold(jnp.array([[0.1, 0.7, 0.3, 0.5]]), 2)
      Array([[0.5]], dtype=float32)
    """
    k = jnp.clip(jnp.asarray(top_k, jnp.int32), 1, weights.shape[-1])
    return _largest_threshold(weights, lambda keep: jnp.sum(keep, -1, keepdims=True) >= k)


def top_p_threshold(weights: jax.Array, top_p: jax.typing.ArrayLike) -> jax.Array:
    """``[B, 1]`` smallest weight kept by nucleus (top-p) filtering of ``[B, V]`` weights.

    The kept set is the smallest set of largest weights whose share of the total reaches
    ``top_p`` (transformers' ``TopPLogitsWarper``): the threshold is the largest ``t`` with
    ``sum(w >= t) >= top_p * sum(w)``.

    Example:
      >>> top_p_threshold(jnp.array([[0.5, 0.3, 0.2]]), 0.7)
      Array([[0.3]], dtype=float32)
    """
    target = jnp.asarray(top_p, jnp.float32) * jnp.sum(weights, axis=-1, keepdims=True)

    def is_enough(keep):
        return jnp.sum(jnp.where(keep, weights, 0.0), axis=-1, keepdims=True) >= target

    return _largest_threshold(weights, is_enough)


def filter_weights(
    weights: jax.Array,
    *,
    top_k: jax.typing.ArrayLike = 0,
    top_p: jax.typing.ArrayLike = 1.0,
    min_p: jax.typing.ArrayLike = 0.0,
) -> jax.Array:
    """Zeroes the ``[B, V]`` weights (``exp(scaled - max)``, so the largest is 1) that top-k,
    top-p and min-p drop, in that order. ``top_k = 0``, ``top_p = 1``, ``min_p = 0`` are off;
    the threshold searches run only for controls that are on.

    Example:
      >>> filter_weights(jnp.array([[1.0, 0.5, 0.3, 0.2]]), top_k=3, top_p=0.8)
      Array([[1. , 0.5, 0. , 0. ]], dtype=float32)
      >>> filter_weights(jnp.array([[1.0, 0.5, 0.3, 0.2]]), min_p=0.4)
      Array([[1. , 0.5, 0. , 0. ]], dtype=float32)
    """
    top_k = jnp.asarray(top_k, jnp.int32)
    top_p = jnp.asarray(top_p, jnp.float32)
    min_p = jnp.asarray(min_p, jnp.float32)
    zero = jnp.zeros((weights.shape[0], 1), jnp.float32)
    k_threshold = jax.lax.cond(
        top_k > 0, lambda w: top_k_threshold(w, top_k), lambda w: zero, weights
    )
    weights = jnp.where(weights >= k_threshold, weights, 0.0)
    p_threshold = jax.lax.cond(
        top_p < 1.0, lambda w: top_p_threshold(w, top_p), lambda w: zero, weights
    )
    # min-p is relative to the largest probability, which is weight 1 and survives the above.
    return jnp.where(weights >= jnp.maximum(p_threshold, min_p), weights, 0.0)


def _block_size(vocab: int) -> int:
    return int(min(1024, max(16, 2 ** math.ceil(math.log2(math.sqrt(vocab))))))


def inverse_cdf_draw(weights: jax.Array, uniforms: jax.Array) -> jax.Array:
    """Index ``i`` of each row drawn with probability ``w_i / sum(w)`` from one uniform.

    Two-level search: ``[B, V]`` weights are cut into blocks of about ``sqrt(V)``; a block is
    chosen from the cumulative block sums, then a token from the cumulative sum inside that
    block. Zero weights are never chosen (rounding at a block's end is clipped to its last
    positive weight).

    Args:
      weights: ``[B, V]`` non-negative float32, at least one positive per row.
      uniforms: ``[B]`` float32 in ``[0, 1)``.

    Returns:
      ``[B]`` int32 indices.

    Example:
      >>> inverse_cdf_draw(jnp.array([[0.0, 1.0, 3.0], [2.0, 0.0, 0.0]]), jnp.array([0.3, 0.9]))
      Array([2, 0], dtype=int32)
    """
    batch, vocab = weights.shape
    block = _block_size(vocab)
    num_blocks = -(-vocab // block)
    padded = jnp.pad(weights, ((0, 0), (0, num_blocks * block - vocab)))
    blocks = padded.reshape(batch, num_blocks, block)  # [B, nb, blk]
    block_sums = jnp.sum(blocks, axis=-1)  # [B, nb]
    cumulative = jnp.cumsum(block_sums, axis=-1)  # [B, nb]
    target = uniforms * cumulative[:, -1]  # [B]
    last_block = jnp.max(jnp.where(block_sums > 0, jnp.arange(num_blocks), 0), axis=-1)
    index = jnp.minimum(jnp.sum(cumulative <= target[:, None], axis=-1), last_block)  # [B]
    chosen = jnp.take_along_axis(blocks, index[:, None, None], axis=1)[:, 0]  # [B, blk]
    before = jnp.take_along_axis(cumulative, jnp.maximum(index - 1, 0)[:, None], axis=1)[:, 0]
    remainder = target - jnp.where(index > 0, before, 0.0)  # [B]
    inside = jnp.cumsum(chosen, axis=-1)  # [B, blk]
    last_token = jnp.max(jnp.where(chosen > 0, jnp.arange(block), 0), axis=-1)
    offset = jnp.minimum(jnp.sum(inside <= remainder[:, None], axis=-1), last_token)
    return (index * block + offset).astype(jnp.int32)


def sample_tokens(
    keys: jax.Array,
    logits: jax.Array,
    *,
    temperature: jax.typing.ArrayLike,
    top_k: jax.typing.ArrayLike = 0,
    top_p: jax.typing.ArrayLike = 1.0,
    min_p: jax.typing.ArrayLike = 0.0,
) -> tuple[jax.Array, jax.Array]:
    """Draws one token per row and returns it with its untruncated log-probability.

    Args:
      keys: ``[B]`` typed PRNG keys, one per row, so a row's draw does not depend on its batch
        position; each key gives the row's one uniform number (`draw_tokens`).
      logits: ``[B, V]`` float32 logits of the next token.
      temperature: traced scalar; ``0`` means greedy (``argmax``).
      top_k: traced int scalar, ``0`` = off.
      top_p: traced float scalar, ``1`` = off.
      min_p: traced float scalar, ``0`` = off.

    Returns:
      ``(tokens [B] int32, logprobs [B] float32)`` where ``logprobs`` are
      ``log_softmax(logits / temperature)`` at the chosen tokens (temperature 1 when greedy).

    Example:
      >>> keys = jax.random.split(jax.random.key(0), 2)
      >>> tokens, logprobs = sample_tokens(keys, jnp.log(jnp.array([[0.9, 0.1], [0.2, 0.8]])),
      ...                                  temperature=0.0)
      >>> tokens, logprobs
      (Array([0, 1], dtype=int32), Array([-0.105, -0.223], dtype=float32))
    """
    uniforms = jax.vmap(lambda key: jax.random.uniform(key, (), jnp.float32))(keys)  # [B]
    return draw_tokens(
        uniforms, logits, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p
    )


def draw_tokens(
    uniforms: jax.Array,
    logits: jax.Array,
    *,
    temperature: jax.typing.ArrayLike,
    top_k: jax.typing.ArrayLike = 0,
    top_p: jax.typing.ArrayLike = 1.0,
    min_p: jax.typing.ArrayLike = 0.0,
) -> tuple[jax.Array, jax.Array]:
    """`sample_tokens` with the random numbers given: one uniform in ``[0, 1)`` per row.

    The decode loop draws all of a row's uniforms before its first step (one vectorised
    generator call instead of one per step) and passes column ``t`` here at step ``t``.

    Args:
      uniforms: ``[B]`` float32 in ``[0, 1)``; unused by greedy rows.
      logits: ``[B, V]`` float32 logits of the next token.
      temperature, top_k, top_p, min_p: as in `sample_tokens`.

    Returns:
      ``(tokens [B] int32, logprobs [B] float32)`` as in `sample_tokens`.

    Example:
      >>> tokens, _ = draw_tokens(jnp.array([0.05, 0.95]), jnp.log(jnp.array([[0.5, 0.5]] * 2)),
      ...                         temperature=1.0)
      >>> tokens
      Array([0, 1], dtype=int32)
    """
    logits = logits.astype(jnp.float32)
    temperature = jnp.asarray(temperature, jnp.float32)
    scaled = scale_by_temperature(logits, temperature)  # [B, V]
    row_max = jnp.max(scaled, axis=-1, keepdims=True)  # [B, 1]
    weights = jnp.exp(scaled - row_max)  # [B, V], largest 1
    log_total = jnp.log(jnp.sum(weights, axis=-1))  # [B]

    def draw(weights):
        kept = filter_weights(weights, top_k=top_k, top_p=top_p, min_p=min_p)
        return inverse_cdf_draw(kept, uniforms)

    def greedy(weights):
        return jnp.argmax(scaled, axis=-1).astype(jnp.int32)  # exact ties: the first

    tokens = jax.lax.cond(temperature > 0, draw, greedy, weights)  # [B]
    chosen = jnp.take_along_axis(scaled - row_max, tokens[:, None], axis=-1)[:, 0]
    return tokens, chosen - log_total
