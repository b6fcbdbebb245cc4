"""Length-grouped micro-batches: rows sorted by completion length, each micro-batch cut to a
bucket length and filled up to a token budget, all inside the one compiled update.

A long-tailed rollout (most completions short, a few at the length limit ``T``) padded to
``[B, T]`` spends most of the update's forward and backward on padding. With
``optim.micro_batch_tokens > 0`` the step instead

1. computes each row's length (1 + the last completion position that is sampled or in the
   loss mask; `row_lengths`) and sorts the mini-batch's rows by it, in the graph
   (``jnp.argsort``): every per-row value the algorithm prepared on the full batch
   (advantages, old, reference and learner log-probs, masks, LoRA dropout keys) is gathered
   with its row, so group structure, which only ``prepare`` reads, no longer matters;
2. walks the sorted rows with a ``lax.while_loop``. Each bucket length ``L``
   (`bucket_lengths`: ``T``, ``T/2``, ``T/4`` ..., ``optim.length_buckets`` of them) has one
   static shape ``[r_L, Tp + L]``, ``r_L = micro_batch_tokens // (Tp + L)`` rows (at least
   one). At row ``start``, bucket ``L`` would take ``n_L`` rows: those among the next ``r_L``
   that fit in ``L``. The loop picks the bucket with the most rows per token of its shape,
   and ``lax.switch`` runs the branch compiled for it: rows ``[start, start + n_L)``
   gathered, the places left over filled with an all-masked zero row, completion columns
   ``[:L]``. Every micro-batch holds at most the budget's tokens (one full-length row when a
   single row is over it), so short rows come many to a micro-batch and long ones few.

The passes without gradients (the reference's and the learner's own log-probs before the
update, `r1jax.learner.logprobs.reference_logprobs_fn`) walk the rows the same way
(`map_rows`) and scatter each micro-batch's ``[n_L, L]`` values back into ``[B, T]``.

Shapes are static per bucket: the program holds one forward/backward per bucket (a bounded,
fixed set, compiled once with the step), and a step never recompiles for new lengths. The
zero row carries no loss: every mask is False (the algorithms' losses, their metric sums and
the critic's and PRM's losses are all masked), and it adds only its share of compute.

Why it is exact: cutting the completion at ``L`` drops only positions after a row's last
loss token, and the model is causal with left-padded prompts, so the kept positions' log-probs
are the same; every algorithm that may use this path has a loss that is a sum over rows of
masked per-token terms, divided by the mini-batch's denominator computed on the whole
mini-batch before any split (`r1jax.algorithms.base`). The micro-batch gradients therefore add
up to the padded mini-batch's gradient, up to float rounding. Algorithms whose loss couples
rows (online DPO pairs rows of a group) declare ``loss_couples_rows`` and are refused.

Not here: the padded row micro-batches (`r1jax.learner.step`), packing several rows into one
sequence (a different attention mask; not done).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from r1jax.learner.batch import Batch

COMPLETION_FIELDS = (
    "completion_tokens",
    "completion_mask",
    "old_logprobs",
    "reference_logprobs",
    "learner_logprobs",
)
"""The `Batch` fields with a completion axis (``[B, T]``), cut with the micro-batch."""


def bucket_lengths(max_length: int, buckets: int) -> tuple[int, ...]:
    """The completion lengths micro-batches are cut to, ascending and distinct: ``T``,
    ``ceil(T / 2)``, ``ceil(T / 4)`` ... (``buckets`` of them, fewer when they coincide),
    each above 8 rounded up to a multiple of 8 (at most ``T``).

    Example:
      >>> bucket_lengths(1024, 4)
      (128, 256, 512, 1024)
      >>> bucket_lengths(6, 4)
      (1, 2, 3, 6)
    """
    lengths = set()
    for k in range(buckets):
        length = math.ceil(max_length / 2**k)
        if length > 8:
            length = min(max_length, 8 * math.ceil(length / 8))
        lengths.add(length)
    return tuple(sorted(lengths))


def rows_per_bucket(lengths: tuple[int, ...], prompt_width: int, budget: int, rows: int):
    """Rows of a micro-batch cut to each bucket length: ``budget // (Tp + L)``, at least 1
    and at most ``rows``."""
    return tuple(min(rows, max(1, budget // (prompt_width + length))) for length in lengths)


def row_lengths(batch: Batch, prepared: dict[str, jax.Array]) -> jax.Array:
    """``[B]`` int32: 1 + the last completion position that is sampled or in the loss mask
    (0 for a row with neither)."""
    used = batch.completion_mask.astype(bool)
    if "loss_mask" in prepared:
        used = used | prepared["loss_mask"].astype(bool)
    positions = jnp.arange(1, used.shape[1] + 1, dtype=jnp.int32)  # [T]
    return jnp.max(jnp.where(used, positions[None, :], 0), axis=1)  # [B]


def cut_completions(inputs: tuple, length: int) -> tuple:
    """``(batch, prepared, *rest)`` with the completion axis cut to ``[:length]``.

    ``batch``'s `COMPLETION_FIELDS`, and every ``prepared`` leaf with a second axis (the
    algorithms' per-token ``[B, T, ...]`` values), are cut; ``rest`` (per-row values such as
    LoRA dropout keys) is not.
    """
    batch, prepared, *rest = inputs
    cut = {
        name: getattr(batch, name)[:, :length]
        for name in COMPLETION_FIELDS
        if getattr(batch, name) is not None
    }

    def cut_leaf(x):
        return x[:, :length] if x.ndim >= 2 else x

    return (batch.replace(**cut), jax.tree.map(cut_leaf, prepared), *rest)


def _walk(
    branches: list,
    rows: int,
    per_bucket: tuple,
    lengths: tuple,
    prompt_width: int,
    sorted_length: jax.Array,
    carry: Any,
) -> Any:
    """Runs ``branches[k](start, taken, carry) -> carry`` over the sorted rows with a
    ``lax.while_loop``, from ``start = 0`` until every row is taken.

    At row ``start``, bucket ``k`` would take ``n_k``: the rows among the next
    ``per_bucket[k]`` whose lengths fit in ``lengths[k]``. The loop picks the bucket with the
    most rows per token of its ``[per_bucket[k], Tp + lengths[k]]`` shape (the first on a
    tie), and ``start`` advances by its ``n_k`` (at least 1: the last bucket is ``T``).
    """
    bucket_rows = jnp.asarray(per_bucket, jnp.int32)  # [K]
    tokens = jnp.asarray([r * (prompt_width + n) for r, n in zip(per_bucket, lengths)])
    fitting = jnp.searchsorted(sorted_length, jnp.asarray(lengths, jnp.int32), side="right")

    def body(state):
        start, carry = state
        taken = jnp.clip(jnp.minimum(fitting - start, bucket_rows), 0)  # [K]
        bucket = jnp.argmax(taken / tokens)
        carry = jax.lax.switch(bucket, branches, start, taken[bucket], carry)
        return start + taken[bucket], carry

    _, carry = jax.lax.while_loop(lambda state: state[0] < rows, body, (jnp.int32(0), carry))
    return carry


def _sorted(inputs: Any, row_length: jax.Array):
    """``inputs`` with rows sorted by ``row_length`` (ascending, stable) and one zero row
    appended (row ``B``: what a micro-batch's unused places hold); the sort order ``[B]`` and
    the sorted lengths ``[B]``."""
    order = jnp.argsort(row_length, stable=True)  # [B]

    def sort(x):
        x = x[order]
        return jnp.pad(x, [(0, 1)] + [(0, 0)] * (x.ndim - 1))

    return jax.tree.map(sort, inputs), order, row_length[order]


def _rows_at(tree: Any, start: jax.Array, taken: jax.Array, rows: int, size: int) -> Any:
    """Sorted rows ``[start, start + taken)``, then the zero row ``rows``: ``size`` rows."""
    offsets = jnp.arange(size, dtype=jnp.int32)
    index = jnp.where(offsets < taken, start + offsets, rows)  # [size]
    return jax.tree.map(lambda x: x[index], tree)


def accumulate(
    grad_fn: Any, params: Any, inputs: tuple, *, budget: int, buckets: int
) -> tuple[Any, Any]:
    """``grad_fn(params, micro)`` summed over length-grouped micro-batches of ``inputs``.

    Args:
      grad_fn: ``(params, (batch, prepared, *rest)) -> (grads, sums)``, additive over rows.
      params: the differentiated params.
      inputs: ``(batch, prepared, *rest)``, every leaf ``[B, ...]`` (see `cut_completions`).
      budget: tokens (prompt width + bucket length, times rows) per micro-batch.
      buckets: the number of bucket lengths (`bucket_lengths`).

    Returns:
      ``(grads, sums)`` added over every micro-batch, as ``grad_fn`` of the whole ``inputs``
      would give them (up to float rounding).
    """
    batch, prepared = inputs[0], inputs[1]
    rows, width = batch.rows, batch.completion_tokens.shape[1]
    lengths = bucket_lengths(width, buckets)
    per_bucket = rows_per_bucket(lengths, batch.prompt_tokens.shape[1], budget, rows)
    prompt_width = batch.prompt_tokens.shape[1]
    per_bucket = rows_per_bucket(lengths, prompt_width, budget, rows)
    ordered, _, sorted_length = _sorted(inputs, row_lengths(batch, prepared))

    def branch(length, size):
        def run(start, taken, total):
            micro = cut_completions(_rows_at(ordered, start, taken, rows, size), length)
            return jax.tree.map(jnp.add, total, grad_fn(params, micro))

        return run

    branches = [branch(length, r) for length, r in zip(lengths, per_bucket)]
    first = cut_completions(jax.tree.map(lambda x: x[:1], inputs), width)
    shapes = jax.eval_shape(grad_fn, params, first)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return _walk(branches, rows, per_bucket, lengths, prompt_width, sorted_length, zeros)


def map_rows(fn: Any, batch: Batch, *, budget: int, buckets: int) -> jax.Array:
    """``fn(micro_batch) -> [b, L]`` over length-grouped micro-batches of ``batch``, laid
    back in the batch's row order: ``[B, T]`` float32, 0 after each micro-batch's cut (so
    past every row's last sampled token).

    For per-token values of the completions without gradients (the reference's and the
    learner's log-probs), lengths from ``completion_mask`` alone.
    """
    rows, width = batch.rows, batch.completion_tokens.shape[1]
    lengths = bucket_lengths(width, buckets)
    prompt_width = batch.prompt_tokens.shape[1]
    per_bucket = rows_per_bucket(lengths, prompt_width, budget, rows)
    ordered, order, sorted_length = _sorted(batch, row_lengths(batch, {}))

    def branch(length, size):
        def run(start, taken, out):
            micro = _rows_at(ordered, start, taken, rows, size)
            values = fn(cut_completions((micro, {}), length)[0]).astype(out.dtype)  # [r, L]
            values = jnp.pad(values, ((0, 0), (0, width - length)))  # [r, T]
            index = jnp.where(jnp.arange(size) < taken, start + jnp.arange(size), rows)
            return out.at[index].set(values)  # unused places land on row B, dropped

        return run

    branches = [branch(length, r) for length, r in zip(lengths, per_bucket)]
    out = jnp.zeros((rows + 1, width), jnp.float32)
    out = _walk(branches, rows, per_bucket, lengths, prompt_width, sorted_length, out)[:rows]
    return out[jnp.argsort(order)]  # back to the batch's order
