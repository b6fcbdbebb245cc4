"""Tests for r1jax.evaluate and the ``python -m r1jax.eval`` command line."""

import jax
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


def test_eval_command_line_rejects_a_directory_without_a_model(tmp_path):
    with pytest.raises(SystemExit, match="neither a model directory"):
        eval_cli.main(["--checkpoint", str(tmp_path), "--task", "multiplication"])
