"""Stop conditions for the decode loop: stop token ids, multi-token stop sequences, finish codes.

A row stops at the first generated token that is a stop token id (for example any of several
EOS ids) or that completes a stop sequence (for example the ids of ``</answer>``); the stop token
(or the whole stop sequence) is part of the completion and of its mask. Stop sequences are
matched against generated tokens only, never against the prompt. Rows that never stop end with
``FINISH_LENGTH`` after their token limit.

What does not live here: the decode loop itself (``sampler.py``).
"""

import jax
import jax.numpy as jnp
import numpy as np

FINISH_NONE = 0
FINISH_STOP_TOKEN = 1
FINISH_STOP_SEQUENCE = 2
FINISH_LENGTH = 3
FINISH_REASON_NAMES = {
    FINISH_NONE: "none",
    FINISH_STOP_TOKEN: "stop_token",
    FINISH_STOP_SEQUENCE: "stop_sequence",
    FINISH_LENGTH: "length",
}


def finish_reason_names(codes: np.ndarray | jax.Array) -> list[str]:
    """Names of ``[B]`` integer finish codes.

    Example:
      >>> finish_reason_names(np.array([1, 3]))
      ['stop_token', 'length']
    """
    return [FINISH_REASON_NAMES[int(code)] for code in np.asarray(codes).reshape(-1)]


def pad_stop_sequences(stop_sequences) -> tuple[np.ndarray, np.ndarray]:
    """Right-aligns stop sequences into ``[N, Lmax]`` ids and a validity mask (host side).

    Args:
      stop_sequences: iterable of non-empty iterables of token ids.

    Returns:
      ``(ids [N, Lmax] int32, mask [N, Lmax] bool)``; at least one column, so ``N = 0`` gives
      ``[0, 1]`` arrays.

    Example:
      >>> ids, mask = pad_stop_sequences([(7, 8, 9), (5,)])
      >>> ids.tolist(), mask.tolist()
      ([[7, 8, 9], [0, 0, 5]], [[True, True, True], [False, False, True]])
    """
    sequences = [tuple(int(t) for t in seq) for seq in stop_sequences]
    for index, seq in enumerate(sequences):
        if not seq:
            raise ValueError(f"stop_sequences[{index}] is empty")
        if min(seq) < 0:
            raise ValueError(f"stop_sequences[{index}] has a negative token id: {seq}")
    width = max([len(seq) for seq in sequences] + [1])
    ids = np.zeros((len(sequences), width), np.int32)
    mask = np.zeros((len(sequences), width), bool)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq) :] = seq
        mask[row, width - len(seq) :] = True
    return ids, mask


def push_recent(recent: jax.Array, tokens: jax.Array) -> jax.Array:
    """Shifts ``[B, Lmax]`` recent tokens left and appends ``[B]`` new ones at the end.

    Example:
      >>> push_recent(jnp.array([[1, 2, 3]]), jnp.array([4]))
      Array([[2, 3, 4]], dtype=int32)
    """
    return jnp.concatenate([recent[:, 1:], tokens[:, None].astype(recent.dtype)], axis=1)


def matches_stop_token(tokens: jax.Array, stop_token_ids: jax.Array) -> jax.Array:
    """``[B]`` bool: the token is one of the ``[N]`` stop ids.

    Example:
      >>> matches_stop_token(jnp.array([3, 4]), jnp.array([4, 9]))
      Array([False,  True], dtype=bool)
    """
    if stop_token_ids.shape[0] == 0:
        return jnp.zeros(tokens.shape, bool)
    return jnp.any(tokens[:, None] == stop_token_ids[None, :], axis=-1)


def matches_stop_sequence(
    recent: jax.Array, sequence_ids: jax.Array, sequence_mask: jax.Array
) -> jax.Array:
    """``[B]`` bool: the last generated tokens end with one of the stop sequences.

    Args:
      recent: ``[B, Lmax]`` last generated tokens, newest last; ``-1`` where fewer than
        ``Lmax`` tokens were generated (never equal to a token id).
      sequence_ids: ``[N, Lmax]`` right-aligned stop sequences.
      sequence_mask: ``[N, Lmax]`` which entries of ``sequence_ids`` are real.

    Example:
      >>> ids, mask = pad_stop_sequences([(7, 8), (5,)])
      >>> matches_stop_sequence(jnp.array([[7, 8], [-1, 8], [8, 5]]), jnp.asarray(ids),
      ...                       jnp.asarray(mask))
      Array([ True, False,  True], dtype=bool)
    """
    if sequence_ids.shape[0] == 0:
        return jnp.zeros(recent.shape[:1], bool)
    equal = recent[:, None, :] == sequence_ids[None, :, :]  # [B, N, Lmax]
    hit = jnp.all(equal | ~sequence_mask[None, :, :], axis=-1)  # [B, N]
    return jnp.any(hit, axis=-1)
