"""Verifier throughput: verifications per second in-process and through ``VerifierPool``.

``python -m r1jax.bench verify --task {countdown,math,kk,multiplication} [--num N] [--workers W]``

Builds ``N`` realistic completions (about 40% correct, 35% wrong, 25% malformed: no tags,
truncated, junk, oversized), verifies them in this process, then through a pool of ``W``
workers (pool start-up and a warm-up batch are excluded from the timing), and checks that both
give the same verdicts.
"""

import argparse
import os
import time

import numpy as np

from r1jax.tasks import countdown, knights_knaves, multiplication
from r1jax.verifiers import inprocess
from r1jax.verifiers.pool import VerifierPool

TASK_NAMES = {
    "countdown": "countdown",
    "math": "math",
    "kk": "knights_knaves",
    "multiplication": "multiplication",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", choices=sorted(TASK_NAMES), default="countdown")
    parser.add_argument("--num", type=int, default=2000, help="completions to verify")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="pool size")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-item hard limit (s)")
    parser.add_argument("--seed", type=int, default=0)


def _malformed(rng: np.random.Generator, text: str) -> str:
    kind = int(rng.integers(4))
    if kind == 0:
        return text.replace("<answer>", "").replace("</answer>", "")
    if kind == 1:
        return text[: max(1, len(text) // 2)]
    if kind == 2:
        return "".join(chr(int(c)) for c in rng.integers(32, 127, size=200))
    return "<answer>" * 2000 + text[:100] + "(" * 5000


def _countdown_case(rng, kind):
    problem = countdown.generate(rng)
    text = countdown.reference_completion(problem, rng)
    if kind == "wrong":
        numbers = problem["numbers"]
        text = (
            text.rsplit("<answer>", 1)[0] + f"<answer>{' + '.join(map(str, numbers))} + 1</answer>"
        )
    return problem, text


def _multiplication_case(rng, kind):
    problem = multiplication.generate(rng)
    text = multiplication.reference_completion(problem)
    if kind == "wrong":
        text = text.rsplit("<answer>", 1)[0] + f"<answer>{problem['target'] + 1}</answer>"
    return problem, text


def _kk_case(rng, kind):
    problem = knights_knaves.generate(rng, n_people=(2, 3, 4, 5, 6, 7, 8))
    lines = problem["solution_text_format"].split("\n")
    if kind == "wrong":
        flip = int(rng.integers(len(lines)))
        lines[flip] = lines[flip].replace("knight", "KNAVE").replace("knave", "knight").lower()
    text = (
        "Let me check each statement in turn.\n</think>\n<answer>\n"
        + "\n".join(lines)
        + "\n</answer>"
    )
    return problem, text


def _math_case(rng, kind):
    numerator, denominator = (int(x) for x in rng.integers(1, 50, size=2))
    forms = [
        f"\\frac{{{numerator}}}{{{denominator}}}",
        f"{numerator}/{denominator}",
        f"\\dfrac{{{2 * numerator}}}{{{2 * denominator}}}",
        f"\\frac{{{numerator}}}{{{denominator}}} + 0",
        f"{numerator / denominator:.10f}",
    ]
    gold = forms[0]
    answer = forms[int(rng.integers(len(forms)))]
    if kind == "wrong":
        answer = f"\\frac{{{numerator + 1}}}{{{denominator}}}"
    text = f"We simplify step by step.\nSo the result is $\\boxed{{{answer}}}$."
    return {"question": "Compute the ratio.", "answer": gold}, text


_CASES = {
    "countdown": _countdown_case,
    "multiplication": _multiplication_case,
    "kk": _kk_case,
    "math": _math_case,
}


def make_cases(task: str, num: int, seed: int) -> tuple[list[str], list[dict]]:
    """``num`` (completion, problem) pairs: ~40% correct, ~35% wrong, ~25% malformed."""
    completions, problems = [], []
    for index in range(num):
        rng = np.random.default_rng([seed, index])
        draw = rng.random()
        kind = "correct" if draw < 0.4 else ("wrong" if draw < 0.75 else "malformed")
        problem, text = _CASES[task](rng, kind)
        if kind == "malformed":
            text = _malformed(rng, text)
        completions.append(text)
        problems.append(problem)
    return completions, problems


def run(args: argparse.Namespace) -> dict:
    task = TASK_NAMES[args.task]
    completions, problems = make_cases(args.task, args.num, args.seed)
    start = time.perf_counter()
    local = inprocess.verify_each(task, completions, problems)
    local_seconds = time.perf_counter() - start
    with VerifierPool(args.workers, timeout_seconds=args.timeout) as pool:
        pool.verify_batch(task, completions[:50], problems[:50])  # warm-up
        start = time.perf_counter()
        pooled = pool.verify_batch(task, completions, problems)
        pool_seconds = time.perf_counter() - start
    mismatches = sum(a != b for a, b in zip(local, pooled))
    results = {
        "task": args.task,
        "num": args.num,
        "workers": args.workers,
        "accuracy": sum(v.correct for v in local) / max(len(local), 1),
        "in_process_per_second": args.num / local_seconds,
        "pool_per_second": args.num / pool_seconds,
        "pool_local_mismatches": mismatches,
        "pool_timeouts": sum(v.reason == "timeout" for v in pooled),
    }
    if not getattr(args, "json", False):
        print(
            f"verify {args.task}: {args.num} completions, {results['accuracy']:.0%} correct\n"
            f"  in-process: {results['in_process_per_second']:,.0f} verifications/s\n"
            f"  pool ({args.workers} workers): {results['pool_per_second']:,.0f} verifications/s"
            f" ({mismatches} verdicts differ from in-process, {results['pool_timeouts']} timeouts)"
        )
    return results
