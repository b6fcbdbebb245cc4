import math

import pytest

from r1jax.verifiers import reflection


def test_keyword_lists_have_the_published_sizes():
    assert len(reflection.OAT_ZERO_KEYWORDS) == 11
    assert len(reflection.UNDERSTAND_R1_ZERO_KEYWORDS) == 15
    assert len(reflection.ORZ_PATTERNS) == 5
    assert len(reflection.R1_TERMS) == 10


@pytest.mark.parametrize(
    "text, keywords, expected",
    [
        ("Let me RECHECK and re-examine.", "oat_zero", 2),
        ("Let me double-check; reconsider.", "oat_zero", 0),
        ("Let me double-check; reconsider.", "understand_r1_zero", 2),
        ("Wait, However, retry", "orz", 1),  # case-sensitive: only "retry"
        ("wait, however, recheck\nalternatively,", "orz", 4),
        ("wait, let me recheck this", "default", 3),  # recheck as keyword and as ORZ regex
        ("But wait: is this wrong? distribute", "r1", 3),
        ("nothing to see", "default", 0),
        ("re-check my WORK", ["re-check", "work"], 2),
    ],
)
def test_reflection_count(text, keywords, expected):
    assert reflection.reflection_count(text, keywords=keywords) == expected


def test_reflection_stats_groups_by_reflection_and_correctness():
    texts = ["wait, no", "ok", "recheck: fine!", "plain wrong", "rethink it"]
    correct = [False, True, True, False, False]
    stats = reflection.reflection_stats(texts, correct, lengths=[10, 20, 30, 40, 50], group_size=1)
    assert stats["reflect_rate"] == 3 / 5
    assert stats["ssr_rate"] == 2 / 3
    assert stats["acc_given_reflect"] == 1 / 3
    assert stats["acc_given_no_reflect"] == 1 / 2
    assert stats["mean_length_reflect_wrong"] == 30.0
    assert stats["mean_length_reflect_correct"] == 30.0
    assert stats["mean_length_no_reflect_correct"] == 20.0
    assert stats["count_no_reflect_wrong"] == 1.0
    assert stats["reflection_at_k"] == 3 / 5
    paired = reflection.reflection_stats(texts[:4], correct[:4], group_size=2)
    assert paired["reflection_at_k"] == 1.0


def test_empty_groups_give_nan():
    stats = reflection.reflection_stats(["ok"], [True])
    assert math.isnan(stats["ssr_rate"]) and math.isnan(stats["mean_length_reflect_correct"])
    with pytest.raises(ValueError, match="length"):
        reflection.reflection_stats(["a"], [True, False])
    with pytest.raises(ValueError, match="keywords"):
        reflection.reflection_count("a", keywords="nope")
