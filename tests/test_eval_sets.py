"""Tests for r1jax.eval_sets: named evaluation sets from the config to the metrics and plots."""

import json
import re
from pathlib import Path

import jax
import pytest

from r1jax import build, eval_sets, metrics, mixture, plot, train
from r1jax import config as config_lib
from r1jax.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = str(ROOT / "experiments" / "default.py")
MIXTURE = {"countdown": {"weight": 1.0}, "kk": {"task": "knights_knaves", "weight": 1.0}}


def views_of(config):
    return dict(eval_sets.set_views(config, mixture.run_tasks(config)))


def test_without_sets_a_single_task_run_keeps_its_one_unnamed_set():
    config = config_lib.load_config(DEFAULT)
    assert eval_sets.set_views(config, mixture.run_tasks(config)) is None


def test_sets_come_from_the_command_line_or_an_experiment_file(tmp_path):
    sets = '{"math500": {"path": "/data/math500.jsonl"}, "aime24": {"path": "a.jsonl", "k": 16}}'
    config = config_lib.load_config(DEFAULT, [f"eval.sets={sets}", "eval.sets.aime24.k=8"])
    assert config.eval.sets.math500.path == "/data/math500.jsonl"
    assert config.eval.sets.aime24.k == 8
    experiment = tmp_path / "sets.py"
    experiment.write_text(
        "import ml_collections\n"
        "def get_config():\n"
        "    c = ml_collections.ConfigDict()\n"
        "    c.eval = dict(sets=dict(same={}, aime24=dict(path='a.jsonl', k=16, num_problems=30)))\n"
        "    return c\n"
    )
    config = config_lib.load_config(str(experiment))
    assert set(config.eval.sets) == {"same", "aime24"}  # an empty set is kept
    replaced = config_lib.load_config(str(experiment), ['eval.sets={"other": {}}'])
    assert set(replaced.eval.sets) == {"other"}  # a whole mapping replaces the file's sets


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"math500": {"paht": "x.jsonl"}}, "eval.sets.math500: unknown key 'paht'"),
        ({"math500": {"k": "16"}}, r"eval.sets.math500.k must be int, got str"),
        ({"math500": {"greedy": 1}}, r"eval.sets.math500.greedy must be bool"),
        ({"math500": 3}, "eval.sets.math500 must be a group of settings"),
    ],
)
def test_bad_sets_are_config_errors_naming_the_set_and_key(settings, message):
    config = config_lib.load_config(DEFAULT, [f"eval.sets={settings!r}"])
    with pytest.raises(config_lib.ConfigError, match=message):
        views_of(config)


def test_a_set_inherits_the_run_and_overrides_what_it_names(tmp_path):
    path = tmp_path / "math500.jsonl"
    sets = {
        "same": {"k": 2, "greedy": False},
        "countdown": {"task": "countdown", "task_options": {"num_numbers": 3}},
        "math500": {"task": "math", "path": str(path), "num_problems": 5, "max_new_tokens": 64},
        "dropped": {"num_problems": 0},
    }
    overrides = [f"eval.sets={sets!r}", "verifier.options.correct_score=2.0"]
    views = views_of(config_lib.load_config(DEFAULT, overrides))
    assert sorted(views) == ["countdown", "math500", "same"]
    assert views["same"].verifier.options.correct_score == 2.0  # the run's verifier options
    assert not views["countdown"].verifier.options  # another task: its own (none)
    same = views["same"]
    assert (same.data.task, same.eval.k, same.eval.greedy) == ("multiplication", 2, False)
    assert same.data.task_options.digits == 3 and same.data.template == "base"
    assert same.eval.num_problems == 500 and same.eval.temperature == 0.6  # the run's eval.*
    countdown = views["countdown"]
    assert countdown.data.task == "countdown" and countdown.data.source == "procedural"
    assert countdown.data.task_options.to_dict() == {"num_numbers": 3}  # not multiplication's
    assert countdown.data.template == ""  # the task's default wording
    math = views["math500"]
    assert (math.data.source, math.eval.path) == ("jsonl", str(path))
    assert (math.eval.num_problems, math.eval.max_new_tokens) == (5, 64)


def test_a_file_task_set_needs_held_out_problems(tmp_path):
    train_file = tmp_path / "train.jsonl"
    train_file.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    overrides = ["data.task=math", "data.source=jsonl", f"data.path={train_file}"]
    overrides.append("data.heldout_fraction=0")  # a file holds out by eval.path, not by hash
    config = config_lib.load_config(DEFAULT, [*overrides, 'eval.sets={"math": {}}'])
    with pytest.raises(config_lib.ConfigError, match=r"eval\.sets\.math\.path"):
        views_of(config)
    config = config_lib.load_config(DEFAULT, [*overrides, f"eval.path={train_file}x"])
    assert eval_sets.set_views(config, mixture.run_tasks(config)) is None  # eval.path: legacy


def test_a_mixture_has_one_set_per_task_that_eval_sets_can_change_or_extend():
    sets = {"kk": {"k": 8}, "extra": {"task": "countdown", "num_problems": 3}}
    config = config_lib.load_config(
        "", [f"data.mixture={MIXTURE!r}", f"eval.sets={sets!r}", "data.template=base"]
    )
    views = views_of(config)
    assert sorted(views) == ["countdown", "extra", "kk"]
    assert views["kk"].data.task == "knights_knaves" and views["kk"].eval.k == 8
    assert views["countdown"].eval.k == config.eval.k
    assert views["extra"].eval.num_problems == 3
    bad = config_lib.load_config("", [f"data.mixture={MIXTURE!r}", 'eval.sets={"x": {}}'])
    with pytest.raises(config_lib.ConfigError, match=r"eval\.sets\.x\.task"):
        views_of(bad)
    file_task = {"math": {"path": "/data/math_train.jsonl"}}
    no_held_out = config_lib.load_config("", [f"data.mixture={file_task!r}"])
    with pytest.raises(config_lib.ConfigError, match=r"eval\.sets\.math\.path"):
        views_of(no_held_out)


def test_built_sets_carry_their_own_problems_prompts_and_sampling():
    sets = {"mult": {"k": 3, "greedy": True}, "kk": {"task": "kk", "num_problems": 2}}
    config = config_lib.load_config(f"{DEFAULT}:smoke", [f"eval.sets={sets!r}"])
    tasks = mixture.run_tasks(config)
    tokenizer = Tokenizer.train(["a b c"] * 10, vocab_size=300)
    stops = build.stop_settings(config, tokenizer, tokenizer.vocab_size)
    built = {s.name: s for s in eval_sets.build_sets(config, tasks, tokenizer, stops, str)}
    mult, kk = built["mult"], built["kk"]
    assert (mult.settings.num_samples, mult.settings.greedy, mult.settings.ks) == (3, True, (1, 3))
    assert len(mult.problems) == 2 and "digits" not in mult.problems[0]  # generated problems
    assert kk.task == "kk" and len(kk.problems) == 2 and "knight" in kk.prompt_fn(kk.problems[0])
    assert (mult.prefix, kk.prefix) == ("eval/mult/", "eval/kk/")
    key = jax.random.key(0)
    assert not (eval_sets.set_key(key, mult) == eval_sets.set_key(key, kk)).all()


def test_a_run_reports_each_set_under_its_name(tmp_path, capsys):
    problems = tmp_path / "math500.jsonl"
    rows = [{"problem": "What is $2+3$?", "answer": "5"}, {"problem": "$7-4$?", "answer": "3"}]
    problems.write_text("".join(json.dumps(row) + "\n" for row in rows))
    sets = {
        "mult": {"k": 2, "greedy": True},
        "math500": {"task": "math", "path": str(problems), "k": 1, "max_new_tokens": 8},
    }
    overrides = ["sft.mode=none", "steps=1", f"eval.sets={sets!r}", "checkpoint.every=0"]
    config = config_lib.load_config(f"{DEFAULT}:smoke", overrides)
    summary = train.run(config, str(tmp_path / "run"), devices=jax.devices()[:1])
    out = capsys.readouterr().out
    assert re.search(r"eval after RL mult \(step 1\): greedy .*pass@1", out)
    assert re.search(r"eval after RL math500 \(step 1\): .*pass@1", out)
    final = summary["eval_final"]
    assert set(final) == {"mult", "math500"} and final["math500"]["num_problems"] == 2
    assert final["mult"]["num_samples"] == 2 and final["math500"]["num_samples"] == 1
    record = metrics.read_metrics(str(tmp_path / "run"))[-1]
    for name in ("pass@1", "pass@2", "maj@2", "greedy_accuracy"):
        assert f"eval/mult/{name}" in record, name
    assert "eval/math500/pass@1" in record and "eval/pass@1" not in record
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "examples" not in saved["eval_final"]["mult"]
    samples = metrics.read_samples(str(tmp_path / "run"))
    assert any("eval_examples/math500" in sample for sample in samples)
    written = plot.plot_metrics(str(tmp_path / "run"))
    assert any(path.endswith("eval.png") for path in written)


def test_plot_panels_take_the_per_set_and_per_task_names():
    def panel(name):
        return next((f for f, _, _, pattern in plot.PANELS if re.search(pattern, name)), None)

    assert panel("eval/aime24/pass@16") == "eval"
    assert panel("eval/pass@1") == "eval"
    assert panel("rollout/countdown/accuracy") == "accuracy"
    assert panel("rollout/countdown/reward_mean") == "reward"
    assert panel("rollout/countdown/response_length") == "response_length"
