"""Stop conditions for the decode loop: stop token ids, stop sequences, stop strings, finish codes.

A row stops at the first generated token that is a stop token id (for example any of several
EOS ids), that completes a stop sequence (a fixed id sequence), or whose bytes complete a stop
string in the decoded text (``StopStrings``); the stop token (or the whole stop sequence) is
part of the completion and of its mask. Stops are matched against generated tokens only, never
against the prompt. Rows that never stop end with ``FINISH_LENGTH`` after their token limit.

**Stop strings whatever the tokenization.** A byte-level BPE splits ``</answer>`` one way when
it stands alone and another way in context: merged with what follows (``</answer>\n`` or
``>.`` as one token) or with what precedes it, so matching the ids of ``encode("</answer>")``
misses most real stops. ``stop_matchers(tokenizer, strings)`` builds, for every stop string,
the transition table of its Knuth-Morris-Pratt automaton (Knuth, Morris & Pratt, SIAM J.
Comput. 6(2), 1977) lifted from bytes to whole tokens with each token's decoded bytes
(`r1jax.tokenizer.Tokenizer.token_bytes`): ``table[n, q, v]`` is the automaton state after
token ``v``'s bytes starting from state ``q``, or ``STRING_HIT`` when string ``n`` is completed
inside them. Inside the jitted step, ``matches_stop_string`` runs the automaton from state 0
over the last ``window`` generated tokens (``window`` = the longest string's byte length, so
any occurrence that ends in the newest token starts inside the window) and reports a hit on the
newest token: one small gather per window token, no state added to the decode carry. A token
may overshoot the string (``</answer>\n``); ``truncate_after_stop`` cuts the decoded text just
after it on the host. Stop sequences keep matching exactly as before; a stop string only adds
stops (both give ``FINISH_STOP_SEQUENCE``).

What does not live here: the decode loop itself (``sampler.py``).
"""

import dataclasses
from collections.abc import Sequence

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


# ------------------------------------------------------------------------------ stop strings

STRING_HIT = -1
"""``StopStrings.table`` entry: the token's bytes complete the stop string."""


@dataclasses.dataclass(frozen=True, eq=False)
class StopStrings:
    """Token-level automata that find stop strings in decoded text (host arrays).

    Build with `stop_matchers`. Compared and hashed by identity, so a `SamplingParams` holding
    one stays hashable.

    Attributes:
      strings: the ``N`` stop strings.
      table: ``[N, Q, V]`` int8/int16: ``table[n, q, v]`` is string ``n``'s automaton state
        after token ``v`` from state ``q`` (``q`` = bytes of the string matched so far), or
        ``STRING_HIT`` when the string ends inside token ``v``; ``Q`` is the longest string's
        byte length.
      window: generated tokens the matcher reads (the longest string's byte length).
    """

    strings: tuple[str, ...]
    table: np.ndarray
    window: int


def _failure_function(pattern: bytes) -> list[int]:
    """KMP: ``fail[i]`` = length of the longest proper border of ``pattern[: i + 1]``."""
    fail = [0] * len(pattern)
    border = 0
    for index in range(1, len(pattern)):
        while border and pattern[index] != pattern[border]:
            border = fail[border - 1]
        if pattern[index] == pattern[border]:
            border += 1
        fail[index] = border
    return fail


def byte_automaton(pattern: bytes) -> np.ndarray:
    """``[m, 256]`` KMP transitions over bytes; entry ``m`` (= ``len(pattern)``) is a match.

    Example:
      >>> delta = byte_automaton(b"aab")
      >>> [int(delta[2, ord(c)]) for c in "aba"]
      [2, 3, 2]
    """
    size = len(pattern)
    fail = _failure_function(pattern)
    delta = np.zeros((size, 256), np.int32)
    for state in range(size):
        for byte in range(256):
            if byte == pattern[state]:
                delta[state, byte] = state + 1
            elif state:
                delta[state, byte] = delta[fail[state - 1], byte]
    return delta


def string_table(
    pattern: bytes, token_bytes: Sequence[bytes], states: int, vocab_size: int
) -> np.ndarray:
    """``[states, vocab_size]`` int32 token transitions of one pattern (see `StopStrings`).

    States ``>= len(pattern)`` and tokens past ``len(token_bytes)`` (a model's padded vocab
    rows, which decode to nothing) keep their state.
    """
    size = len(pattern)
    delta = byte_automaton(pattern)
    longest = max([len(b) for b in token_bytes] + [1])
    data = np.zeros((len(token_bytes), longest), np.int32)
    lengths = np.zeros(len(token_bytes), np.int32)
    for token_id, text in enumerate(token_bytes):
        data[token_id, : len(text)] = np.frombuffer(text, np.uint8)
        lengths[token_id] = len(text)
    state = np.broadcast_to(np.arange(size, dtype=np.int32)[:, None], (size, len(token_bytes)))
    state = state.copy()  # [m, V]
    hit = np.zeros(state.shape, bool)
    for position in range(longest):
        live = (position < lengths)[None, :] & ~hit  # [m, V]
        step = delta[state, data[None, :, position]]  # [m, V]
        hit |= live & (step == size)
        state = np.where(live & (step < size), step, state)
    table = np.broadcast_to(np.arange(states, dtype=np.int32)[:, None], (states, vocab_size))
    table = table.copy()  # [Q, V]: identity by default
    table[:size, : len(token_bytes)] = np.where(hit, STRING_HIT, state)
    return table


def stop_matchers(
    tokenizer, stop_strings: Sequence[str], *, vocab_size: int | None = None
) -> StopStrings | None:
    """Builds the stop-string automata for the sampler (host side, numpy).

    Args:
      tokenizer: anything with ``token_bytes() -> list[bytes]`` (`r1jax.tokenizer.Tokenizer`),
        or a sequence of per-token byte strings.
      stop_strings: strings that end a completion when they appear in its decoded text
        (empty strings are ignored).
      vocab_size: the model's vocab ``V`` when it is larger than the tokenizer's (padded
        rows); defaults to the tokenizer's.

    Returns:
      A `StopStrings` for `SamplingParams.stop_strings`, or ``None`` when there are no strings.

    Example:
      >>> token_bytes = [b"</", b"answer", b">", b">\\n", b"x"]
      >>> matchers = stop_matchers(token_bytes, ["</answer>"])
      >>> recent = jnp.array([[0, 1, 3], [0, 1, 4], [-1, -1, 2]])
      >>> matches_stop_string(recent, jnp.asarray(matchers.table))
      Array([ True, False, False], dtype=bool)
    """
    token_bytes = tokenizer.token_bytes() if hasattr(tokenizer, "token_bytes") else tokenizer
    token_bytes = [bytes(b) for b in token_bytes]
    strings = tuple(dict.fromkeys(s for s in stop_strings if s))
    if not strings:
        return None
    patterns = [s.encode("utf-8") for s in strings]
    vocab = len(token_bytes) if vocab_size is None else int(vocab_size)
    if vocab < len(token_bytes):
        raise ValueError(f"vocab_size={vocab} is below the tokenizer's {len(token_bytes)} tokens")
    states = max(len(p) for p in patterns)
    dtype = np.int8 if states < 127 else np.int16
    table = np.stack([string_table(p, token_bytes, states, vocab) for p in patterns])
    return StopStrings(strings=strings, table=table.astype(dtype), window=states)


def stop_controls(stop_sequences, stop_strings: StopStrings | None = None) -> dict[str, jax.Array]:
    """The sampler's traced stop arrays: sequences and string tables.

    ``stop_sequence_ids`` / ``stop_sequence_mask`` are `pad_stop_sequences` widened on the left
    (with masked-out columns, which match nothing new) to at least ``stop_strings.window``, so
    the decode loop's recent-token buffer, sized from them, also holds the string window.
    ``stop_string_table`` is ``[N, Q, V]`` (``[0, 1, 1]`` without strings).
    """
    ids, mask = pad_stop_sequences(stop_sequences)
    if stop_strings is not None and stop_strings.window > ids.shape[1]:
        extra = stop_strings.window - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (extra, 0)))
        mask = np.pad(mask, ((0, 0), (extra, 0)))
    table = np.zeros((0, 1, 1), np.int8) if stop_strings is None else stop_strings.table
    return {
        "stop_sequence_ids": jnp.asarray(ids),
        "stop_sequence_mask": jnp.asarray(mask),
        "stop_string_table": jnp.asarray(table),
    }


def matches_stop_string(recent: jax.Array, table: jax.Array) -> jax.Array:
    """``[B]`` bool: the newest generated token completes a stop string in the decoded text.

    Args:
      recent: ``[B, K]`` last generated tokens, newest last; ``-1`` before the first one.
        ``K`` must be at least `StopStrings.window` (see `stop_controls`).
      table: ``[N, Q, V]`` `StopStrings.table`.
    """
    strings = table.shape[0]
    if strings == 0:
        return jnp.zeros(recent.shape[:1], bool)
    vocab = table.shape[2]
    flat = table.reshape(strings, -1)  # [N, Q*V]: one 1-D gather per string and token
    hit = jnp.zeros(recent.shape[:1], bool)
    for n in range(strings):  # static N and K: a few small gathers each
        state = jnp.zeros(recent.shape[:1], jnp.int32)  # [B]
        for column in range(recent.shape[1]):
            token = recent[:, column]  # [B]
            present = token >= 0
            step = jnp.take(flat[n], state * vocab + jnp.maximum(token, 0)).astype(jnp.int32)
            is_hit = step == STRING_HIT
            last = column == recent.shape[1] - 1
            if last:  # only the newest token's value counts
                hit = hit | (present & is_hit)
            state = jnp.where(present & ~is_hit, step, 0)
    return hit


def truncate_after_stop(text: str, stop_strings: Sequence[str]) -> str:
    """Cuts ``text`` just after the first stop string it contains (host side).

    A stop string can end inside a token (``</answer>\n`` decoded as one token), so the
    decoded completion may run past it; the cut keeps the stop string, as the text the
    sampler stopped on. Text without a stop string is returned unchanged.

    Example:
      >>> truncate_after_stop("x</answer>\\nmore</answer>", ["</answer>"])
      'x</answer>'
    """
    ends = [text.find(s) + len(s) for s in stop_strings if s and s in text]
    return text[: min(ends)] if ends else text
