"""Final-answer extraction and equivalence for math completions.

What lives here: pulling the final answer out of a completion (last ``\\boxed{}``/``\\fbox{}``
with nested braces, ``<answer>`` tags, GSM8K ``####``, ``Answer:`` lines), DAPO's string
normalisation, and ``answers_match``: an exact string/number fast path first, then Math-Verify
(``math_verify.parse``/``verify``, gold first) on top of sympy. Scoring conventions and prompt
templates live in ``math.py``.

Everything here is bounded: extraction scans a fixed number of candidates, answers longer than
``MAX_ANSWER_CHARS`` are not handed to sympy, and Math-Verify's own SIGALRM timeouts are used
only in a process's main thread (elsewhere they would raise; there the caller's hard limit,
e.g. ``r1jax.verifiers.VerifierPool``, is the only guard).
"""

import math
import re
import threading
from fractions import Fraction

from r1jax.tasks import format as format_lib

MAX_ANSWER_CHARS = 1000
"""Answers longer than this are never parsed (they count as unparseable)."""

_MAX_BOXED_CANDIDATES = 20
_MAX_BRACE_SCAN = 10_000

EXTRACTORS = ("boxed", "answer_tag", "gsm8k", "answer_line")
_ANSWER_LINE = re.compile(r"(?i)Answer\s*:\s*([^\n]+)")


def last_boxed(text: str) -> str | None:
    """The content of the last closed ``\\boxed{...}`` or ``\\fbox{...}`` (braces balanced).

    ``\\boxed 5`` (no braces) gives the text up to the next ``$`` or end of line. When the last
    ``\\boxed`` is not closed, earlier ones are tried (at most 20).

    Example:
      >>> last_boxed(r"so \\boxed{1} or rather \\boxed{\\frac{1}{2}}.")
      '\\\\frac{1}{2}'
      >>> last_boxed(r"\\boxed{\\{1, 2\\}} then \\boxed{")  # the unclosed one is skipped
      '\\\\{1, 2\\\\}'
    """
    end = len(text)
    for _ in range(_MAX_BOXED_CANDIDATES):
        boxed_at = text.rfind("\\boxed", 0, end)
        fbox_at = text.rfind("\\fbox", 0, end)
        start = max(boxed_at, fbox_at)
        if start < 0:
            return None
        pos = start + (len("\\boxed") if start == boxed_at else len("\\fbox"))
        end = start
        if pos < len(text) and text[pos] == " ":
            rest = text[pos + 1 : pos + 1 + _MAX_BRACE_SCAN]
            content = rest.split("$", 1)[0].split("\n", 1)[0].strip()
            if content:
                return content
            continue
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos >= len(text) or text[pos] != "{":
            continue
        depth = 0
        limit = min(len(text), pos + _MAX_BRACE_SCAN)
        for index in range(pos, limit):
            char = text[index]
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return text[pos + 1 : index]
    return None


def gsm8k_answer(text: str) -> str | None:
    """The text after the last ``####`` up to the end of its line, commas removed.

    Example:
      >>> gsm8k_answer("so 3 + 4 = 7\\n#### 1,007")
      '1007'
    """
    at = text.rfind("####")
    if at < 0:
        return None
    answer = text[at + 4 :].split("\n", 1)[0].strip().replace(",", "")
    return answer or None


def answer_line(text: str) -> str | None:
    """The last ``Answer: ...`` line's content (case-insensitive), trailing ``.`` removed.

    Example:
      >>> answer_line("Thus.\\nAnswer: $42$.")
      '$42$'
    """
    last = None
    for match in _ANSWER_LINE.finditer(text):
        last = match.group(1)
    if last is None:
        return None
    last = last.strip().rstrip(".").strip()
    return last or None


def answer_from_tag(text: str) -> str | None:
    """The last ``<answer>`` tag's content, or the last ``\\boxed{}`` inside it when present."""
    content = format_lib.last_answer_tag(text)
    if content is None:
        return None
    if "\\boxed" in content or "\\fbox" in content:
        return last_boxed(content)
    return content.strip() or None


_EXTRACTOR_FUNCTIONS = {
    "boxed": last_boxed,
    "answer_tag": answer_from_tag,
    "gsm8k": gsm8k_answer,
    "answer_line": answer_line,
}


def extract_answer(text: str, order: tuple[str, ...] = EXTRACTORS) -> tuple[str | None, str]:
    """The first answer found by the extractors in ``order``, and the extractor's name.

    Example:
      >>> extract_answer("<answer>7</answer> #### 8")
      ('7', 'answer_tag')
      >>> extract_answer("#### 8\\nAnswer: 9", order=("answer_line", "gsm8k"))
      ('9', 'answer_line')
    """
    for name in order:
        if name not in _EXTRACTOR_FUNCTIONS:
            raise ValueError(f"math extractor must be one of {EXTRACTORS}, got {name!r}")
        answer = _EXTRACTOR_FUNCTIONS[name](text)
        if answer is not None and answer.strip():
            return answer.strip(), name
    return None, ""


def gold_answer(reference) -> str:
    """The final answer of a reference: its last ``\\boxed{}``, else after ``####``, else as is."""
    reference = str(reference)
    if "\\boxed" in reference or "\\fbox" in reference:
        boxed = last_boxed(reference)
        if boxed is not None:
            return boxed.strip()
    if "####" in reference:
        answer = gsm8k_answer(reference)
        if answer is not None:
            return answer
    return reference.strip()


# ------------------------------------------------------------------------------------------
# Fast path
# ------------------------------------------------------------------------------------------

_STRIP_TOKENS = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "$", " ", "\t", "\n")
_INTEGER = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?\d*\.\d+|-?\d+\.?")
_SLASH_FRACTION = re.compile(r"(-?)(\d+)/(\d+)")
_LATEX_FRACTION = re.compile(r"(-?)\\frac\{(\d+)\}\{(\d+)\}")


def normalize_string(answer: str) -> str:
    """Removes spacing commands, ``$``, ``\\left``/``\\right`` and whitespace; ``\\dfrac`` ->
    ``\\frac``; drops a trailing period.

    Example:
      >>> normalize_string(r" $\\left( 1,\\ 2 \\right)$. ")
      '(1,2)'
    """
    text = answer.strip()
    for token in _STRIP_TOKENS:
        text = text.replace(token, "")
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return text.rstrip(".")


def exact_number(answer: str) -> Fraction | None:
    """The exact value of a plain integer, decimal, ``a/b`` or ``\\frac{a}{b}``, else ``None``.

    Example:
      >>> exact_number(r"-\\frac{3}{6}"), exact_number("0.50"), exact_number("x")
      (Fraction(-1, 2), Fraction(1, 2), None)
    """
    text = normalize_string(answer)
    if len(text) > 100:
        return None
    if _DECIMAL.fullmatch(text):
        return Fraction(text)
    for pattern in (_SLASH_FRACTION, _LATEX_FRACTION):
        match = pattern.fullmatch(text)
        if match:
            sign, numerator, denominator = match.groups()
            if int(denominator) == 0:
                return None
            return Fraction(int(numerator), int(denominator)) * (-1 if sign else 1)
    return None


def fast_match(answer: str, gold: str) -> bool | None:
    """``True``/``False`` when the answer is decided without sympy, else ``None``.

    Equal normalised strings or equal exact numbers match; two different plain integers, or two
    exact numbers more than 1e-4 (relative) apart, do not. Anything else is left to sympy.

    Example:
      >>> fast_match("0.5", r"\\frac{1}{2}"), fast_match("12", "13"), fast_match("x+1", "1+x")
      (True, False, None)
      >>> fast_match("0.333333", "1/3") is None  # close: Math-Verify's rounding decides
      True
    """
    a, g = normalize_string(answer), normalize_string(gold)
    if a == g and a:
        return True
    a_value, g_value = exact_number(a), exact_number(g)
    if a_value is not None and g_value is not None and a_value == g_value:
        return True
    if _INTEGER.fullmatch(a) and _INTEGER.fullmatch(g):
        return False
    # Far apart exact numbers: no rounding (Math-Verify rounds to 6 decimals) can match them.
    if (
        a_value is not None
        and g_value is not None
        and abs(a_value - g_value) > Fraction(1, 10_000) * max(1, abs(g_value))
    ):
        return False
    return None


# ------------------------------------------------------------------------------------------
# Math-Verify
# ------------------------------------------------------------------------------------------


def signal_timeout(timeout_seconds: float | None) -> int | None:
    """Math-Verify's timeout to pass from this thread: ``None`` outside the main thread.

    Math-Verify uses ``signal.alarm`` (whole seconds), which only works in a process's main
    thread; elsewhere its timeouts must be disabled.
    """
    if timeout_seconds is None or threading.current_thread() is not threading.main_thread():
        return None
    return max(1, math.ceil(timeout_seconds))


def _parse(answer: str, timeout: int | None):
    import math_verify  # heavy import (sympy, antlr); workers pre-import it

    config = [
        math_verify.LatexExtractionConfig(boxed_match_priority=0),
        math_verify.ExprExtractionConfig(),
    ]
    return math_verify.parse("\\boxed{" + answer + "}", config, parsing_timeout=timeout)


def math_verify_match(
    answer: str, gold: str, *, timeout_seconds: float | None = 5.0
) -> tuple[bool, bool]:
    """Math-Verify equivalence of two extracted answers.

    Both are wrapped in ``\\boxed{}`` and parsed with a LaTeX-then-expression extraction;
    ``verify(gold, answer)`` (gold first) decides.

    Returns:
      ``(is_equivalent, answer_parsed)``.
    """
    timeout = signal_timeout(timeout_seconds)
    import math_verify

    gold_parsed = _parse(gold, timeout)
    answer_parsed = _parse(answer, timeout)
    if not answer_parsed:
        return False, False
    if not gold_parsed:
        return False, True
    return bool(math_verify.verify(gold_parsed, answer_parsed, timeout_seconds=timeout)), True


def answers_match(
    answer: str, gold: str, *, timeout_seconds: float | None = 5.0, use_math_verify: bool = True
) -> tuple[bool, bool]:
    """Whether ``answer`` is equivalent to ``gold``: the fast path, then Math-Verify.

    Returns:
      ``(is_equivalent, answer_parsed)``; ``answer_parsed`` is ``False`` when the answer is too
      long or Math-Verify extracts nothing from it.

    Example:
      >>> answers_match(r"\\dfrac{1}{2}", "0.5")
      (True, True)
    """
    decided = fast_match(answer, gold)
    if decided is not None:
        return decided, True
    if len(answer) > MAX_ANSWER_CHARS:
        return False, False
    if not use_math_verify:
        return False, True
    return math_verify_match(answer, gold, timeout_seconds=timeout_seconds)


# ------------------------------------------------------------------------------------------
# DAPO / Minerva normalisation (string equality, no sympy)
# ------------------------------------------------------------------------------------------

_DAPO_SUBSTITUTIONS = (
    ("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), ("\\ ", ""), (" ", ""), ("mbox", "text"),
    (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}"),
)  # fmt: skip
_DAPO_REMOVED = (
    "square", "ways", "integers", "dollars", "mph", "inches", "hours", "km", "units", "\\ldots",
    "sue", "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds",
    "meters", "meals", "edges", "students", "childrentickets", "multiples", "\\text{s}",
    "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3", "\\text{\n}", "\\text{}",
    "\\mathrm{th}", "^\\circ", "^{\\circ}", "\\;", ",\\!", "{,}", '"', "\\dots",
)  # fmt: skip


def dapo_normalize(answer: str) -> str:
    """DAPO's ``normalize_final_answer`` (Minerva's rules): the text after the last ``=``,
    unit words and ``\\text{}`` removed, ``\\frac12`` -> ``\\frac{1}{2}``, thousands separators
    dropped from integers.

    Example:
      >>> dapo_normalize(r"x = \\text{5} dollars"), dapo_normalize("1,000")
      ('5', '1000')
    """
    text = answer.split("=")[-1]
    for before, after in _DAPO_SUBSTITUTIONS:
        text = text.replace(before, after)
    for removed in _DAPO_REMOVED:
        text = text.replace(removed, "")
    text = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", text)
    text = re.sub(r"(\\text\{)(.*?)(\})", "\\2", text)
    text = re.sub(r"(\\textbf\{)(.*?)(\})", "\\2", text)
    text = re.sub(r"(\\overline\{)(.*?)(\})", "\\2", text)
    text = re.sub(r"(\\boxed\{)(.*)(\})", "\\2", text)
    text = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", text)
    text = re.sub(r"(sqrt)([^{])", "sqrt{\\2}", text)
    text = text.replace("$", "")
    if text.replace(",", "").isdigit():
        text = text.replace(",", "")
    return text.strip()
