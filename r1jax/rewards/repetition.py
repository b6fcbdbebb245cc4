"""N-gram repetition penalties on completion token ids, on the device.

Both follow "Demystifying Long CoT" (arXiv:2502.03373; [repo:demystify-long-cot
openrlhf/openrlhf/reward/repetition.py]). Scan the ``n``-grams of a
completion at start positions ``s = 0 .. L − n``; the n-gram at ``s`` is a *repeat* when the same
``n`` tokens already started at some ``s' < s``.

- Dense, per token (the paper's runs: ``n = 40``, ``p = −0.05``; the CLI defaults are ``n = 20``,
  ``p = −5``): every token ``s .. s+n−1`` of a repeated n-gram gets reward ``p``, by assignment,
  so a token is penalised at most once. With ``only_start``, a repeat at ``s`` is penalised only
  when ``s > s_prev + n`` for the previous repeat ``s_prev`` (the reference's run rule).
- Sequence level: ``P = p_max · (1 − #unique n-grams / #n-grams)``, 0 when there are no
  n-grams (the reference divides by zero there). The reference applies it to wrong answers
  inside the cosine reward, on lower-cased words; r1jax works on token ids.

Cost, for ``B`` rows of ``T`` tokens and a static ``n``: two 32-bit polynomial hashes per
n-gram (``O(B·T·n)`` element-wise work, ``O(B·T)`` memory), one sort per row to group equal
hashes (``O(B·T log T)``), and an exact token-by-token check of each n-gram against its sorted
predecessor (``O(B·T·n)``). So a flagged repeat is always a true repeat; a true repeat can be
missed only if a different n-gram with the same 64-bit hash pair starts between its occurrences
(probability about ``T² / 2^64``). ``ngram_size`` must be a Python int (static under ``jit``).

Not here: word-level text penalties (host side), the cosine reward (``length``).
"""

import jax
import jax.numpy as jnp


def _mix(x: jax.Array) -> jax.Array:
    """A bijective 32-bit mixer (murmur3 finaliser), so nearby token ids hash far apart."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def repeated_ngram_starts(
    token_ids: jax.typing.ArrayLike, lengths: jax.typing.ArrayLike, *, ngram_size: int
) -> jax.Array:
    """Flags each start position whose n-gram already occurred earlier in the same completion.

    Args:
      token_ids: ``[B, T]`` int completion tokens.
      lengths: ``[B]`` int valid lengths; only n-grams that end before ``lengths`` count.
      ngram_size: ``n`` (static).

    Returns:
      ``[B, T]`` bool, true at ``s`` when the n-gram starting at ``s`` is a repeat.

    Example:
      >>> import jax.numpy as jnp
      >>> repeated_ngram_starts(jnp.array([[1, 2, 1, 2, 1, 2]]), jnp.array([6]), ngram_size=2)
      Array([[False, False,  True,  True,  True, False]], dtype=bool)
    """
    if ngram_size < 1:
        raise ValueError(f"ngram_size must be >= 1, got {ngram_size}")
    tokens = jnp.asarray(token_ids)
    batch, length = tokens.shape
    num_starts = length - ngram_size + 1
    if num_starts <= 0:
        return jnp.zeros((batch, length), bool)
    mixed = _mix(tokens.astype(jnp.uint32))  # [B, T]
    hash_a = jnp.zeros((batch, num_starts), jnp.uint32)
    hash_b = jnp.zeros((batch, num_starts), jnp.uint32)
    for offset in range(ngram_size):
        window = mixed[:, offset : offset + num_starts]  # [B, S]
        hash_a = hash_a * jnp.uint32(0x01000193) + window
        hash_b = hash_b * jnp.uint32(0x9E3779B1) + (window ^ jnp.uint32(0x5BD1E995))
    starts = jnp.broadcast_to(jnp.arange(num_starts), (batch, num_starts))  # [B, S]
    valid = starts + ngram_size <= jnp.asarray(lengths)[:, None]  # [B, S]
    invalid_key = (~valid).astype(jnp.uint32)
    order = jnp.lexsort((starts, hash_b, hash_a, invalid_key), axis=-1)  # [B, S]

    def sorted_(x):
        return jnp.take_along_axis(x, order, axis=-1)

    s_valid, s_a, s_b = sorted_(valid), sorted_(hash_a), sorted_(hash_b)
    same = s_valid[:, 1:] & s_valid[:, :-1] & (s_a[:, 1:] == s_a[:, :-1])
    same = same & (s_b[:, 1:] == s_b[:, :-1])  # [B, S-1]
    for offset in range(ngram_size):
        here = jnp.take_along_axis(tokens, order[:, 1:] + offset, axis=-1)
        before = jnp.take_along_axis(tokens, order[:, :-1] + offset, axis=-1)
        same = same & (here == before)
    repeat_sorted = jnp.concatenate([jnp.zeros((batch, 1), bool), same], axis=-1)  # [B, S]
    rows = jnp.arange(batch)[:, None]
    repeat = jnp.zeros((batch, num_starts), bool).at[rows, order].set(repeat_sorted)
    return jnp.pad(repeat, ((0, 0), (0, length - num_starts)))  # [B, T]


def repetition_penalty(
    token_ids: jax.typing.ArrayLike,
    lengths: jax.typing.ArrayLike,
    *,
    ngram_size: int = 40,
    penalty: float = -0.05,
    only_start: bool = False,
) -> jax.Array:
    """Dense per-token repetition penalty: ``penalty`` on every token of a repeated n-gram.

    Defaults are the paper runs' ``n = 40``, ``p = −0.05``. Feed the result into the per-token
    rewards (e.g. ``objectives.reinforce_pp_advantages(rewards=terminal + penalty)``); the paper
    discounts it with its own ``γ = 0.99``.

    Args:
      token_ids: ``[B, T]`` int completion tokens.
      lengths: ``[B]`` int valid lengths.
      ngram_size: ``n`` (static).
      penalty: ``p ≤ 0``, assigned (not summed) to each penalised token.
      only_start: penalise a repeat only when it starts more than ``n`` tokens after the
        previous repeat, i.e. the first repeat of each run (off in the paper's runs).

    Returns:
      ``[B, T]`` float32 per-token rewards (``penalty`` or 0).

    Example:
      >>> import jax.numpy as jnp
      >>> repetition_penalty(jnp.array([[5, 6, 5, 6, 7, 0]]), jnp.array([5]), ngram_size=2,
      ...                    penalty=-1.0)
      Array([[ 0.,  0., -1., -1.,  0.,  0.]], dtype=float32)
    """
    if penalty > 0:
        raise ValueError(f"repetition penalty must be <= 0, got {penalty}")
    repeat = repeated_ngram_starts(token_ids, lengths, ngram_size=ngram_size)  # [B, T]
    length = repeat.shape[-1]
    positions = jnp.arange(length)
    if only_start:
        none = -ngram_size - 1
        last = jax.lax.cummax(jnp.where(repeat, positions, none), axis=1)  # [B, T]
        previous = jnp.pad(last[:, :-1], ((0, 0), (1, 0)), constant_values=none)
        repeat = repeat & (positions > previous + ngram_size)
    counts = jnp.cumsum(repeat.astype(jnp.int32), axis=-1)  # [B, T]
    window_start = jnp.pad(counts, ((0, 0), (ngram_size, 0)))[:, :length]  # counts[t - n]
    covered = counts - window_start > 0
    return jnp.where(covered, jnp.float32(penalty), jnp.float32(0.0))


def sequence_repetition_penalty(
    token_ids: jax.typing.ArrayLike,
    lengths: jax.typing.ArrayLike,
    *,
    ngram_size: int = 3,
    max_penalty: float = -1.0,
) -> jax.Array:
    """Sequence-level penalty ``p_max · (1 − #unique n-grams / #n-grams)`` on token ids.

    Defaults follow open-r1's port (``n = 3``, ``p_max = −1``); the reference CLI's default
    ``p_max = 0`` turns it off. A completion shorter than ``n`` gets 0.

    Args:
      token_ids: ``[B, T]`` int completion tokens.
      lengths: ``[B]`` int valid lengths.
      ngram_size: ``n`` (static).
      max_penalty: ``p_max ≤ 0``, the penalty of a completion made of one repeated n-gram in
        the limit.

    Returns:
      ``[B]`` float32 penalties in ``[p_max, 0]``.

    Example:
      >>> import jax.numpy as jnp
      >>> sequence_repetition_penalty(jnp.array([[1, 2, 1, 2, 1], [1, 2, 3, 4, 5]]),
      ...                             jnp.array([5, 5]), ngram_size=2)
      Array([-0.5,  0. ], dtype=float32)
    """
    if max_penalty > 0:
        raise ValueError(f"max_penalty must be <= 0, got {max_penalty}")
    repeat = repeated_ngram_starts(token_ids, lengths, ngram_size=ngram_size)  # [B, T]
    repeats = jnp.sum(repeat, axis=-1).astype(jnp.float32)  # [B]
    total = jnp.maximum(jnp.asarray(lengths) - ngram_size + 1, 0).astype(jnp.float32)  # [B]
    fraction = jnp.where(total > 0, repeats / jnp.maximum(total, 1.0), 0.0)
    return jnp.where(fraction > 0, max_penalty * fraction, 0.0).astype(jnp.float32)
