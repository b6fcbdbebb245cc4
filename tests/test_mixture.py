"""Tests for r1jax.mixture: several tasks in one run, from the config to the metrics."""

import json
import types
from pathlib import Path

import jax
import numpy as np
import pytest

from r1jax import build, metrics, mixture, train
from r1jax import config as config_lib
from r1jax.data import mixture as data_mixture
from r1jax.tasks import countdown, knights_knaves
from r1jax.tokenizer import Tokenizer
from r1jax.verifiers import VerifierPool

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = str(ROOT / "experiments" / "mixture_countdown_kk.py")
TIMING = ("time/", "tokens_per_second", "mfu")
MIXTURE = {
    "countdown": {"weight": 0.5, "task_options": {"num_numbers": 3}},
    "knights_knaves": {"weight": 0.5, "task_options": {"n_people": 2}},
}

# A task without reference traces (importable by path, as a user's task module would be).
NO_TRACES = types.SimpleNamespace(
    verify=countdown.verify,
    generate=countdown.generate,
    prompt=countdown.prompt,
    TEMPLATES=countdown.TEMPLATES,
)


def mixture_config(*overrides, mixture_spec=MIXTURE):
    return config_lib.load_config("", [f"data.mixture={mixture_spec!r}", *overrides])


def smoke_config(*overrides):
    return config_lib.load_config(f"{EXPERIMENT}:smoke", list(overrides))


# ----------------------------------------------------------------------------- the config


def test_each_task_gets_its_own_view_of_the_config():
    tasks = mixture.run_tasks(smoke_config())
    assert [(t.name, t.weight) for t in tasks] == [("countdown", 0.5), ("knights_knaves", 0.5)]
    views = {t.name: t.config for t in tasks}
    assert views["countdown"].data.task == "countdown"
    assert views["countdown"].data.task_options.num_numbers == 2
    assert views["knights_knaves"].data.task_options.n_people == 2
    assert views["knights_knaves"].sft.source == "reference:direct=1"
    assert tasks[1].module is knights_knaves
    assert mixture.describe(tasks) == "countdown 50% + knights_knaves 50%"


def test_an_entry_may_name_its_task_and_read_a_file(tmp_path):
    path = tmp_path / "kk.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    spec = {"easy": {"task": "countdown"}, "kk_file": {"task": "kk", "path": str(path)}}
    tasks = mixture.run_tasks(mixture_config(mixture_spec=spec))
    assert [t.config.data.task for t in tasks] == ["countdown", "kk"]
    assert [t.config.data.source for t in tasks] == ["procedural", "jsonl"]
    assert [t.weight for t in tasks] == [0.5, 0.5]  # weights default to equal


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"countdown": {"wieght": 1.0}}, "data.mixture.countdown: unknown key 'wieght'"),
        ({"countdown": {"weight": "half"}}, "data.mixture.countdown.weight must be int or float"),
        ({"countdown": {"weight": 0}}, "weight of task 'countdown' must be > 0"),
        ({"countdown": {"task_options": 3}}, "task_options must be Mapping"),
        ({"nonsense": {}}, "data.mixture.nonsense: data.task='nonsense'"),
    ],
)
def test_bad_entries_are_config_errors_naming_the_entry(entry, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        mixture.run_tasks(mixture_config(mixture_spec=entry))


def test_data_task_and_data_mixture_exclude_each_other():
    with pytest.raises(config_lib.ConfigError, match="exclude each other"):
        config_lib.load_config("", [f"data.mixture={MIXTURE!r}", "data.task=countdown"])
    with pytest.raises(config_lib.ConfigError, match=r"experiments/default\.py"):
        config_lib.load_config(str(ROOT / "experiments/default.py"), [f"data.mixture={MIXTURE!r}"])
    config = config_lib.base_config()  # built in Python: a non-default data.task is caught
    config.data.task = "kk"
    config.data.mixture = MIXTURE
    with pytest.raises(config_lib.ConfigError, match="exclude each other"):
        mixture.run_tasks(config)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.task_options.num_numbers=3", "data.mixture.<name>.task_options"),
        ("data.path=x.jsonl", "data.mixture.<name>.path"),
        ("verifier.options.template=base", "data.mixture.<name>.verifier_options"),
        ("eval.path=x.jsonl", "eval.sets.<name>.path"),
        ("data.source=jsonl", "data.mixture.<name>.source/path"),
    ],
)
def test_single_task_keys_are_config_errors_in_a_mixed_run(override, key):
    with pytest.raises(config_lib.ConfigError, match=key.replace(".", r"\.")):
        mixture.run_tasks(mixture_config(override))


def test_a_warm_start_needs_reference_traces_of_every_task():
    spec = {**MIXTURE, "plain": {"task": "tests.test_mixture:NO_TRACES"}}
    with pytest.raises(
        config_lib.ConfigError, match=r"data\.mixture\.plain:.*reference_completion"
    ):
        mixture.run_tasks(mixture_config("sft.mode=warmup", mixture_spec=spec))
    mixture.run_tasks(mixture_config(mixture_spec=spec))  # without a warm start it is fine


# ------------------------------------------------------------------ tokenizer and warm start


def test_the_tokenizer_text_covers_every_task():
    tasks = mixture.run_tasks(smoke_config())
    texts = mixture.tokenizer_texts(tasks, count=100)
    assert any("create an equation that equals" in t for t in texts)  # countdown prompts
    assert any("knight" in t and "<think>" in t for t in texts)  # Knights & Knaves prompts
    assert any(t.startswith("</think>") and "is a kn" in t for t in texts)  # its warm start


def test_the_warm_start_mixes_the_tasks_traces_by_weight(tmp_path):
    config = smoke_config(
        "sft.batch_size=64", "sampling.max_new_tokens=512", "data.bucket_sizes=(1024,)"
    )
    tasks = mixture.run_tasks(config)
    tokenizer = Tokenizer.train(mixture.tokenizer_texts(tasks, count=200), vocab_size=600)
    prompt_fns = {t.name: build.prompt_fn(t.config, t.module, tokenizer) for t in tasks}
    batch = next(mixture.sft_iterator(config, tasks, tokenizer, prompt_fns))
    texts = [
        tokenizer.decode(row[: int(n)].tolist()) for row, n in zip(batch.tokens, batch.lengths)
    ]
    kk = sum("knight" in text for text in texts)
    assert 16 < kk < 48, kk  # about half of 64 rows
    for text in texts:  # each prompt continues with its own task's trace
        if "knight" in text:
            assert "equation" not in text
        else:
            assert "equation" in text and "<answer>" in text


# ------------------------------------------------------------------------- a training run


def _answer_with_the_reference(monkeypatch):
    """Every completion the pool sees becomes the reference completion of its problem's
    *actual* task (told by the problem's fields, not by its tag), so a problem verified by
    another task's verifier scores wrong and accuracy drops below 1."""
    submit = VerifierPool.submit_batch

    def reference(problem):
        task = countdown if "target" in problem else knights_knaves
        return task.reference_completion(problem)

    def submit_batch(self, task, completions, problems, **options):
        completions = [reference(problem) for problem in problems]
        return submit(self, task, completions, problems, **options)

    monkeypatch.setattr(VerifierPool, "submit_batch", submit_batch)


MIXED_RUN = (
    "sft.mode=none",
    "data.prompts_per_step=4",
    "rewards.truncated_is_incorrect=false",  # the reference text is right whatever was sampled
    "checkpoint.every=1",
)


def deterministic(records):
    return [
        {k: "nan" if v != v else v for k, v in record.items() if not k.startswith(TIMING)}
        for record in records
    ]


def test_a_mixed_run_verifies_reports_and_evaluates_each_task_by_itself(tmp_path, monkeypatch):
    _answer_with_the_reference(monkeypatch)
    summary = train.run(smoke_config(*MIXED_RUN), str(tmp_path), devices=jax.devices()[:1])
    records = metrics.read_metrics(str(tmp_path))
    rl = [r for r in records if "accuracy" in r]
    assert len(rl) == 2
    drawn = {name: sum(r[f"rollout/{name}/prompts"] for r in rl) for name in MIXTURE}
    assert drawn["countdown"] > 0 and drawn["knights_knaves"] > 0
    assert sum(drawn.values()) == 2 * 4
    for record in rl:
        assert record["accuracy"] == 1.0  # every row met its own task's verifier
        for name in MIXTURE:
            if record[f"rollout/{name}/prompts"]:
                assert record[f"rollout/{name}/accuracy"] == 1.0
                assert record[f"rollout/{name}/reward_mean"] == 1.0
                assert record[f"rollout/{name}/response_length"] > 0
    final = summary["eval_final"]
    assert set(final) == {"countdown", "knights_knaves"}
    for name in MIXTURE:
        assert final[name]["pass@1"] == 1.0 and final[name]["num_problems"] == 2
        assert records[-1][f"eval/{name}/pass@1"] == 1.0
        assert f"eval/{name}/maj@2" in records[-1]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert set(saved["eval_final"]) == {"countdown", "knights_knaves"}
    assert "examples" not in saved["eval_final"]["countdown"]
    lines = (tmp_path / "problem_rewards.jsonl").read_text().splitlines()
    ids = [json.loads(line)["problem_id"] for line in lines]
    assert all(i.split("/")[0] in MIXTURE for i in ids)


@pytest.mark.slow
def test_a_mixed_run_resumes_exactly(tmp_path):
    """Stopped after one step and restarted, the run's second step (its mixed prompt batch,
    metrics, per-task metrics and evaluation) equals an uninterrupted run's."""
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    one_device = jax.devices()[:1]
    train.run(smoke_config(*MIXED_RUN), str(whole), devices=one_device)
    train.run(smoke_config(*MIXED_RUN, "steps=1"), str(stopped), devices=one_device)
    train.run(smoke_config(*MIXED_RUN), str(stopped), devices=one_device)
    second = [
        [r for r in deterministic(metrics.read_metrics(str(workdir))) if r["step"] == 2]
        for workdir in (whole, stopped)
    ]
    assert second[0] == second[1]
    assert any("rollout/countdown/prompts" in r for r in second[0])
    rewards = [(tmp_path / d / "problem_rewards.jsonl").read_text() for d in ("whole", "stopped")]
    assert rewards[0] == rewards[1]


def test_task_metrics_of_absent_tasks_are_counts_only():
    verdicts = [types.SimpleNamespace(correct=True, well_formed=True)] * 2
    problems = [{data_mixture.TASK_KEY: "a"}] * 2
    out = mixture.task_metrics(
        ["a", "b"], problems, verdicts, np.array([3, 5]), np.array([1.0, 0.5]), group_size=2
    )
    assert out["rollout/b/prompts"] == 0.0 and "rollout/b/accuracy" not in out
    assert out["rollout/a/reward_mean"] == 0.75 and out["rollout/a/response_length"] == 4.0
