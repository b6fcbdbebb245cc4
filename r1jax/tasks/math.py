"""Math word problems with a reference answer: prompt templates and reward conventions.

What lives here: the math prompt templates (R1 arXiv:2501.12948 Table 1; Qwen2.5-Math's boxed prompt; DeepScaleR's user message) and ``verify`` with the
reward conventions of §5.4-5.6 as named ``scoring`` options. Answer extraction and equivalence
(fast path, then Math-Verify) live in ``math_answers.py``.

A problem is ``{"question": str, "answer": str | list[str]}``; a reference containing
``\\boxed{}`` or GSM8K's ``####`` is reduced to its final answer first.

Scoring conventions (``scoring=``):

* ``"default"``: the first answer found by ``extraction_order`` (default: last ``\\boxed{}``,
  then the ``<answer>`` tag, GSM8K ``####``, an ``Answer:`` line); 1 if equivalent, else 0.
* ``"boxed"``: Dr. GRPO's Qwen-Math template reward: the last ``\\boxed{}``; 1 or 0.
* ``"deepscaler"``: ``prefill + completion`` must contain ``<think>`` and ``</think>``; the last
  ``\\boxed{}`` after the first ``</think>``; 1 or 0. DeepScaleR grades with the MATH
  normaliser and the PRM800K sympy grader; r1jax uses Math-Verify instead.
* ``"dr_grpo"``: Dr. GRPO/oat with the R1 template: the completion must contain the literal
  ``</think> <answer>`` and ``</answer>``; the answer is the text after the last ``<answer>``
  (``</answer>`` removed), or its last ``\\boxed{}``; 1 or 0, no format bonus.
* ``"orz"``: Open-Reasoner-Zero: the last ``\\boxed{}`` inside the last ``<answer>...</answer>``,
  and 0 when the generation did not stop on its own (``stopped=False``); 1 or 0.
* ``"dapo"``: the last 300 characters, the last ``Answer: ...`` line, DAPO's normalisation on
  both sides, string equality: +1, else -1 (also when no answer is found).
* ``"oat_zero"``: oat-zero's evaluation with the R1 template: 1 if correct, -0.5 if answered
  but wrong, -1 if there is no ``<answer>``.

Procedural problems (``math_problems.py``): ``generate`` draws small integer and fraction
arithmetic with LaTeX answers, and ``reference_completion`` writes a worked solution in the
layout of a template (``method=`` a template name, or ``open_r1``), so the task also runs
without data files (``data.source=procedural``) and warm-starts from its own traces.

Templates that prefill ``<think>`` (``understand_r1``, ``orz``) need no prefill for any of these
rules except ``deepscaler``, whose ``<think>`` check looks at the prompt too: its default
``prefill`` is ``"<think>\\n"`` (what the DeepSeek-R1-Distill chat template ends with).
"""

from r1jax.tasks import format as format_lib
from r1jax.tasks import math_answers
from r1jax.tasks import verdict as verdict_lib
from r1jax.tasks.math_problems import generate as generate
from r1jax.tasks.math_problems import reference_completion as reference_completion
from r1jax.tasks.verdict import Verdict

_R1_TAGS = (
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
    "tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here "
    "</answer>."
)
_UNDERSTAND_R1_HEAD = (
    "A conversation between User and Assistant. The User asks a question, and the Assistant "
    "solves it. The Assistant first thinks about the reasoning process in the mind and then "
    "provides the User with the answer. The reasoning process is enclosed within <think> "
    "</think> and answer is enclosed within <answer> </answer> tags, respectively, i.e., <think> "
    "reasoning process here </think> <answer> answer here </answer>."
)

TEMPLATES = {
    "r1_zero": (
        "A conversation between User and Assistant. The user asks a question, and the Assistant "
        "solves it. The assistant first thinks about the reasoning process in the mind and then "
        "provides the user with the answer. " + _R1_TAGS + " User: {question}. Assistant:"
    ),
    "understand_r1": _UNDERSTAND_R1_HEAD + "\nUser: {question}\nAssistant: <think>",
    "orz": (
        _UNDERSTAND_R1_HEAD + " User: You must put your answer inside <answer> </answer> tags, "
        "i.e., <answer> answer here </answer>. And your final answer will be extracted "
        "automatically by the \\boxed{{}} tag.\nThis is the problem:\n{question}\n"
        "Assistant: <think>"
    ),
    "qwen_math": (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within "
        "\\boxed{{}}.<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    ),
    "deepscaler": "{question} Let's think step by step and output the final answer within \\boxed{{}}.",
    "online_dpo": "{question} Let's think step by step and output the final answer within \\boxed{{}}",
    "dapo": (
        "Solve the following math problem step by step. The last line of your response should be "
        "of the form Answer: $Answer (without quotes) where $Answer is the answer to the "
        "problem.\n\n{question}\n\nRemember to put your answer on its own line after "
        '"Answer:".'
    ),
}
"""Prompt templates by name (byte for byte as their sources write them). ``deepscaler``,
``online_dpo`` and ``dapo`` are user messages: wrap them with the tokenizer's chat template
(DeepSeek-R1-Distill's for DeepScaleR, Qwen's for the others). ORZ prepends the decoded BOS
token, which is empty for Qwen2.5."""

PREFILLS = {name: "<think>" if text.endswith("<think>") else "" for name, text in TEMPLATES.items()}
"""The text each template ends with that belongs to the response."""

STOP_STRINGS = {
    "understand_r1": ("</answer>",),
    "orz": ("User:", "Human:", "Assistant:", "</answer>"),
}
"""Sampling stop strings by template (kept in the output); templates not listed stop on EOS."""

SCORINGS = ("default", "boxed", "deepscaler", "dr_grpo", "orz", "dapo", "oat_zero")
FORMAT_CHECKS = ("none", "lenient", "strict", "tag_count")
"""``verify``'s ``format_check``: what ``Verdict.well_formed`` asks of ``prefill + completion``
besides an extracted answer (``format.verify``'s modes; ``none``: nothing more)."""
DAPO_TAIL_CHARS = 300


def prompt(problem: dict, *, template: str = "r1_zero") -> str:
    """The prompt (or user message, see ``TEMPLATES``) for ``problem``.

    Templates: ``"r1_zero"``, ``"understand_r1"``, ``"orz"``, ``"qwen_math"``,
    ``"deepscaler"``, ``"online_dpo"``, ``"dapo"``.

    Example:
      >>> prompt({"question": "1+1?"}, template="understand_r1").endswith("User: 1+1?\\nAssistant: <think>")
      True
    """
    if template not in TEMPLATES:
        raise ValueError(f"math template must be one of {sorted(TEMPLATES)}, got {template!r}")
    return TEMPLATES[template].format(question=problem["question"])


def _references(problem: dict) -> list[str]:
    reference = problem.get("answer")
    if reference is None:
        raise ValueError("math problem has no 'answer'")
    references = reference if isinstance(reference, (list, tuple)) else [reference]
    golds = [math_answers.gold_answer(r) for r in references]
    if not any(golds):
        raise ValueError(f"math problem has an empty 'answer': {reference!r}")
    return [g for g in golds if g]


def _grade(answer: str, golds: list[str], timeout_seconds, use_math_verify) -> tuple[bool, bool]:
    parsed_any = False
    for gold in golds:
        equivalent, parsed = math_answers.answers_match(
            answer, gold, timeout_seconds=timeout_seconds, use_math_verify=use_math_verify
        )
        if equivalent:
            return True, True
        parsed_any = parsed_any or parsed
    return False, parsed_any


def _extract(
    completion: str, scoring: str, prefill: str, extraction_order
) -> tuple[str | None, str]:
    """The answer under ``scoring``'s rules, or ``(None, reason)``."""
    if scoring == "default":
        answer, _ = math_answers.extract_answer(completion, tuple(extraction_order))
        return answer, verdict_lib.NO_ANSWER
    if scoring == "boxed":
        return math_answers.last_boxed(completion), verdict_lib.NO_ANSWER
    if scoring == "deepscaler":
        text = prefill + completion
        if format_lib.THINK_OPEN not in text or format_lib.THINK_CLOSE not in text:
            return None, verdict_lib.BAD_FORMAT
        after = text.split(format_lib.THINK_CLOSE, 1)[1]
        return math_answers.last_boxed(after), verdict_lib.NO_ANSWER
    if scoring in ("dr_grpo", "oat_zero"):
        if scoring == "dr_grpo" and not (
            "</think> <answer>" in completion and format_lib.ANSWER_CLOSE in completion
        ):
            return None, verdict_lib.BAD_FORMAT
        if format_lib.ANSWER_OPEN not in completion:
            return None, verdict_lib.NO_ANSWER
        answer = completion[
            completion.rfind(format_lib.ANSWER_OPEN) + len(format_lib.ANSWER_OPEN) :
        ]
        answer = answer.replace(format_lib.ANSWER_CLOSE, "")
        if "\\boxed" in answer or "\\fbox" in answer:
            return math_answers.last_boxed(answer), verdict_lib.UNPARSEABLE
        return answer.strip() or None, verdict_lib.NO_ANSWER
    if scoring == "orz":
        content = format_lib.last_answer_tag(completion)
        if content is None:
            return None, verdict_lib.NO_ANSWER
        return math_answers.last_boxed(content), verdict_lib.NO_ANSWER
    if scoring == "dapo":
        return math_answers.answer_line(completion[-DAPO_TAIL_CHARS:]), verdict_lib.NO_ANSWER
    raise ValueError(f"math scoring must be one of {SCORINGS}, got {scoring!r}")


def _scores(scoring: str) -> tuple[float, float, float]:
    """``(correct, wrong, no_answer)`` rewards."""
    if scoring == "dapo":
        return 1.0, -1.0, -1.0
    if scoring == "oat_zero":
        return 1.0, -0.5, -1.0
    return 1.0, 0.0, 0.0


def verify(
    completion: str,
    problem: dict,
    *,
    scoring: str = "default",
    extraction_order: tuple[str, ...] = math_answers.EXTRACTORS,
    prefill: str | None = None,
    stopped: bool = True,
    use_math_verify: bool = True,
    timeout_seconds: float | None = 5.0,
    format_check: str = "none",
) -> Verdict:
    """Scores a math completion under one of ``SCORINGS``.

    Args:
      completion: the decoded response after the prompt.
      problem: ``{"answer": str | list[str], ...}``; any listed answer may match.
      scoring: the reward convention (module docstring).
      extraction_order: extractors tried in order by ``"default"``, from
        ``math_answers.EXTRACTORS``.
      prefill: text the prompt ends with that the rule should see; ``None`` gives
        ``"<think>\\n"`` for ``"deepscaler"`` and ``""`` otherwise.
      stopped: whether generation ended on its own (EOS or a stop string), for ``"orz"``.
      use_math_verify: fall back to Math-Verify when the fast path cannot decide.
      timeout_seconds: Math-Verify's per-call SIGALRM timeout; ignored (disabled) outside the
        main thread, where only a pool's hard limit protects the caller.
      format_check: one of ``FORMAT_CHECKS``; ``lenient`` (R1's ``<think>...</think>
        <answer>...</answer>``), ``strict`` (open-r1's ``format_reward``) or ``tag_count``
        (open-r1's four tag strings once each) makes ``well_formed`` also require that format
        of ``prefill + completion`` (the reward's format term, ``rewards.format_weight``);
        correctness and the score do not depend on it.

    Returns:
      a ``Verdict`` with ``score`` under ``scoring``.

    Example:
      >>> verify(r"... so the answer is \\boxed{\\frac{1}{2}}", {"answer": "0.5"}).score
      1.0
      >>> verify("...</think> <answer>0.5</answer>", {"answer": "1/3"}, scoring="oat_zero").score
      -0.5
    """
    if not isinstance(completion, str):
        return Verdict.failure(verdict_lib.ERROR, f"completion is {type(completion).__name__}")
    if scoring not in SCORINGS:
        raise ValueError(f"math scoring must be one of {SCORINGS}, got {scoring!r}")
    if format_check not in FORMAT_CHECKS:
        raise ValueError(f"math format_check must be one of {FORMAT_CHECKS}, got {format_check!r}")
    golds = _references(problem)
    if prefill is None:
        prefill = "<think>\n" if scoring == "deepscaler" else ""
    correct_score, wrong_score, missing_score = _scores(scoring)
    answer, missing_reason = _extract(completion, scoring, prefill, extraction_order)
    if answer is None:
        return Verdict(
            correct=False,
            well_formed=False,
            reason=missing_reason,
            score=missing_score,
        )
    shown = verdict_lib.truncate(answer)
    if scoring == "orz" and not stopped:
        return Verdict(
            correct=False,
            well_formed=False,
            reason=verdict_lib.BAD_FORMAT,
            score=0.0,
            answer=shown,
            detail="not_stopped",
        )
    if scoring == "dapo":
        normalized = math_answers.dapo_normalize(answer)
        correct = any(normalized == math_answers.dapo_normalize(g) for g in golds)
        parsed = True
    else:
        correct, parsed = _grade(answer, golds, timeout_seconds, use_math_verify)
    if correct:
        reason = verdict_lib.CORRECT
    else:
        reason = verdict_lib.WRONG if parsed else verdict_lib.UNPARSEABLE
    well_formed = True
    if format_check != "none":
        well_formed = format_lib.verify(prefill + completion, mode=format_check).well_formed
    return Verdict(
        correct=correct,
        well_formed=well_formed,
        reason=reason,
        score=correct_score if correct else wrong_score,
        answer=shown,
    )
