"""The tiny model, tokenizer and problems that the evaluation tests share."""

import jax
import numpy as np

from r1jax.models import ModelConfig, init_params
from r1jax.tasks import multiplication
from r1jax.tokenizer import Tokenizer


def tiny_multiplication_model():
    """``(config, params, tokenizer, problems)``: a random tiny model with a tokenizer trained
    on 2-digit multiplication prompts and traces, and 3 problems."""
    rng = np.random.default_rng(0)
    problems = [multiplication.generate(rng, digits=2) for _ in range(50)]
    texts = [multiplication.prompt(p) for p in problems]
    texts += [multiplication.reference_completion(p) for p in problems]
    tokenizer = Tokenizer.train(texts, vocab_size=300)
    config = ModelConfig.preset(
        "tiny", vocab_size=tokenizer.vocab_size, hidden_size=32, mlp_dim=64, head_dim=8
    )
    return config, init_params(config, jax.random.key(0)), tokenizer, problems[:3]
