"""r1jax.train on a device mesh (8 simulated CPU devices): same numbers as one device, sharded
state, resume into the mesh's shardings, and config errors for meshes that do not fit."""

from pathlib import Path

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from safetensors.numpy import load_file

from r1jax import config as config_lib
from r1jax import distributed, metrics, train
from r1jax.learner import step as step_lib

pytestmark = pytest.mark.multidevice

ROOT = Path(__file__).resolve().parents[1]
SMOKE = f"{ROOT / 'experiments' / 'default.py'}:smoke"
TIMING = ("time/", "tokens_per_second", "mfu")
# 4 prompts x 2 samples = 8 rollout rows and 8 SFT rows: they split over 8 data-parallel ways.
# The entropy bonus gives the RL steps a gradient although the random model earns no reward.
# Adam's epsilon is raised to 1e-3: with the default 1e-8 an update is about lr * sign(g) for
# any gradient above ~1e-7, so a parameter whose gradient is ~0 takes a +-lr step decided by
# rounding noise, which differs between reduction orders (one device vs a mesh).
COMMON = (
    "eval.num_problems=0",
    "optim.eps=1e-3",
    "sft.batch_size=8",
    "data.prompts_per_step=4",
    "objective.entropy_coef=0.01",
    "logging.console=false",
    "model.vocab_multiple=8",  # the embedding's vocab rows split over any mesh axis
)
MESHES = {
    # Rematerialised blocks on the 3-axis mesh (the one-device run keeps every activation).
    "data2_fsdp2_tensor2": ("mesh.data=2", "mesh.fsdp=2", "mesh.tensor=2", "model.remat=true"),
    "data8": ("mesh.data=-1", "mesh.fsdp=1", "mesh.tensor=1"),
}


def _config(*overrides):
    return config_lib.load_config(SMOKE, [*COMMON, *overrides])


def _numbers(workdir):
    return [
        {k: v for k, v in record.items() if not k.startswith(TIMING)}
        for record in metrics.read_metrics(str(workdir))
    ]


def _assert_same_numbers(got, want):
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for a, b in zip(got, want):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-5, err_msg=key)


def _exported(workdir):
    return load_file(str(Path(workdir) / "export" / "model.safetensors"))


def _assert_same_params(got, want):
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.fixture
def seen(monkeypatch):
    """Records the sharding specs of the state and batch that enter each compiled update."""
    calls = []
    compile_train_step = step_lib.compile_train_step

    def recording(config, state_sharding, batch_sharding):
        step = compile_train_step(config, state_sharding, batch_sharding)

        def run(state, batch):
            leaves = jax.tree_util.tree_flatten_with_path(state.policy)[0]
            calls.append(
                {
                    "policy": {jax.tree_util.keystr(k): v.sharding.spec for k, v in leaves},
                    "replicated": {
                        jax.tree_util.keystr(k): v.sharding.is_fully_replicated for k, v in leaves
                    },
                    "rows": batch.completion_tokens.sharding.spec,
                    "devices": len(batch.completion_tokens.sharding.device_set),
                }
            )
            return step(state, batch)

        return run

    monkeypatch.setattr(step_lib, "compile_train_step", recording)
    return calls


@pytest.fixture(scope="module")
def one_device_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("one_device")
    train.run(_config("mesh.data=1"), str(workdir), devices=jax.devices()[:1])
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize("mesh", list(MESHES))
def test_a_mesh_run_matches_the_one_device_run(mesh, one_device_run, tmp_path, seen):
    summary = train.run(_config(*MESHES[mesh]), str(tmp_path))
    assert summary["final_step"] == 4
    _assert_same_numbers(_numbers(tmp_path), _numbers(one_device_run))
    _assert_same_params(_exported(tmp_path), _exported(one_device_run))
    # Every update ran on all 8 devices, rows split over the data-parallel axes.
    assert len(seen) == 4 and all(call["devices"] == 8 for call in seen)
    kernel = "['layers_0']['attn']['q_proj']['kernel']"  # [D, H, Dh]
    if mesh == "data8":
        assert all(call["rows"] == P("data") for call in seen)
        assert seen[-1]["replicated"][kernel]  # fsdp and tensor have size 1
    else:
        assert all(call["rows"] == P(("data", "fsdp")) for call in seen)
        assert seen[-1]["policy"][kernel] == P("fsdp", "tensor", None)
        assert not seen[-1]["replicated"][kernel]
        assert seen[-1]["policy"]["['embed']['embedding']"] == P("tensor", "fsdp")


def test_one_rl_step_on_a_2x2x2_mesh_shards_params_and_rows(tmp_path, seen):
    config = _config(*MESHES["data2_fsdp2_tensor2"], "sft.mode=none", "steps=1")
    summary = train.run(config, str(tmp_path))
    assert summary["final_step"] == 1
    (call,) = seen
    assert call["rows"] == P(("data", "fsdp"))
    assert call["policy"]["['layers_0']['attn']['q_proj']['kernel']"] == P("fsdp", "tensor", None)
    assert call["policy"]["['embed']['embedding']"] == P("tensor", "fsdp")
    assert np.isfinite(metrics.read_metrics(str(tmp_path))[-1]["loss"])


@pytest.mark.slow
def test_resume_on_the_mesh_restores_sharded_arrays_and_the_same_trajectory(tmp_path, seen):
    mesh = MESHES["data2_fsdp2_tensor2"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train.run(_config(*mesh), str(whole))
    train.run(_config(*mesh, "steps=1"), str(parts))  # stops after step 3 (2 SFT + 1 RL)
    seen.clear()
    summary = train.run(_config(*mesh), str(parts))  # resumes at step 3
    assert summary["final_step"] == 4 and len(seen) == 1
    (call,) = seen
    assert call["policy"]["['layers_0']['attn']['q_proj']['kernel']"] == P("fsdp", "tensor", None)
    assert call["devices"] == 8
    _assert_same_numbers(_numbers(parts), _numbers(whole))
    _assert_same_params(_exported(parts), _exported(whole))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("mesh.data=3",), "mesh.data=3, mesh.fsdp=1, mesh.tensor=1 do not fit the 8 devices"),
        (("mesh.data=-1", "mesh.fsdp=-1"), "mesh.data=-1, mesh.fsdp=-1"),
        (("mesh.data=4", "mesh.tensor=3"), "mesh.tensor=3"),
        (
            ("data.prompts_per_step=2",),
            r"data.prompts_per_step \* sampling.group_size = 4 rows .* size 8 \(mesh.data",
        ),
        (
            ("mesh.data=2", "mesh.fsdp=2", "mesh.tensor=2", "sft.batch_size=6"),
            r"sft.batch_size = 6 rows .* size 4 \(mesh.data \* mesh.fsdp",
        ),
        (("sharding.batch=('data', 'pipeline')",), "sharding.batch="),
    ],
)
def test_a_mesh_or_batch_that_does_not_fit_is_a_config_error(tmp_path, overrides, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        train.run(_config(*overrides), str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()


def test_distributed_keys_are_checked_before_jax_distributed_starts():
    config = config_lib.load_config("", ["distributed.coordinator_address=localhost:1234"])
    with pytest.raises(config_lib.ConfigError, match=r"distributed\.num_processes"):
        distributed.initialize(config.distributed)
    both = config_lib.load_config(
        "", ["distributed.auto=true", "distributed.coordinator_address=localhost:1"]
    )
    with pytest.raises(config_lib.ConfigError, match=r"distributed\.auto"):
        distributed.initialize(both.distributed)
    assert distributed.initialize(config_lib.base_config().distributed) is False


def test_several_processes_evaluate_with_and_without_budget_forcing(monkeypatch):
    config = _config("eval.num_problems=4", "mesh.data=2", "mesh.fsdp=2", "mesh.tensor=2")
    mesh = distributed.mesh_from_config(config)
    rules = distributed.rules_from_config(config, mesh)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    distributed.check_layout(config, mesh, rules, sft=True)  # plain evaluation is accepted
    config.eval.budget_forcing.mode = "cap"
    distributed.check_layout(config, mesh, rules, sft=True)  # so is budget forcing
