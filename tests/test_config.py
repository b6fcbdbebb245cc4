"""Tests for r1jax.config: the schema, experiment loading, overrides and the command line."""

import dataclasses
import json
import textwrap

import ml_collections
import pytest

from r1jax import config as config_lib


def _write(tmp_path, body, name="exp.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


FULL_EXPERIMENT = """
    from r1jax import config as config_lib

    def get_config(arg=None):
        cfg = config_lib.base_config()
        cfg.sampling.temperature = 0.7
        if arg == "smoke":
            cfg.steps = 2
            cfg.data.task_options.num_operands = 3
        return cfg
"""


def test_base_config_has_every_stage_and_is_locked():
    cfg = config_lib.base_config()
    for group in [
        "model",
        "tokenizer",
        "data",
        "sampling",
        "verifier",
        "rewards",
        "objective",
        "reference",
        "optim",
        "schedule",
        "sft",
        "eval",
        "mesh",
        "sharding",
        "checkpoint",
        "logging",
    ]:
        assert isinstance(cfg[group], ml_collections.ConfigDict), group
    assert cfg.steps == 1000 and cfg.seed == 0 and cfg.max_nonfinite_in_a_row == 3
    with pytest.raises(AttributeError):
        cfg.sampling.temprature = 0.5
    cfg.data.task_options.anything = 1  # the open group


def test_every_base_key_has_a_comment():
    import inspect

    source = inspect.getsource(config_lib.base_config)
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("c.") and " = " in stripped and "ConfigDict()" not in stripped:
            assert "#" in stripped, f"no comment on: {stripped}"


def test_load_full_experiment_with_preset(tmp_path):
    path = _write(tmp_path, FULL_EXPERIMENT)
    cfg = config_lib.load_config(path + ":smoke")
    assert cfg.steps == 2
    assert cfg.sampling.temperature == 0.7
    assert cfg.data.task_options.num_operands == 3
    assert cfg.is_locked
    assert config_lib.load_config(path).steps == 1000


def test_partial_experiment_is_laid_over_base(tmp_path):
    path = _write(
        tmp_path,
        """
        def get_config():
            return {"objective": {"algorithm": "dapo", "clip_eps_high": 0.28}, "steps": 7}
        """,
    )
    cfg = config_lib.load_config(path)
    assert (cfg.objective.algorithm, cfg.objective.clip_eps_high, cfg.steps) == ("dapo", 0.28, 7)
    assert cfg.objective.kl_coef == 0.0  # DAPO's preset, over the base default 0.001
    assert cfg.objective.kl_estimator == "k3"  # untouched default


@pytest.mark.parametrize(
    "overrides, clip_high",
    [
        (["objective.algorithm=dapo"], 0.28),  # the preset
        (["objective.algorithm=dapo", "objective.clip_eps_high=0.2"], 0.2),  # = the base default
        (["objective.clip_eps_high=0.2", "objective.algorithm=dapo"], 0.2),  # in either order
    ],
)
def test_a_key_set_by_the_user_beats_the_algorithm_preset(overrides, clip_high):
    assert config_lib.load_config("", overrides).objective.clip_eps_high == clip_high


def test_a_key_set_in_the_experiment_file_beats_the_algorithm_preset(tmp_path):
    path = _write(
        tmp_path,
        """
        def get_config():
            return {"objective": {"algorithm": "dapo", "clip_eps_high": 0.2}}
        """,
    )
    assert config_lib.load_config(path).objective.clip_eps_high == 0.2
    assert (
        config_lib.load_config(path, ["objective.clip_eps_high=0.3"]).objective.clip_eps_high == 0.3
    )


def test_an_unknown_algorithm_names_the_known_ones():
    with pytest.raises(config_lib.ConfigError, match=r"objective\.algorithm.*grpo"):
        config_lib.load_config("", ["objective.algorithm=ppo2"])


def test_overrides_are_parsed_with_the_default_type(tmp_path):
    cfg = config_lib.load_config(
        "",
        [
            "sampling.temperature=1",
            "sampling.top_k=50",
            "checkpoint.async_save=false",
            "sampling.stop_strings=</answer>,User:",
            "schedule.context_stages=((0, 8192), (1040, 16384))",
            "sharding.kv_heads=tensor",
            "sharding.batch=('data', 'fsdp')",
            "data.task_options.max_target=100",
            "data.task_options.name=easy",
            "model.name='qwen05b'",
            "tokenizer.extra_stop_token_ids=()",
        ],
    )
    assert cfg.sampling.temperature == 1.0 and isinstance(cfg.sampling.temperature, float)
    assert cfg.sampling.top_k == 50
    assert cfg.checkpoint.async_save is False
    assert cfg.sampling.stop_strings == ("</answer>", "User:")
    assert cfg.schedule.context_stages == ((0, 8192), (1040, 16384))
    assert cfg.sharding.kv_heads == "tensor"
    assert cfg.sharding.batch == ("data", "fsdp")
    assert cfg.data.task_options.max_target == 100
    assert cfg.data.task_options.name == "easy"
    assert cfg.model.name == "qwen05b"
    assert cfg.tokenizer.extra_stop_token_ids == ()


def test_misspelt_override_lists_valid_keys_closest_first():
    with pytest.raises(config_lib.ConfigError) as info:
        config_lib.load_config("", ["sampling.temprature=0.5"])
    message = str(info.value)
    assert "sampling.temprature" in message
    assert message.split("Valid keys under sampling: ")[1].startswith("temperature")


def test_misspelt_group_and_leaf_as_group():
    with pytest.raises(config_lib.ConfigError, match="Valid keys under <top level>: sampling"):
        config_lib.load_config("", ["samplng.temperature=0.5"])
    with pytest.raises(config_lib.ConfigError, match="'steps' is a value, not a group"):
        config_lib.load_config("", ["steps.x=1"])
    with pytest.raises(config_lib.ConfigError, match="is a group"):
        config_lib.load_config("", ["sampling=1"])


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("steps=ten", "bad value for 'steps'"),
        ("checkpoint.async_save=maybe", "expected a bool"),
        ("sampling.temperature", "not of the form"),
    ],
)
def test_bad_override_values(override, fragment):
    with pytest.raises(config_lib.ConfigError, match=fragment):
        config_lib.load_config("", [override])


def test_experiment_with_a_typo_or_wrong_type_names_the_file(tmp_path):
    typo = _write(
        tmp_path, "def get_config(arg=None):\n    return {'sampling': {'temprature': 1}}\n"
    )
    with pytest.raises(config_lib.ConfigError, match=r"exp\.py.*sampling\.temprature"):
        config_lib.load_config(typo)
    wrong = _write(tmp_path, "def get_config():\n    return {'steps': 'many'}\n", "wrong.py")
    with pytest.raises(config_lib.ConfigError, match=r"wrong\.py.*'steps' expects int"):
        config_lib.load_config(wrong)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="does not exist"):
        config_lib.load_config(str(tmp_path / "missing.py"))
    no_fn = _write(tmp_path, "x = 1\n", "nofn.py")
    with pytest.raises(config_lib.ConfigError, match=r"nofn\.py.*does not define get_config"):
        config_lib.load_config(no_fn)
    broken = _write(tmp_path, "import not_a_module_r1jax\n", "broken.py")
    with pytest.raises(config_lib.ConfigError, match=r"broken\.py.*failed to import"):
        config_lib.load_config(broken)
    no_arg = _write(tmp_path, "def get_config():\n    return {}\n", "noarg.py")
    with pytest.raises(config_lib.ConfigError, match="takes no argument"):
        config_lib.load_config(no_arg + ":smoke")
    bad_preset = _write(
        tmp_path,
        "def get_config(arg=None):\n    raise ValueError(f'unknown preset {arg}')\n",
        "preset.py",
    )
    with pytest.raises(config_lib.ConfigError, match=r"preset\.py.*unknown preset huge"):
        config_lib.load_config(bad_preset + ":huge")


def test_command_line(tmp_path):
    path = _write(tmp_path, FULL_EXPERIMENT)
    cli = config_lib.parse_command_line(
        [
            f"--config={path}:smoke",
            "--config.sampling.temperature=0.9",
            "--config.optim.lr",
            "3e-6",
            "--workdir",
            str(tmp_path / "run"),
        ]
    )
    assert cli.config.steps == 2
    assert cli.config.sampling.temperature == 0.9
    assert cli.config.optim.lr == 3e-6
    assert cli.workdir == str(tmp_path / "run")
    assert cli.overrides == ("sampling.temperature=0.9", "optim.lr=3e-6")


def test_command_line_errors_exit_with_message(tmp_path, capsys):
    with pytest.raises(SystemExit):
        config_lib.parse_command_line(["--config.sampling.temprature=1", "--workdir", "w"])
    assert "Valid keys under sampling: temperature" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        config_lib.parse_command_line(["--oops=1", "--workdir", "w"])
    with pytest.raises(SystemExit):
        config_lib.parse_command_line(["--config.steps=1"])  # no workdir


def test_save_config_and_hash(tmp_path):
    cfg = config_lib.load_config("", ["sampling.stop_strings=a,b"])
    path = config_lib.save_config(cfg, str(tmp_path))
    with open(path) as f:
        saved = json.load(f)
    assert saved["sampling"]["stop_strings"] == ["a", "b"]
    other = config_lib.load_config("", ["steps=5", "logging.every=10"])
    assert config_lib.config_hash(other) == config_lib.config_hash(config_lib.base_config())
    changed = config_lib.load_config("", ["optim.lr=1e-5"])
    assert config_lib.config_hash(changed) != config_lib.config_hash(config_lib.base_config())
    assert config_lib.config_hash(other, ignore=()) != config_lib.config_hash(
        config_lib.base_config(), ignore=()
    )


def test_to_dataclass_is_hashable_and_checks_fields():
    @dataclasses.dataclass(frozen=True)
    class Sampling:
        temperature: float
        stop_strings: tuple
        max_new_tokens: int = 5

    cfg = config_lib.load_config("", ["sampling.stop_strings=a,b"])
    settings = config_lib.to_dataclass(Sampling, cfg.sampling, max_new_tokens=9)
    assert settings == Sampling(1.0, ("a", "b"), 9)
    assert hash(settings) == hash(Sampling(1.0, ("a", "b"), 9))

    @dataclasses.dataclass(frozen=True)
    class Missing:
        not_a_key: int

    with pytest.raises(config_lib.ConfigError, match="not_a_key"):
        config_lib.to_dataclass(Missing, cfg.sampling)


def test_the_device_layout_may_change_between_a_checkpoint_and_its_resume():
    moved = config_lib.parse_command_line(
        [
            "--config.mesh.fsdp=4",
            "--config.sharding.kv_heads=()",
            "--config.distributed.coordinator_address=host0:1234",
            "--config.distributed.num_processes=2",
            "--config.distributed.process_id=1",
            "--workdir",
            "w",
        ]
    ).config
    assert moved.distributed.num_processes == 2 and moved.distributed.process_id == 1
    assert moved.sharding.kv_heads == ()
    assert config_lib.config_hash(moved) == config_lib.config_hash(config_lib.base_config())
