"""Mesh construction, logical -> mesh rules, and sharded models equal single-device models."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, PartitionSpec

from r1jax.models import (
    ModelConfig,
    forward,
    init_params,
    load_pretrained,
    save_pretrained,
    token_logprobs,
)
from r1jax.sharding import ShardingRules, constrain, logical_sharding, logical_to_spec, make_mesh

pytestmark = pytest.mark.multidevice

CONFIG = ModelConfig(
    vocab_size=128,
    hidden_size=32,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=8,
    mlp_dim=64,
    qkv_bias=True,
    tie_embeddings=False,
    architecture="qwen2",
)


def test_make_mesh_fills_the_free_axis_with_auto_axes():
    mesh = make_mesh(data=2, fsdp=-1, tensor=2)
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    assert mesh.axis_types == (AxisType.Auto,) * 3
    assert dict(make_mesh(devices=jax.devices()[:1]).shape) == {"data": 1, "fsdp": 1, "tensor": 1}


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        (dict(data=-1, fsdp=-1), "at most one"),
        (dict(data=3, fsdp=-1), "not divisible"),
        (dict(data=2, fsdp=2, tensor=1), "multiply to 4"),
        (dict(data=0), "positive"),
    ],
)
def test_make_mesh_rejects_bad_sizes(sizes, message):
    with pytest.raises(ValueError, match=message):
        make_mesh(**sizes)


def test_logical_to_spec_falls_back_and_uses_each_mesh_axis_once():
    mesh = make_mesh(data=2, fsdp=2, tensor=2)
    assert logical_to_spec(("kv_heads",), shape=(1,), mesh=mesh) == PartitionSpec(None)
    assert logical_to_spec(("batch", "seq"), shape=(2, 5), mesh=mesh) == PartitionSpec("data", None)
    assert logical_to_spec(("batch", "seq", "embed"), shape=(4, 3, 32), mesh=mesh) == (
        PartitionSpec(("data", "fsdp"), None, None)
    )
    wide = make_mesh(data=1, fsdp=2, tensor=4)
    assert logical_sharding(wide, ("embed", "kv_heads", "head_dim"), shape=(32, 2, 8)).spec == (
        PartitionSpec("fsdp", None, None)
    )
    with pytest.raises(ValueError, match="unknown logical axis 'expert'"):
        logical_to_spec(("expert",))
    with pytest.raises(ValueError, match="missing from the mesh"):
        logical_to_spec(("embed",), ShardingRules(embed="model"), shape=(4,), mesh=mesh)


def test_constrain_is_a_no_op_without_a_mesh_and_shards_with_one():
    x = jnp.ones((8, 4, 32))
    assert constrain(x, ("batch", "seq", "embed")) is x
    mesh = make_mesh(data=2, fsdp=2, tensor=2)
    with jax.set_mesh(mesh):
        y = jax.jit(lambda v: constrain(v * 2, ("batch", "seq", "embed")))(x)
    assert _spec(y) == (("data", "fsdp"), None, None)


def _spec(array) -> tuple:
    """The array's partition spec padded with None to one entry per dimension."""
    spec = tuple(array.sharding.spec)
    return spec + (None,) * (array.ndim - len(spec))


def _inputs(batch=4, length=10):
    rng = np.random.default_rng(0)
    tokens = jnp.asarray(rng.integers(0, CONFIG.vocab_size, (batch, length)), jnp.int32)
    mask = np.ones((batch, length), bool)
    mask[1, :3] = False
    positions = jnp.asarray(np.clip(np.cumsum(mask, 1) - 1, 0, None), jnp.int32)
    return tokens, positions, jnp.asarray(mask)


def _sharded_run(params, mesh, inputs):
    tokens, positions, mask = inputs

    @jax.jit
    def run(params, tokens, positions, mask):
        logits, _ = forward(params, tokens, positions, CONFIG, attention_mask=mask)
        logprobs = token_logprobs(
            params, tokens, positions, CONFIG, attention_mask=mask, target_start=4, chunk_size=3
        )
        return logits, logprobs

    if mesh is None:
        return run(params, tokens, positions, mask)
    with jax.set_mesh(mesh):
        return run(params, tokens, positions, mask)


def test_sharded_forward_equals_single_device_and_params_follow_rules():
    reference_params = init_params(CONFIG, jax.random.key(0))
    inputs = _inputs()
    expected_logits, expected_logprobs = _sharded_run(reference_params, None, inputs)

    mesh = make_mesh(data=2, fsdp=2, tensor=2)
    params = init_params(CONFIG, jax.random.key(0), mesh=mesh)
    layer = params["layers_0"]
    assert _spec(params["embed"]["embedding"]) == ("tensor", "fsdp")
    assert _spec(params["lm_head"]["kernel"]) == ("fsdp", "tensor")
    assert _spec(layer["attn"]["q_proj"]["kernel"]) == ("fsdp", "tensor", None)
    assert _spec(layer["attn"]["k_proj"]["bias"]) == ("tensor", None)
    assert _spec(layer["attn"]["o_proj"]["kernel"]) == ("tensor", None, "fsdp")
    assert _spec(layer["mlp"]["down_proj"]["kernel"]) == ("tensor", "fsdp")
    assert _spec(layer["attn_norm"]["scale"]) == (None,)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(reference_params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    logits, logprobs = _sharded_run(params, mesh, inputs)
    assert logits.sharding.spec[0] == ("data", "fsdp")
    np.testing.assert_allclose(logits, expected_logits, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(logprobs, expected_logprobs, atol=1e-5, rtol=1e-5)

    single = make_mesh(devices=jax.devices()[:1])
    single_params = init_params(CONFIG, jax.random.key(0), mesh=single)
    single_logits, _ = _sharded_run(single_params, single, inputs)
    np.testing.assert_allclose(single_logits, expected_logits, atol=1e-5, rtol=1e-5)


def test_load_pretrained_places_params_in_custom_rule_shardings(tmp_path):
    params = init_params(CONFIG, jax.random.key(1))
    save_pretrained(tmp_path, CONFIG, params)
    mesh = make_mesh(data=1, fsdp=4, tensor=2)
    rules = dataclasses.replace(ShardingRules(), kv_heads=None, mlp=("tensor", "fsdp"))
    _, loaded = load_pretrained(tmp_path, mesh=mesh, rules=rules)
    layer = loaded["layers_1"]
    assert _spec(layer["attn"]["k_proj"]["kernel"]) == ("fsdp", None, None)
    # mlp takes tensor and fsdp on its own dim, so embed (fsdp) is left unsharded on down_proj.
    assert _spec(layer["mlp"]["down_proj"]["kernel"]) == (("tensor", "fsdp"), None)
    assert _spec(layer["mlp"]["up_proj"]["kernel"]) == ("fsdp", "tensor")
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_load_pretrained_reads_blocks_split_inside_a_head(tmp_path):
    params = init_params(CONFIG, jax.random.key(2))
    save_pretrained(tmp_path, CONFIG, params)
    mesh = make_mesh(data=1, fsdp=2, tensor=4)
    rules = ShardingRules(heads="fsdp", head_dim="tensor", embed=None)
    _, loaded = load_pretrained(tmp_path, mesh=mesh, rules=rules)
    attn = loaded["layers_0"]["attn"]
    assert _spec(attn["o_proj"]["kernel"]) == ("fsdp", "tensor", None)
    assert _spec(attn["q_proj"]["bias"]) == ("fsdp", "tensor")
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
