"""A user task outside r1jax, importable as ``tests.tasks.user_task``: echo the answer back.

It implements ``r1jax.tasks.protocol.Task`` (``verify``) plus ``generate``, ``prompt`` with
``TEMPLATES`` and ``reference_completion``, to test that tasks given by import path work in
this process and in the verifier pool's workers alike.
"""

import os

import numpy as np

from r1jax.tasks.verdict import Verdict

TEMPLATES = {"base": "Say {word}. Answer:"}


def generate(rng: np.random.Generator, *, length: int = 4) -> dict:
    letters = rng.choice(list("abcdefgh"), size=length)
    return {"word": "".join(str(letter) for letter in letters)}


def prompt(problem: dict, *, template: str = "base") -> str:
    return TEMPLATES[template].format(word=problem["word"])


def reference_completion(problem: dict, rng=None, *, method: str = "direct") -> str:
    del rng, method
    return f" <answer>{problem['word']}</answer>"


def verify(completion: str, problem: dict, **options) -> Verdict:
    correct = f"<answer>{problem['word']}</answer>" in completion
    return Verdict(
        correct=correct,
        well_formed=True,
        reason="correct" if correct else "wrong",
        score=float(correct),
        detail=f"pid={os.getpid()}",
    )
