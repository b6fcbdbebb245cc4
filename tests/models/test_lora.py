"""LoRA as params transforms (`r1jax.models.lora`) and its term in the forward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import sharding as sharding_lib
from r1jax.models import (
    ModelConfig,
    forward,
    init_params,
    kernels_by_rows,
    lora,
    param_shardings,
    token_logprobs,
)
from r1jax.models.transformer import flatten_params

MODEL = ModelConfig.preset("tiny", vocab_size=64, hidden_size=32, mlp_dim=64, head_dim=8)
LORA = lora.LoraConfig(rank=4, alpha=8.0)


@pytest.fixture(scope="module")
def base():
    return init_params(MODEL, jax.random.key(0))


def inputs(batch=2, length=7):
    tokens = jax.random.randint(jax.random.key(1), (batch, length), 0, MODEL.vocab_size)
    positions = jnp.broadcast_to(jnp.arange(length), (batch, length))
    return tokens, positions


def trained(adapters, scale=0.1):
    """Adapters as after some training: every leaf random, ``B`` no longer zero."""
    leaves, tree = jax.tree.flatten(adapters)
    keys = jax.random.split(jax.random.key(7), len(leaves))
    noisy = [
        scale * jax.random.normal(key, leaf.shape, leaf.dtype) for key, leaf in zip(keys, leaves)
    ]
    return jax.tree.unflatten(tree, noisy)


def test_fresh_adapters_leave_the_output_unchanged(base):
    adapters = lora.init_adapters(MODEL, LORA, jax.random.key(3))
    for name, leaf in flatten_params(adapters).items():
        if name[-1] == "lora_b":
            assert not np.any(np.asarray(leaf)), name
        else:
            assert np.any(np.asarray(leaf)), name
    tokens, positions = inputs()
    plain = forward(base, tokens, positions, MODEL)[0]
    adapted = forward(lora.combine(base, adapters, LORA), tokens, positions, MODEL)[0]
    np.testing.assert_array_equal(adapted, plain)


def test_applied_adapters_equal_merged_weights(base):
    adapters = trained(lora.init_adapters(MODEL, LORA, jax.random.key(3)))
    tokens, positions = inputs()
    plain = forward(base, tokens, positions, MODEL)[0]
    applied = forward(lora.combine(base, adapters, LORA), tokens, positions, MODEL)[0]
    merged = forward(lora.merge(base, adapters, LORA), tokens, positions, MODEL)[0]
    assert float(jnp.max(jnp.abs(applied - plain))) > 1e-2  # the adapters matter
    np.testing.assert_allclose(applied, merged, atol=2e-5, rtol=1e-5)


def test_merge_adds_scaled_low_rank_product_to_each_target_only(base):
    config = lora.LoraConfig(rank=2, alpha=6.0, targets=("o_proj", "up_proj"))
    adapters = trained(lora.init_adapters(MODEL, config, jax.random.key(3)))
    merged = lora.merge(base, adapters, config)
    o = adapters["layers_1"]["attn"]["o_proj"]
    expected = base["layers_1"]["attn"]["o_proj"]["kernel"] + 3.0 * np.einsum(
        "hdr,re->hde", o["lora_a"], o["lora_b"]
    )
    np.testing.assert_allclose(merged["layers_1"]["attn"]["o_proj"]["kernel"], expected, atol=1e-6)
    untouched = merged["layers_0"]["attn"]["q_proj"]["kernel"]
    assert untouched is base["layers_0"]["attn"]["q_proj"]["kernel"]
    assert set(adapters["layers_0"]) == {"attn", "mlp"}
    assert set(adapters["layers_0"]["mlp"]) == {"up_proj"}


def test_adapter_shapes_and_parameter_count():
    tree = lora.abstract_adapters(MODEL, LORA)
    q, o, down = (
        tree["layers_0"]["attn"]["q_proj"],
        tree["layers_0"]["attn"]["o_proj"],
        tree["layers_0"]["mlp"]["down_proj"],
    )
    d, h, dh, f = MODEL.hidden_size, MODEL.num_heads, MODEL.head_dim, MODEL.mlp_dim
    assert q["lora_a"].shape == (d, 4) and q["lora_b"].shape == (4, h, dh)
    assert o["lora_a"].shape == (h, dh, 4) and o["lora_b"].shape == (4, d)
    assert down["lora_a"].shape == (f, 4) and down["lora_b"].shape == (4, d)
    k = MODEL.num_kv_heads * dh
    per_layer = 4 * ((d + h * dh) * 2 + (d + k) * 2 + (d + f) * 2 + (f + d))
    assert lora.num_adapter_params(MODEL, LORA) == MODEL.num_layers * per_layer


def test_adapters_are_sharded_like_their_kernels_dims():
    mesh = sharding_lib.make_mesh(data=1, fsdp=4, tensor=2)
    shardings = lora.adapter_shardings(
        lora.abstract_adapters(MODEL, LORA), param_shardings(MODEL, mesh)
    )
    q = shardings["layers_0"]["attn"]["q_proj"]
    kernel = param_shardings(MODEL, mesh)["layers_0"]["attn"]["q_proj"]["kernel"].spec
    assert tuple(q["lora_a"].spec) == (kernel[0], None)
    assert tuple(q["lora_b"].spec) == (None, *tuple(kernel)[1:])


def test_dropout_applies_only_with_a_key_and_changes_the_gradient(base):
    config = lora.LoraConfig(rank=4, alpha=8.0, dropout=0.5)
    adapters = trained(lora.init_adapters(MODEL, config, jax.random.key(3)))
    tokens, positions = inputs()

    def loss(adapters, key):
        params = lora.combine(base, adapters, config, dropout_key=key)
        return token_logprobs(params, tokens, positions, MODEL, remat=True).sum()

    without = loss(adapters, None)
    no_dropout = lora.combine(base, adapters, lora.LoraConfig(rank=4, alpha=8.0))
    np.testing.assert_array_equal(
        without, token_logprobs(no_dropout, tokens, positions, MODEL).sum()
    )
    grad = jax.jit(jax.grad(loss))
    first, again = grad(adapters, jax.random.key(1)), grad(adapters, jax.random.key(1))
    other = grad(adapters, jax.random.key(2))
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)
    assert any(
        not np.allclose(a, c) for a, c in zip(jax.tree.leaves(first), jax.tree.leaves(other))
    )


def test_base_dtype_casts_kernels_and_embeddings_only(base):
    cast = lora.cast_base(base, lora.LoraConfig(rank=1, base_dtype="bfloat16"))
    assert cast["layers_0"]["mlp"]["up_proj"]["kernel"].dtype == jnp.bfloat16
    assert cast["embed"]["embedding"].dtype == jnp.bfloat16
    assert cast["final_norm"]["scale"].dtype == jnp.float32
    assert lora.cast_base(base, LORA) is base


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(rank=0), "rank must be >= 1"),
        (dict(rank=-2), "rank must be >= 1"),
        (dict(rank=4, targets=("q_proj", "qkv")), "unknown"),
        (dict(rank=4, targets=()), "empty"),
        (dict(rank=4, dropout=1.0), "dropout"),
        (dict(rank=4, base_dtype="float16"), "base_dtype"),
        (dict(rank=4, base_dtype="nf4"), r"lora\.base_dtype='nf4'"),
    ],
)
def test_bad_settings_are_value_errors(fields, message):
    with pytest.raises(ValueError, match=message):
        lora.LoraConfig(**fields)


def test_target_groups_expand_to_projection_names():
    assert lora.parse_targets("all") == lora.TARGETS
    assert lora.parse_targets(("mlp", "q_proj")) == ("gate_proj", "up_proj", "down_proj", "q_proj")
    assert lora.parse_targets("q_proj, v_proj") == ("q_proj", "v_proj")


def test_int8_base_round_trips_within_half_a_scale_step(base):
    kernel = base["layers_0"]["attn"]["o_proj"]["kernel"]  # [H, Dh, D]: two input dims
    q, scale = lora.quantize_int8(kernel, 2)
    assert q.dtype == jnp.int8 and scale.shape == kernel.shape[2:]
    assert int(jnp.max(jnp.abs(q.astype(jnp.int32)))) == 127  # each channel's absmax hits 127
    error = jnp.abs(lora.dequantize(q, scale, jnp.float32) - kernel)
    assert bool(jnp.all(error <= scale / 2 + 1e-7))


def test_int8_base_logits_are_close_to_the_float_base(base):
    """The int8 base (per-output-channel absmax, bfloat16 embeddings) moves the tiny model's
    logits by at most 5% of their standard deviation (3.9% measured); its adapters still act
    like merged weights."""
    settings = lora.LoraConfig(rank=4, alpha=8.0, base_dtype="int8")
    quantized = lora.cast_base(base, settings)
    q_proj = quantized["layers_0"]["attn"]["q_proj"]
    assert q_proj["kernel"].dtype == jnp.int8 and q_proj["kernel_scale"].dtype == jnp.float32
    assert quantized["embed"]["embedding"].dtype == jnp.bfloat16
    assert quantized["final_norm"]["scale"].dtype == jnp.float32
    tokens, positions = inputs()
    full = forward(base, tokens, positions, MODEL)[0]
    int8 = forward(quantized, tokens, positions, MODEL)[0]
    spread = float(jnp.std(full))
    assert float(jnp.max(jnp.abs(int8 - full))) < 0.05 * spread
    adapters = trained(lora.init_adapters(MODEL, settings, jax.random.key(3)))
    applied = forward(lora.combine(quantized, adapters, settings), tokens, positions, MODEL)[0]
    merged_params = lora.merge(quantized, adapters, settings)
    assert "kernel_scale" not in merged_params["layers_0"]["attn"]["q_proj"]
    assert merged_params["layers_0"]["attn"]["q_proj"]["kernel"].dtype == jnp.float32
    merged = forward(merged_params, tokens, positions, MODEL)[0]
    np.testing.assert_allclose(applied, merged, atol=1e-4, rtol=1e-4)


def test_int8_base_passes_gradients_to_the_adapters_only(base):
    settings = lora.LoraConfig(rank=4, alpha=8.0, base_dtype="int8")
    quantized = lora.cast_base(base, settings)
    adapters = trained(lora.init_adapters(MODEL, settings, jax.random.key(3)))
    tokens, positions = inputs()

    def loss(adapters):
        params = lora.combine(quantized, adapters, settings)
        return jnp.mean(token_logprobs(params, tokens, positions, MODEL))

    grads = jax.jit(jax.grad(loss))(adapters)
    assert jax.tree.structure(grads) == jax.tree.structure(adapters)
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads))


@pytest.mark.multidevice
def test_int8_base_shardings_split_each_scale_like_its_kernels_outputs(base):
    mesh = sharding_lib.make_mesh(data=1, fsdp=4, tensor=2)
    quantized = lora.cast_base(base, lora.LoraConfig(rank=2, base_dtype="int8"))
    shardings = lora.base_shardings(quantized, param_shardings(MODEL, mesh))
    q = shardings["layers_0"]["attn"]["q_proj"]
    assert q["kernel"].spec == jax.sharding.PartitionSpec("fsdp", "tensor", None)
    assert tuple(q["kernel_scale"].spec) in (("tensor", None), ("tensor",))
    placed = jax.device_put(quantized, shardings)
    assert placed["layers_1"]["mlp"]["down_proj"]["kernel_scale"].shape == (MODEL.hidden_size,)


def test_int8_base_in_the_decode_layout_is_dequantized(base):
    """`kernels_by_rows` (the CPU sampler's layout) dequantizes an int8 base and drops the
    scales, so a by-rows forward equals the stored-layout one."""
    settings = lora.LoraConfig(rank=4, alpha=8.0, base_dtype="int8")
    params = lora.combine(
        lora.cast_base(base, settings),
        trained(lora.init_adapters(MODEL, settings, jax.random.key(3))),
        settings,
    )
    rows = kernels_by_rows(params, MODEL)
    assert "kernel_scale" not in rows["layers_0"]["mlp"]["down_proj"]
    tokens, positions = inputs()
    stored = forward(params, tokens, positions, MODEL)[0]
    by_rows = forward(rows, tokens, positions, MODEL, kernels_by_rows=True)[0]
    np.testing.assert_allclose(by_rows, stored, atol=1e-5, rtol=1e-5)
