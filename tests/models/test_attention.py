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


def _numpy_attention(q, keys, values, valid):
    """One query per row over the valid columns: q [B, H, Dh], keys [B, K, Dh, T], values
    [B, K, T, Dh], valid [B, T] -> [B, H, Dh] (float64)."""
    batch, heads, head_dim = q.shape
    group = heads // keys.shape[1]
    out = np.zeros((batch, heads, head_dim))
    for b in range(batch):
        for h in range(heads):
            k = h // group
            scores = q[b, h].astype(np.float64) @ keys[b, k].astype(np.float64) / head_dim**0.5
            scores = np.where(valid[b], scores, -np.inf)
            weights = np.exp(scores - scores.max())
            out[b, h] = weights / weights.sum() @ values[b, k].astype(np.float64)
    return out


def test_attend_tiered_equals_attention_over_the_union_of_its_columns():
    """Every row over its newest columns, some rows also over one or two older bands (one
    with a padding row): the same output as one softmax over all of a row's valid columns
    (a NumPy float64 reference), whichever band holds a row's largest score."""
    rng = np.random.default_rng(0)
    batch, heads, kv_heads, head_dim, newest, widths = 5, 4, 2, 8, 6, (7, 9)
    q = rng.normal(size=(batch, 1, heads, head_dim)).astype(np.float32)
    keys = rng.normal(size=(batch, kv_heads, head_dim, newest)).astype(np.float32)
    values = rng.normal(size=(batch, kv_heads, newest, head_dim)).astype(np.float32)
    valid = rng.random((batch, newest)) < 0.7
    valid[:, -1] = True
    tier_rows = (np.array([3, 0, 4]), np.array([4, 1]))  # row 2 in no band, row 1 padding
    tiers, union_keys, union_values, union_valid = [], [keys], [values], [valid]
    for rows, width in zip(tier_rows, widths):
        tier_keys = rng.normal(size=(len(rows), kv_heads, head_dim, width)).astype(np.float32)
        tier_keys[0] *= 4.0  # this band holds row rows[0]'s largest scores
        tier_values = rng.normal(size=(len(rows), kv_heads, width, head_dim)).astype(np.float32)
        tier_valid = rng.random((len(rows), width)) < 0.6
        tier_valid[rows == 1] = False  # a padding row
        tiers.append((jnp.asarray(rows, jnp.int32), tier_keys, tier_values, tier_valid))
        full_keys = np.zeros((batch, kv_heads, head_dim, width), np.float32)
        full_values = np.zeros((batch, kv_heads, width, head_dim), np.float32)
        full_valid = np.zeros((batch, width), bool)
        full_keys[rows], full_values[rows], full_valid[rows] = tier_keys, tier_values, tier_valid
        union_keys.append(full_keys)
        union_values.append(full_values)
        union_valid.append(full_valid)
    got = jax.jit(layers.attend_tiered, static_argnums=5)(
        q, keys, values, valid, tuple(tiers), jnp.float32
    )
    want = _numpy_attention(
        q[:, 0],
        np.concatenate(union_keys, axis=3),
        np.concatenate(union_values, axis=2),
        np.concatenate(union_valid, axis=1),
    )
    assert got.shape == (batch, 1, heads, head_dim)
    np.testing.assert_allclose(np.asarray(got)[:, 0], want, rtol=1e-5, atol=1e-6)
    # Without tiers it is the plain one-query attention.
    plain = layers.attend(q, keys, values, valid[:, None, :], jnp.float32)
    np.testing.assert_allclose(
        layers.attend_tiered(q, keys, values, valid, (), jnp.float32), plain, atol=1e-6
    )
