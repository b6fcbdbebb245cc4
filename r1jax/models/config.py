"""Model configuration: `ModelConfig`, `RopeScaling`, presets, HF config conversion, counts.

Lives here: the frozen, hashable `ModelConfig` (a static jit argument), its presets
(``tiny``, ``small``, ``qwen05b``), conversion from and to Hugging Face ``config.json``
dictionaries (both the transformers-v4 ``rope_theta``/``rope_scaling`` keys and the v5
``rope_parameters`` key are read), and the parameter / FLOP counts used by benchmarks and MFU.
Not here: the network itself (`r1jax.models.transformer`), the RoPE frequencies
(`r1jax.models.rope`) and reading weights (`r1jax.models.hf`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

ARCHITECTURES = ("qwen2", "qwen3", "llama")
HF_ARCHITECTURE_NAMES = {
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "llama": "LlamaForCausalLM",
}
DTYPES = ("float32", "bfloat16")
ATTENTION = ("auto", "xla", "cudnn", "splash", "dot_product")
ROPE_TYPES = ("linear", "llama3", "yarn")


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """RoPE frequency scaling (``rope_type`` in ``linear``, ``llama3``, ``yarn``); hashable.

    Field names follow the Hugging Face ``rope_parameters`` keys. Fields a type does not use
    stay None. ``truncate`` is YaRN's rounding of the correction range (default True).
    """

    rope_type: str
    factor: float | None = None
    low_freq_factor: float | None = None
    high_freq_factor: float | None = None
    original_max_position_embeddings: int | None = None
    beta_fast: float | None = None
    beta_slow: float | None = None
    attention_factor: float | None = None
    mscale: float | None = None
    mscale_all_dim: float | None = None
    truncate: bool | None = None

    def __post_init__(self):
        if self.rope_type not in ROPE_TYPES:
            raise ValueError(
                f"unsupported rope_type {self.rope_type!r}; supported: default, {', '.join(ROPE_TYPES)}"
            )
        required = {
            "linear": ("factor",),
            "llama3": (
                "factor",
                "low_freq_factor",
                "high_freq_factor",
                "original_max_position_embeddings",
            ),
            "yarn": ("original_max_position_embeddings",),
        }[self.rope_type]
        missing = [name for name in required if getattr(self, name) is None]
        if missing:
            raise ValueError(f"rope_type {self.rope_type!r} needs {missing}")

    @classmethod
    def from_dict(
        cls, params: Mapping[str, Any], *, max_position_embeddings: int | None = None
    ) -> RopeScaling | None:
        """Reads an HF ``rope_scaling`` / ``rope_parameters`` dict; None for ``default``.

        ``original_max_position_embeddings`` defaults to ``max_position_embeddings`` for the
        types that need it, as transformers does.
        """
        rope_type = params.get("rope_type", params.get("type", "default"))
        if rope_type == "default":
            return None
        names = {f.name for f in dataclasses.fields(cls)} - {"rope_type"}
        values = {name: params[name] for name in names if params.get(name) is not None}
        if rope_type in ("llama3", "yarn") and max_position_embeddings is not None:
            values.setdefault("original_max_position_embeddings", max_position_embeddings)
        return cls(rope_type=rope_type, **values)

    def to_dict(self) -> dict[str, Any]:
        """The HF ``rope_parameters`` entries (without ``rope_theta``), None fields left out."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


_PRESET_COMMON = dict(
    rms_norm_eps=1e-6,
    rope_theta=1_000_000.0,
    qkv_bias=True,
    tie_embeddings=True,
    architecture="qwen2",
)

MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        vocab_size=512,
        hidden_size=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=32,
        mlp_dim=384,
        max_position_embeddings=2048,
    ),
    "small": dict(
        vocab_size=8192,
        hidden_size=512,
        num_layers=8,
        num_heads=8,
        num_kv_heads=2,
        head_dim=64,
        mlp_dim=1536,
        max_position_embeddings=4096,
    ),
    "qwen05b": dict(
        vocab_size=151936,
        hidden_size=896,
        num_layers=24,
        num_heads=14,
        num_kv_heads=2,
        head_dim=64,
        mlp_dim=4864,
        max_position_embeddings=32768,
    ),
    "qwen15b": dict(  # the Qwen2.5-1.5B shape
        vocab_size=151936,
        hidden_size=1536,
        num_layers=28,
        num_heads=12,
        num_kv_heads=2,
        head_dim=128,
        mlp_dim=8960,
        max_position_embeddings=32768,
    ),
}
"""Preset name -> `ModelConfig` fields: the benchmark shapes (``tiny``, ``small``) and the
Qwen2.5-0.5B and 1.5B shapes (``qwen05b``, ``qwen15b``), Qwen2-style with tied embeddings."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape and numerics of a decoder-only transformer (Qwen2/Qwen2.5, Qwen3, Llama 3.x).

    Frozen and hashable, so it can be a static jit argument. ``dtype`` is the compute dtype
    of matmuls and activations; ``param_dtype`` the dtype params are created in. Norms,
    softmax and logits always run in float32. ``attention`` picks the attention of a forward
    without a cache and of a prefill: ``auto`` (cuDNN on GPU, splash on TPU, ``xla`` elsewhere),
    ``xla`` (masked softmax), ``cudnn``, ``splash`` or ``dot_product`` (the fused paths' layout
    through `jax.nn.dot_product_attention`'s XLA implementation); see
    `r1jax.models.layers.causal_attention`. Decode steps always use the XLA path.
    """

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    mlp_dim: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling | None = None
    qkv_bias: bool = False
    qk_norm: bool = False
    tie_embeddings: bool = False
    max_position_embeddings: int = 4096
    architecture: str = "qwen2"
    dtype: str = "float32"
    param_dtype: str = "float32"
    attention: str = "auto"

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"unsupported architecture {self.architecture!r}; supported: {ARCHITECTURES}"
            )
        if self.attention not in ATTENTION:
            raise ValueError(f"attention must be one of {ATTENTION}, got {self.attention!r}")
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in DTYPES:
                raise ValueError(f"{name} must be one of {DTYPES}, got {getattr(self, name)!r}")
        sizes = (
            "vocab_size",
            "hidden_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "head_dim",
            "mlp_dim",
        )
        for name in sizes:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}"
            )
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even for RoPE, got {self.head_dim}")
        if self.rope_scaling is not None and not isinstance(self.rope_scaling, RopeScaling):
            raise ValueError(
                f"rope_scaling must be a RopeScaling or None, got {type(self.rope_scaling)}"
            )

    @property
    def compute_dtype(self) -> jnp.dtype:
        """``dtype`` as a numpy/jax dtype."""
        return jnp.dtype(self.dtype)

    @property
    def params_dtype(self) -> jnp.dtype:
        """``param_dtype`` as a numpy/jax dtype."""
        return jnp.dtype(self.param_dtype)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """A named configuration (``tiny``, ``small``, ``qwen05b``, ``qwen15b``), overridable.

        Example:
          >>> ModelConfig.preset("tiny").hidden_size
          128
          >>> ModelConfig.preset("qwen05b", dtype="bfloat16").num_layers
          24
        """
        if name not in MODEL_PRESETS:
            raise ValueError(f"unknown model preset {name!r}; known: {sorted(MODEL_PRESETS)}")
        return cls(**{**_PRESET_COMMON, **MODEL_PRESETS[name], **overrides})

    @classmethod
    def from_scratch(
        cls, name: str, num_tokens: int, *, vocab_multiple: int = 1, **overrides: Any
    ) -> ModelConfig:
        """Preset ``name`` sized for a tokenizer of ``num_tokens`` tokens, to train from scratch.

        The vocab is rounded up to a multiple of ``vocab_multiple`` so that the embedding rows
        split evenly over the mesh axes that shard them (as Qwen2.5 pads 151,665 tokens to
        151,936 rows). The extra rows are never targets, so training drives their logits down,
        and `r1jax.tokenizer.Tokenizer.decode` decodes them to nothing.

        Example:
          >>> ModelConfig.from_scratch("tiny", 443, vocab_multiple=64).vocab_size
          448
        """
        if vocab_multiple < 1:
            raise ValueError(f"vocab_multiple={vocab_multiple}: must be >= 1")
        vocab_size = -(-max(num_tokens, 8) // vocab_multiple) * vocab_multiple
        return cls.preset(name, vocab_size=vocab_size, **overrides)

    @classmethod
    def from_hf_config(
        cls, hf_config: Mapping[str, Any], *, dtype: str = "float32", param_dtype: str | None = None
    ) -> ModelConfig:
        """Reads a Hugging Face ``config.json`` dict (transformers v4 or v5 rope keys).

        Raises:
          ValueError: for an unsupported ``model_type`` (named in the message) or a feature
            r1jax does not implement (sliding windows, output-projection biases, partial
            rotary, activations other than SiLU, unknown rope types).
        """
        model_type = hf_config.get("model_type")
        if model_type not in ARCHITECTURES:
            raise ValueError(
                f"unsupported architecture: model_type={model_type!r} "
                f"(architectures={hf_config.get('architectures')}); supported: {ARCHITECTURES}"
            )
        missing = [
            key
            for key in (
                "vocab_size",
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "intermediate_size",
            )
            if key not in hf_config
        ]
        if missing:
            raise ValueError(f"config is missing required keys {missing}")
        if hf_config.get("hidden_act", "silu") not in ("silu", "swish"):
            raise ValueError(f"unsupported hidden_act {hf_config['hidden_act']!r}; need silu")
        if hf_config.get("use_sliding_window"):
            raise ValueError("unsupported: use_sliding_window=true (sliding-window attention)")
        layer_types = set(hf_config.get("layer_types") or ["full_attention"])
        if layer_types != {"full_attention"}:
            raise ValueError(f"unsupported layer_types {sorted(layer_types)}; need full_attention")
        if model_type in ("qwen3", "llama") and hf_config.get("attention_bias"):
            raise ValueError(f"unsupported: attention_bias=true for {model_type} (o_proj bias)")
        if hf_config.get("mlp_bias"):
            raise ValueError("unsupported: mlp_bias=true")

        num_heads = hf_config["num_attention_heads"]
        max_positions = hf_config.get("max_position_embeddings", 4096)
        rope_params = hf_config.get("rope_parameters") or hf_config.get("rope_scaling") or {}
        if any(isinstance(v, Mapping) for v in rope_params.values()):
            raise ValueError("unsupported: per-layer-type rope_parameters")
        rope_theta = rope_params.get("rope_theta", hf_config.get("rope_theta", 10000.0))
        partial = rope_params.get("partial_rotary_factor", hf_config.get("partial_rotary_factor"))
        if partial not in (None, 1, 1.0):
            raise ValueError(f"unsupported partial_rotary_factor={partial}")
        return cls(
            vocab_size=hf_config["vocab_size"],
            hidden_size=hf_config["hidden_size"],
            num_layers=hf_config["num_hidden_layers"],
            num_heads=num_heads,
            num_kv_heads=hf_config.get("num_key_value_heads") or num_heads,
            head_dim=hf_config.get("head_dim") or hf_config["hidden_size"] // num_heads,
            mlp_dim=hf_config["intermediate_size"],
            rms_norm_eps=float(hf_config.get("rms_norm_eps", 1e-6)),
            rope_theta=float(rope_theta),
            rope_scaling=RopeScaling.from_dict(rope_params, max_position_embeddings=max_positions),
            qkv_bias=model_type == "qwen2",
            qk_norm=model_type == "qwen3",
            tie_embeddings=bool(hf_config.get("tie_word_embeddings", False)),
            max_position_embeddings=max_positions,
            architecture=model_type,
            dtype=dtype,
            param_dtype=param_dtype or dtype,
        )

    def to_hf_config(self) -> dict[str, Any]:
        """The Hugging Face ``config.json`` dict for this config (transformers v5 layout).

        Raises:
          ValueError: if ``qkv_bias`` / ``qk_norm`` do not match what the architecture
            implies in transformers (Qwen2: bias, no norm; Qwen3: norm, no bias; Llama: neither).
        """
        expected = {"qwen2": (True, False), "qwen3": (False, True), "llama": (False, False)}
        if (self.qkv_bias, self.qk_norm) != expected[self.architecture]:
            raise ValueError(
                f"architecture {self.architecture!r} in transformers has (qkv_bias, qk_norm) = "
                f"{expected[self.architecture]}, config has {(self.qkv_bias, self.qk_norm)}"
            )
        rope = {"rope_theta": self.rope_theta, "rope_type": "default"}
        if self.rope_scaling is not None:
            rope.update(self.rope_scaling.to_dict())
        hf = {
            "architectures": [HF_ARCHITECTURE_NAMES[self.architecture]],
            "model_type": self.architecture,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.mlp_dim,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_parameters": rope,
            "tie_word_embeddings": self.tie_embeddings,
            "attention_dropout": 0.0,
            "initializer_range": 0.02,
            "use_cache": True,
            "dtype": self.param_dtype,
        }
        if self.architecture in ("qwen2", "qwen3"):
            hf["use_sliding_window"] = False
            hf["sliding_window"] = None
        if self.architecture in ("qwen3", "llama"):
            hf["attention_bias"] = False
        if self.architecture == "llama":
            hf["mlp_bias"] = False
        return hf


def num_params(config: ModelConfig) -> int:
    """Number of parameters (the embedding counted once when tied).

    Example:
      >>> num_params(ModelConfig.preset("qwen05b"))
      494032768
    """
    d, h, k, dh, f, v = (
        config.hidden_size,
        config.num_heads,
        config.num_kv_heads,
        config.head_dim,
        config.mlp_dim,
        config.vocab_size,
    )
    attention = d * h * dh + 2 * d * k * dh + h * dh * d
    if config.qkv_bias:
        attention += h * dh + 2 * k * dh
    if config.qk_norm:
        attention += 2 * dh
    per_layer = attention + 3 * d * f + 2 * d
    embeddings = v * d * (1 if config.tie_embeddings else 2)
    return embeddings + config.num_layers * per_layer + d


def flops_per_token(config: ModelConfig, context_length: int) -> int:
    """Forward matmul FLOPs for one token that attends over ``context_length`` keys.

    Counts 2 FLOPs per multiply-add of every projection, the MLP, the unembedding, and the
    attention scores and weighted values (``4 * L * H * Dh * context_length``). Embedding
    lookups, norms, softmax and biases are left out. A causal pass over ``S`` tokens averages
    ``context_length = (S + 1) / 2``; a training step costs about three times the forward.

    Example:
      >>> flops_per_token(ModelConfig.preset("tiny"), context_length=0)
      917504
      >>> flops_per_token(ModelConfig.preset("tiny"), context_length=100)
      1019904
    """
    d, h, k, dh, f, v = (
        config.hidden_size,
        config.num_heads,
        config.num_kv_heads,
        config.head_dim,
        config.mlp_dim,
        config.vocab_size,
    )
    per_layer = 2 * (d * h * dh + 2 * d * k * dh + h * dh * d + 3 * d * f)
    attention = 4 * h * dh * context_length
    return config.num_layers * (per_layer + attention) + 2 * d * v
