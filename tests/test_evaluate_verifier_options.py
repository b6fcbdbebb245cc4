"""Held-out evaluation grades with the run's ``verifier.options`` (the reward's rule)."""

import numpy as np

from r1jax import build, evaluate
from r1jax import config as config_lib
from r1jax.tokenizer import Tokenizer


def test_build_passes_the_verifier_options_to_the_evaluation():
    config = config_lib.load_config(
        "", ["data.task=math", "verifier.options.scoring=boxed", "eval.num_problems=2"]
    )
    tokenizer = Tokenizer.train(["compute 1 + 1 = 2 </answer>"] * 20, vocab_size=300)
    stops = build.stop_settings(config, tokenizer, tokenizer.vocab_size)
    settings = build.eval_settings(config, tokenizer, stops)
    assert settings.verifier_options == (("scoring", "boxed"),)


def test_the_scoring_rule_decides_what_counts_as_correct(monkeypatch):
    texts = ["so \\boxed{2}", "<think> 1 + 1 </think> <answer> 2 </answer>"]

    def fixed_completions(params, model_config, tokenizer, prompt_ids, *args, **kwargs):
        return evaluate.Completions(
            texts=list(texts),
            tokens=[[1], [1]],
            lengths=np.array([3, 9]),
            truncated=np.array([False, False]),
        )

    monkeypatch.setattr(evaluate, "sample_completions", fixed_completions)

    class Encoder:
        def encode(self, text):
            return [1, 2]

    def pass_at_1(options):
        settings = evaluate.EvalSettings(
            num_samples=2, greedy=False, ks=(1,), verifier_options=options
        )
        results = evaluate.evaluate(
            None,
            None,
            Encoder(),
            [{"question": "1 + 1?", "answer": "2"}],
            task="math",
            prompt_fn=lambda problem: problem["question"],
            key=None,
            settings=settings,
        )
        return results["pass@1"]

    assert pass_at_1(()) == 1.0  # default: the last \boxed{}, else the <answer> tag
    assert pass_at_1((("scoring", "dr_grpo"),)) == 0.5  # needs "</think> <answer>"
    assert pass_at_1((("scoring", "boxed"),)) == 0.5  # needs a \boxed{}
