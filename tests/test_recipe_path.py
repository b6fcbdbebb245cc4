"""The path a user takes with a recipe: its own reward reaches the step, loaded weights train
in float32 master precision."""

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import build, learner
from r1jax import config as config_lib
from r1jax.learner import from_config as learner_setup
from r1jax.models import ModelConfig
from r1jax.tasks import knights_knaves

DEFAULT = Path(__file__).resolve().parents[1] / "experiments" / "default.py"
MODEL = ModelConfig.preset("tiny", vocab_size=64, hidden_size=32, mlp_dim=64, head_dim=8)


def _kk_batch(completions, problem):
    verdicts = [knights_knaves.verify(text, problem) for text in completions]
    rows = len(completions)
    batch = learner.Batch(
        prompt_tokens=jnp.ones((rows, 2), jnp.int32),
        prompt_mask=jnp.ones((rows, 2), bool),
        completion_tokens=jnp.ones((rows, 4), jnp.int32),
        completion_mask=jnp.ones((rows, 4), bool),
        old_logprobs=jnp.zeros((rows, 4), jnp.float32),
        is_correct=jnp.asarray([v.correct for v in verdicts]),
        is_well_formed=jnp.asarray([v.well_formed for v in verdicts]),
        is_truncated=jnp.zeros(rows, bool),
        scores=jnp.asarray([v.score for v in verdicts], jnp.float32),
    )
    return batch, verdicts


@pytest.mark.parametrize("weights, differ", [("score", True), ("correctness", False)])
def test_the_logic_rl_rule_separates_wrong_from_unparseable_inside_the_step(weights, differ):
    problem = knights_knaves.generate(np.random.default_rng(0), n_people=2)
    flipped = [not knight for knight in problem["solution"]]  # every role wrong
    lines = [
        f"({i + 1}) {name} is a {'knight' if knight else 'knave'}"
        for i, (name, knight) in enumerate(zip(problem["names"], flipped))
    ]
    reference = knights_knaves.reference_completion(problem, np.random.default_rng(0))
    thinking = reference[: reference.index("<answer>")]  # the solver's trace, well formed
    wrong = thinking + "<answer> " + "\n".join(lines) + " </answer>"
    batch, verdicts = _kk_batch([wrong, "no tags at all"], problem)
    assert [v.correct for v in verdicts] == [False, False]
    assert verdicts[0].score != verdicts[1].score  # Logic-RL: format +1/-1, answer -1.5/-2
    overrides = {
        "score": ["rewards.score_weight=1", "rewards.correctness_weight=0"],
        "correctness": [],
    }[weights]
    config = config_lib.load_config("", ["objective.kl_coef=0", *overrides])
    step_config = learner_setup.learner_config(config, MODEL, sft=False, max_new_tokens=4)
    step_config = dataclasses.replace(step_config, group_size=2)
    prepare = jax.jit(step_config.algorithm.prepare, static_argnums=1)
    prepared, metrics = prepare(batch, step_config)
    advantages = np.asarray(prepared["advantages"])[:, 0]
    assert (advantages[0] != advantages[1]) == differ
    if differ:
        assert advantages[0] > advantages[1]  # a wrong answer beats no answer
        assert float(metrics["reward/score"]) == pytest.approx(np.mean([v.score for v in verdicts]))


@pytest.mark.torch_reference
def test_a_bfloat16_checkpoint_trains_in_float32_and_moves_at_lr_1e_6(tmp_path):
    from tests.models.hf_fixtures import write_tiny_hf_model

    path = write_tiny_hf_model(tmp_path / "hf", "qwen2", dtype="bfloat16")
    config = config_lib.load_config(
        "",
        [f"model.name={path}", "model.dtype=bfloat16", "objective.kl_coef=0", "optim.lr=1e-6"],
    )
    model_config, params = build.model(config, None, jax.random.key(0), None, None)
    assert model_config.param_dtype == "float32" and model_config.dtype == "bfloat16"
    assert params["layers_0"]["attn"]["q_proj"]["kernel"].dtype == jnp.float32
    step_config = learner_setup.learner_config(config, model_config, sft=True, max_new_tokens=4)
    state = learner.init_train_state(jax.tree.map(jnp.copy, params), step_config)
    assert jax.tree.leaves(state.opt_state)[1].dtype == jnp.float32  # Adam moments
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, model_config.vocab_size, (4, 8)).astype(np.int32)
    batch = learner.Batch.from_sft(tokens, np.ones((4, 8), np.int32), np.full(4, 8))
    state, metrics = learner.train_step(state, batch, config=step_config)
    assert float(metrics["skipped_updates"]) == 0
    moved = [
        bool(np.any(np.asarray(a) != np.asarray(b)))
        for a, b in zip(jax.tree.leaves(state.policy), jax.tree.leaves(params))
    ]
    assert all(moved)  # every param moved: a 1e-6 step survives in float32


def test_a_template_the_task_lacks_is_an_error_not_a_silent_switch():
    config = config_lib.load_config("", ["data.task=countdown", "data.template=r1_zero"])
    task = build.task(config)
    with pytest.raises(config_lib.ConfigError, match=r"data\.template='r1_zero'.*countdown"):
        build.prompt_fn(config, task, None)
    config = config_lib.load_config("", ["data.task=countdown"])  # empty: the task's default
    problem = {"numbers": [1, 2], "target": 3}
    assert build.prompt_fn(config, task, None)(problem) == task.prompt(problem)


def test_knights_and_knaves_warm_starts_from_its_reference_traces(tmp_path):
    from r1jax.data import from_config as data_setup

    config = config_lib.load_config(
        "",
        [
            "data.task=knights_knaves",
            "sft.mode=warmup",
            "sft.batch_size=2",
            "data.bucket_sizes=(512,)",
            "sampling.max_new_tokens=512",
        ],
    )
    task = build.task(config)
    prompt_fn = build.prompt_fn(config, task, None)
    tokenizer = build.tokenizer(
        config_lib.load_config("", ["data.task=knights_knaves", "sft.mode=warmup"]),
        str(tmp_path),
        task,
    )
    batch = next(data_setup.sft_iterator(config, task, tokenizer, prompt_fn))
    assert batch.tokens.shape[0] == 2 and batch.loss_mask.sum() > 0


@pytest.mark.slow
def test_a_run_starts_from_another_runs_checkpoint_and_from_its_export(tmp_path):
    from safetensors.numpy import load_file

    from r1jax import train

    base = ["eval.num_problems=0", "mesh.data=1", "checkpoint.every=1"]
    first = config_lib.load_config(f"{DEFAULT}:smoke", base)
    train.run(first, str(tmp_path / "first"), devices=jax.devices()[:1])
    exported = load_file(str(tmp_path / "first" / "export" / "model.safetensors"))
    for source in ("first", "first/export"):
        config = config_lib.load_config(
            f"{DEFAULT}:smoke",
            [*base, "sft.mode=none", "steps=0", f"model.init_from={tmp_path / source}"],
        )
        workdir = tmp_path / source.replace("/", "_")
        train.run(config, str(workdir / "second"), devices=jax.devices()[:1])
        again = load_file(str(workdir / "second" / "export" / "model.safetensors"))
        assert again.keys() == exported.keys()
        for name in exported:  # zero steps: the export of the start is the other run's policy
            np.testing.assert_array_equal(again[name], exported[name], err_msg=name)


@pytest.mark.torch_reference
def test_a_hub_id_loads_from_the_hub_cache(tmp_path, monkeypatch):
    """``model.name=owner/name`` goes through ``huggingface_hub`` (here offline, from a local
    cache directory standing in for the hub)."""
    import huggingface_hub

    from tests.models.hf_fixtures import write_tiny_hf_model

    snapshot = tmp_path / "hub" / "models--acme--tiny-qwen" / "snapshots" / "0123abcd"
    write_tiny_hf_model(snapshot, "qwen2")
    (tmp_path / "hub" / "models--acme--tiny-qwen" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--tiny-qwen" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)  # no local directory of that name
    assert build.model_directory("acme/tiny-qwen") == str(snapshot)
    config = config_lib.load_config("", ["model.name=acme/tiny-qwen", "model.dtype=float32"])
    model_config, params = build.model(config, None, jax.random.key(0), None, None)
    assert model_config.architecture == "qwen2" and "layers_0" in params
    with pytest.raises(config_lib.ConfigError, match="acme/missing"):
        build.model_directory("acme/missing")


def test_a_file_run_without_held_out_problems_is_an_error_not_an_eval_on_its_training_data(
    tmp_path,
):
    from r1jax.data import from_config as data_setup

    data = tmp_path / "train.jsonl"
    data.write_text('{"problem": "1+1?", "answer": "2"}\n')
    config = config_lib.load_config(
        "", ["data.task=math", "data.source=jsonl", f"data.path={data}", "eval.num_problems=4"]
    )
    with pytest.raises(config_lib.ConfigError, match=r"eval\.path"):
        data_setup.eval_problems(config, build.task(config))
    config = config_lib.load_config(
        "",
        [
            *("data.task=math", "data.source=jsonl", f"data.path={data}"),
            *("eval.num_problems=4", f"eval.path={data}"),
        ],
    )
    assert len(data_setup.eval_problems(config, build.task(config))) == 1
