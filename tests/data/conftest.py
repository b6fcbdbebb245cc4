"""Fixtures for the data tests: a tiny locally trained tokenizer."""

import pytest

from r1jax.tokenizer import Tokenizer

_CORPUS = [
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. Using the numbers [44, 19, 35], create an equation that equals 98.",
    "<think> reasoning process here </think> <answer> answer here </answer>",
    "What is 1 + 1? Let me solve this step by step. 0 1 2 3 4 5 6 7 8 9",
]


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    return Tokenizer.train(_CORPUS * 4, vocab_size=400)
