from fractions import Fraction

import numpy as np
import pytest

from r1jax.tasks import countdown
from r1jax.tasks import format as format_lib

PROBLEM = {"numbers": [44, 19, 35], "target": 98}


def answer(text):
    return f"Some reasoning.\n</think> <answer>{text}</answer>"


@pytest.mark.parametrize(
    "completion, reason, score, detail",
    [
        (answer("44 + 19 + 35"), "correct", 1.0, ""),
        (answer("(44 + 19) + 35"), "correct", 1.0, ""),
        (answer("  35+44+19 "), "correct", 1.0, ""),
        (answer("44 + 19 + 19"), "wrong", 0.1, "numbers_mismatch"),  # a number used twice
        (answer("44 + 54"), "wrong", 0.1, "numbers_mismatch"),  # a missing number
        (answer("44 + 19 + 35 + 0"), "wrong", 0.1, "numbers_mismatch"),  # an extra number
        (answer("44 + 19 - 35"), "wrong", 0.1, "value_mismatch"),
        (answer("44 / (35 - 35) + 19"), "wrong", 0.1, "numbers_mismatch"),
        (answer("(44 + 19) ** 35"), "unparseable", 0.1, "power"),
        (answer("-44 + 19 + 35"), "unparseable", 0.1, "unary"),
        (answer("44 19 35"), "unparseable", 0.1, "implicit_multiplication"),
        (answer("__import__('os').system('ls')"), "unparseable", 0.1, "bad_character"),
        ("</think> 44 + 19 + 35", "no_answer", 0.0, ""),  # outside the tags
        ("<answer>44 + 19 + 35</answer>\nmore text", "no_answer", 0.0, ""),  # not the last line
        ("<answer>44 + 19 + 35\n</answer>", "no_answer", 0.0, ""),
        (answer("1") + " <answer>44 + 19 + 35</answer>", "correct", 1.0, ""),  # last tag counts
    ],
)
def test_verify_table(completion, reason, score, detail):
    verdict = countdown.verify(completion, PROBLEM)
    assert (verdict.reason, verdict.score, verdict.detail) == (reason, score, detail)
    assert verdict.correct == (reason == "correct")


def test_division_by_zero_is_invalid():
    problem = {"numbers": [3, 3, 5], "target": 5}
    verdict = countdown.verify(answer("5 / (3 - 3)"), problem)
    assert (verdict.reason, verdict.detail, verdict.score) == ("wrong", "division_by_zero", 0.1)


def test_exact_rationals_not_floats():
    problem = {"numbers": [1, 3, 3], "target": 1}
    assert countdown.verify(answer("1 / 3 * 3"), problem).correct


def test_scores_are_configurable_and_last_line_rule_optional():
    verdict = countdown.verify(answer("1 + 1"), PROBLEM, format_score=0.0)
    assert verdict.score == 0.0
    text = "<answer>44 + 19 + 35</answer>\n"
    assert countdown.verify(text, PROBLEM, last_line_only=False).correct


def test_legacy_score_diagnostic():
    # the original rules accept unary minus and floats; r1jax rejects them
    problem = {"numbers": [3, 5, 7, 13], "target": 2}
    verdict = countdown.verify(
        answer("-3 - 5 + 7 - 13 + 16"), {"numbers": [3, 5, 7, 13, 16], "target": 2}
    )
    assert verdict.legacy_score == 1.0 and verdict.score == 0.1
    assert countdown.verify(answer("(3 + 5) ** 7 - 13"), problem).legacy_score == 0.1
    verdict = countdown.verify(answer("9**9**9"), {"numbers": [9, 9, 9], "target": 1})
    assert verdict.legacy_score is None and verdict.reason == "unparseable"
    assert countdown.verify("no tags", PROBLEM).legacy_score == 0.0
    assert countdown.verify(answer("44 + 19 + 35"), PROBLEM).legacy_score == 1.0


def test_prompt_templates_are_exact():
    base = countdown.prompt(PROBLEM)
    assert base == (
        "A conversation between User and Assistant. The user asks a question, and the Assistant "
        "solves it. The assistant first thinks about the reasoning process in the mind and then "
        "provides the user with the answer.\nUser: Using the numbers [44, 19, 35], create an "
        "equation that equals 98. You can use basic arithmetic operations (+, -, *, /) and each "
        "number can only be used once. Show your work in <think> </think> tags. And return the "
        "final answer in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>.\n"
        "Assistant: Let me solve this step by step.\n<think>"
    )
    qwen = countdown.prompt(PROBLEM, template="qwen_instruct")
    assert qwen.startswith(
        "<|im_start|>system\nYou are a helpful assistant. You first thinks about the reasoning "
        "process in the mind and then provides the user with the answer.<|im_end|>\n"
        "<|im_start|>user\n Using the numbers [44, 19, 35], create"
    )
    assert qwen.endswith(
        "<answer> (1 + 2) / 3 </answer>.<|im_end|>\n<|im_start|>assistant\nLet me solve this "
        "step by step.\n<think>"
    )
    with pytest.raises(ValueError, match="template"):
        countdown.prompt(PROBLEM, template="nope")


def test_generated_problems_are_solvable_and_in_range():
    for index in range(60):
        problem = countdown.generate(np.random.default_rng([7, index]))
        assert len(problem["numbers"]) in (3, 4)
        assert all(1 <= x <= 99 for x in problem["numbers"])
        assert 1 <= problem["target"] <= 999
        assert (
            countdown.evaluate_answer(problem["witness"], problem["numbers"]) == problem["target"]
        )
        solution = countdown.solve(problem["numbers"], problem["target"])
        assert solution is not None
        assert countdown.verify(answer(solution), problem).correct


def test_generator_options():
    rng = np.random.default_rng(0)
    problem = countdown.generate(rng, num_numbers=5, number_range=(1, 9), target_range=(10, 20))
    assert len(problem["numbers"]) == 5 and all(1 <= x <= 9 for x in problem["numbers"])
    assert 10 <= problem["target"] <= 20
    with pytest.raises(ValueError):
        countdown.generate(rng, num_numbers=1)


def test_generator_is_deterministic_given_the_seed():
    first = [countdown.generate(np.random.default_rng([3, i])) for i in range(5)]
    second = [countdown.generate(np.random.default_rng([3, i])) for i in range(5)]
    assert first == second
    assert first != [countdown.generate(np.random.default_rng([4, i])) for i in range(5)]


def test_solve_reports_impossible_targets():
    assert countdown.solve([1, 1, 1], 100) is None
    assert countdown.evaluate_answer(countdown.solve([2, 3, 7, 11], 42), [2, 3, 7, 11]) == 42


@pytest.mark.parametrize("method", countdown.REFERENCE_METHODS)
def test_reference_completions_verify_as_correct(method):
    for index in range(30):
        rng = np.random.default_rng([11, index])
        sizes = 2 if method == "enumerate" else (3, 4, 5)  # enumerate: two numbers only
        problem = countdown.generate(rng, num_numbers=sizes)
        completion = countdown.reference_completion(problem, rng, method=method)
        verdict = countdown.verify(completion, problem)
        assert verdict.correct, completion
        assert verdict.legacy_score == 1.0
        assert completion.rstrip().endswith("</answer>") and "</think> <answer>" in completion
    without_witness = {"numbers": [4, 6, 9], "target": 33}
    assert countdown.verify(
        countdown.reference_completion(without_witness), without_witness
    ).correct


def test_verify_traces_check_each_stated_equation_and_guess_traces_are_them_without_checks():
    """A ``verify`` trace states equations and checks each one: the check's steps evaluate the
    stated equation exactly, every equation but the last misses the target and is called
    wrong, the last is the solution. Its ``guess`` twin is the same text without the checks
    and the dead ends; only ``verify`` traces carry a reflection marker."""
    from r1jax.verifiers.reflection import reflection_count

    dead_ends = []
    for index in range(40):
        rng = np.random.default_rng([12, index])
        problem = countdown.generate(rng, num_numbers=3, number_range=(1, 9))
        target = problem["target"]
        trace = countdown.reference_completion(
            problem, np.random.default_rng(index), method="verify"
        )
        lines = trace.splitlines()
        stated = [line for line in lines if line.startswith("The equation is ")]
        checks = [line for line in lines if line.startswith(format_lib.CHECK_PHRASE)]
        assert len(stated) == len(checks) >= 1 and reflection_count(trace) == len(checks)
        for equation_line, check in zip(stated, checks):
            equation = equation_line.removeprefix("The equation is ").removesuffix(".")
            value = countdown.evaluate_answer(equation, problem["numbers"])
            last_step = check.removeprefix(format_lib.CHECK_PHRASE).split(", then ")[-1]
            assert last_step.split(". ")[0].endswith(f"= {countdown._fmt(value)}"), check
            if check is checks[-1]:
                assert value == target and check.endswith(f"That gives {target}.")
            else:
                assert value != target and check.endswith(f" is not {target}.")
        dead_ends.append(len(checks) - 1)
        guess = countdown.reference_completion(problem, method="guess")
        assert guess.splitlines() == [lines[0], stated[-1], lines[-1]]
        assert reflection_count(guess) == 0
    assert min(dead_ends) == 0 and max(dead_ends) == 3


def test_enumerate_traces_compute_all_four_operations_then_pick_the_first_hit():
    """An ``enumerate`` trace combines the larger number with the smaller by +, -, *, / in
    that order, every value exact and all four always written, then picks the first that
    reaches the target; three numbers are refused by name."""
    picked = set()
    for index in range(200):
        problem = countdown.generate(
            np.random.default_rng([13, index]), num_numbers=2, number_range=(1, 50)
        )
        y, x = sorted(problem["numbers"])
        target = problem["target"]
        lines = countdown.reference_completion(problem, method="enumerate").splitlines()
        assert len(lines) == 4
        values = [countdown._combine(op, Fraction(x), Fraction(y)) for op in "+-*/"]
        assert (
            lines[1]
            == ", ".join(
                f"{x} {op} {y} = {countdown._fmt(value)}" for op, value in zip("+-*/", values)
            )
            + "."
        )
        first_hit = next(i for i, value in enumerate(values) if value == target)
        expression = f"{x} {'+-*/'[first_hit]} {y}"
        assert lines[2:] == [f"{target} = {expression}.", f"</think> <answer>{expression}</answer>"]
        picked.add(first_hit)
    assert picked == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="'enumerate' needs exactly two numbers, got 3"):
        countdown.reference_completion({"numbers": [1, 2, 3], "target": 6}, method="enumerate")


@pytest.mark.slow
def test_six_number_problems_are_solvable():
    for index in range(5):
        problem = countdown.generate(np.random.default_rng([5, index]), num_numbers=6)
        assert countdown.solve(problem["numbers"], problem["target"]) is not None
