"""Writes ``experiments/data/math_traces.jsonl``, the tiny trace file of the math recipes' smoke
presets: 16 problems of the math task's generator, each with two worked solutions.

Command (from the repository root; the output is deterministic):

    python experiments/data/make_math_traces.py

Each row holds ``problem`` and ``answer`` (the question and its LaTeX answer, as a MATH-style
JSONL row), ``response`` (the solution in open-r1's ``<think>\\n...\\n</think>\\n<answer>\\n
\\boxed{...}\\n</answer>`` layout) and ``boxed_response`` (the same steps ending with ``The
final answer is $\\boxed{...}$.``, the layout of Qwen-Math and of distilled long-CoT traces).
The recipes that distil from a file of traces (``open_r1.py``, ``limo_sft.py``,
``demystify_long_cot.py``) point ``sft.source`` at it in their ``:smoke`` presets, so the smoke
runs read a real JSONL file through the same path as a paper-scale trace file.
"""

import json
import os

import numpy as np

from r1jax.tasks import math as math_task

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "math_traces.jsonl")
OPTIONS = dict(max_integer=12, max_denominator=5, word_problems=0.3)


def rows(count: int = 16, seed: int = 20250701) -> list[dict]:
    """The file's rows: problem ``i`` is drawn from ``default_rng([seed, i])``."""
    out = []
    for index in range(count):
        problem = math_task.generate(np.random.default_rng([seed, index]), **OPTIONS)
        out.append(
            {
                "problem": problem["question"],
                "answer": problem["answer"],
                "response": math_task.reference_completion(problem, method="open_r1"),
                "boxed_response": math_task.reference_completion(problem, method="qwen_math"),
            }
        )
    return out


def main() -> None:
    with open(OUT, "w") as f:
        for row in rows():
            f.write(json.dumps(row) + "\n")
    print(OUT)


if __name__ == "__main__":
    main()
