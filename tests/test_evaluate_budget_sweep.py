"""Tests for the s1 thinking-budget sweep: its config points, `evaluate`'s per-budget results,
the plot from ``summary.json``, and an SFT-only run that evaluates the sweep once."""

import json
from pathlib import Path

import jax
import pytest

from r1jax import config as config_lib
from r1jax import evaluate, plot, train
from r1jax.data import prompts as prompt_data
from r1jax.tasks import multiplication
from tests.evaluate_fixtures import tiny_multiplication_model

ROOT = Path(__file__).resolve().parents[1]


class Chars:
    """A tokenizer with one id per character."""

    def encode(self, text):
        return [ord(c) for c in text]


def section(**changes):
    values = config_lib.base_config().eval.budget_forcing.to_dict()
    values.update(end_of_thinking="</t>", answer_prefix="", answer_reserve=4)
    values.update(changes)
    return values


def test_the_sweep_is_the_budgets_times_the_extension_counts():
    points = evaluate.budget_sweep_from_config(
        section(mode="extend", thinking_budgets=(8, 16), num_ignores=(0, 2), ignore_string="W"),
        Chars(),
        max_new_tokens=64,
    )
    assert [(b, n) for b, n, _ in points] == [(8, 0), (16, 0), (8, 2), (16, 2)]
    assert [(bf.max_thinking_tokens, bf.num_ignores) for _, _, bf in points] == [
        (8, 0),
        (16, 0),
        (8, 2),
        (16, 2),
    ]
    cap = evaluate.budget_sweep_from_config(
        section(mode="cap", thinking_budgets=(4, 32)), Chars(), max_new_tokens=64
    )
    assert [(b, n, bf.num_ignores) for b, n, bf in cap] == [(4, 0, 0), (32, 0, 0)]
    extend = evaluate.budget_sweep_from_config(
        section(mode="extend", num_ignore=3, thinking_budgets=(8,), ignore_string="W"),
        Chars(),
        max_new_tokens=64,
    )
    assert [(b, n) for b, n, _ in extend] == [(8, 3)]  # num_ignores empty: num_ignore
    assert evaluate.budget_sweep_from_config(section(mode="cap"), Chars(), max_new_tokens=64) == ()
    assert (
        evaluate.budget_sweep_from_config(  # a section without the sweep keys
            {k: v for k, v in section().items() if k not in ("thinking_budgets", "num_ignores")},
            Chars(),
            max_new_tokens=64,
        )
        == ()
    )


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"mode": "none", "thinking_budgets": (8,)}, "mode cap or extend"),
        ({"mode": "cap", "thinking_budgets": (0, 8)}, ">= 1"),
        ({"mode": "cap", "thinking_budgets": (8,), "num_ignores": (1,)}, "mode=extend"),
        ({"mode": "extend", "num_ignores": (1,)}, "needs thinking_budgets"),
    ],
)
def test_bad_sweeps_are_config_errors(changes, match):
    with pytest.raises(config_lib.ConfigError, match=match):
        evaluate.budget_sweep_from_config(section(**changes), Chars(), max_new_tokens=64)


def test_each_sweep_point_is_the_evaluation_at_that_budget():
    config, params, tokenizer, problems = tiny_multiplication_model()
    points = evaluate.budget_sweep_from_config(
        section(
            mode="extend",
            end_of_thinking="</think>",
            thinking_budgets=(2, 6),
            num_ignores=(0, 1),
            ignore_string="Wait",
        ),
        tokenizer,
        max_new_tokens=8,
    )
    base = evaluate.EvalSettings(
        num_samples=2,
        greedy=True,
        max_new_tokens=8,
        prompts_per_batch=2,
        pad_id=tokenizer.pad_token_id,
        stop_token_ids=tuple(tokenizer.eos_token_ids),
        ks=(1, 2),
    )
    kwargs = dict(
        task="multiplication",
        prompt_fn=prompt_data.make_prompt_fn(multiplication),
        key=jax.random.key(0),
    )
    results = evaluate.evaluate(
        params,
        config,
        tokenizer,
        problems,
        settings=evaluate.EvalSettings(**{**base.__dict__, "budget_sweep": points}),
        **kwargs,
    )
    assert "thinking_length" not in results  # the headline evaluation has no budget forcing
    sweep = results["budget_sweep"]
    assert [(p["thinking_budget"], p["num_ignore"]) for p in sweep] == [
        (2, 0),
        (6, 0),
        (2, 1),
        (6, 1),
    ]
    end = len(tokenizer.encode("</think>"))
    for point, (budget, _, forcing) in zip(sweep, points):
        assert "examples" not in point and point["thinking_length"] <= budget + end
        alone = evaluate.evaluate(
            params,
            config,
            tokenizer,
            problems,
            settings=evaluate.EvalSettings(**{**base.__dict__, "budget_forcing": forcing}),
            **kwargs,
        )
        alone.pop("examples")
        assert {k: v for k, v in point.items() if k in alone} == alone
    summary = evaluate.format_summary(results, label="eval").splitlines()
    assert len(summary) == 5 and summary[3].startswith("  thinking budget 2 + 1 ignores: ")


def test_the_plot_draws_accuracy_against_the_budget(tmp_path):
    points = [
        {"thinking_budget": b, "num_ignore": n, "pass@1": b / 100, "thinking_length": b * 0.9}
        for n in (0, 1)
        for b in (8, 16, 32)
    ]
    summary = {"eval_at_start": {"pass@1": 0.1, "budget_sweep": points}, "final_step": 0}
    summary["eval_final"] = {"aime": {"pass@1": 0.2, "budget_sweep": points[:3]}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert sorted(plot.budget_sweeps(summary)) == ["eval_at_start", "eval_final/aime"]
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 0, "eval/pass@1": 0.1}) + "\n")
    written = plot.plot_metrics(str(tmp_path))
    assert str(tmp_path / "plots" / "budget_forcing.png") in written
    assert (tmp_path / "plots" / "budget_forcing.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_an_sft_only_run_evaluates_the_sweep_once_after_the_warm_start(tmp_path):
    config = config_lib.load_config(
        f"{ROOT / 'experiments' / 'default.py'}:smoke",
        [
            "steps=0",
            "eval.budget_forcing.mode=cap",
            "eval.budget_forcing.answer_reserve=4",
            "eval.budget_forcing.thinking_budget=6",
            "eval.budget_forcing.thinking_budgets=(4,8)",
        ],
    )
    summary = train.run(config, str(tmp_path), devices=jax.devices()[:1])
    assert summary["final_step"] == config.sft.steps == 2  # warm-start steps only, no RL
    assert "eval_final" not in summary
    sweep = summary["eval_after_sft"]["budget_sweep"]
    assert [p["thinking_budget"] for p in sweep] == [4, 8]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert not any("reward" in json.loads(line) for line in lines)  # no rollouts
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["eval_after_sft"]["budget_sweep"] == sweep
    assert str(tmp_path / "plots" / "budget_forcing.png") in plot.plot_metrics(str(tmp_path))
