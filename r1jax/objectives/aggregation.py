"""Loss aggregation: how per-token losses ``[B, T]`` become one scalar.

The choice of reduction changes the algorithm (verl ``agg_loss``
[repo:verl/trainer/ppo/core_algos.py]). With ``m`` the completion mask, ``L`` the per-token loss
and ``N`` the number of rows holding at least one valid token:

- ``token-mean`` (DAPO, arXiv:2503.14476; early verl, TinyZero, Logic-RL, DeepScaleR):
  ``Σ_{i,t} m L / Σ_{i,t} m``.
- ``seq-mean-token-mean`` (GRPO, arXiv:2402.03300): ``(1/N) Σ_i [Σ_t m L / Σ_t m]``.
- ``seq-mean-token-sum``: ``(1/N) Σ_i Σ_t m L``.
- ``seq-mean-token-sum-norm`` (Dr. GRPO, arXiv:2503.20783, as oat computes it):
  ``(1/N) Σ_i Σ_t m L / C`` with ``C`` a constant (the maximum completion length).
- ``constant`` (Dr. GRPO as verl computes it): ``Σ_{i,t} m L / C``.

Every aggregator returns an :class:`Aggregate` ``(numerator, denominator)`` instead of the
quotient. Summing numerators and denominators over micro-batches, or dividing each micro-batch's
numerator by the global-batch denominator, gives exactly the full-batch loss and gradient; a
per-micro-batch mean would not. :func:`safe_divide` turns the pair into a value (0 when the
denominator is 0, never NaN). The ``constant`` mode's denominator is ``C`` for any batch, so it
does not add up over micro-batches: pass ``C`` as the global denominator instead.

Masked positions are selected away with ``jnp.where``, so padding that holds garbage does not
leak into the value; the padding must still be finite for gradients to stay finite.

Not here: the per-token losses themselves (``policy_loss``, ``kl``, ``value_loss``), and the
composed algorithms (``losses``).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Aggregate(NamedTuple):
    """A reduction kept as a fraction, so that micro-batches add up exactly.

    Attributes:
      numerator: scalar sum of the weighted per-token values.
      denominator: scalar weight (token count, sequence count or constant).
    """

    numerator: jax.Array
    denominator: jax.Array


def safe_divide(numerator: jax.typing.ArrayLike, denominator: jax.typing.ArrayLike) -> jax.Array:
    """``numerator / denominator``, and 0 (with a zero gradient) wherever ``denominator`` is 0.

    Args:
      numerator: any shape.
      denominator: broadcastable to ``numerator``.

    Returns:
      The quotient, never NaN or inf for a zero denominator.

    Example:
      >>> import jax.numpy as jnp
      >>> safe_divide(jnp.array([3.0, 1.0]), jnp.array([2.0, 0.0]))
      Array([1.5, 0. ], dtype=float32)
    """
    numerator = jnp.asarray(numerator)
    denominator = jnp.asarray(denominator)
    nonzero = denominator != 0
    safe_den = jnp.where(nonzero, denominator, jnp.ones_like(denominator))
    return jnp.where(nonzero, numerator / safe_den, jnp.zeros_like(numerator / safe_den))


def aggregate_value(
    aggregate: Aggregate, denominator: jax.typing.ArrayLike | None = None
) -> jax.Array:
    """The scalar of an :class:`Aggregate`, optionally over a global-batch denominator.

    Args:
      aggregate: ``(numerator, denominator)`` from one of the aggregators.
      denominator: overrides ``aggregate.denominator``; pass the full-batch denominator when the
        aggregate covers one micro-batch, so that micro-batch gradients sum to the full-batch one.

    Returns:
      Scalar ``numerator / denominator``, 0 when the denominator is 0.

    Example:
      >>> import jax.numpy as jnp
      >>> loss = jnp.array([[1.0, 3.0], [5.0, 0.0]])
      >>> mask = jnp.array([[1, 1], [1, 0]])
      >>> float(aggregate_value(token_mean(loss, mask)))
      3.0
      >>> float(aggregate_value(token_mean(loss, mask), denominator=6))
      1.5
    """
    den = aggregate.denominator if denominator is None else denominator
    return safe_divide(aggregate.numerator, den)


def _masked(values: jax.Array, mask: jax.typing.ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Values with masked entries set to 0 (by selection), and the float mask."""
    mask = jnp.asarray(mask).astype(bool)
    values = jnp.asarray(values)
    dtype = jnp.promote_types(values.dtype, jnp.float32)
    values = values.astype(dtype)
    return jnp.where(mask, values, jnp.zeros_like(values)), mask.astype(dtype)


def _rows_with_tokens(mask: jax.Array) -> jax.Array:
    """``N``: the number of rows holding at least one valid token, as a float scalar."""
    return jnp.sum((jnp.sum(mask, axis=-1) > 0).astype(mask.dtype))


def token_mean(values: jax.typing.ArrayLike, mask: jax.typing.ArrayLike) -> Aggregate:
    """DAPO's token-level mean: ``Σ_{i,t} m L / Σ_{i,t} m`` (arXiv:2503.14476 §3.3).

    Args:
      values: ``[B, T]`` per-token values.
      mask: ``[B, T]`` completion mask (bool or 0/1).

    Returns:
      ``Aggregate(Σ m L, Σ m)``; the denominator is the number of valid tokens.

    Example:
      >>> import jax.numpy as jnp
      >>> token_mean(jnp.array([[1.0, 3.0], [5.0, 7.0]]), jnp.array([[1, 1], [1, 0]]))
      Aggregate(numerator=Array(9., dtype=float32), denominator=Array(3., dtype=float32))
    """
    values, mask = _masked(values, mask)
    return Aggregate(jnp.sum(values), jnp.sum(mask))


def seq_mean_token_mean(values: jax.typing.ArrayLike, mask: jax.typing.ArrayLike) -> Aggregate:
    """GRPO's mean over sequences of per-sequence token means (arXiv:2402.03300 eq. 3).

    ``(1/N) Σ_i [Σ_t m_{i,t} L_{i,t} / Σ_t m_{i,t}]``, where fully masked rows contribute 0 to
    the numerator and are not counted in ``N``.

    Args:
      values: ``[B, T]`` per-token values.
      mask: ``[B, T]`` completion mask.

    Returns:
      ``Aggregate(Σ_i mean_t L_i, N)``.

    Example:
      >>> import jax.numpy as jnp
      >>> agg = seq_mean_token_mean(jnp.array([[1.0, 3.0], [5.0, 7.0]]), jnp.array([[1, 1], [1, 0]]))
      >>> float(agg.numerator), float(agg.denominator)
      (7.0, 2.0)
    """
    values, mask = _masked(values, mask)
    per_seq = safe_divide(jnp.sum(values, axis=-1), jnp.sum(mask, axis=-1))  # [B]
    return Aggregate(jnp.sum(per_seq), _rows_with_tokens(mask))


def seq_mean_token_sum(values: jax.typing.ArrayLike, mask: jax.typing.ArrayLike) -> Aggregate:
    """Mean over sequences of per-sequence token sums: ``(1/N) Σ_i Σ_t m L`` (verl).

    Args:
      values: ``[B, T]`` per-token values.
      mask: ``[B, T]`` completion mask.

    Returns:
      ``Aggregate(Σ_{i,t} m L, N)``.

    Example:
      >>> import jax.numpy as jnp
      >>> agg = seq_mean_token_sum(jnp.array([[1.0, 3.0], [5.0, 7.0]]), jnp.array([[1, 1], [1, 0]]))
      >>> float(agg.numerator), float(agg.denominator)
      (9.0, 2.0)
    """
    values, mask = _masked(values, mask)
    return Aggregate(jnp.sum(values), _rows_with_tokens(mask))


def seq_mean_token_sum_norm(
    values: jax.typing.ArrayLike, mask: jax.typing.ArrayLike, *, max_length: float
) -> Aggregate:
    """Dr. GRPO's reduction as oat computes it: ``(1/N) Σ_i Σ_t m L / C`` (arXiv:2503.20783).

    Each sequence's token sum is divided by the same constant ``C`` (the generation budget,
    3000 in the Dr. GRPO recipes), so neither the response length nor the group's reward spread
    re-weights tokens [repo:understand-r1-zero/train_zero_math.py; repo:oat/oat/algorithms/ppo.py].

    Args:
      values: ``[B, T]`` per-token values.
      mask: ``[B, T]`` completion mask.
      max_length: ``C``, usually ``max_new_tokens``.

    Returns:
      ``Aggregate(Σ_{i,t} m L / C, N)``.

    Example:
      >>> import jax.numpy as jnp
      >>> agg = seq_mean_token_sum_norm(
      ...     jnp.array([[1.0, 3.0], [5.0, 7.0]]), jnp.array([[1, 1], [1, 0]]), max_length=3)
      >>> float(agg.numerator), float(agg.denominator)
      (3.0, 2.0)
    """
    values, mask = _masked(values, mask)
    return Aggregate(jnp.sum(values) / max_length, _rows_with_tokens(mask))


def constant_normaliser(
    values: jax.typing.ArrayLike, mask: jax.typing.ArrayLike, *, normaliser: float
) -> Aggregate:
    """Dr. GRPO's reduction as verl computes it: ``Σ_{i,t} m L / C``.

    It differs from :func:`seq_mean_token_sum_norm` by the factor ``N``, which only rescales the
    learning rate. The denominator is ``C`` for every batch, so it does not add up over
    micro-batches: divide each micro-batch's numerator by ``C`` (pass ``denominator=C``).

    Args:
      values: ``[B, T]`` per-token values.
      mask: ``[B, T]`` completion mask.
      normaliser: ``C``.

    Returns:
      ``Aggregate(Σ_{i,t} m L, C)``.

    Example:
      >>> import jax.numpy as jnp
      >>> agg = constant_normaliser(
      ...     jnp.array([[1.0, 3.0], [5.0, 7.0]]), jnp.array([[1, 1], [1, 0]]), normaliser=3)
      >>> float(aggregate_value(agg))
      3.0
    """
    values, _ = _masked(values, mask)
    return Aggregate(jnp.sum(values), jnp.asarray(normaliser, values.dtype))


AGGREGATION_MODES = (
    "token-mean",
    "seq-mean-token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-sum-norm",
    "constant",
)


def aggregate(
    values: jax.typing.ArrayLike,
    mask: jax.typing.ArrayLike,
    *,
    mode: str,
    max_length: float | None = None,
) -> Aggregate:
    """Dispatches on a verl-style mode name (see the module docstring for the equations).

    Args:
      values: ``[B, T]`` per-token values.
      mask: ``[B, T]`` completion mask.
      mode: one of ``AGGREGATION_MODES``.
      max_length: ``C`` for ``seq-mean-token-sum-norm`` and ``constant``; defaults to ``T``.

    Returns:
      The mode's :class:`Aggregate`.

    Example:
      >>> import jax.numpy as jnp
      >>> loss, mask = jnp.array([[1.0, 3.0], [5.0, 7.0]]), jnp.array([[1, 1], [1, 0]])
      >>> float(aggregate_value(aggregate(loss, mask, mode="seq-mean-token-mean")))
      3.5
    """
    if mode not in AGGREGATION_MODES:
        raise ValueError(f"unknown aggregation mode {mode!r}; expected one of {AGGREGATION_MODES}")
    if mode == "token-mean":
        return token_mean(values, mask)
    if mode == "seq-mean-token-mean":
        return seq_mean_token_mean(values, mask)
    if mode == "seq-mean-token-sum":
        return seq_mean_token_sum(values, mask)
    length = jnp.shape(values)[-1] if max_length is None else max_length
    if mode == "seq-mean-token-sum-norm":
        return seq_mean_token_sum_norm(values, mask, max_length=length)
    return constant_normaliser(values, mask, normaliser=length)


def aggregation_denominator(
    mask: jax.typing.ArrayLike, *, mode: str, max_length: float | None = None
) -> jax.Array:
    """The denominator a mode uses for a batch: compute it once on the full batch's mask.

    Pass the result as ``denominator=`` to every micro-batch's loss so that the micro-batch
    gradients add up to the full-batch gradient.

    Args:
      mask: ``[B, T]`` completion mask of the whole batch.
      mode: one of ``AGGREGATION_MODES``.
      max_length: ``C`` for the constant-normaliser modes; defaults to ``T``.

    Returns:
      Scalar denominator (token count, sequence count or ``C``).

    Example:
      >>> import jax.numpy as jnp
      >>> mask = jnp.array([[1, 1], [1, 0], [0, 0]])
      >>> float(aggregation_denominator(mask, mode="token-mean"))
      3.0
      >>> float(aggregation_denominator(mask, mode="seq-mean-token-mean"))
      2.0
    """
    zeros = jnp.zeros(jnp.shape(mask), jnp.float32)
    return aggregate(zeros, mask, mode=mode, max_length=max_length).denominator


def masked_mean(values: jax.typing.ArrayLike, mask: jax.typing.ArrayLike) -> jax.Array:
    """Mean of ``values`` over the entries where ``mask`` is set; 0 when nothing is set.

    Args:
      values: any shape.
      mask: the same shape (bool or 0/1).

    Returns:
      Scalar mean, float32 or wider.

    Example:
      >>> import jax.numpy as jnp
      >>> float(masked_mean(jnp.array([1.0, 2.0, 100.0]), jnp.array([1, 1, 0])))
      1.5
    """
    values, mask = _masked(values, mask)
    return safe_divide(jnp.sum(values), jnp.sum(mask))
