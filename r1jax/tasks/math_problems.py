"""Procedural math problems with LaTeX answers and worked solutions, for runs without datasets.

What lives here: ``generate`` (seeded arithmetic on small integers and fractions, as bare
expressions or one-line word problems, with a LaTeX gold answer such as ``42``, ``-7`` or
``\\frac{19}{12}``) and ``reference_completion`` (a worked chain of thought for a supervised
warm start, laid out as the prompt template in use expects: R1 tags, a ``\\boxed{}`` answer,
open-r1's strict format or DAPO's ``Answer:`` line). The math task (``r1jax.tasks.math``)
exports both, so its ``verify`` and templates apply unchanged: a from-scratch model can warm
start and run RL through the real math verifier with no files at all.

This is r1jax's own generator, not a published data set: it stands in for MATH/AIME-style
files when there is no data (CPU presets, tests). A problem is::

    {"question": str, "answer": str,           # what a JSONL row of the math task holds
     "operands": [[p, q], [r, s]],             # p/q and r/s, q, s > 0 (integers have q = 1)
     "operator": "+" | "-" | "*" | "/"}

Rows read from files carry only ``question`` and ``answer``; ``reference_completion`` needs the
``operands`` and ``operator`` fields and says so when they are missing.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

OPERATORS = ("+", "-", "*", "/")
OPERAND_KINDS = ("integer", "fraction")
_LATEX_OPERATOR = {"+": "+", "-": "-", "*": "\\times", "/": "\\div"}
_VERB = {"+": "sum", "-": "difference", "*": "product", "/": "quotient"}

_NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jo")
_ITEMS = ("apples", "marbles", "stamps", "pencils", "shells", "coins", "books", "cards")
_WORD_TEMPLATES = {
    "+": "{name} has {a} {items} and gets {b} more. How many {items} does {name} have now?",
    "-": "{name} has {a} {items} and gives away {b}. How many {items} does {name} have left?",
    "*": "{name} fills {a} boxes with {b} {items} each. How many {items} is that in total?",
    "/": "{name} shares {a} {items} equally among {b} friends. How many {items} does each "
    "friend get?",
}

REFERENCE_METHODS = (
    "r1_zero",
    "understand_r1",
    "orz",
    "qwen_math",
    "deepscaler",
    "online_dpo",
    "dapo",
    "open_r1",
)
"""``reference_completion`` layouts: a template name of ``r1jax.tasks.math.TEMPLATES`` (the
response that template asks for), or ``open_r1`` (open-r1's strict ``<think>\\n...\\n</think>
\\n<answer>\\n...\\n</answer>`` format)."""


def latex_number(value: Fraction) -> str:
    """``7``, ``-7``, ``\\frac{3}{4}`` or ``-\\frac{3}{4}`` for an exact rational.

    Example:
      >>> latex_number(Fraction(-3, 4)), latex_number(Fraction(8, 2))
      ('-\\\\frac{3}{4}', '4')
    """
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def _operand(rng: np.random.Generator, kind: str, max_integer: int, max_denominator: int):
    if kind == "integer":
        return [int(rng.integers(1, max_integer + 1)), 1]
    denominator = int(rng.integers(2, max_denominator + 1))
    value = Fraction(int(rng.integers(1, denominator)), denominator)  # proper: 0 < p/q < 1
    return [value.numerator, value.denominator]  # in lowest terms


def generate(
    rng: np.random.Generator,
    *,
    operators: tuple[str, ...] = OPERATORS,
    operand_kinds: tuple[str, ...] = OPERAND_KINDS,
    max_integer: int = 20,
    max_denominator: int = 9,
    word_problems: float = 0.25,
) -> dict:
    """Draws one arithmetic problem ``a operator b`` on small integers and proper fractions.

    Args:
      rng: the generator; the problem is a function of its state.
      operators: drawn uniformly from these (``+ - * /``).
      operand_kinds: each operand is drawn uniformly from these kinds: ``integer`` (uniform in
        ``1..max_integer``) or ``fraction`` (``p/q`` with ``2 <= q <= max_denominator`` and
        ``1 <= p < q``, in lowest terms).
      max_integer: the largest integer operand (at least 1).
      max_denominator: the largest fraction denominator (at least 2).
      word_problems: probability that an all-integer problem is phrased as a one-line word
        problem instead of an expression; word problems keep their answers natural numbers
        (``-`` takes the larger operand first, ``/`` divides a multiple of the divisor).

    Returns:
      ``{"question", "answer", "operands", "operator"}`` (module docstring); ``answer`` is the
      exact result in lowest terms, as LaTeX.

    Raises:
      ValueError: an unknown operator or operand kind, or a bound out of range.

    Example:
      >>> problem = generate(np.random.default_rng(0), operand_kinds=("fraction",))
      >>> sorted(problem), problem["question"].startswith("Compute $")
      (['answer', 'operands', 'operator', 'question'], True)
    """
    operators, operand_kinds = tuple(operators), tuple(operand_kinds)
    if not operators or any(op not in OPERATORS for op in operators):
        raise ValueError(f"operators must be a non-empty subset of {OPERATORS}, got {operators}")
    if not operand_kinds or any(kind not in OPERAND_KINDS for kind in operand_kinds):
        raise ValueError(
            f"operand_kinds must be a non-empty subset of {OPERAND_KINDS}, got {operand_kinds}"
        )
    if int(max_integer) < 1:
        raise ValueError(f"max_integer must be at least 1, got {max_integer}")
    if int(max_denominator) < 2:
        raise ValueError(f"max_denominator must be at least 2, got {max_denominator}")
    if not 0.0 <= float(word_problems) <= 1.0:
        raise ValueError(f"word_problems must be a probability in [0, 1], got {word_problems}")
    operator = operators[int(rng.integers(len(operators)))]
    kinds = [operand_kinds[int(rng.integers(len(operand_kinds)))] for _ in range(2)]
    a, b = (_operand(rng, kind, int(max_integer), int(max_denominator)) for kind in kinds)
    is_word = kinds == ["integer", "integer"] and float(rng.random()) < float(word_problems)
    if is_word:
        if operator == "-" and a[0] < b[0]:
            a, b = b, a
        if operator == "/":
            a = [a[0] * b[0], 1]  # a multiple of the divisor: each friend gets a whole number
        question = _WORD_TEMPLATES[operator].format(
            name=_NAMES[int(rng.integers(len(_NAMES)))],
            items=_ITEMS[int(rng.integers(len(_ITEMS)))],
            a=a[0],
            b=b[0],
        )
    else:
        expression = f"{_latex(a)} {_LATEX_OPERATOR[operator]} {_latex(b)}"
        question = f"Compute ${expression}$. Give the answer in lowest terms."
    return {
        "question": question,
        "answer": latex_number(_apply(operator, _value(a), _value(b))),
        "operands": [a, b],
        "operator": operator,
    }


def _value(operand) -> Fraction:
    return Fraction(int(operand[0]), int(operand[1]))


def _latex(operand) -> str:
    return latex_number(Fraction(int(operand[0]), 1)) if operand[1] == 1 else _frac(*operand)


def _frac(numerator: int, denominator: int) -> str:
    """``\\frac{n}{d}`` as written (not reduced), the sign in front."""
    sign = "-" if numerator < 0 else ""
    return f"{sign}\\frac{{{abs(numerator)}}}{{{denominator}}}"


def _apply(operator: str, a: Fraction, b: Fraction) -> Fraction:
    if operator == "+":
        return a + b
    if operator == "-":
        return a - b
    if operator == "*":
        return a * b
    return a / b


def _integer_lines(operator: str, a: int, b: int) -> list[str]:
    """Steps for ``a operator b`` on natural numbers (``/`` gives a fraction to reduce)."""
    if operator == "+":
        if a < 10 or b < 10:
            return [f"{a} + {b} = {a + b}."]
        tens, ones = b // 10 * 10, b % 10
        return [f"{a} + {tens} = {a + tens}.", f"{a + tens} + {ones} = {a + b}."]
    if operator == "-":
        if a < b:
            return [f"{b} is larger than {a}, so {a} - {b} = -({b} - {a}) = {a - b}."]
        return [f"{a} - {b} = {a - b}."]
    if operator == "*":
        if a < 10 or b < 10:
            small, large = sorted((a, b))
            if large < 10:
                return [f"{a} \\times {b} = {a * b}."]
            tens, ones = large // 10 * 10, large % 10
            return [
                f"{tens} \\times {small} = {tens * small} and {ones} \\times {small} = "
                f"{ones * small}.",
                f"{tens * small} + {ones * small} = {a * b}.",
            ]
        tens, ones = b // 10 * 10, b % 10
        return [
            f"{a} \\times {tens} = {a * tens} and {a} \\times {ones} = {a * ones}.",
            f"{a * tens} + {a * ones} = {a * b}.",
        ]
    if b == 1:
        return [f"{a} \\div 1 = {a}."]
    return [f"{a} \\div {b} = {_frac(a, b)}.", *_reduce_lines(a, b)]


def _reduce_lines(numerator: int, denominator: int) -> list[str]:
    """Steps that bring ``numerator / denominator`` (denominator > 0) to lowest terms."""
    divisor = math.gcd(numerator, denominator)
    if divisor == 1:
        return [f"The greatest common divisor of {abs(numerator)} and {denominator} is 1."]
    reduced = Fraction(numerator, denominator)
    return [
        f"The greatest common divisor of {abs(numerator)} and {denominator} is {divisor}, so "
        f"{_frac(numerator, denominator)} = {latex_number(reduced)}."
    ]


def _fraction_lines(operator: str, a: Fraction, b: Fraction) -> list[str]:
    """Steps for ``a operator b`` when at least one operand is a fraction."""
    lines = []
    if operator == "/":
        lines.append(f"Dividing by {latex_number(b)} is multiplying by {latex_number(1 / b)}.")
        b = Fraction(b.denominator, b.numerator)
        operator = "*"
    if operator == "*":
        numerator, denominator = a.numerator * b.numerator, a.denominator * b.denominator
        lines.append(
            f"Numerators: {a.numerator} \\times {b.numerator} = {numerator}. Denominators: "
            f"{a.denominator} \\times {b.denominator} = {denominator}."
        )
        return lines + _reduce_lines(numerator, denominator)
    common = math.lcm(a.denominator, b.denominator)
    lines.append(f"The least common multiple of {a.denominator} and {b.denominator} is {common}.")
    left = a.numerator * (common // a.denominator)
    right = b.numerator * (common // b.denominator)
    rewritten = [
        f"{latex_number(value)} = {_frac(numerator, common)}"
        for value, numerator in ((a, left), (b, right))
        if value.denominator != common
    ]
    if rewritten:
        lines.append(" and ".join(rewritten) + ".")
    numerator = left + right if operator == "+" else left - right
    lines.append(
        f"{left} {operator} {right} = {numerator}, so the {_VERB[operator]} is "
        f"{_frac(numerator, common)}."
    )
    return lines + _reduce_lines(numerator, common)


def solution_steps(problem: dict) -> tuple[list[str], str]:
    """The worked steps of a generated problem and its LaTeX answer.

    Raises:
      ValueError: the problem lacks ``operands``/``operator`` (e.g. a row read from a file).
    """
    if "operands" not in problem or "operator" not in problem:
        raise ValueError(
            "math reference_completion needs a generated problem (with 'operands' and "
            f"'operator'); got the fields {sorted(problem)}"
        )
    operator = problem["operator"]
    if operator not in OPERATORS:
        raise ValueError(f"operator must be one of {OPERATORS}, got {operator!r}")
    a, b = (_value(operand) for operand in problem["operands"])
    expression = f"{latex_number(a)} {_LATEX_OPERATOR[operator]} {latex_number(b)}"
    lines = [f"I need to compute {expression}."]
    if a.denominator == 1 and b.denominator == 1:
        lines += _integer_lines(operator, a.numerator, b.numerator)
    else:
        lines += _fraction_lines(operator, a, b)
    answer = latex_number(_apply(operator, a, b))
    lines.append(f"So {expression} = {answer}.")
    return lines, answer


_INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}


def _recheck_line(problem: dict) -> str:
    """``Let me check again: result inverse b = a.``: the operation undone on the result."""
    operator = problem["operator"]
    a, b = (_value(operand) for operand in problem["operands"])
    result = _apply(operator, a, b)
    inverse = _INVERSE[operator]
    undone = _apply(inverse, result, b)
    return (
        f"Let me check again: {latex_number(result)} {_LATEX_OPERATOR[inverse]} "
        f"{latex_number(b)} = {latex_number(undone)}, which is {latex_number(a)}. Correct."
    )


def reference_completion(
    problem: dict, rng: np.random.Generator | None = None, *, method: str = "r1_zero"
) -> str:
    """A worked solution of a generated problem, laid out for the template ``method``.

    Layouts (``X`` is the LaTeX answer; the steps are the same in all of them):

    * ``r1_zero``: ``<think>\\nsteps\\n</think> <answer> \\boxed{X} </answer>`` (the R1 template
      ends with ``Assistant:``, so the response opens the thinking itself);
    * ``understand_r1``, ``orz``: the same without the opening ``<think>``, which those
      templates prefill;
    * ``qwen_math``, ``online_dpo``: ``steps\\nThe final answer is $\\boxed{X}$.``;
    * ``deepscaler``: ``steps\\n</think>\\n\\nThe final answer is $\\boxed{X}$.`` (the
      DeepSeek-R1-Distill chat template prefills ``<think>\\n``);
    * ``dapo``: ``steps\\nAnswer: X``;
    * ``open_r1``: ``<think>\\nsteps\\n</think>\\n<answer>\\n\\boxed{X}\\n</answer>``.

    A layout name followed by ``+recheck`` (e.g. ``qwen_math+recheck``) adds a self-check
    before the answer: ``Let me check again: ...`` undoes the operation on the result (it
    counts as self-reflection for oat-zero's and understand-r1-zero's keyword lists).

    Args:
      problem: a problem from `generate`.
      rng: unused (the solution is deterministic); kept for the task protocol's signature.
      method: one of ``REFERENCE_METHODS``, optionally followed by ``+recheck``.

    Example:
      >>> problem = generate(np.random.default_rng(3))
      >>> reference_completion(problem).endswith("</answer>")
      True
    """
    del rng
    layout, plus, flag = method.partition("+")
    if layout not in REFERENCE_METHODS or (plus and flag != "recheck"):
        raise ValueError(
            f"math reference method must be one of {REFERENCE_METHODS}, optionally followed "
            f"by '+recheck', got {method!r}"
        )
    method = layout
    lines, answer = solution_steps(problem)
    if flag:
        lines.insert(-1, _recheck_line(problem))
    steps = "\n".join(lines)
    boxed = f"\\boxed{{{answer}}}"
    if method == "r1_zero":
        return f"<think>\n{steps}\n</think> <answer> {boxed} </answer>"
    if method in ("understand_r1", "orz"):
        return f"\n{steps}\n</think> <answer> {boxed} </answer>"
    if method in ("qwen_math", "online_dpo"):
        return f"{steps}\nThe final answer is ${boxed}$."
    if method == "deepscaler":
        return f"{steps}\n</think>\n\nThe final answer is ${boxed}$."
    if method == "dapo":
        return f"{steps}\nAnswer: {answer}"
    return f"<think>\n{steps}\n</think>\n<answer>\n{boxed}\n</answer>"
