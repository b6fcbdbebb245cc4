"""Tiny random Hugging Face checkpoints for tests (torch CPU, no downloads).

Usage from any test::

    from tests.models.hf_fixtures import write_tiny_hf_model

    def test_something(tmp_path):
        path = write_tiny_hf_model(tmp_path / "model", "qwen2", seed=0)
        config, params = r1jax.models.load_pretrained(path)

API:
  * `FAMILIES`: the supported families, ``("qwen2", "qwen3", "llama")``.
  * `tiny_hf_config(family, **overrides)`: a transformers config object (Qwen2Config,
    Qwen3Config or LlamaConfig) with tiny shapes; keyword overrides use r1jax-style names
    (``vocab_size, hidden_size, num_layers, num_heads, num_kv_heads, head_dim, mlp_dim,
    tie_embeddings, rope_theta, rope_scaling, max_position_embeddings``).
  * `build_tiny_hf_model(family, *, seed=0, **overrides)`: the ``*ForCausalLM`` torch model in
    eval mode, float32, with every weight (norms and biases included) drawn at random so that
    parity tests are sensitive to every tensor.
  * `write_tiny_hf_model(path, family="qwen2", *, seed=0, dtype="float32", **overrides)`:
    saves that model with ``save_pretrained`` (safetensors) and returns ``path``.
  * `hf_logits(model, tokens, attention_mask=None)`: float32 numpy logits from the torch
    model with positions ``clip(cumsum(mask) - 1, 0)`` (left padding handled like r1jax).

Default shapes: vocab 128, hidden 48, 2 layers, 6 query heads, 3 KV heads, head dim 8,
MLP 96; Qwen2 ties embeddings, Qwen3 and Llama do not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

FAMILIES = ("qwen2", "qwen3", "llama")

_DEFAULTS = dict(
    vocab_size=128,
    hidden_size=48,
    num_layers=2,
    num_heads=6,
    num_kv_heads=3,
    head_dim=8,
    mlp_dim=96,
    rope_theta=10000.0,
    rope_scaling=None,
    max_position_embeddings=256,
)


def tiny_hf_config(family: str, **overrides: Any):
    """A tiny transformers config for ``family`` (see the module docstring for overrides)."""
    import transformers

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {FAMILIES}")
    unknown = set(overrides) - set(_DEFAULTS) - {"tie_embeddings"}
    if unknown:
        raise TypeError(f"unknown overrides {sorted(unknown)}")
    values = {**_DEFAULTS, **overrides}
    tie = overrides.get("tie_embeddings", family == "qwen2")
    rope = {"rope_type": "default", "rope_theta": values["rope_theta"]}
    if values["rope_scaling"] is not None:
        rope = {**values["rope_scaling"], "rope_theta": values["rope_theta"]}
    cls = {
        "qwen2": transformers.Qwen2Config,
        "qwen3": transformers.Qwen3Config,
        "llama": transformers.LlamaConfig,
    }[family]
    return cls(
        vocab_size=values["vocab_size"],
        hidden_size=values["hidden_size"],
        intermediate_size=values["mlp_dim"],
        num_hidden_layers=values["num_layers"],
        num_attention_heads=values["num_heads"],
        num_key_value_heads=values["num_kv_heads"],
        head_dim=values["head_dim"],
        max_position_embeddings=values["max_position_embeddings"],
        rope_parameters=rope,
        tie_word_embeddings=tie,
        rms_norm_eps=1e-6,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


def build_tiny_hf_model(family: str, *, seed: int = 0, **overrides: Any):
    """A random-weight ``*ForCausalLM`` torch model (eval mode, float32, eager attention)."""
    import torch
    import transformers

    config = tiny_hf_config(family, **overrides)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith("norm.weight"):
                param.copy_(1.0 + 0.2 * noise)
            elif name.endswith("bias"):
                param.copy_(0.2 * noise)
            else:
                param.copy_(noise / np.sqrt(param.shape[-1]))
    return model.eval()


def write_tiny_hf_model(
    path: str | Path, family: str = "qwen2", *, seed: int = 0, dtype: str = "float32", **overrides
) -> Path:
    """Saves a random tiny ``family`` model (``dtype`` float32 or bfloat16) to ``path``."""
    import torch

    model = build_tiny_hf_model(family, seed=seed, **overrides)
    if dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    path = Path(path)
    model.save_pretrained(path)
    return path


def hf_logits(model, tokens: np.ndarray, attention_mask: np.ndarray | None = None) -> np.ndarray:
    """``[B, S, V]`` float32 logits of a torch causal LM on ``[B, S]`` tokens."""
    import torch

    tokens = np.asarray(tokens)
    mask = np.ones_like(tokens, bool) if attention_mask is None else np.asarray(attention_mask)
    positions = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
    with torch.no_grad():
        out = model(
            input_ids=torch.from_numpy(tokens.astype(np.int64)),
            attention_mask=torch.from_numpy(mask.astype(np.int64)),
            position_ids=torch.from_numpy(positions.astype(np.int64)),
        )
    return out.logits.float().numpy()
