"""Multiplication (TinyZero) and multi-digit ``+``/``-``/``*`` arithmetic.

What lives here: the seeded generator (by default TinyZero's operand
distribution for 3-digit multiplication), the one-line prompt template (§1.3), the verifier
(§5.2) and a digit-by-digit ``reference_completion`` for supervised warm starts.

A problem is ``{"a": int, "b": int, "operator": "*" | "+" | "-", "target": int}`` where
``target = a operator b``.

Verification follows TinyZero: the last ``<answer>(.*?)</answer>`` of the completion (a match
cannot span a newline, as the reference regex has no DOTALL) is converted with Python's
``int()``; none, or one that does not convert, scores 0; the right integer scores
``correct_score`` (1.0) and any other integer ``format_score`` (0.1). The prompt ends with
``<think>`` (``PREFILL``), which the score does not look at.
"""

import numpy as np

from r1jax.tasks import format as format_lib
from r1jax.tasks import verdict as verdict_lib
from r1jax.tasks.verdict import Verdict

TEMPLATES = {
    "base": (
        "A conversation between User and Assistant. The user asks a question, and the Assistant "
        "solves it. The assistant first thinks about the reasoning process in the mind and then "
        "provides the user with the answer. The reasoning process and answer are enclosed within "
        "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning "
        "process here </think> <answer> RESULT_NUMBER </answer>. User: Give me the answer of the "
        "following equation: {a} {operator} {b} = Assistant: Ok let me think about it.\n<think>"
    ),
}
"""Prompt templates by name (TinyZero's multiplication prompt; ``{operator}`` is ``*`` for TinyZero's task)."""

PREFILL = "<think>"
CORRECT_SCORE = 1.0
FORMAT_SCORE = 0.1
OPERATORS = ("*", "+", "-")
DISTRIBUTIONS = ("tinyzero", "exact_digits")


def _apply(operator: str, a: int, b: int) -> int:
    if operator == "*":
        return a * b
    if operator == "+":
        return a + b
    if operator == "-":
        return a - b
    raise ValueError(f"operator must be one of {OPERATORS}, got {operator!r}")


def _operand(rng: np.random.Generator, digits: int, distribution: str) -> int:
    if digits < 1:
        raise ValueError(f"digits must be at least 1, got {digits}")
    if distribution == "tinyzero":
        # randint(0, 3): 0 -> two digits fewer, 1 -> one fewer, 2 or 3 -> the full width.
        fewer = (2, 1, 0, 0)[int(rng.integers(0, 4))]
        high = 10 ** max(digits - fewer, 0) - 1
        return int(rng.integers(0, high + 1))
    if distribution == "exact_digits":
        low = 0 if digits == 1 else 10 ** (digits - 1)
        return int(rng.integers(low, 10**digits))
    raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")


def problem_key(problem: dict) -> str:
    """What makes two problems the same (`r1jax.data.partition`): the operands and operator.

    Example:
      >>> problem_key({"a": 12, "b": 7, "operator": "*", "target": 84})
      '12*7'
    """
    return f"{problem['a']}{problem['operator']}{problem['b']}"


def generate(
    rng: np.random.Generator,
    *,
    operator: str = "*",
    digits: int = 3,
    digits_b: int | None = None,
    distribution: str = "tinyzero",
) -> dict:
    """Draws an arithmetic problem ``a operator b``.

    Args:
      rng: the generator; the result is a function of its state.
      operator: ``"*"`` (TinyZero's task), ``"+"`` or ``"-"`` (results may be negative).
      digits: width of ``a`` (and of ``b`` unless ``digits_b`` is given).
      digits_b: width of ``b``.
      distribution: ``"tinyzero"`` (each operand independently: with probability 1/4 uniform
        in ``[0, 10**(d-2) - 1]``, 1/4 in ``[0, 10**(d-1) - 1]``, 1/2 in ``[0, 10**d - 1]``;
        TinyZero's ``DIGIT=3, LESS_OR_EQUAL=True``) or ``"exact_digits"`` (uniform over the
        numbers with exactly ``d`` digits).

    Example:
      >>> p = generate(np.random.default_rng(1))
      >>> p["target"] == p["a"] * p["b"] and 0 <= p["a"] <= 999
      True
    """
    if operator not in OPERATORS:
        raise ValueError(f"operator must be one of {OPERATORS}, got {operator!r}")
    a = _operand(rng, digits, distribution)
    b = _operand(rng, digits if digits_b is None else digits_b, distribution)
    return {"a": a, "b": b, "operator": operator, "target": _apply(operator, a, b)}


def prompt(problem: dict, *, template: str = "base") -> str:
    """The prompt for ``problem``; the only template is ``"base"`` (TinyZero's).

    Example:
      >>> prompt({"a": 12, "b": 34, "operator": "*", "target": 408}).endswith(
      ...     "equation: 12 * 34 = Assistant: Ok let me think about it.\\n<think>")
      True
    """
    if template not in TEMPLATES:
        raise ValueError(
            f"multiplication template must be one of {sorted(TEMPLATES)}, got {template!r}"
        )
    return TEMPLATES[template].format(
        a=int(problem["a"]), b=int(problem["b"]), operator=problem.get("operator", "*")
    )


def user_message(problem: dict) -> str:
    """The bare question, for prompts built with a tokenizer's chat template.

    Example:
      >>> user_message({"a": 12, "b": 34, "operator": "*"})
      'Give me the answer of the following equation: 12 * 34 ='
    """
    operator = problem.get("operator", "*")
    return (
        f"Give me the answer of the following equation: {problem['a']} {operator} {problem['b']} ="
    )


REFERENCE_METHODS = ("partial_products", "long", "long_split", "verify")
VERIFY_MISS_RATE = 0.5
"""How often a ``verify`` trace's stated answer is a near miss that its check corrects."""


def _long_multiplication(a: int, b: int, method: str) -> list[str]:
    lines = [f" I need to compute {a} * {b}."]
    digits_b = str(b)
    partials = []
    for place, char in enumerate(reversed(digits_b)):
        digit = int(char)
        shift = 10**place
        if method in ("long", "long_split"):
            # digit by digit with carries, least significant digit of a first
            carry = 0
            written = []
            for char_a in reversed(str(a)):
                product = int(char_a) * digit + carry
                written.append(str(product % 10))
                if method == "long":
                    step = f"{char_a} * {digit} + carry {carry} = {product}"
                else:  # the table fact, then the carry's addition
                    fact = int(char_a) * digit
                    step = f"{char_a} * {digit} = {fact}, {fact} + carry {carry} = {product}"
                lines.append(f"{step}, write {product % 10}, carry {product // 10}.")
                carry = product // 10
            row = int(str(carry) + "".join(reversed(written))) if carry else a * digit
            lines.append(f"So {a} * {digit} = {row}.")
            if len(digits_b) == 1:
                return lines  # the row is the product: no partial products to add
        partial = a * digit * shift
        lines.append(f"{a} * {digit * shift} = {partial}")
        partials.append(partial)
    if len(partials) > 1:
        total = 0
        for partial in partials:
            previous, total = total, total + partial
            if previous:
                lines.append(f"{previous} + {partial} = {total}")
    lines.append(f"So {a} * {b} = {a * b}.")
    return lines


def _column_arithmetic(a: int, b: int, operator: str) -> list[str]:
    lines = [f" I need to compute {a} {operator} {b}."]
    if operator == "-" and a < b:
        lines.append(f"{b} is larger than {a}, so {a} - {b} = -({b} - {a}).")
        lines += _column_arithmetic(b, a, "-")[1:]
        lines.append(f"So {a} - {b} = {a - b}.")
        return lines
    width = max(len(str(a)), len(str(b)))
    digits_a, digits_b = str(a).zfill(width), str(b).zfill(width)
    carry = 0
    for place in range(width - 1, -1, -1):
        x, y = int(digits_a[place]), int(digits_b[place])
        if operator == "+":
            total = x + y + carry
            lines.append(
                f"{x} + {y} + carry {carry} = {total}, write {total % 10}, carry {total // 10}."
            )
            carry = total // 10
        else:
            difference = x - y - carry
            borrow = 1 if difference < 0 else 0
            lines.append(
                f"{x} - {y} - borrow {carry} = {difference + 10 * borrow}, borrow {borrow}."
            )
            carry = borrow
    if operator == "+" and carry:
        lines.append(f"Final carry {carry}.")
    lines.append(f"So {a} {operator} {b} = {_apply(operator, a, b)}.")
    return lines


def _near_miss(value: int, rng: np.random.Generator) -> int:
    """``value`` with one digit changed (never a leading zero): a plausible wrong guess."""
    digits = list(str(abs(value)))
    place = int(rng.integers(len(digits)))
    choices = [
        d for d in "0123456789" if d != digits[place] and (place or d != "0" or len(digits) == 1)
    ]
    digits[place] = choices[int(rng.integers(len(choices)))]
    return int("".join(digits)) * (-1 if value < 0 else 1)


def _checked_guess(a: int, b: int, rng: np.random.Generator, miss_rate: float) -> list[str]:
    """An answer stated first, then checked by ``long_split`` working and kept or corrected."""
    product = a * b
    guess = _near_miss(product, rng) if rng.random() < miss_rate else product
    work = _long_multiplication(a, b, "long_split")
    lines = [work[0], f"The answer is {guess}.", format_lib.CHECK_PHRASE + work[1], *work[2:]]
    if guess == product:
        lines.append(f"{guess} is right.")
    else:
        lines.append(f"{guess} is wrong, so the answer is {product}.")
    return lines


def reference_completion(
    problem: dict,
    rng: np.random.Generator | None = None,
    *,
    method: str = "partial_products",
    miss_rate: float = VERIFY_MISS_RATE,
) -> str:
    """A worked solution after the prompt's ``<think>``, ending ``</think> <answer>N</answer>``.

    Args:
      problem: an arithmetic problem.
      rng: draws the stated answer of ``"verify"``; ``None`` uses a fixed seed. The other
        methods are deterministic.
      method: for ``*``: ``"partial_products"`` (one product per digit of ``b``, then their sum),
        ``"long"`` (digit by digit with carries, then the sum of the rows; a one-digit ``b``
        ends at its row), ``"long_split"`` (``"long"`` with each digit's step written as
        the table fact and then the carry's addition, ``9 * 8 = 72, 72 + carry 3 = 75``) or
        ``"verify"`` (an answer stated first, as a direct guess would, then checked after
        "Hmm, wait, let me check:" by the ``"long_split"`` working, and kept or corrected); a
        warm start that mixes ``"verify"`` with direct answers has a self-verification rate for
        RL to amplify. ``+`` and ``-`` always use column arithmetic.
      miss_rate: for ``"verify"``: the chance that the stated answer is a near miss (one digit
        changed) that the check corrects.

    Example:
      >>> problem = {"a": 347, "b": 26, "operator": "*", "target": 9022}
      >>> verify(reference_completion(problem, method="long"), problem).correct
      True
    """
    if method not in REFERENCE_METHODS:
        raise ValueError(f"method must be one of {REFERENCE_METHODS}, got {method!r}")
    if not 0.0 <= miss_rate <= 1.0:
        raise ValueError(f"miss_rate must be in [0, 1], got {miss_rate}")
    a, b = int(problem["a"]), int(problem["b"])
    operator = problem.get("operator", "*")
    if operator == "*" and method == "verify":
        rng = np.random.default_rng(0) if rng is None else rng
        lines = _checked_guess(a, b, rng, miss_rate)
    elif operator == "*":
        lines = _long_multiplication(a, b, method)
    else:
        lines = _column_arithmetic(a, b, operator)
    lines.append(f"</think> <answer>{_apply(operator, a, b)}</answer>")
    return "\n".join(lines)


def verify(
    completion: str,
    problem: dict,
    *,
    correct_score: float = CORRECT_SCORE,
    format_score: float = FORMAT_SCORE,
) -> Verdict:
    """Scores an arithmetic completion with TinyZero's multiplication rules.

    Args:
      completion: the decoded response after the prompt.
      problem: ``{"target": int, ...}``.
      correct_score: reward for the right integer (TinyZero: 1.0).
      format_score: reward for a wrong integer (TinyZero: 0.1).

    Example:
      >>> verify("...</think> <answer> 408 </answer>", {"target": 408}).score
      1.0
      >>> verify("...</think> <answer>four hundred</answer>", {"target": 408}).reason
      'unparseable'
    """
    if not isinstance(completion, str):
        return Verdict.failure(verdict_lib.ERROR, f"completion is {type(completion).__name__}")
    target = int(problem["target"])
    answer = format_lib.last_answer_tag(completion, dotall=False)
    if answer is None:
        return Verdict(correct=False, well_formed=False, reason=verdict_lib.NO_ANSWER, score=0.0)
    shown = verdict_lib.truncate(answer.strip())
    try:
        value = int(answer)  # Python's int(): surrounding whitespace, a sign and "_" are allowed
    except ValueError:
        return Verdict(
            correct=False,
            well_formed=False,
            reason=verdict_lib.UNPARSEABLE,
            score=0.0,
            answer=shown,
        )
    correct = value == target
    return Verdict(
        correct=correct,
        well_formed=True,
        reason=verdict_lib.CORRECT if correct else verdict_lib.WRONG,
        score=correct_score if correct else format_score,
        answer=shown,
    )
