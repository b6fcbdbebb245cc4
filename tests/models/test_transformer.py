"""forward / token_logprobs: shapes, dtypes, padding invariance, chunked log-probs and grads."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.models import (
    ModelConfig,
    abstract_params,
    forward,
    init_params,
    kernels_by_rows,
    param_logical_axes,
    token_logprobs,
)

CONFIG = ModelConfig(
    vocab_size=97,
    hidden_size=32,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=8,
    mlp_dim=64,
    qk_norm=True,
    tie_embeddings=False,
    architecture="qwen3",
)


jit_forward = jax.jit(forward, static_argnames=("config",))
jit_logprobs = jax.jit(
    token_logprobs,
    static_argnames=("config", "target_start", "chunk_size", "remat", "return_entropy"),
)


@pytest.fixture(scope="module")
def params():
    return init_params(CONFIG, jax.random.key(0))


def _inputs(batch=2, length=12, seed=0):
    rng = np.random.default_rng(seed)
    tokens = jnp.asarray(rng.integers(0, CONFIG.vocab_size, (batch, length)), jnp.int32)
    mask = np.ones((batch, length), bool)
    mask[1, :4] = False
    positions = jnp.asarray(np.clip(np.cumsum(mask, 1) - 1, 0, None), jnp.int32)
    return tokens, positions, jnp.asarray(mask)


def _full_logprobs(params, tokens, positions, mask, target_start, temperature):
    logits, _ = jit_forward(params, tokens, positions, CONFIG, attention_mask=mask)
    logprobs = jax.nn.log_softmax(logits[:, target_start - 1 : -1] / temperature, axis=-1)
    return jnp.take_along_axis(logprobs, tokens[:, target_start:, None], axis=-1)[..., 0]


def test_param_tree_layout():
    tree = abstract_params(CONFIG)
    assert sorted(tree) == ["embed", "final_norm", "layers_0", "layers_1", "lm_head"]
    attn = tree["layers_0"]["attn"]
    chex.assert_shape(attn["q_proj"]["kernel"], (32, 4, 8))
    chex.assert_shape(attn["k_proj"]["kernel"], (32, 2, 8))
    chex.assert_shape(attn["o_proj"]["kernel"], (4, 8, 32))
    chex.assert_shape(attn["q_norm"]["scale"], (8,))
    chex.assert_shape(tree["lm_head"]["kernel"], (32, 97))
    axes = param_logical_axes(CONFIG)
    assert tuple(axes["layers_1"]["mlp"]["down_proj"]["kernel"]) == ("mlp", "embed")
    assert tuple(axes["layers_1"]["attn"]["k_proj"]["kernel"]) == ("embed", "kv_heads", "head_dim")


def test_init_is_deterministic_and_finite(params):
    again = init_params(CONFIG, jax.random.key(0))
    chex.assert_trees_all_equal(params, again)
    other = init_params(CONFIG, jax.random.key(1))
    assert not np.array_equal(params["embed"]["embedding"], other["embed"]["embedding"])
    np.testing.assert_array_equal(params["final_norm"]["scale"], 1.0)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))


def test_forward_shapes_dtype_and_pad_rows_finite(params):
    tokens, positions, mask = _inputs()
    logits, cache = jit_forward(params, tokens, positions, CONFIG, attention_mask=mask)
    chex.assert_shape(logits, (2, 12, 97))
    assert logits.dtype == jnp.float32 and cache is None
    assert np.isfinite(np.asarray(logits)).all()


def test_left_padding_matches_unpadded_row(params):
    tokens, positions, mask = _inputs()
    padded, _ = jit_forward(params, tokens, positions, CONFIG, attention_mask=mask)
    alone, _ = jit_forward(params, tokens[1:, 4:], jnp.arange(8)[None], CONFIG)
    np.testing.assert_allclose(padded[1, 4:], alone[0], atol=1e-5, rtol=1e-5)


def test_bfloat16_params_give_float32_logits():
    config = ModelConfig.preset("tiny", dtype="bfloat16", param_dtype="bfloat16")
    params = init_params(config, jax.random.key(0))
    assert params["layers_0"]["mlp"]["up_proj"]["kernel"].dtype == jnp.bfloat16
    tokens = jnp.arange(6)[None]
    logits, _ = jit_forward(params, tokens, tokens, config)
    assert logits.dtype == jnp.float32
    logprobs = jit_logprobs(params, tokens, tokens, config)
    assert logprobs.dtype == jnp.float32 and np.isfinite(np.asarray(logprobs)).all()


@pytest.mark.parametrize(
    "config",
    [
        CONFIG,
        ModelConfig.preset("tiny", vocab_size=97),
        ModelConfig.preset("tiny", dtype="bfloat16"),
    ],
    ids=["qwen3-untied", "qwen2-tied-bias", "qwen2-bfloat16"],
)
def test_kernels_by_rows_layout_gives_the_same_logits(config):
    """The decode layout transposes every kernel, casts to the compute dtype, and computes the
    same function: float32 logits to accumulation order, bfloat16 to rounding."""
    params = init_params(config, jax.random.key(1))
    rows = kernels_by_rows(params, config)
    d, f = config.hidden_size, config.mlp_dim
    h, k, dh = config.num_heads, config.num_kv_heads, config.head_dim
    layer = rows["layers_1"]
    assert layer["mlp"]["gate_proj"]["kernel"].shape == (f, d)
    assert layer["mlp"]["down_proj"]["kernel"].shape == (d, f)
    assert layer["attn"]["q_proj"]["kernel"].shape == (h, dh, d)
    assert layer["attn"]["k_proj"]["kernel"].shape == (k, dh, d)
    assert layer["attn"]["o_proj"]["kernel"].shape == (d, h, dh)
    assert layer["attn_norm"]["scale"].dtype == params["layers_1"]["attn_norm"]["scale"].dtype
    assert layer["mlp"]["up_proj"]["kernel"].dtype == config.compute_dtype
    if config.qkv_bias:
        assert layer["attn"]["q_proj"]["bias"].shape == (h, dh)
    if not config.tie_embeddings:
        assert rows["lm_head"]["kernel"].shape == (config.vocab_size, d)
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 97, (2, 9)), jnp.int32)
    positions = jnp.broadcast_to(jnp.arange(9), (2, 9))
    stored, _ = jit_forward(params, tokens, positions, config)
    by_rows, _ = jax.jit(forward, static_argnames=("config", "kernels_by_rows"))(
        rows, tokens, positions, config, kernels_by_rows=True
    )
    assert by_rows.dtype == jnp.float32
    tolerance = 1e-5 if config.dtype == "float32" else 0.1
    np.testing.assert_allclose(by_rows, stored, atol=tolerance, rtol=0)


@pytest.mark.parametrize(
    ("target_start", "chunk_size", "temperature"), [(1, 256, 1.0), (5, 3, 0.7), (11, 4, 1.3)]
)
def test_token_logprobs_equal_full_logits(params, target_start, chunk_size, temperature):
    tokens, positions, mask = _inputs()
    expected = _full_logprobs(params, tokens, positions, mask, target_start, temperature)
    got = jit_logprobs(
        params,
        tokens,
        positions,
        CONFIG,
        attention_mask=mask,
        target_start=target_start,
        chunk_size=chunk_size,
        temperature=temperature,
    )
    chex.assert_shape(got, (2, 12 - target_start))
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_token_logprobs_gradient_with_remat_equals_full_logits_gradient(params):
    tokens, positions, mask = _inputs()
    weights = jnp.asarray(np.random.default_rng(1).normal(size=(2, 9)), jnp.float32)

    def chunked_loss(p):
        logprobs = token_logprobs(
            p,
            tokens,
            positions,
            CONFIG,
            attention_mask=mask,
            target_start=3,
            chunk_size=4,
            remat=True,
        )
        return jnp.sum(logprobs * weights)

    def full_loss(p):
        return jnp.sum(_full_logprobs(p, tokens, positions, mask, 3, 1.0) * weights)

    got = jax.jit(jax.grad(chunked_loss))(params)
    expected = jax.jit(jax.grad(full_loss))(params)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


def test_entropy_matches_full_distribution(params):
    tokens, positions, mask = _inputs()
    logprobs, entropy = jit_logprobs(
        params, tokens, positions, CONFIG, attention_mask=mask, target_start=2, return_entropy=True
    )
    logits, _ = jit_forward(params, tokens, positions, CONFIG, attention_mask=mask)
    full = jax.nn.log_softmax(logits[:, 1:-1], axis=-1)
    expected = -jnp.sum(jnp.exp(full) * full, axis=-1)
    chex.assert_equal_shape([logprobs, entropy])
    np.testing.assert_allclose(entropy, expected, atol=1e-5, rtol=1e-5)


def test_token_logprobs_rejects_bad_target_start(params):
    tokens, positions, _ = _inputs()
    with pytest.raises(ValueError, match="target_start"):
        token_logprobs(params, tokens, positions, CONFIG, target_start=0)
    empty = jit_logprobs(params, tokens, positions, CONFIG, target_start=12)
    chex.assert_shape(empty, (2, 0))


def test_remat_holds_one_block_of_activations_in_the_backward_pass():
    """Remat must cut the compiled step's temporary memory, not just appear in the jaxpr.

    With `jax.checkpoint` alone, XLA:CPU scheduled every layer's recomputation first and held
    them all; `remat_block` orders each layer's recomputation after the gradient from above.
    """
    config = ModelConfig(
        vocab_size=97, hidden_size=64, num_layers=6, num_heads=4, num_kv_heads=2, head_dim=16,
        mlp_dim=256,
    )  # fmt: skip
    params = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
    tokens = jax.ShapeDtypeStruct((8, 128), jnp.int32)

    def temp_bytes(remat):
        def loss(p, tokens):
            positions = jnp.broadcast_to(jnp.arange(128), tokens.shape)
            logprobs = token_logprobs(p, tokens, positions, config, chunk_size=32, remat=remat)
            return logprobs.sum()

        compiled = jax.jit(jax.grad(loss)).lower(params, tokens).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    assert temp_bytes(remat=True) < 0.5 * temp_bytes(remat=False)
