"""Countdown (TinyZero): combine the given numbers with ``+ - * /`` to reach a target.

What lives here: the seeded generator (r1jax's own design: a random binary
expression tree over all the numbers, kept when the target is a positive integer in range, so
every problem is solvable and carries its witness), the prompt templates (§1.2), the verifier
(§5.1.2-5.1.4), an exhaustive ``solve`` and a search-trace ``reference_completion`` for
supervised warm starts. Expression parsing lives in ``expression.py``.

A problem is ``{"numbers": [int, ...], "target": int, "witness": str}`` (TinyZero's ground truth
is the same without ``witness``).

Verification (default rules, TinyZero's scores with a safe evaluator):

* the completion is the decoded response after the prompt, which ends with ``<think>``
  (``PREFILL``); with ``last_line_only=True`` (TinyZero) only the text after the last newline
  is searched, so the answer must sit on the final line;
* the last ``<answer>(.*?)</answer>`` there is the equation; none gives ``score=0``
  (``"no_answer"``);
* an equation that the safe grammar rejects, that does not use each given number exactly as
  often as given, that divides by zero, or whose exact value is not the target scores
  ``format_score`` (0.1); the right value scores ``correct_score`` (1.0).

``Verdict.legacy_score`` reports what TinyZero's ``eval``-based rules give the same text (prompt
prefix included), emulated without ``eval``; it is ``None`` where those rules would hang (e.g.
``9**9**9``) or the text is beyond what the emulation covers.
"""

import itertools
from fractions import Fraction

import numpy as np

from r1jax.tasks import expression
from r1jax.tasks import format as format_lib
from r1jax.tasks import verdict as verdict_lib
from r1jax.tasks.verdict import Verdict

_QUESTION = (
    "Using the numbers {numbers}, create an equation that equals {target}. You can use basic "
    "arithmetic operations (+, -, *, /) and each number can only be used once. Show your work "
    "in <think> </think> tags. And return the final answer in <answer> </answer> tags, for "
    "example <answer> (1 + 2) / 3 </answer>."
)

TEMPLATES = {
    "base": (
        "A conversation between User and Assistant. The user asks a question, and the Assistant "
        "solves it. The assistant first thinks about the reasoning process in the mind and then "
        "provides the user with the answer.\nUser: " + _QUESTION + "\nAssistant: Let me solve "
        "this step by step.\n<think>"
    ),
    "qwen_instruct": (
        "<|im_start|>system\nYou are a helpful assistant. You first thinks about the reasoning "
        "process in the mind and then provides the user with the answer.<|im_end|>\n"
        "<|im_start|>user\n " + _QUESTION + "<|im_end|>\n<|im_start|>assistant\nLet me solve "
        "this step by step.\n<think>"
    ),
}
"""Prompt templates by name (TinyZero examples/data_preprocess/countdown.py ``make_prefix``, byte for byte)."""

PREFILL = "<think>"
"""What every template ends with; the completion continues after it."""

_LEGACY_PREFIX = {
    "base": " Let me solve this step by step.\n<think>",
    "qwen_instruct": "\nLet me solve this step by step.\n<think>",
}
"""What TinyZero's extraction sees of the prompt: the text after ``Assistant:`` (base) or after
``<|im_start|>assistant`` (qwen_instruct)."""

CORRECT_SCORE = 1.0
FORMAT_SCORE = 0.1

_OPS = ("+", "-", "*", "/")
REFERENCE_METHODS = ("search", "witness", "guess", "verify", "enumerate")


def prompt(problem: dict, *, template: str = "base") -> str:
    """The prompt for ``problem`` with template ``"base"`` or ``"qwen_instruct"``.

    Example:
      >>> prompt({"numbers": [44, 19, 35], "target": 98}).endswith("step by step.\\n<think>")
      True
    """
    if template not in TEMPLATES:
        raise ValueError(f"countdown template must be one of {sorted(TEMPLATES)}, got {template!r}")
    numbers = [int(x) for x in problem["numbers"]]
    return TEMPLATES[template].format(numbers=numbers, target=int(problem["target"]))


def user_message(problem: dict) -> str:
    """The bare question, for prompts built with a tokenizer's chat template.

    Example:
      >>> user_message({"numbers": [44, 19, 35], "target": 98})[:40]
      'Using the numbers [44, 19, 35], create a'
    """
    numbers = [int(x) for x in problem["numbers"]]
    return _QUESTION.format(numbers=numbers, target=int(problem["target"]))


def _combine(op: str, left: Fraction, right: Fraction) -> Fraction | None:
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    return left / right if right != 0 else None


def _render(op: str, left: str, right: str, left_is_leaf: bool, right_is_leaf: bool) -> str:
    left = left if left_is_leaf else f"({left})"
    right = right if right_is_leaf else f"({right})"
    return f"{left} {op} {right}"


def problem_key(problem: dict) -> str:
    """What makes two problems the same (`r1jax.data.partition`): the multiset of numbers and
    the target, whatever their order or the witness.

    Example:
      >>> problem_key({"numbers": [7, 3, 25], "target": 4, "witness": "7 - 3"})
      '3,7,25->4'
    """
    numbers = ",".join(str(n) for n in sorted(int(n) for n in problem["numbers"]))
    return f"{numbers}->{problem['target']}"


def generate(
    rng: np.random.Generator,
    *,
    num_numbers: int | tuple[int, ...] = (3, 4),
    number_range: tuple[int, int] = (1, 99),
    target_range: tuple[int, int] = (1, 999),
    max_tries: int = 1000,
) -> dict:
    """Draws a solvable countdown problem (r1jax's own design).

    Draw ``k`` numbers uniformly from ``number_range`` (inclusive), combine random pairs with
    random operators until one value is left (a random binary tree over all numbers), evaluate
    exactly, and keep the problem when the value is an integer inside ``target_range``
    (inclusive). The numbers are shuffled; the tree is stored as ``witness``. The default
    ``target_range`` upper bound is a choice (how the TinyZero data set was generated is not
    known).

    Args:
      rng: the generator; the result is a function of its state.
      num_numbers: ``k``, or a tuple of values to draw ``k`` from uniformly (3 to 6 supported by
        ``solve`` in reasonable time).
      number_range: ``(low, high)`` for the numbers; ``low >= 0``.
      target_range: ``(low, high)`` for the target; ``low >= 1``.
      max_tries: trees drawn before giving up.

    Returns:
      ``{"numbers": [...], "target": int, "witness": str}``.

    Raises:
      RuntimeError: if no tree within ``max_tries`` lands in ``target_range``.

    Example:
      >>> p = generate(np.random.default_rng(0))
      >>> evaluate_answer(p["witness"], p["numbers"]) == p["target"]
      True
    """
    choices = (num_numbers,) if isinstance(num_numbers, int) else tuple(num_numbers)
    if not choices or min(choices) < 2:
        raise ValueError(f"num_numbers must be at least 2, got {num_numbers!r}")
    low, high = number_range
    if low < 0 or high < low:
        raise ValueError(f"number_range must be 0 <= low <= high, got {number_range!r}")
    if target_range[0] < 1 or target_range[1] < target_range[0]:
        raise ValueError(f"target_range must be 1 <= low <= high, got {target_range!r}")
    for _ in range(max_tries):
        k = int(choices[int(rng.integers(len(choices)))])
        numbers = [int(x) for x in rng.integers(low, high + 1, size=k)]
        # Each pool entry: (value, text, is_leaf).
        pool = [(Fraction(x), str(x), True) for x in numbers]
        failed = False
        while len(pool) > 1:
            i, j = (int(x) for x in rng.choice(len(pool), size=2, replace=False))
            op = _OPS[int(rng.integers(4))]
            (a, a_text, a_leaf), (b, b_text, b_leaf) = pool[i], pool[j]
            value = _combine(op, a, b)
            if value is None:
                failed = True
                break
            pool = [entry for index, entry in enumerate(pool) if index not in (i, j)]
            pool.append((value, _render(op, a_text, b_text, a_leaf, b_leaf), False))
        if failed:
            continue
        value, witness, _ = pool[0]
        if value.denominator == 1 and target_range[0] <= value <= target_range[1]:
            order = rng.permutation(k)
            return {
                "numbers": [numbers[int(i)] for i in order],
                "target": int(value),
                "witness": witness,
            }
    raise RuntimeError(
        f"no countdown problem in target_range={target_range} after {max_tries} tries"
    )


def evaluate_answer(equation: str, numbers) -> Fraction:
    """Parses ``equation``, checks it uses ``numbers`` exactly, and returns its exact value.

    Raises:
      expression.ExpressionError: ``kind`` is the grammar error, ``"numbers_mismatch"`` or
        ``"division_by_zero"``.

    Example:
      >>> evaluate_answer("(44 + 19) + 35", [19, 35, 44])
      Fraction(98, 1)
    """
    tree = expression.parse(equation)
    if sorted(expression.literals(tree)) != sorted(int(x) for x in numbers):
        raise expression.ExpressionError("numbers_mismatch", "numbers not used exactly once")
    return expression.evaluate(tree)


def _tree_text(tree) -> str:
    """Renders a search tree (an int leaf or ``(op, left, right)``), parenthesising subtrees."""
    if isinstance(tree, int):
        return str(tree)
    op, left, right = tree
    return _render(
        op, _tree_text(left), _tree_text(right), isinstance(left, int), isinstance(right, int)
    )


def _tree_steps(tree) -> tuple[list[str], Fraction]:
    """The ``"a op b = c"`` lines of a tree in evaluation order, and its value."""
    if isinstance(tree, int):
        return [], Fraction(tree)
    op, left, right = tree
    left_steps, a = _tree_steps(left)
    right_steps, b = _tree_steps(right)
    value = _combine(op, a, b)
    if value is None:
        raise ValueError("division by zero in a countdown witness")
    return [*left_steps, *right_steps, f"{_fmt(a)} {op} {_fmt(b)} = {_fmt(value)}"], value


def _search(numbers, target: Fraction, max_states: int):
    """Depth-first search over pairwise combinations; returns a tree or ``None``.

    A tree is an int leaf or ``(op, left, right)``. Multisets of values already expanded are
    memoised: whether they reach ``target`` does not depend on how they were made.
    """
    seen = set()

    def search(pool):
        if len(pool) == 2:
            (a, a_tree), (b, b_tree) = pool
            for x, x_tree, y, y_tree in ((a, a_tree, b, b_tree), (b, b_tree, a, a_tree)):
                for op in _OPS:
                    if _combine(op, x, y) == target:
                        return (op, x_tree, y_tree)
            return None
        key = tuple(sorted(value for value, _ in pool))
        if key in seen:
            return None
        if len(seen) >= max_states:
            raise RuntimeError(f"countdown search exceeded max_states={max_states}")
        seen.add(key)
        for i, j in itertools.combinations(range(len(pool)), 2):
            rest = [entry for index, entry in enumerate(pool) if index not in (i, j)]
            for (a, a_tree), (b, b_tree) in ((pool[i], pool[j]), (pool[j], pool[i])):
                for op in _OPS:
                    if op in ("+", "*") and a > b:
                        continue  # commutative: one order is enough
                    value = _combine(op, a, b)
                    if value is None:
                        continue
                    found = search([*rest, (value, (op, a_tree, b_tree))])
                    if found is not None:
                        return found
        return None

    pool = [(Fraction(int(x)), int(x)) for x in numbers]
    if len(pool) == 1:
        return pool[0][1] if pool[0][0] == target else None
    return search(pool)


def solve(numbers, target, *, max_states: int = 2_000_000) -> str | None:
    """An expression that uses every number once and equals ``target``, or ``None``.

    Exhaustive depth-first search over pairwise combinations with exact fractions, with the
    visited multisets of values memoised. Intermediate values may be negative or fractional,
    as the verifier allows.

    Args:
      numbers: the given numbers.
      target: the value to reach.
      max_states: bound on the number of distinct multisets expanded.

    Returns:
      the expression, or ``None`` if none exists.

    Raises:
      RuntimeError: if the search exceeds ``max_states`` before finishing.

    Example:
      >>> expression_text = solve([3, 5, 7], 22)
      >>> evaluate_answer(expression_text, [3, 5, 7])
      Fraction(22, 1)
      >>> solve([1, 1], 5) is None
      True
    """
    tree = _search(numbers, Fraction(target), max_states)
    return None if tree is None else _tree_text(tree)


def _trace_steps(pool, rng: np.random.Generator) -> tuple[list[str], Fraction]:
    """A random sequence of pairwise combinations down to one value, as text lines."""
    lines = []
    while len(pool) > 1:
        i, j = (int(x) for x in rng.choice(len(pool), size=2, replace=False))
        op = _OPS[int(rng.integers(4))]
        a, b = pool[i], pool[j]
        value = _combine(op, a, b)
        if value is None:
            op = "+"
            value = a + b
        lines.append(f"{_fmt(a)} {op} {_fmt(b)} = {_fmt(value)}")
        pool = [x for index, x in enumerate(pool) if index not in (i, j)] + [value]
    return lines, pool[0]


def _random_tree(numbers, rng: np.random.Generator):
    """A random expression tree over all of ``numbers`` (pairs combined in random order, a
    random operator each; a division by zero becomes ``+``)."""
    pool = [(Fraction(int(x)), int(x)) for x in numbers]
    while len(pool) > 1:
        i, j = (int(x) for x in rng.choice(len(pool), size=2, replace=False))
        op = _OPS[int(rng.integers(4))]
        (a, a_tree), (b, b_tree) = pool[i], pool[j]
        if _combine(op, a, b) is None:
            op = "+"
        rest = [entry for index, entry in enumerate(pool) if index not in (i, j)]
        pool = [*rest, (_combine(op, a, b), (op, a_tree, b_tree))]
    return pool[0][1]


def _fmt(value: Fraction) -> str:
    return (
        str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    )


def _witness_tree(witness, numbers, target: Fraction):
    """The stored witness as a search tree, or ``None`` if absent or not a valid solution."""
    if not isinstance(witness, str):
        return None
    try:
        if evaluate_answer(witness, numbers) != target:
            return None
    except expression.ExpressionError:
        return None

    def convert(node):
        if isinstance(node, int):
            return node
        return (node.op, convert(node.left), convert(node.right))

    return convert(expression.parse(witness))


def reference_completion(
    problem: dict,
    rng: np.random.Generator | None = None,
    *,
    method: str = "search",
    max_dead_ends: int = 3,
) -> str:
    """A chain of thought that solves ``problem``, in the completion format the verifier expects.

    The text continues the prompt after its prefilled ``<think>`` and ends with
    ``</think> <answer>EXPRESSION</answer>`` on the last line.

    Args:
      problem: a countdown problem.
      rng: draws the dead ends of the search trace; ``None`` uses a fixed seed.
      method: ``"search"`` (a few random attempts that miss the target, then the solution's
        steps), ``"witness"`` (only the solution's steps), ``"guess"`` (the solution's
        equation stated, no working) or ``"verify"`` (``"guess"`` followed by a check: each
        stated equation is evaluated step by step after "Hmm, wait, let me check:"; a few
        random equations that miss the target are checked, found wrong and replaced, then
        the solution is stated and checked). ``"guess"`` and ``"verify"`` differ only in the
        checks, so a warm start that mixes them has a self-verification rate to amplify.
        ``"enumerate"`` (two numbers only): the larger number ``x`` and the smaller ``y`` are
        combined as ``x + y``, ``x - y``, ``x * y`` and ``x / y``, always all four and in that
        order, then the first whose value is the target is picked (``"T = x op y."``). Every
        step is one operation on the given numbers and no value sits where the target is
        expected, so a model that has learned the arithmetic solves every problem this way.
      max_dead_ends: at most this many failed attempts in ``"search"`` and ``"verify"``.

    Example:
      >>> problem = {"numbers": [3, 5, 7], "target": 22}
      >>> verify(reference_completion(problem), problem).correct
      True
    """
    if method not in REFERENCE_METHODS:
        raise ValueError(
            f"countdown reference method must be one of {REFERENCE_METHODS}, got {method!r}"
        )
    rng = np.random.default_rng(0) if rng is None else rng
    numbers = [int(x) for x in problem["numbers"]]
    target = Fraction(int(problem["target"]))
    if method == "enumerate":
        return _enumerate_completion(numbers, target)
    tree = _witness_tree(problem.get("witness"), numbers, target)
    if tree is None:
        tree = _search(numbers, target, max_states=2_000_000)
    if tree is None:
        raise ValueError(f"countdown problem has no solution: {numbers} -> {int(target)}")
    steps, _ = _tree_steps(tree)
    answer = _tree_text(tree)
    lines = [f" We need to reach {int(target)} with {numbers}, using each number once."]
    if method in ("guess", "verify"):
        if method == "verify":
            for _ in range(int(rng.integers(0, max_dead_ends + 1))):
                attempt = _random_tree(numbers, rng)
                attempt_steps, value = _tree_steps(attempt)
                if value == target:
                    continue
                lines.append(f"The equation is {_tree_text(attempt)}.")
                lines.append(
                    format_lib.CHECK_PHRASE
                    + ", then ".join(attempt_steps)
                    + f". {_fmt(value)} is not {int(target)}."
                )
        lines.append(f"The equation is {answer}.")
        if method == "verify":
            lines.append(
                format_lib.CHECK_PHRASE + ", then ".join(steps) + f". That gives {int(target)}."
            )
        lines.append(f"</think> <answer>{answer}</answer>")
        return "\n".join(lines)
    if method == "search":
        for _ in range(int(rng.integers(0, max_dead_ends + 1))):
            attempt, value = _trace_steps([Fraction(x) for x in numbers], rng)
            if value == target:
                continue
            lines.append(
                "Try " + ", then ".join(attempt) + f". {_fmt(value)} is not {int(target)}."
            )
    lines.append("Try " + ", then ".join(steps) + f". That gives {int(target)}.")
    lines.append(f"So the equation is {answer} = {int(target)}.")
    lines.append(f"</think> <answer>{answer}</answer>")
    return "\n".join(lines)


def _enumerate_completion(numbers: list[int], target: Fraction) -> str:
    """The ``"enumerate"`` trace: all four operations on two numbers, then the one that hits."""
    if len(numbers) != 2:
        raise ValueError(
            f"countdown method 'enumerate' needs exactly two numbers, got {len(numbers)}"
        )
    y, x = sorted(numbers)
    tried = []
    for op in _OPS:
        value = _combine(op, Fraction(x), Fraction(y))
        if value is not None:  # not x / 0
            tried.append((f"{x} {op} {y}", value))
    hit = next((expression for expression, value in tried if value == target), None)
    if hit is None:
        raise ValueError(f"countdown problem has no solution: {numbers} -> {int(target)}")
    return "\n".join(
        [
            f" We need to reach {int(target)} with {numbers}, using each number once.",
            ", ".join(f"{expression} = {_fmt(value)}" for expression, value in tried) + ".",
            f"{int(target)} = {hit}.",
            f"</think> <answer>{hit}</answer>",
        ]
    )


def _extract(text: str, *, last_line_only: bool) -> str | None:
    if last_line_only:
        text = text[text.rfind("\n") + 1 :]
    answer = format_lib.last_answer_tag(text, dotall=False)
    return answer.strip() if answer is not None else None


def _legacy_validate(equation: str, numbers) -> bool:
    """TinyZero's ``validate_equation``: ``re.findall(r"\\d+")`` literals equal ``numbers``."""
    found, run = [], []
    for char in equation:
        if char.isdecimal():
            run.append(char)
        elif run:
            found.append("".join(run))
            run = []
    if run:
        found.append("".join(run))
    if any(len(literal) > 4300 for literal in found):
        return False  # int() refuses; the reference's try/except returns False
    return sorted(int(x) for x in found) == sorted(numbers)


def legacy_score(
    completion: str,
    problem: dict,
    *,
    template: str = "base",
    correct_score: float = CORRECT_SCORE,
    format_score: float = FORMAT_SCORE,
) -> float | None:
    """TinyZero's original countdown score for ``completion``, emulated without ``eval``.

    Returns ``None`` where the original would not return (``eval`` of ``9**9**9``) or the
    equation lies beyond the emulation's limits (``expression.emulate_python_eval``).

    Example:
      >>> legacy_score("</think> <answer>-3 + 5 + 7 + 13</answer>", {"numbers": [3, 5, 7, 13], "target": 22})
      1.0
    """
    numbers = [int(x) for x in problem["numbers"]]
    text = _LEGACY_PREFIX[template] + completion
    if template == "qwen_instruct" and "Assistant:" in completion:
        text = completion.split("Assistant:", 1)[1]
    equation = _extract(text, last_line_only=True)
    if equation is None:
        return 0.0
    if not _legacy_validate(equation, numbers):
        return format_score
    if not equation or not all(c.isdecimal() or c.isspace() or c in "+-*/()." for c in equation):
        return format_score
    value = expression.emulate_python_eval(equation)
    if value in (expression.LEGACY_HANG, expression.LEGACY_NOT_EMULATED):
        return None
    if value is None or isinstance(value, tuple):
        return format_score
    try:
        return correct_score if abs(value - int(problem["target"])) < 1e-5 else format_score
    except (ArithmeticError, TypeError):
        return format_score


def verify(
    completion: str,
    problem: dict,
    *,
    correct_score: float = CORRECT_SCORE,
    format_score: float = FORMAT_SCORE,
    last_line_only: bool = True,
    template: str = "base",
    compute_legacy: bool = True,
) -> Verdict:
    """Scores a countdown completion with TinyZero's scores and the safe evaluator.

    Args:
      completion: the decoded response after the prompt (the prompt ends with ``PREFILL``).
      problem: ``{"numbers": [...], "target": int}``.
      correct_score: reward for a right equation (TinyZero: 1.0).
      format_score: reward for an answer tag whose equation is invalid or wrong (TinyZero: 0.1).
      last_line_only: search only the text after the last newline, as TinyZero does.
      template: the prompt template, used only to reproduce the legacy score's extraction.
      compute_legacy: fill ``legacy_score``.

    Returns:
      a ``Verdict``; ``detail`` names the rejection (``"numbers_mismatch"``,
      ``"division_by_zero"``, ``"power"``, ``"unary"``, ...).

    Example:
      >>> verify("</think> <answer>(1 + 2) * 3</answer>", {"numbers": [1, 2, 3], "target": 9}).score
      1.0
      >>> verify("</think> <answer>(1 + 2) ** 3</answer>", {"numbers": [1, 2, 3], "target": 27}).detail
      'power'
    """
    if not isinstance(completion, str):
        return Verdict.failure(verdict_lib.ERROR, f"completion is {type(completion).__name__}")
    numbers = [int(x) for x in problem["numbers"]]
    target = int(problem["target"])
    legacy = (
        legacy_score(
            completion,
            problem,
            template=template,
            correct_score=correct_score,
            format_score=format_score,
        )
        if compute_legacy
        else None
    )
    equation = _extract(completion, last_line_only=last_line_only)
    if equation is None:
        return Verdict(
            correct=False,
            well_formed=False,
            reason=verdict_lib.NO_ANSWER,
            score=0.0,
            legacy_score=legacy,
        )
    answer = verdict_lib.truncate(equation)
    try:
        value = evaluate_answer(equation, numbers)
    except expression.ExpressionError as error:
        reason = (
            verdict_lib.WRONG
            if error.kind in ("numbers_mismatch", "division_by_zero")
            else verdict_lib.UNPARSEABLE
        )
        return Verdict(
            correct=False,
            well_formed=True,
            reason=reason,
            score=format_score,
            answer=answer,
            detail=error.kind,
            legacy_score=legacy,
        )
    correct = value == target
    return Verdict(
        correct=correct,
        well_formed=True,
        reason=verdict_lib.CORRECT if correct else verdict_lib.WRONG,
        score=correct_score if correct else format_score,
        answer=answer,
        detail="" if correct else "value_mismatch",
        legacy_score=legacy,
    )
