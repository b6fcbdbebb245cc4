import numpy as np
import pytest

from r1jax.tasks import multiplication

PROBLEM = {"a": 12, "b": 34, "operator": "*", "target": 408}


@pytest.mark.parametrize(
    "completion, reason, score",
    [
        ("ok</think> <answer>408</answer>", "correct", 1.0),
        ("<answer> +408 </answer>", "correct", 1.0),  # Python int() accepts this
        ("<answer>409</answer>", "wrong", 0.1),
        ("<answer>408.0</answer>", "unparseable", 0.0),
        ("<answer>4 08</answer>", "unparseable", 0.0),
        ("<answer>" + "9" * 5000 + "</answer>", "unparseable", 0.0),
        ("the answer is 408", "no_answer", 0.0),
        ("<answer>\n408</answer>", "no_answer", 0.0),  # TinyZero's regex has no DOTALL
        ("<answer>1</answer><answer>408</answer>", "correct", 1.0),
    ],
)
def test_verify_table(completion, reason, score):
    verdict = multiplication.verify(completion, PROBLEM)
    assert (verdict.reason, verdict.score) == (reason, score)


def test_prompt_is_exact():
    assert multiplication.prompt(PROBLEM) == (
        "A conversation between User and Assistant. The user asks a question, and the Assistant "
        "solves it. The assistant first thinks about the reasoning process in the mind and then "
        "provides the user with the answer. The reasoning process and answer are enclosed within "
        "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning "
        "process here </think> <answer> RESULT_NUMBER </answer>. User: Give me the answer of the "
        "following equation: 12 * 34 = Assistant: Ok let me think about it.\n<think>"
    )


def test_tinyzero_distribution():
    rng = np.random.default_rng(1)
    operands = np.array([multiplication.generate(rng)["a"] for _ in range(4000)])
    assert operands.min() >= 0 and operands.max() <= 999
    # P(a <= 9) = 1/4 + 1/4 * 10/100 + 1/2 * 10/1000 = 0.28; P(a <= 99) = 0.25 + 0.25 + 0.05 = 0.55
    assert abs((operands <= 9).mean() - 0.28) < 0.03
    assert abs((operands <= 99).mean() - 0.55) < 0.03


def test_exact_digit_arithmetic():
    rng = np.random.default_rng(2)
    for operator in ("+", "-", "*"):
        problem = multiplication.generate(
            rng, operator=operator, digits=5, digits_b=2, distribution="exact_digits"
        )
        assert 10_000 <= problem["a"] <= 99_999 and 10 <= problem["b"] <= 99
        expected = {"+": problem["a"] + problem["b"], "-": problem["a"] - problem["b"]}.get(
            operator, problem["a"] * problem["b"]
        )
        assert problem["target"] == expected
        assert f"{problem['a']} {operator} {problem['b']} =" in multiplication.prompt(problem)


def test_generator_is_deterministic_given_the_seed():
    first = [multiplication.generate(np.random.default_rng([0, i])) for i in range(10)]
    assert first == [multiplication.generate(np.random.default_rng([0, i])) for i in range(10)]


@pytest.mark.parametrize("method", multiplication.REFERENCE_METHODS)
def test_reference_completions_verify_as_correct(method):
    for index in range(200):
        rng = np.random.default_rng([9, index])
        operator = ("*", "+", "-")[index % 3]
        problem = multiplication.generate(rng, operator=operator, digits=1 + index % 5)
        completion = multiplication.reference_completion(problem, method=method)
        assert multiplication.verify(completion, problem).correct, completion
        assert completion.endswith(f"</think> <answer>{problem['target']}</answer>")


def test_long_trace_of_a_one_digit_multiplier_ends_at_its_row():
    completion = multiplication.reference_completion(
        {"a": 347, "b": 6, "operator": "*", "target": 2082}, method="long"
    )
    assert completion == (
        " I need to compute 347 * 6.\n"
        "7 * 6 + carry 0 = 42, write 2, carry 4.\n"
        "4 * 6 + carry 4 = 28, write 8, carry 2.\n"
        "3 * 6 + carry 2 = 20, write 0, carry 2.\n"
        "So 347 * 6 = 2082.\n"
        "</think> <answer>2082</answer>"
    )


def test_long_split_trace_writes_the_table_fact_then_adds_the_carry():
    completion = multiplication.reference_completion(
        {"a": 347, "b": 6, "operator": "*", "target": 2082}, method="long_split"
    )
    assert completion == (
        " I need to compute 347 * 6.\n"
        "7 * 6 = 42, 42 + carry 0 = 42, write 2, carry 4.\n"
        "4 * 6 = 24, 24 + carry 4 = 28, write 8, carry 2.\n"
        "3 * 6 = 18, 18 + carry 2 = 20, write 0, carry 2.\n"
        "So 347 * 6 = 2082.\n"
        "</think> <answer>2082</answer>"
    )
