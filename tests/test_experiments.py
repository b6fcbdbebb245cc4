"""Every experiment file: its docstring opens with its command, its paper-scale config loads,
its ``:smoke`` preset runs (slow); bundled experiments by name; the recipes' own details.

The files are found by a glob, so a new ``experiments/*.py`` is checked without listing it
here. The notebooks under ``experiments/notebooks`` are tests/test_notebooks.py's.
"""

import ast
from pathlib import Path

import numpy as np
import pytest

from r1jax import build, train
from r1jax import config as config_lib
from r1jax.tasks import knights_knaves
from r1jax.tokenizer import Tokenizer
from tests.test_train import run_on_one_device

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.py"))
# Presets besides :smoke that the smoke run covers as well (a preset word combined with smoke).
EXTRA_SMOKE = ("tinyzero_countdown.py:ppo,smoke",)
DOCSTRING_HEAD = 12  # the command must appear within the docstring's first lines


def _ids(path):
    return path.stem


def test_the_glob_finds_the_experiments():
    assert {"default", "tinyzero_countdown", "logic_rl_kk"} <= {p.stem for p in EXPERIMENTS}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=_ids)
def test_the_docstring_opens_with_the_files_command(path):
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring, f"{path.name} has no module docstring"
    commands = [
        (i, line.strip())
        for i, line in enumerate(docstring.splitlines())
        if line.strip().startswith("python -m r1jax.train")
    ]
    assert commands, f"{path.name}: the docstring gives no `python -m r1jax.train` command"
    index, command = commands[0]
    assert index < DOCSTRING_HEAD, f"{path.name}: the command is at docstring line {index + 1}"
    assert command.split()[:5] == [
        "python",
        "-m",
        "r1jax.train",
        "--config",
        f"experiments/{path.name}",
    ], f"{path.name}: the first command is {command!r}"


@pytest.mark.parametrize("path", EXPERIMENTS, ids=_ids)
def test_the_paper_config_and_the_smoke_preset_load(path):
    config_lib.load_config(str(path))
    try:
        config_lib.load_config(f"{path}:smoke")
    except config_lib.ConfigError as error:
        pytest.fail(f"{path.name} has no working :smoke preset (the tests run it): {error}")


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec",
    [f"{p}:smoke" for p in EXPERIMENTS] + [str(ROOT / "experiments" / s) for s in EXTRA_SMOKE],
    ids=lambda spec: Path(spec).name.replace(".py", ""),
)
def test_the_smoke_preset_runs(tmp_path, spec):
    config = config_lib.load_config(spec)
    if config.eval.num_problems > 2:
        config = config_lib.load_config(spec, ["eval.num_problems=2"])
    summary = run_on_one_device(config, str(tmp_path))
    warm_start = config.sft.steps if config.sft.mode == "warmup" else 0
    assert summary["final_step"] == warm_start + config.steps
    assert summary["stopped"] == "completed"


# ----------------------------------------------------------------- experiments by name


def test_a_bundled_experiment_is_found_by_name_with_its_preset():
    by_path = config_lib.load_config(f"{ROOT / 'experiments' / 'default.py'}:smoke")
    by_name = config_lib.load_config("default:smoke")
    assert config_lib.config_to_dict(by_name) == config_lib.config_to_dict(by_path)
    assert train.default_experiment() == str(ROOT / "experiments" / "default.py")


def test_an_unknown_name_lists_the_bundled_experiments():
    with pytest.raises(config_lib.ConfigError, match=r"bundled experiment \(.*default"):
        config_lib.load_config("no_such_recipe:smoke")


# ----------------------------------------------------------------- the recipes' details


def test_logic_rl_chat_prompt_is_its_instruct_template_byte_for_byte(tmp_path):
    config = config_lib.load_config(str(ROOT / "experiments" / "logic_rl_kk.py"))
    tokenizer = Tokenizer.train(["knights and knaves"] * 10, vocab_size=300)  # Qwen's template
    task = build.task(config)
    prompt_fn = build.prompt_fn(config, task, tokenizer)
    problem = knights_knaves.generate(np.random.default_rng(0), n_people=3)
    assert prompt_fn(problem) == knights_knaves.prompt(problem, template="qwen_instruct")


def test_logic_rl_runs_its_curriculum_with_the_modified_reinforce_pp():
    config = config_lib.load_config(str(ROOT / "experiments" / "logic_rl_kk.py"))
    assert [(start, options["n_people"]) for start, options in config.data.curriculum] == [
        (0, 3),
        (112, 4),
        (224, 5),
        (336, 6),
        (448, 7),
    ]
    assert config.steps == 560 and config.reference.reset_every == 112
    objective = config.objective
    assert (objective.algorithm, objective.advantage) == ("reinforce_pp", "reinforce_pp")
    assert (objective.kl_placement, objective.kl_estimator, objective.kl_coef) == (
        "loss",
        "k3",
        0.001,
    )
    assert dict(config.verifier.options) == {"template": "qwen_instruct"}


@pytest.mark.parametrize("name", ["tinyzero_countdown", "tinyzero_multiplication"])
def test_tinyzero_rewards_with_its_score_and_has_a_ppo_preset(name):
    path = ROOT / "experiments" / f"{name}.py"
    grpo, ppo = config_lib.load_config(str(path)), config_lib.load_config(f"{path}:ppo")
    for config in (grpo, ppo):
        assert (config.rewards.score_weight, config.rewards.correctness_weight) == (1.0, 0.0)
        assert config.optim.lr == 1e-6 and config.data.prompts_per_step == 256
        assert config.sampling.max_new_tokens == 1024
    assert grpo.objective.algorithm == "grpo" and grpo.sampling.group_size == 8
    assert ppo.objective.algorithm == "ppo_tinyzero" and ppo.sampling.group_size == 1
    assert (ppo.objective.kl_placement, ppo.objective.kl_estimator) == ("reward", "k1")
    assert (ppo.critic.lr, ppo.critic.value_clip) == (1e-5, 0.5)
    with pytest.raises(config_lib.ConfigError, match="unknown preset"):
        config_lib.load_config(f"{path}:nope")


def test_the_recipes_cpu_presets_train_the_tiny_model_from_reference_traces():
    for name in ("tinyzero_countdown", "tinyzero_multiplication", "logic_rl_kk"):
        config = config_lib.load_config(f"{ROOT / 'experiments' / name}.py:cpu")
        assert config.model.name == "tiny", name
        assert config.sft.mode == "warmup" and config.sft.source.startswith("reference"), name
