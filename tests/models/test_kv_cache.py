"""KV cache: prefill + token-by-token decode reproduces the full forward; cache layout."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.models import KVCache, ModelConfig, forward, init_params
from r1jax.sharding import make_mesh

CONFIG = ModelConfig(
    vocab_size=101,
    hidden_size=48,
    num_layers=2,
    num_heads=6,
    num_kv_heads=2,
    head_dim=8,
    mlp_dim=64,
    qkv_bias=True,
    tie_embeddings=True,
    architecture="qwen2",
)

jit_forward = jax.jit(
    forward, static_argnames=("config", "attend_length"), donate_argnames=("kv_cache",)
)


def test_init_shapes_and_logical_axes():
    cache = KVCache.init(CONFIG, batch_size=3, max_length=10, dtype="bfloat16")
    assert len(cache.keys) == len(cache.values) == 2
    chex.assert_shape(list(cache.keys), (3, 2, 8, 10))
    chex.assert_shape(list(cache.values), (3, 2, 10, 8))
    assert cache.keys[0].dtype == jnp.bfloat16
    assert cache.valid.dtype == jnp.bool_ and not cache.valid.any()
    assert cache.end.dtype == jnp.int32 and int(cache.end) == 0
    assert (cache.batch_size, cache.max_length) == (3, 10)
    axes = KVCache.logical_axes(CONFIG)
    assert axes["keys"][1] == ("batch", "kv_heads", "head_dim", "cache_seq")
    assert axes["values"][1] == ("batch", "kv_heads", "cache_seq", "head_dim")
    assert len(jax.tree.leaves(cache)) == 2 * 2 + 2


def test_sharded_init_falls_back_when_kv_heads_do_not_divide():
    mesh = make_mesh(data=1, fsdp=2, tensor=4)
    cache = KVCache.init(CONFIG, batch_size=4, max_length=8, mesh=mesh)
    # 2 KV heads cannot split over tensor=4: replicated there; batch 4 splits over data x fsdp.
    batch_axes = ("data", "fsdp")
    assert cache.keys[0].sharding.spec == jax.sharding.PartitionSpec(batch_axes, None, None, None)
    assert cache.valid.sharding.spec == jax.sharding.PartitionSpec(batch_axes, None)


@pytest.mark.parametrize("attend_length", [None, 16])
def test_prefill_then_decode_matches_full_forward(attend_length):
    params = init_params(CONFIG, jax.random.key(0))
    batch, prompt_length, steps, max_length = 3, 6, 5, 24
    rng = np.random.default_rng(0)
    total = prompt_length + steps
    tokens = rng.integers(1, CONFIG.vocab_size, (batch, total)).astype(np.int32)
    mask = np.ones((batch, total), bool)
    mask[1, :2] = False  # mixed left padding in the prompt
    mask[2, :5] = False
    tokens[~mask] = 0
    positions = np.clip(np.cumsum(mask, 1) - 1, 0, None).astype(np.int32)

    full, _ = jit_forward(params, tokens, positions, CONFIG, attention_mask=mask)

    cache = KVCache.init(CONFIG, batch, max_length)
    logits, cache = jit_forward(
        params,
        tokens[:, :prompt_length],
        positions[:, :prompt_length],
        CONFIG,
        attention_mask=mask[:, :prompt_length],
        kv_cache=cache,
        attend_length=attend_length,
    )
    assert int(cache.end) == prompt_length
    real = mask[:, :prompt_length]
    np.testing.assert_allclose(
        np.asarray(logits)[real], np.asarray(full)[:, :prompt_length][real], atol=1e-5
    )
    for step in range(prompt_length, total):
        logits, cache = jit_forward(
            params,
            tokens[:, step : step + 1],
            positions[:, step : step + 1],
            CONFIG,
            kv_cache=cache,
            attend_length=attend_length,
        )
        chex.assert_shape(logits, (batch, 1, CONFIG.vocab_size))
        np.testing.assert_allclose(logits[:, 0], full[:, step], atol=1e-5)
    assert int(cache.end) == total
    np.testing.assert_array_equal(cache.valid[:, :total], mask)
    assert not np.asarray(cache.valid[:, total:]).any()


def test_attend_length_must_cover_new_tokens():
    params = init_params(CONFIG, jax.random.key(0))
    cache = KVCache.init(CONFIG, 1, 8)
    tokens = jnp.zeros((1, 4), jnp.int32)
    with pytest.raises(ValueError, match="attend_length"):
        forward(params, tokens, tokens, CONFIG, kv_cache=cache, attend_length=2)
