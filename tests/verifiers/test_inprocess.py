import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r1jax.tasks import TASKS, countdown, knights_knaves
from r1jax.tasks.verdict import REASONS, Verdict
from r1jax.verifiers import inprocess, verify

PROBLEMS = {
    "countdown": {"numbers": [9, 9, 9], "target": 1},
    "multiplication": {"a": 3, "b": 4, "operator": "*", "target": 12},
    "knights_knaves": {"solution_text_format": "(1) Emma is a knight\n(2) Liam is a knave"},
    "math": {"answer": r"\frac{1}{2}"},
    "format": {},
}

ADVERSARIAL = [
    "<answer>9**9**9</answer>",
    "</think> <answer>9**9**9**9**9</answer>",
    "<answer>__import__('os').system('echo pwned')</answer>",
    r"\boxed{__import__('os').system('echo pwned')}",
    "<answer>" + "(" * 1_000_000 + "</answer>",
    r"\boxed{" + "(" * 1_000_000 + "}",
    "(" * 1_000_000 + ")" * 1_000_000,
    "{" * 1_000_000,
    "<answer>" * 500_000,
    "x" * 10_000_000,
    "Answer: " + " " * 1_000_000 + "\n",
    "\ud800\udfff lone surrogates \udc80 <answer>\ud800</answer> \\boxed{\udfff}",
    "\x00\x01\x02 <answer>\x00</answer>",
    "Emma is a knight " * 100_000,
    r"\boxed{" + "9^{" * 30 + "9" + "}" * 30 + "}",
]


def test_importing_tasks_and_verifiers_does_not_import_jax():
    code = (
        "import sys\n"
        "import r1jax.tasks, r1jax.tasks.protocol\n"
        "import r1jax.tasks.countdown, r1jax.tasks.multiplication, r1jax.tasks.knights_knaves\n"
        "import r1jax.tasks.math, r1jax.tasks.format, r1jax.verifiers, r1jax.verifiers.worker\n"
        "import r1jax.verifiers.reflection, r1jax.bench.verify\n"
        "assert 'jax' not in sys.modules, 'jax was imported'\n"
        "assert 'flax' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_task_table():
    assert set(PROBLEMS) <= set(TASKS)
    assert TASKS["kk"] is knights_knaves and TASKS["countdown"] is countdown
    with pytest.raises(ValueError, match="unknown task"):
        verify("nope", "x", {})


def test_verify_each_turns_exceptions_into_error_verdicts():
    verdicts = inprocess.verify_each(
        "countdown", ["<answer>1</answer>", "x"], [{}, {"numbers": [1], "target": 1}]
    )
    assert verdicts[0].reason == "error" and "KeyError" in verdicts[0].detail
    assert verdicts[1].reason == "no_answer"


@pytest.mark.parametrize("task", sorted(PROBLEMS))
@pytest.mark.parametrize("completion", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_completions_return_a_verdict_quickly(task, completion):
    start = time.perf_counter()
    options = {"timeout_seconds": 2} if task == "math" else {}
    verdict = verify(task, completion, PROBLEMS[task], **options)
    assert isinstance(verdict, Verdict) and verdict.reason in REASONS
    assert not verdict.correct
    assert verdict.answer is None or len(verdict.answer) <= 200
    assert time.perf_counter() - start < 15.0


@pytest.mark.parametrize("task", sorted(PROBLEMS))
def test_non_string_completions_are_errors(task):
    for completion in (None, b"<answer>1</answer>", 5):
        assert verify(task, completion, PROBLEMS[task]).reason == "error"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    task=st.sampled_from(sorted(PROBLEMS)),
    text=st.one_of(
        st.text(max_size=300),
        st.text(alphabet=st.characters(categories=["Cs", "Cc", "Nd", "Zs"]), max_size=200),
        st.lists(
            st.sampled_from(
                ["<answer>", "</answer>", "<think>", "</think>", "\\boxed{", "}", "{", "(", ")",
                 "**", "9", "-", "/", "0", "Emma is a knight", "\n", "####", "Answer:", " "]
            ),
            max_size=40,
        ).map("".join),
    ),
)  # fmt: skip
def test_arbitrary_text_never_escapes(task, text):
    verdict = verify(task, text, PROBLEMS[task])
    assert isinstance(verdict, Verdict) and verdict.reason in REASONS
