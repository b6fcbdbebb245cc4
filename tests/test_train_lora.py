"""LoRA through the trainer: config keys, adapter-only checkpoints, the merged export (checked
against transformers), ``python -m r1jax.export`` and exact resume after kill -9."""

import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file

from r1jax import config as config_lib
from r1jax import export, metrics
from r1jax.models import forward, lora
from tests.test_train import (
    deterministic,
    run_on_one_device,
    smoke_config,
    start_training,
    wait_for_step,
)

LORA = ("lora.rank=4", "lora.alpha=8", "lora.targets=attention,down_proj")


def saved_policy_tree(workdir, step):
    import orbax.checkpoint as ocp
    from etils import epath

    handler = ocp.PyTreeCheckpointHandler()
    try:
        metadata = handler.metadata(epath.Path(workdir / "checkpoints" / str(step) / "train_state"))
    finally:
        handler.close()
    return getattr(metadata, "tree", metadata)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """A smoke run (two warm-start and two RL steps) with LoRA, a KL term against the frozen
    reference, and the base stored in bfloat16."""
    workdir = tmp_path_factory.mktemp("lora_run")
    config = smoke_config(
        *LORA, "lora.base_dtype=bfloat16", "objective.kl_coef=0.05", "reference.mode=frozen"
    )
    summary = run_on_one_device(config, str(workdir))
    return workdir, summary


def test_a_lora_run_checkpoints_only_the_adapters(lora_run):
    workdir, summary = lora_run
    assert summary["final_step"] == 4 and summary["stopped"] == "completed"
    records = metrics.read_metrics(str(workdir))
    assert np.isfinite(records[-1]["kl"]) and records[-1]["step"] == 4
    tree = saved_policy_tree(workdir, 4)
    assert "base" not in tree
    for name in ("policy", "reference"):  # the reference: the warm-started adapters' copy
        paths = jax.tree_util.tree_flatten_with_path(tree[name])[0]
        assert {path[-1].key for path, _ in paths} == {"lora_a", "lora_b"}, name
        assert {path[-2].key for path, _ in paths} == {
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "down_proj",
        }
    moments = jax.tree_util.tree_flatten_with_path(tree["opt_state"])[0]
    assert all(path[-1].key in ("lora_a", "lora_b") for path, leaf in moments if leaf.shape)


@pytest.mark.torch_reference
def test_the_export_is_the_merged_model_and_transformers_agrees(lora_run):
    import torch
    import transformers

    workdir, _ = lora_run
    config = export.read_run_config(str(workdir))
    model_config = export.model_and_tokenizer(str(workdir), config)[0]
    settings = export.lora_settings(config)
    _, adapters = export.restore_policy(str(workdir), model_config, merge=False)
    base = lora.cast_base(export.lora_base(str(workdir), config, model_config), settings)
    assert base["layers_0"]["attn"]["q_proj"]["kernel"].dtype == jnp.bfloat16
    b_matrix = adapters["layers_1"]["attn"]["v_proj"]["lora_b"]
    assert float(jnp.max(jnp.abs(b_matrix))) > 0  # trained

    tokens = jax.random.randint(jax.random.key(0), (2, 12), 0, model_config.vocab_size)
    positions = jnp.broadcast_to(jnp.arange(12), (2, 12))
    applied = forward(lora.combine(base, adapters, settings), tokens, positions, model_config)[0]
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        workdir / "export", torch_dtype=torch.float32
    )
    with torch.no_grad():
        expected = hf(torch.tensor(np.asarray(tokens))).logits.numpy()
    np.testing.assert_allclose(np.asarray(applied), expected, atol=2e-4, rtol=1e-4)
    without = forward(base, tokens, positions, model_config)[0]
    assert np.max(np.abs(np.asarray(without) - expected)) > 1e-3  # the adapters are in it


def test_the_export_command_rebuilds_the_same_merged_model(lora_run, tmp_path):
    workdir, _ = lora_run
    out = export.export(str(workdir), out=str(tmp_path / "again"))
    written = load_file(str(workdir / "export" / "model.safetensors"))
    again = load_file(f"{out}/model.safetensors")
    assert sorted(written) == sorted(again)
    for name, array in written.items():
        np.testing.assert_array_equal(again[name], array, err_msg=name)


def test_bad_lora_keys_are_config_errors(tmp_path):
    with pytest.raises(config_lib.ConfigError, match=r"lora\.rank=-1"):
        run_on_one_device(smoke_config("lora.rank=-1"), str(tmp_path / "negative"))
    with pytest.raises(config_lib.ConfigError, match=r"lora\.targets='gate': unknown"):
        run_on_one_device(smoke_config("lora.rank=2", "lora.targets=gate"), str(tmp_path / "t"))


@pytest.mark.slow
def test_kill_minus_nine_and_restart_reproduce_the_uninterrupted_lora_run(tmp_path):
    overrides = (*LORA, "steps=10", "eval.num_problems=0")
    reference = start_training(tmp_path / "whole", *overrides)
    interrupted = start_training(tmp_path / "killed", *overrides)
    wait_for_step(interrupted, tmp_path / "killed", 4)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    assert reference.wait(timeout=600) == 0, reference.stdout.read()
    resumed = start_training(tmp_path / "killed", *overrides)
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    assert "resumed" in output
    whole = deterministic(metrics.read_metrics(str(tmp_path / "whole")))
    again = deterministic(metrics.read_metrics(str(tmp_path / "killed")))
    assert [r["step"] for r in again] == [r["step"] for r in whole] == list(range(1, 13))
    assert again == whole
    written = load_file(str(tmp_path / "whole" / "export" / "model.safetensors"))
    resumed_export = load_file(str(tmp_path / "killed" / "export" / "model.safetensors"))
    for name, array in written.items():
        np.testing.assert_array_equal(resumed_export[name], array, err_msg=name)


def test_an_int8_base_trains_checkpoints_adapters_and_exports_float_weights(tmp_path):
    """``lora.base_dtype=int8``: the run trains the adapters over the quantized base, the
    checkpoint holds only adapters, and the export is the dequantized base plus the merged
    adapters in float32, loadable like any export."""
    from r1jax.models import load_pretrained

    workdir = tmp_path / "int8"
    summary = run_on_one_device(smoke_config(*LORA, "lora.base_dtype=int8"), str(workdir))
    assert summary["final_step"] == 4 and summary["stopped"] == "completed"
    records = metrics.read_metrics(str(workdir))
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses and all(np.isfinite(losses))
    tree = saved_policy_tree(workdir, 4)
    assert "base" not in tree
    paths = jax.tree_util.tree_flatten_with_path(tree["policy"])[0]
    assert {path[-1].key for path, _ in paths} == {"lora_a", "lora_b"}

    config = export.read_run_config(str(workdir))
    model_config = export.model_and_tokenizer(str(workdir), config)[0]
    settings = export.lora_settings(config)
    assert settings.base_dtype == "int8"
    _, adapters = export.restore_policy(str(workdir), model_config, merge=False)
    b_matrix = adapters["layers_1"]["attn"]["v_proj"]["lora_b"]
    assert float(jnp.max(jnp.abs(b_matrix))) > 0  # the adapters moved from B = 0
    rebuilt = export.lora_base(str(workdir), config, model_config)
    base = lora.cast_base(rebuilt, settings)  # the base is rebuilt and quantized, not trained
    assert base["layers_0"]["mlp"]["up_proj"]["kernel"].dtype == jnp.int8

    exported_config, exported = load_pretrained(str(workdir / "export"))
    kernel = exported["layers_0"]["mlp"]["up_proj"]["kernel"]
    assert (
        kernel.dtype == jnp.float32 and "kernel_scale" not in exported["layers_0"]["mlp"]["up_proj"]
    )
    tokens = jax.random.randint(jax.random.key(0), (2, 12), 0, model_config.vocab_size)
    positions = jnp.broadcast_to(jnp.arange(12), (2, 12))
    applied = forward(lora.combine(base, adapters, settings), tokens, positions, model_config)[0]
    loaded = forward(exported, tokens, positions, exported_config)[0]
    np.testing.assert_allclose(np.asarray(loaded), np.asarray(applied), atol=2e-4, rtol=1e-4)


def test_an_unknown_base_dtype_is_a_config_error(tmp_path):
    with pytest.raises(config_lib.ConfigError, match=r"lora\.base_dtype='int4'"):
        run_on_one_device(smoke_config("lora.rank=2", "lora.base_dtype=int4"), str(tmp_path))
