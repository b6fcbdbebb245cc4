"""Length buckets and padding of token id lists into ``int32`` arrays.

Batches are padded to a bucket length (the smallest configured length that fits the longest row)
rather than to the batch's own maximum, so jitted consumers see a handful of shapes and compile
once per bucket. Prompts are padded on the left (generation continues from the last column);
SFT sequences on the right. What counts as too long, and what to do about it, is
``fit_length``'s business: raise, truncate on the left, or tell the caller to skip the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

OverlongPolicy = Literal["error", "truncate_left", "skip"]


def linear_buckets(max_length: int, *, step: int = 32) -> tuple[int, ...]:
    """Bucket lengths ``step, 2*step, ...`` up to ``max_length`` (included, rounded up to a step).

    Example:
      >>> linear_buckets(100, step=32)
      (32, 64, 96, 128)
    """
    if max_length <= 0 or step <= 0:
        raise ValueError(f"max_length and step must be positive, got {max_length}, {step}")
    return tuple(range(step, -(-max_length // step) * step + 1, step))


def power_of_two_buckets(max_length: int, *, min_length: int = 16) -> tuple[int, ...]:
    """Bucket lengths ``min_length, 2*min_length, ...`` up to the first one ``>= max_length``.

    Example:
      >>> power_of_two_buckets(100, min_length=16)
      (16, 32, 64, 128)
    """
    if max_length <= 0 or min_length <= 0:
        raise ValueError(f"lengths must be positive, got {max_length}, {min_length}")
    buckets = [min_length]
    while buckets[-1] < max_length:
        buckets.append(buckets[-1] * 2)
    return tuple(buckets)


def check_buckets(buckets: Sequence[int]) -> tuple[int, ...]:
    """Returns the buckets sorted, after checking they are positive and distinct."""
    sorted_buckets = tuple(sorted(int(b) for b in buckets))
    if not sorted_buckets or sorted_buckets[0] <= 0 or len(set(sorted_buckets)) != len(buckets):
        raise ValueError(f"buckets must be distinct positive lengths, got {list(buckets)}")
    return sorted_buckets


def bucket_length(length: int, buckets: Sequence[int]) -> int:
    """The smallest bucket ``>= length``; ``buckets`` sorted ascending.

    Example:
      >>> bucket_length(33, (32, 64, 128)), bucket_length(32, (32, 64, 128))
      (64, 32)
    """
    for bucket in buckets:
        if bucket >= length:
            return bucket
    raise ValueError(f"length {length} exceeds the largest bucket {buckets[-1]}")


def fit_length(
    ids: Sequence[int], max_length: int, *, overlong: OverlongPolicy, what: str
) -> tuple[list[int] | None, bool]:
    """Applies the overlong policy to one row.

    Args:
      ids: the row's token ids.
      max_length: the largest bucket.
      overlong: ``"error"`` raises; ``"truncate_left"`` keeps the last ``max_length`` ids;
        ``"skip"`` returns ``None`` so the caller drops (and counts) the row.
      what: names the row in the error message (e.g. ``"prompt 'id-7' (record 7)"``).

    Returns:
      ``(ids or None, was_overlong)``.
    """
    ids = list(ids)
    if len(ids) <= max_length:
        return ids, False
    if overlong == "truncate_left":
        return ids[-max_length:], True
    if overlong == "skip":
        return None, True
    if overlong == "error":
        raise ValueError(
            f"{what} has {len(ids)} tokens, more than the largest bucket {max_length}; "
            "raise the largest bucket or set overlong='truncate_left' or 'skip'"
        )
    raise ValueError(f"overlong must be 'error', 'truncate_left' or 'skip', got {overlong!r}")


def left_pad(rows: Sequence[Sequence[int]], length: int, pad_id: int) -> np.ndarray:
    """Pads id lists on the left into ``[N, length]`` ``int32``.

    Example:
      >>> left_pad([[1, 2], [3]], 3, pad_id=0)
      array([[0, 1, 2],
             [0, 0, 3]], dtype=int32)
    """
    out = np.full((len(rows), length), pad_id, dtype=np.int32)  # [N, length]
    for row, ids in enumerate(rows):
        if len(ids) > length:
            raise ValueError(f"row {row} has {len(ids)} ids, more than {length}")
        if ids:
            out[row, length - len(ids) :] = ids
    return out


def right_pad(rows: Sequence[Sequence[int]], length: int, pad_id: int) -> np.ndarray:
    """Pads id lists on the right into ``[N, length]`` ``int32``.

    Example:
      >>> right_pad([[1, 2], [3]], 3, pad_id=0)
      array([[1, 2, 0],
             [3, 0, 0]], dtype=int32)
    """
    out = np.full((len(rows), length), pad_id, dtype=np.int32)  # [N, length]
    for row, ids in enumerate(rows):
        if len(ids) > length:
            raise ValueError(f"row {row} has {len(ids)} ids, more than {length}")
        out[row, : len(ids)] = ids
    return out
