import numpy as np
import pytest

from r1jax.data import padding


def test_bucket_is_smallest_that_fits():
    buckets = (32, 64, 128)
    assert [padding.bucket_length(n, buckets) for n in (0, 1, 32, 33, 64, 65, 128)] == [
        32,
        32,
        32,
        64,
        64,
        128,
        128,
    ]
    with pytest.raises(ValueError, match="exceeds the largest bucket 128"):
        padding.bucket_length(129, buckets)


def test_bucket_helpers():
    assert padding.linear_buckets(64, step=32) == (32, 64)
    assert padding.power_of_two_buckets(65, min_length=8) == (8, 16, 32, 64, 128)
    assert padding.check_buckets([64, 32]) == (32, 64)
    for bad in ([], [0, 8], [8, 8]):
        with pytest.raises(ValueError, match="distinct positive"):
            padding.check_buckets(bad)


def test_fit_length_policies():
    ids = list(range(10))
    assert padding.fit_length(ids, 10, overlong="error", what="x") == (ids, False)
    assert padding.fit_length(ids, 4, overlong="truncate_left", what="x") == ([6, 7, 8, 9], True)
    assert padding.fit_length(ids, 4, overlong="skip", what="x") == (None, True)
    with pytest.raises(ValueError, match="prompt 7 has 10 tokens, more than the largest bucket 4"):
        padding.fit_length(ids, 4, overlong="error", what="prompt 7")


def test_left_and_right_padding():
    rows = [[5, 6, 7], [8], []]
    np.testing.assert_array_equal(
        padding.left_pad(rows, 4, pad_id=0), [[0, 5, 6, 7], [0, 0, 0, 8], [0, 0, 0, 0]]
    )
    np.testing.assert_array_equal(
        padding.right_pad(rows, 4, pad_id=-1), [[5, 6, 7, -1], [8, -1, -1, -1], [-1] * 4]
    )
    assert padding.left_pad(rows, 4, 0).dtype == np.int32
    with pytest.raises(ValueError, match="row 0 has 3 ids"):
        padding.left_pad(rows, 2, 0)
