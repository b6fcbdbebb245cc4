import re
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from r1jax.tasks import format as format_lib

STRICT = re.compile(r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$", re.DOTALL | re.MULTILINE)


def token_text(tokens):
    return st.lists(st.sampled_from(tokens), max_size=12).map("".join)


@settings(max_examples=300, deadline=None)
@given(token_text(["<answer>", "</answer>", "a", "\n", "<", ">", "answer"]))
def test_tag_contents_matches_regex_finditer(text):
    for dotall in (True, False):
        flags = re.DOTALL if dotall else 0
        expected = re.findall(r"<answer>(.*?)</answer>", text, flags)
        assert format_lib.answer_tag_contents(text, dotall=dotall) == expected


@settings(max_examples=400, deadline=None)
@given(
    token_text(
        [
            "<think>\n",
            "\n</think>\n<answer>\n",
            "\n</answer>",
            "\n",
            "x",
            "<think>",
            "</answer>",
            "\n</think>\n",
            "<answer>\n",
        ]
    )
)
def test_is_strict_format_matches_open_r1_regex(text):
    assert format_lib.is_strict_format(text) == (STRICT.match(text) is not None)


def test_strict_format_allows_trailing_lines_like_multiline_dollar():
    assert format_lib.is_strict_format("<think>\na\n</think>\n<answer>\n4\n</answer>\nmore")
    assert not format_lib.is_strict_format("<think>\na\n</think>\n<answer>\n4\n</answer> more")


def test_lenient_format_table():
    cases = [
        ("<think>a</think><answer>4</answer>", True),
        ("  <think>a</think>\n <answer>4</answer>\n", True),
        ("<think>a</think> so <answer>4</answer>", False),
        ("<answer>4</answer><think>a</think>", False),
        ("<think>a</think><answer>4</answer><answer>5</answer>", False),
        ("<think>a<answer>4</answer>", False),
    ]
    for text, expected in cases:
        assert format_lib.is_lenient_format(text) == expected, text


def test_tag_count_gives_a_quarter_per_tag_seen_once():
    assert format_lib.tag_count_score("<think>\na\n</think>\n<answer>\n4\n</answer>") == 1.0
    assert format_lib.tag_count_score("<think>\na") == 0.25
    assert format_lib.tag_count_score("<think>\n<think>\n\n</answer>") == 0.25


def test_verify_modes_and_prefill():
    completion = "reasoning\n</think>\n<answer>\n4\n</answer>"
    assert format_lib.verify(completion).score == 0.0
    verdict = format_lib.verify(completion, prefill="<think>\n")
    assert (verdict.correct, verdict.score, verdict.answer) == (True, 1.0, "4")
    assert format_lib.verify(completion, mode="tag_count").score == 0.75
    assert format_lib.verify(completion, mode="lenient", prefill="<think>").correct
    assert format_lib.verify(None).reason == "error"


def test_crafted_inputs_stay_linear():
    texts = [
        "<answer>" * 1_000_000,
        "<think>\n" + "\n</think>\n<answer>\n" * 200_000,
        "<answer>\n" * 500_000 + "</answer>",
    ]
    for text in texts:
        start = time.perf_counter()
        format_lib.verify(text)
        format_lib.verify(text, mode="lenient")
        format_lib.last_answer_tag(text, dotall=False)
        assert time.perf_counter() - start < 3.0
