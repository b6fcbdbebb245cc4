import threading

import pytest

from r1jax.tasks import math as math_task
from r1jax.tasks import math_answers


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{1} then \boxed{\{1, \{2\}\}}", r"\{1, \{2\}\}"),
        (r"\fbox{7}", "7"),
        (r"$\boxed 5$ done", "5"),
        (r"\boxed{3} and later \boxed{unclosed", "3"),
        ("nothing here", None),
    ],
)
def test_last_boxed(text, expected):
    assert math_answers.last_boxed(text) == expected


def test_extraction_order_and_sources():
    text = "<answer>7</answer>\n#### 8\nAnswer: 9"
    assert math_answers.extract_answer(text) == ("7", "answer_tag")
    assert math_answers.extract_answer(text, ("gsm8k", "answer_tag"))[0] == "8"
    assert math_answers.extract_answer(text, ("answer_line",))[0] == "9"
    assert math_answers.extract_answer(r"<answer>so \boxed{4}</answer>")[0] == "4"
    with pytest.raises(ValueError, match="extractor"):
        math_answers.extract_answer(text, ("nope",))


def test_gold_reduction():
    assert math_answers.gold_answer("Natalia sold 48... #### 72") == "72"
    assert math_answers.gold_answer(r"The answer is $\boxed{\frac{3}{4}}$.") == r"\frac{3}{4}"
    assert math_answers.gold_answer(142.0) == "142.0"


@pytest.mark.parametrize(
    "answer, gold, expected",
    [
        ("0.5", r"\frac{1}{2}", True),
        (r"\dfrac{2}{4}", "1/2", True),
        ("142", "142.0", True),
        (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", True),
        ("[1, 2)", "[1,2)", True),
        ("(1, 2]", "(1, 2)", False),
        (r"(-\infty, 3]", r"(-\infty,3]", True),
        (r"\{2, 1\}", r"\{1,2\}", True),
        (r"5\text{ cm}", "5", True),
        (r"90^\circ", "90", True),
        ("x = 3", "3", True),
        ("(x+1)^2", "x^2+2x+1", True),
        ("12", "13", False),
        ("1/3", "0.5", False),
        ("banana", "7", False),
    ],
)
def test_equivalence(answer, gold, expected):
    assert math_answers.answers_match(answer, gold)[0] is expected


def test_long_answers_are_not_parsed():
    assert math_answers.answers_match("x+" * 1000 + "1", "2") == (False, False)


@pytest.mark.parametrize(
    "scoring, completion, reason, score",
    [
        ("default", r"so \boxed{4}", "correct", 1.0),
        ("default", "#### 4", "correct", 1.0),
        ("default", "Answer: 5", "wrong", 0.0),
        ("default", "no idea", "no_answer", 0.0),
        ("boxed", "<answer>4</answer>", "no_answer", 0.0),
        ("deepscaler", r"hm </think> \boxed{4}", "correct", 1.0),
        ("deepscaler", r"\boxed{4} </think> done", "no_answer", 0.0),
        ("dr_grpo", "hm </think> <answer> 4 </answer>", "correct", 1.0),
        ("dr_grpo", r"hm </think> <answer> so \boxed{4} </answer>", "correct", 1.0),
        ("dr_grpo", "hm </think><answer> 4 </answer>", "bad_format", 0.0),
        ("orz", r"</think> <answer> \boxed{4} </answer>", "correct", 1.0),
        ("orz", "</think> <answer> 4 </answer>", "no_answer", 0.0),
        ("dapo", "work\nAnswer: $4$", "correct", 1.0),
        ("dapo", "Answer: 4\n" + "x" * 400, "no_answer", -1.0),
        ("dapo", "Answer: 5", "wrong", -1.0),
        ("oat_zero", "</think> <answer> 4 </answer>", "correct", 1.0),
        ("oat_zero", "</think> <answer> 5 </answer>", "wrong", -0.5),
        ("oat_zero", "</think> 4", "no_answer", -1.0),
    ],
)
def test_scoring_conventions(scoring, completion, reason, score):
    verdict = math_task.verify(completion, {"answer": "4"}, scoring=scoring)
    assert (verdict.reason, verdict.score) == (reason, score)


def test_orz_truncated_generations_score_zero():
    verdict = math_task.verify(
        r"<answer>\boxed{4}</answer>", {"answer": "4"}, scoring="orz", stopped=False
    )
    assert (verdict.correct, verdict.score, verdict.detail) == (False, 0.0, "not_stopped")


def test_deepscaler_prefill_counts():
    completion = r"hm </think> \boxed{4}"
    assert not math_task.verify(
        completion, {"answer": "4"}, scoring="deepscaler", prefill=""
    ).correct


def test_any_reference_in_a_list_matches():
    assert math_task.verify(r"\boxed{b}", {"answer": ["a", r"\boxed{b}"]}).correct


def test_dapo_normalisation():
    assert math_answers.dapo_normalize(r"\text{5} dollars") == "5"
    assert math_answers.dapo_normalize(r"x = \frac12") == r"\frac{1}{2}"
    assert math_answers.dapo_normalize("1,000") == "1000"


def test_math_verify_runs_outside_the_main_thread():
    results = []

    def work():
        results.append(
            math_task.verify(r"\boxed{(x+1)^2}", {"answer": "x^2+2x+1"}, timeout_seconds=5)
        )

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert results[0].correct
    assert math_answers.signal_timeout(5) == 5


def test_prompt_templates():
    problem = {"question": "What is 2+2?"}
    assert math_task.prompt(problem) == (
        "A conversation between User and Assistant. The user asks a question, and the Assistant "
        "solves it. The assistant first thinks about the reasoning process in the mind and then "
        "provides the user with the answer. The reasoning process and answer are enclosed within "
        "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning "
        "process here </think> <answer> answer here </answer>. User: What is 2+2?. Assistant:"
    )
    assert math_task.prompt(problem, template="understand_r1") == (
        "A conversation between User and Assistant. The User asks a question, and the Assistant "
        "solves it. The Assistant first thinks about the reasoning process in the mind and then "
        "provides the User with the answer. The reasoning process is enclosed within <think> "
        "</think> and answer is enclosed within <answer> </answer> tags, respectively, i.e., "
        "<think> reasoning process here </think> <answer> answer here </answer>.\nUser: What is "
        "2+2?\nAssistant: <think>"
    )
    orz = math_task.prompt(problem, template="orz")
    assert "</answer>. User: You must put your answer inside <answer> </answer> tags" in orz
    assert orz.endswith(
        "extracted automatically by the \\boxed{} tag.\nThis is the problem:\nWhat is 2+2?\n"
        "Assistant: <think>"
    )
    assert math_task.prompt(problem, template="qwen_math") == (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within "
        "\\boxed{}.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert math_task.prompt(problem, template="deepscaler") == (
        "What is 2+2? Let's think step by step and output the final answer within \\boxed{}."
    )
    assert math_task.prompt(problem, template="dapo").startswith(
        "Solve the following math problem step by step. The last line of your response should be "
        "of the form Answer: $Answer (without quotes)"
    )
    assert math_task.PREFILLS["understand_r1"] == "<think>" and math_task.PREFILLS["r1_zero"] == ""


def test_bad_problem_raises_a_clear_error():
    with pytest.raises(ValueError, match="answer"):
        math_task.verify(r"\boxed{1}", {"question": "q"})
