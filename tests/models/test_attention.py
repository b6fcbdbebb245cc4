"""Tests for the attention choice of r1jax/models/layers.py: which path runs on which platform,
and that every path that runs on CPU gives the XLA path's logits, log-probs and gradients."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import sharding
from r1jax.models import KVCache, ModelConfig, forward, init_params, layers, token_logprobs


@pytest.mark.parametrize(
    "choice, platform, expected",
    [
        ("auto", "gpu", "cudnn"),
        ("auto", "tpu", "splash"),
        ("auto", "cpu", "xla"),
        ("xla", "tpu", "xla"),
        ("splash", "cpu", "splash"),
        ("dot_product", "gpu", "dot_product"),
    ],
)
def test_attention_implementation_follows_platform_unless_named(choice, platform, expected):
    assert layers.attention_implementation(choice, platform) == expected


def test_auto_reads_the_default_backend(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    assert layers.attention_implementation("auto") == "splash"
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert layers.attention_implementation("auto") == "cudnn"
    # cuDNN takes 16-bit inputs only: a float32 model keeps the XLA path on GPU.
    assert layers.attention_implementation("auto", compute_dtype="float32") == "xla"


def test_unknown_attention_is_rejected():
    with pytest.raises(ValueError, match="attention must be one of"):
        ModelConfig.preset("tiny", attention="flash")


def _inputs(length=12):
    tokens = jax.random.randint(jax.random.key(1), (3, length), 0, 512)
    mask = np.ones((3, length), bool)
    mask[0, :3] = False  # left padding
    mask[1, : length - 2] = False  # a two-token row
    mask = jnp.asarray(mask)
    positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0).astype(jnp.int32)
    return tokens, positions, mask


def test_dot_product_path_gives_the_xla_logits_on_real_tokens():
    config = ModelConfig.preset("tiny")
    params = init_params(config, jax.random.key(0))
    tokens, positions, mask = _inputs()
    run = jax.jit(forward, static_argnames="config")
    want = run(params, tokens, positions, config, attention_mask=mask)[0]
    fused = dataclasses.replace(config, attention="dot_product")
    got = run(params, tokens, positions, fused, attention_mask=mask)[0]
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(
        np.where(mask[..., None], got, 0), np.where(mask[..., None], want, 0), atol=2e-5
    )


def test_dot_product_path_gives_the_xla_logprobs_and_gradients_with_remat():
    config = ModelConfig.preset("tiny")
    params = init_params(config, jax.random.key(0))
    tokens, positions, mask = _inputs()

    def loss(params, config):
        logprobs = token_logprobs(
            params, tokens, positions, config, attention_mask=mask, target_start=4, remat=True
        )
        return jnp.sum(logprobs * (mask[:, 3:-1] & mask[:, 4:])), logprobs

    grad = jax.jit(jax.grad(loss, has_aux=True), static_argnums=1)
    want_grads, want = grad(params, config)
    got_grads, got = grad(params, dataclasses.replace(config, attention="dot_product"))
    scored = mask[:, 3:-1] & mask[:, 4:]  # predicted from a real token (pads predict garbage)
    np.testing.assert_allclose(got * scored, want * scored, atol=2e-5)
    for g, w in zip(jax.tree.leaves(got_grads), jax.tree.leaves(want_grads)):
        np.testing.assert_allclose(g, w, atol=2e-4, rtol=2e-4)


def test_prefill_with_a_fused_path_fills_the_same_cache_and_logits():
    config = ModelConfig.preset("tiny")
    params = init_params(config, jax.random.key(0))
    tokens, positions, mask = _inputs()
    run = jax.jit(forward, static_argnames=("config", "last_position_only"))
    outputs = []
    for attention in ("xla", "dot_product"):
        cache = KVCache.init(config, 3, tokens.shape[1])
        outputs.append(
            run(
                params,
                tokens,
                positions,
                dataclasses.replace(config, attention=attention),
                attention_mask=mask,
                kv_cache=cache,
                last_position_only=True,
            )
        )
    (want, want_cache), (got, got_cache) = outputs
    np.testing.assert_allclose(got, want, atol=2e-5)
    np.testing.assert_array_equal(got_cache.valid, want_cache.valid)
    # Pad slots above the first layer hold keys of pad outputs, which differ and are never read.
    valid = np.asarray(want_cache.valid)
    for g, w in zip(got_cache.keys, want_cache.keys):  # [B, K, Dh, S]
        np.testing.assert_allclose(g * valid[:, None, None], w * valid[:, None, None], atol=1e-5)
    for g, w in zip(got_cache.values, want_cache.values):  # [B, K, S, Dh]
        np.testing.assert_allclose(
            g * valid[:, None, :, None], w * valid[:, None, :, None], atol=1e-5
        )


def test_splash_kernel_matches_xla_attention_in_the_pallas_interpreter():
    tokens, _, mask = _inputs(length=20)
    del tokens
    keys = jax.random.split(jax.random.key(2), 3)
    q = jax.random.normal(keys[0], (3, 20, 4, 32))
    k = jax.random.normal(keys[1], (3, 20, 2, 32))
    v = jax.random.normal(keys[2], (3, 20, 2, 32))
    causal = jnp.tril(jnp.ones((20, 20), bool))[None] & mask[:, None, :]
    want = layers.attend(q, k.transpose(0, 2, 3, 1), v.transpose(0, 2, 1, 3), causal, jnp.float32)
    got = layers.causal_attention(q, k, v, mask, "splash", interpret=True)
    real = mask[:, :, None, None]
    np.testing.assert_allclose(np.where(real, got, 0), np.where(real, want, 0), atol=1e-5)


def test_fused_path_on_a_mesh_runs_per_shard_and_matches():
    config = ModelConfig.preset("tiny", attention="dot_product")
    mesh = sharding.make_mesh(data=2, fsdp=2, tensor=2, devices=jax.devices()[:8])
    params = init_params(config, jax.random.key(0), mesh=mesh)
    tokens, positions, mask = _inputs()
    tokens, positions, mask = (jnp.concatenate([x, x[:1]]) for x in (tokens, positions, mask))
    run = jax.jit(forward, static_argnames="config")
    want = run(
        params, tokens, positions, dataclasses.replace(config, attention="xla"), attention_mask=mask
    )[0]
    with jax.set_mesh(mesh):
        got = run(params, tokens, positions, config, attention_mask=mask)[0]
    np.testing.assert_allclose(
        np.where(mask[..., None], got, 0), np.where(mask[..., None], want, 0), atol=2e-5
    )
