"""Shapes of published models, for planning memory without their weights.

Lives here: `PUBLISHED_SHAPES` (the `ModelConfig` fields of Qwen2.5 0.5B / 1.5B / 7B, Qwen3 4B /
8B, Llama 3.2 1B / 3B and Llama 3.1 8B, copied from each model's Hugging Face ``config.json``),
`PUBLISHED_PARAMS` (their parameter counts as their model cards and safetensors index state
them) and `published_config`. The memory planner (`r1jax.plan`) reads them; nothing trains
from them: ``model.name`` in a training config takes a `r1jax.models.config.MODEL_PRESETS`
name (a from-scratch shape whose vocab follows the tokenizer) or a checkpoint directory.

Sources (``config.json`` of each repository on the Hugging Face hub): Qwen/Qwen2.5-0.5B,
Qwen/Qwen2.5-1.5B, Qwen/Qwen2.5-7B, Qwen/Qwen3-4B, Qwen/Qwen3-8B, meta-llama/Llama-3.2-1B,
meta-llama/Llama-3.2-3B, meta-llama/Llama-3.1-8B.
"""

from __future__ import annotations

from typing import Any

from r1jax.models.config import ModelConfig, RopeScaling

_QWEN2 = dict(architecture="qwen2", qkv_bias=True, rms_norm_eps=1e-6, rope_theta=1_000_000.0)
_QWEN3 = dict(architecture="qwen3", qk_norm=True, rms_norm_eps=1e-6, rope_theta=1_000_000.0)
_LLAMA3 = dict(architecture="llama", rms_norm_eps=1e-5, rope_theta=500_000.0)


def _llama3_rope(factor: float) -> RopeScaling:
    return RopeScaling(
        rope_type="llama3",
        factor=factor,
        low_freq_factor=1.0,
        high_freq_factor=4.0,
        original_max_position_embeddings=8192,
    )


PUBLISHED_SHAPES: dict[str, dict[str, Any]] = {
    "qwen2.5-0.5b": dict(
        _QWEN2,
        vocab_size=151936,
        hidden_size=896,
        num_layers=24,
        num_heads=14,
        num_kv_heads=2,
        head_dim=64,
        mlp_dim=4864,
        tie_embeddings=True,
        max_position_embeddings=32768,
    ),
    "qwen2.5-1.5b": dict(
        _QWEN2,
        vocab_size=151936,
        hidden_size=1536,
        num_layers=28,
        num_heads=12,
        num_kv_heads=2,
        head_dim=128,
        mlp_dim=8960,
        tie_embeddings=True,
        max_position_embeddings=131072,
    ),
    "qwen2.5-7b": dict(
        _QWEN2,
        vocab_size=152064,
        hidden_size=3584,
        num_layers=28,
        num_heads=28,
        num_kv_heads=4,
        head_dim=128,
        mlp_dim=18944,
        tie_embeddings=False,
        max_position_embeddings=131072,
    ),
    "qwen3-4b": dict(
        _QWEN3,
        vocab_size=151936,
        hidden_size=2560,
        num_layers=36,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        mlp_dim=9728,
        tie_embeddings=True,
        max_position_embeddings=40960,
    ),
    "qwen3-8b": dict(
        _QWEN3,
        vocab_size=151936,
        hidden_size=4096,
        num_layers=36,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        mlp_dim=12288,
        tie_embeddings=False,
        max_position_embeddings=40960,
    ),
    "llama3.2-1b": dict(
        _LLAMA3,
        vocab_size=128256,
        hidden_size=2048,
        num_layers=16,
        num_heads=32,
        num_kv_heads=8,
        head_dim=64,
        mlp_dim=8192,
        tie_embeddings=True,
        max_position_embeddings=131072,
        rope_scaling=_llama3_rope(32.0),
    ),
    "llama3.2-3b": dict(
        _LLAMA3,
        vocab_size=128256,
        hidden_size=3072,
        num_layers=28,
        num_heads=24,
        num_kv_heads=8,
        head_dim=128,
        mlp_dim=8192,
        tie_embeddings=True,
        max_position_embeddings=131072,
        rope_scaling=_llama3_rope(32.0),
    ),
    "llama3.1-8b": dict(
        _LLAMA3,
        vocab_size=128256,
        hidden_size=4096,
        num_layers=32,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        mlp_dim=14336,
        tie_embeddings=False,
        max_position_embeddings=131072,
        rope_scaling=_llama3_rope(8.0),
    ),
}
"""Plan name -> `ModelConfig` fields of a published model (its ``config.json`` values)."""

PUBLISHED_PARAMS: dict[str, int] = {
    "qwen2.5-0.5b": 494_032_768,
    "qwen2.5-1.5b": 1_543_714_304,
    "qwen2.5-7b": 7_615_616_512,
    "qwen3-4b": 4_022_468_096,
    "qwen3-8b": 8_190_735_360,
    "llama3.2-1b": 1_235_814_400,
    "llama3.2-3b": 3_212_749_824,
    "llama3.1-8b": 8_030_261_248,
}
"""Plan name -> parameter count of the published checkpoint (the safetensors total)."""


def published_config(name: str, **overrides: Any) -> ModelConfig:
    """The `ModelConfig` of published model ``name`` (see `PUBLISHED_SHAPES`), overridable.

    Example:
      >>> published_config("qwen2.5-7b", dtype="bfloat16").num_kv_heads
      4
    """
    if name not in PUBLISHED_SHAPES:
        raise ValueError(f"unknown published shape {name!r}; known: {sorted(PUBLISHED_SHAPES)}")
    return ModelConfig(**{**PUBLISHED_SHAPES[name], **overrides})
