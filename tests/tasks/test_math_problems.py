"""Tests for the math task's procedural problems and worked reference solutions."""

from fractions import Fraction

import numpy as np
import pytest

from r1jax.data import sources
from r1jax.tasks import format as format_lib
from r1jax.tasks import math as math_task
from r1jax.tasks import math_answers, math_problems, resolve_task

# (reference layout, the template it is written for, the scoring rule that grades it)
LAYOUTS = [
    ("r1_zero", "r1_zero", "default"),
    ("r1_zero", "r1_zero", "dr_grpo"),
    ("r1_zero", "r1_zero", "oat_zero"),
    ("understand_r1", "understand_r1", "dr_grpo"),
    ("orz", "orz", "orz"),
    ("qwen_math", "qwen_math", "boxed"),
    ("deepscaler", "deepscaler", "deepscaler"),
    ("online_dpo", "online_dpo", "boxed"),
    ("dapo", "dapo", "dapo"),
    ("open_r1", "r1_zero", "default"),
]


def problems(count=200, seed=0, **options):
    source = sources.ProceduralSource(math_task.generate, seed=seed, options=options)
    return [source[i] for i in range(count)]


def test_the_math_task_generates_and_writes_reference_traces():
    task = resolve_task("math", require=("generate", "reference_completion", "prompt"))
    assert task.generate is math_problems.generate
    assert task.reference_completion is math_problems.reference_completion


def test_problems_are_a_function_of_the_seed():
    assert problems(50, seed=3) == problems(50, seed=3)
    first, other = problems(50, seed=3), problems(50, seed=4)
    assert sum(a == b for a, b in zip(first, other)) < 5


def test_answers_are_the_exact_results_in_lowest_terms():
    for problem in problems(300, word_problems=0.5):
        a, b = (Fraction(p, q) for p, q in problem["operands"])
        expected = {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[problem["operator"]]
        assert math_answers.exact_number(problem["answer"]) == expected
        assert problem["answer"] == math_problems.latex_number(expected)
        for p, q in problem["operands"]:
            assert q >= 1 and p >= 1 and Fraction(p, q).denominator == q  # reduced


def test_options_shape_the_problems():
    integers = problems(100, operand_kinds=("integer",), operators=("+",), max_integer=9)
    assert all(p["operator"] == "+" for p in integers)
    assert all(q == 1 and 1 <= n <= 9 for p in integers for n, q in p["operands"])
    fractions = problems(100, operand_kinds=("fraction",), max_denominator=4)
    assert all(1 < q <= 4 and n < q for p in fractions for n, q in p["operands"])
    words = problems(100, operand_kinds=("integer",), word_problems=1.0)
    assert all(not p["question"].startswith("Compute") for p in words)
    # word problems keep answers natural numbers: subtraction and division come out whole
    assert all(int(p["answer"]) >= 0 for p in words)
    expressions = problems(50, word_problems=0.0)
    assert all(p["question"].startswith("Compute $") for p in expressions)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"operators": ("^",)}, "operators"),
        ({"operators": ()}, "operators"),
        ({"operand_kinds": ("decimal",)}, "operand_kinds"),
        ({"max_integer": 0}, "max_integer"),
        ({"max_denominator": 1}, "max_denominator"),
        ({"word_problems": 1.5}, "word_problems"),
    ],
)
def test_bad_options_are_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        math_task.generate(np.random.default_rng(0), **options)


@pytest.mark.parametrize("method, template, scoring", LAYOUTS)
def test_reference_traces_verify_under_their_templates_rules(method, template, scoring):
    assert template in math_task.TEMPLATES
    for problem in problems(150, word_problems=0.3):
        completion = math_task.reference_completion(problem, method=method)
        verdict = math_task.verify(completion, problem, scoring=scoring, use_math_verify=False)
        assert verdict.correct and verdict.score == 1.0, (completion, verdict)
        # the same steps with another answer are graded wrong
        wrong = math_problems.latex_number(math_answers.exact_number(problem["answer"]) + 1)
        tampered = completion.replace(problem["answer"] + "}", wrong + "}")
        if method == "dapo":
            tampered = completion.rsplit("Answer: ", 1)[0] + f"Answer: {wrong}"
        assert not math_task.verify(tampered, problem, scoring=scoring).correct, tampered


def test_the_prefilled_and_strict_layouts_fit_their_templates():
    problem = problems(1)[0]
    r1 = math_task.reference_completion(problem)
    assert r1.startswith("<think>\n") and "</think> <answer>" in r1
    assert math_task.prompt(problem, template="r1_zero").endswith("Assistant:")
    for method in ("understand_r1", "orz"):
        text = math_task.reference_completion(problem, method=method)
        assert "<think>" not in text  # the template prefills it
        assert format_lib.is_lenient_format(math_task.PREFILLS[method] + text)
    strict = math_task.reference_completion(problem, method="open_r1")
    assert format_lib.is_strict_format(strict) and format_lib.tag_count_score(strict) == 1.0
    assert not format_lib.is_strict_format(r1)


def test_reference_traces_need_a_generated_problem_and_a_known_layout():
    with pytest.raises(ValueError, match="operands"):
        math_task.reference_completion({"question": "1+1?", "answer": "2"})
    with pytest.raises(ValueError, match="method"):
        math_task.reference_completion(problems(1)[0], method="chat")
    assert math_task.reference_completion(
        problems(1)[0], np.random.default_rng(0)
    ) == math_task.reference_completion(problems(1)[0])


def test_format_check_decides_well_formed_and_leaves_correctness_alone():
    problem = problems(1)[0]
    r1 = math_task.reference_completion(problem)
    strict = math_task.reference_completion(problem, method="open_r1")
    bare = f"so it is \\boxed{{{problem['answer']}}}"

    def verdict(text, check, **kwargs):
        return math_task.verify(text, problem, format_check=check, **kwargs)

    assert verdict(bare, "none").well_formed  # an answer was found: the default
    assert verdict(r1, "lenient").well_formed and verdict(r1, "lenient").correct
    assert not verdict(bare, "lenient").well_formed and verdict(bare, "lenient").correct
    assert verdict(strict, "strict").well_formed and not verdict(r1, "strict").well_formed
    assert verdict(strict, "tag_count").well_formed
    prefilled = math_task.reference_completion(problem, method="understand_r1")
    assert not verdict(prefilled, "lenient").well_formed
    assert verdict(prefilled, "lenient", prefill="<think>").well_formed
    with pytest.raises(ValueError, match="format_check"):
        verdict(r1, "loose")


def test_a_recheck_adds_self_reflection_and_stays_correct():
    from r1jax.verifiers.reflection import reflection_count

    for problem in problems(100, word_problems=0.3):
        plain = math_task.reference_completion(problem, method="qwen_math")
        checked = math_task.reference_completion(problem, method="qwen_math+recheck")
        assert reflection_count(plain, keywords="oat_zero") == 0
        assert reflection_count(checked, keywords="oat_zero") == 1
        assert reflection_count(checked, keywords="understand_r1_zero") == 1
        assert math_task.verify(checked, problem, scoring="boxed", use_math_verify=False).correct
        line = next(x for x in checked.splitlines() if x.startswith("Let me check again"))
        undone, expected = line.split(" = ")[-1].removesuffix(". Correct.").split(", which is ")
        assert undone == expected  # the check undoes the operation exactly
    with pytest.raises(ValueError, match="recheck"):
        math_task.reference_completion(problems(1)[0], method="qwen_math+verify")
