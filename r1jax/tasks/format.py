"""R1 output-format checks and ``<answer>`` tag extraction, written to stay linear-time.

The R1 structure is ``<think> reasoning </think> <answer> answer </answer>``. This module holds:

* ``answer_tag_contents`` / ``last_answer_tag``: what ``re.finditer(r"<answer>(.*?)</answer>")``
  returns, computed with ``str.find`` so that crafted completions (a million ``<answer>`` tags
  and no closing one) cost linear time instead of quadratic.
* ``is_strict_format``: open-r1's ``format_reward`` regex
  ``^<think>\\n.*?\\n</think>\\n<answer>\\n.*?\\n</answer>$`` (DOTALL | MULTILINE), decided without
  backtracking.
* ``is_lenient_format``: the four tags once each, in order, with only whitespace between the
  blocks and nothing after ``</answer>`` but whitespace.
* ``tag_count_score``: open-r1's ``tag_count_reward``, 0.25 per tag string seen exactly once.
* ``verify``: the format task, scored by one of the three rules above.

Task-specific answer checks live in the task modules, not here.
"""

from collections.abc import Iterator

from r1jax.tasks import verdict as verdict_lib
from r1jax.tasks.verdict import Verdict

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"

TAG_COUNT_STRINGS = ("<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>")
MODES = ("strict", "lenient", "tag_count")

CHECK_PHRASE = "Hmm, wait, let me check: "
"""Opens the self-check of a ``verify`` reference trace (countdown, knights_knaves); ``wait,``
is a reflection marker of the trainer's default keywords (`r1jax.verifiers.reflection`)."""


def tag_contents(text: str, open_tag: str, close_tag: str, *, dotall: bool = True) -> Iterator[str]:
    """Yields what ``re.finditer(open_tag + "(.*?)" + close_tag, text, flags)`` captures.

    Tags are literal strings. Without ``dotall`` a match may not span a newline, like ``.``
    without ``re.DOTALL``. Runs in time linear in ``len(text)``.

    Example:
      >>> list(tag_contents("<a>1</a> <a>x <a>2</a>", "<a>", "</a>"))
      ['1', 'x <a>2']
    """
    pos = 0
    close_at = -2  # cached position of the next close tag at or after the current start
    newline_at = -2
    while True:
        start = text.find(open_tag, pos)
        if start < 0:
            return
        body = start + len(open_tag)
        if close_at != -1 and close_at < body:
            close_at = text.find(close_tag, body)
        if close_at < 0:
            return
        if not dotall:
            if newline_at != -1 and newline_at < body:
                newline_at = text.find("\n", body)
            if 0 <= newline_at < close_at:
                pos = start + 1  # no match from this start; the regex tries the next position
                continue
        yield text[body:close_at]
        pos = close_at + len(close_tag)


def answer_tag_contents(text: str, *, dotall: bool = True) -> list[str]:
    """All ``<answer>...</answer>`` contents, as ``re.findall`` (non-greedy) would return them."""
    return list(tag_contents(text, ANSWER_OPEN, ANSWER_CLOSE, dotall=dotall))


def last_answer_tag(text: str, *, dotall: bool = True) -> str | None:
    """The content of the last non-greedy ``<answer>(.*?)</answer>`` match, or ``None``.

    Example:
      >>> last_answer_tag("<answer>1</answer> then <answer> 2 </answer>")
      ' 2 '
      >>> last_answer_tag("<answer>1\\n</answer>", dotall=False) is None
      True
    """
    last = None
    for content in tag_contents(text, ANSWER_OPEN, ANSWER_CLOSE, dotall=dotall):
        last = content
    return last


def _ends_line(text: str, index: int) -> bool:
    """Whether ``$`` under ``re.MULTILINE`` matches at ``index``."""
    return index == len(text) or text[index] == "\n"


def is_strict_format(text: str) -> bool:
    """open-r1's ``format_reward`` check, without the regex's quadratic worst case.

    Equivalent to ``re.match(r"^<think>\\n.*?\\n</think>\\n<answer>\\n.*?\\n</answer>$", text,
    re.DOTALL | re.MULTILINE) is not None``.

    Example:
      >>> is_strict_format("<think>\\nhm\\n</think>\\n<answer>\\n4\\n</answer>")
      True
      >>> is_strict_format("<think>hm</think><answer>4</answer>")
      False
    """
    head = "<think>\n"
    middle = "\n</think>\n<answer>\n"
    tail = "\n</answer>"
    if not text.startswith(head):
        return False
    # The earliest middle leaves the most room for the tail, so it is the only one to try.
    middle_at = text.find(middle, len(head))
    if middle_at < 0:
        return False
    pos = middle_at + len(middle)
    while True:
        tail_at = text.find(tail, pos)
        if tail_at < 0:
            return False
        if _ends_line(text, tail_at + len(tail)):
            return True
        pos = tail_at + 1


def is_lenient_format(text: str) -> bool:
    """``<think>`` ... ``</think>`` ... ``<answer>`` ... ``</answer>``, each tag exactly once.

    Only whitespace may precede ``<think>``, separate ``</think>`` from ``<answer>`` and follow
    ``</answer>``.

    Example:
      >>> is_lenient_format("<think>hm</think> <answer>4</answer>\\n")
      True
      >>> is_lenient_format("<think>hm</think> so <answer>4</answer>")
      False
    """
    tags = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
    if any(text.count(tag) != 1 for tag in tags):
        return False
    positions = [text.find(tag) for tag in tags]
    if positions != sorted(positions):
        return False
    think_open, think_close, answer_open, answer_close = positions
    return (
        not text[:think_open].strip()
        and not text[think_close + len(THINK_CLOSE) : answer_open].strip()
        and not text[answer_close + len(ANSWER_CLOSE) :].strip()
    )


def tag_count_score(text: str) -> float:
    """open-r1's ``tag_count_reward``: 0.25 for each of ``TAG_COUNT_STRINGS`` seen exactly once.

    Example:
      >>> tag_count_score("<think>\\nhm\\n</think>\\n<answer>\\n4\\n</answer>")
      1.0
    """
    return 0.25 * sum(text.count(tag) == 1 for tag in TAG_COUNT_STRINGS)


def verify(
    completion: str, problem: dict | None = None, *, mode: str = "strict", prefill: str = ""
) -> Verdict:
    """Checks the R1 output format of ``prefill + completion``.

    Args:
      completion: the decoded response (without the prompt).
      problem: unused; present so every task's ``verify`` has the same signature.
      mode: ``"strict"`` (open-r1 ``format_reward``: 1 or 0), ``"lenient"``
        (``is_lenient_format``: 1 or 0) or ``"tag_count"`` (0 to 1 in steps of 0.25; correct only
        at 1).
      prefill: text the prompt ends with that belongs to the response, e.g. ``"<think>\\n"`` when
        the template prefills it; it is prepended before checking.

    Returns:
      a ``Verdict`` with ``correct == well_formed`` and ``answer`` set to the last answer tag.

    Example:
      >>> verify("hm\\n</think>\\n<answer>\\n4\\n</answer>", prefill="<think>\\n").score
      1.0
    """
    del problem
    if not isinstance(completion, str):
        return Verdict.failure(verdict_lib.ERROR, f"completion is {type(completion).__name__}")
    if mode not in MODES:
        raise ValueError(f"format mode must be one of {MODES}, got {mode!r}")
    text = prefill + completion
    if mode == "tag_count":
        score = tag_count_score(text)
        well_formed = score == 1.0
    else:
        well_formed = is_strict_format(text) if mode == "strict" else is_lenient_format(text)
        score = float(well_formed)
    answer = last_answer_tag(text)
    return Verdict(
        correct=well_formed,
        well_formed=well_formed,
        reason=verdict_lib.CORRECT if well_formed else verdict_lib.BAD_FORMAT,
        score=score,
        answer=verdict_lib.truncate(answer.strip() if answer is not None else None),
    )
