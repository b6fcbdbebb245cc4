import numpy as np
import pytest

from r1jax.tasks import multiplication
from r1jax.verifiers.reflection import reflection_count

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


def test_verify_trace_states_an_answer_then_checks_it_with_the_split_working():
    problem = {"a": 347, "b": 6, "operator": "*", "target": 2082}
    kept = multiplication.reference_completion(
        problem, np.random.default_rng(0), method="verify", miss_rate=0.0
    )
    assert kept == (
        " I need to compute 347 * 6.\n"
        "The answer is 2082.\n"
        "Hmm, wait, let me check: 7 * 6 = 42, 42 + carry 0 = 42, write 2, carry 4.\n"
        "4 * 6 = 24, 24 + carry 4 = 28, write 8, carry 2.\n"
        "3 * 6 = 18, 18 + carry 2 = 20, write 0, carry 2.\n"
        "So 347 * 6 = 2082.\n"
        "2082 is right.\n"
        "</think> <answer>2082</answer>"
    )
    assert reflection_count(kept) > 0


def test_verify_trace_corrects_a_near_miss_one_digit_off():
    rng = np.random.default_rng(0)
    for a, b in [(347, 6), (999, 9), (100, 1), (25, 4), (123, 45)]:
        problem = {"a": a, "b": b, "operator": "*", "target": a * b}
        text = multiplication.reference_completion(problem, rng, method="verify", miss_rate=1.0)
        stated = int(text.splitlines()[1].removeprefix("The answer is ").rstrip("."))
        assert stated != a * b and len(str(stated)) == len(str(a * b))  # no leading zero
        assert sum(x != y for x, y in zip(str(stated), str(a * b), strict=True)) == 1
        assert f"{stated} is wrong, so the answer is {a * b}." in text
        assert multiplication.verify(text, problem).correct


def test_verify_traces_mix_kept_and_corrected_answers_and_check_the_miss_rate():
    rng = np.random.default_rng(3)
    problem = {"a": 512, "b": 7, "operator": "*", "target": 3584}
    texts = [multiplication.reference_completion(problem, rng, method="verify") for _ in range(200)]
    corrected = sum("is wrong" in text for text in texts)
    assert 70 < corrected < 130  # VERIFY_MISS_RATE = 0.5
    with pytest.raises(ValueError, match="miss_rate"):
        multiplication.reference_completion(problem, rng, method="verify", miss_rate=1.5)
