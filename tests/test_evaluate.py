"""Tests for r1jax.evaluate and the ``python -m r1jax.eval`` command line."""

import jax
import numpy as np
import pytest

from r1jax import eval as eval_cli
from r1jax import evaluate
from r1jax.data import prompts as prompt_data
from r1jax.models import save_pretrained
from r1jax.tasks import multiplication
from tests.evaluate_fixtures import tiny_multiplication_model


@pytest.fixture(scope="module")
def model():
    return tiny_multiplication_model()


def test_evaluate_reports_pass_at_k_and_greedy_accuracy(model):
    config, params, tokenizer, problems = model
    settings = evaluate.EvalSettings(
        num_samples=2,
        max_new_tokens=8,
        prompts_per_batch=2,
        pad_id=tokenizer.pad_token_id,
        stop_token_ids=tokenizer.eos_token_ids,
        ks=(1, 2),
    )
    results = evaluate.evaluate(
        params,
        config,
        tokenizer,
        problems,
        task="multiplication",
        prompt_fn=prompt_data.make_prompt_fn(multiplication),
        key=jax.random.key(0),
        settings=settings,
    )
    for name in ("pass@1", "pass@2", "maj@2", "greedy_accuracy", "format_rate"):
        assert 0.0 <= results[name] <= 1.0, name
    assert results["num_problems"] == 3 and results["num_samples"] == 2
    assert results["response_length"] <= 8
    assert len(results["examples"]) == 3
    assert "pass@1" in evaluate.format_summary(results)


def test_eval_command_line_reads_an_exported_model(model, tmp_path, capsys):
    config, params, tokenizer, _ = model
    save_pretrained(tmp_path / "export", config, params, tokenizer)
    results = eval_cli.main(
        [
            "--checkpoint",
            str(tmp_path),
            "--task",
            "multiplication",
            "--task-option",
            "digits=2",
            "--num-problems",
            "2",
            "--k",
            "2",
            "--max-new-tokens",
            "8",
            "--workers",
            "1",
            "--json",
        ]
    )
    assert results["num_problems"] == 2
    assert "pass@1" in capsys.readouterr().out


def test_eval_command_line_reads_a_workdirs_export_beside_the_runs_config_json(
    model, tmp_path, capsys
):
    """A training workdir holds the run's config.json; --checkpoint WORKDIR reads export/."""
    config, params, tokenizer, _ = model
    save_pretrained(tmp_path / "export", config, params, tokenizer)
    (tmp_path / "config.json").write_text('{"seed": 0, "model": {"name": "tiny"}}')
    argv = ["--checkpoint", str(tmp_path), "--task", "multiplication", "--num-problems", "2"]
    results = eval_cli.main([*argv, "--k", "1", "--max-new-tokens", "4", "--workers", "1"])
    assert results["num_problems"] == 2
    assert str(tmp_path / "export") in capsys.readouterr().out


def test_eval_command_line_rejects_a_directory_without_a_model(tmp_path):
    with pytest.raises(SystemExit, match="neither a model directory"):
        eval_cli.main(["--checkpoint", str(tmp_path), "--task", "multiplication"])


def test_evaluate_reports_the_samples_reflection_rate(monkeypatch):
    problems = [{"a": 12, "b": 3, "operator": "*", "target": 36}] * 2
    texts = [
        "The answer is 35. Hmm, wait, let me check: 36.</think> <answer>36</answer>",
        "</think> <answer>36</answer>",
        "</think> <answer>35</answer>",
        "Let me double-check: 12 * 3 = 36.</think> <answer>36</answer>",
    ]

    def fixed_completions(*args, **kwargs):
        return evaluate.Completions(
            texts=texts,
            tokens=[[1]] * 4,
            lengths=np.full(4, 9),
            truncated=np.zeros(4, bool),
            thinking_lengths=None,
            capped=None,
            num_ignored=None,
        )

    monkeypatch.setattr(evaluate, "sample_completions", fixed_completions)
    settings = evaluate.EvalSettings(num_samples=2, greedy=False, ks=(1, 2))
    results = evaluate.evaluate(
        None,
        None,
        _Encoder(),
        problems,
        task="multiplication",
        prompt_fn=lambda problem: "prompt",
        key=jax.random.key(0),
        settings=settings,
    )
    assert results["pass@1"] == 0.75
    assert results["reflect_rate"] == 0.5  # "wait," and "double-check": 2 of 4 samples
    assert "reflect 50.0%" in evaluate.format_summary(results)


class _Encoder:
    def encode(self, text):
        return [1, 2]
