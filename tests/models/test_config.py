"""ModelConfig: presets, HF config conversion (v4 and v5 rope keys), counts, errors."""

import dataclasses

import pytest

from r1jax.models import ModelConfig, RopeScaling, flops_per_token, num_params
from tests.models.hf_fixtures import FAMILIES, build_tiny_hf_model, tiny_hf_config


def test_presets_have_the_documented_shapes():
    tiny = ModelConfig.preset("tiny")
    assert (tiny.vocab_size, tiny.hidden_size, tiny.num_layers) == (512, 128, 2)
    assert (tiny.num_heads, tiny.num_kv_heads, tiny.mlp_dim) == (4, 2, 384)
    small = ModelConfig.preset("small")
    assert (small.vocab_size, small.hidden_size, small.num_layers) == (8192, 512, 8)
    assert (small.num_heads, small.num_kv_heads, small.mlp_dim) == (8, 2, 1536)
    qwen = ModelConfig.preset("qwen05b")
    assert (qwen.vocab_size, qwen.hidden_size, qwen.num_layers, qwen.mlp_dim) == (
        151936,
        896,
        24,
        4864,
    )
    assert (qwen.num_heads, qwen.num_kv_heads, qwen.head_dim) == (14, 2, 64)
    assert qwen.tie_embeddings and qwen.qkv_bias and qwen.rope_theta == 1e6
    assert qwen.rms_norm_eps == 1e-6
    assert {c.architecture for c in (tiny, small, qwen)} == {"qwen2"}
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        ModelConfig.preset("huge")


@pytest.mark.parametrize(
    ("num_tokens", "multiple", "vocab"), [(443, 1, 443), (443, 2, 444), (443, 64, 448), (3, 1, 8)]
)
def test_a_from_scratch_vocab_is_the_tokenizer_rounded_up_to_the_multiple(
    num_tokens, multiple, vocab
):
    config = ModelConfig.from_scratch("small", num_tokens, vocab_multiple=multiple, dtype="float32")
    assert config == ModelConfig.preset("small", vocab_size=vocab, dtype="float32")
    with pytest.raises(ValueError, match="vocab_multiple=0"):
        ModelConfig.from_scratch("tiny", num_tokens, vocab_multiple=0)


def test_config_is_hashable_and_frozen():
    config = ModelConfig.preset("tiny", rope_scaling=RopeScaling("linear", factor=2.0))
    assert hash(config) == hash(ModelConfig.preset("tiny", rope_scaling=RopeScaling("linear", 2.0)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_layers = 3


def test_invalid_configs_are_rejected():
    with pytest.raises(ValueError, match="num_kv_heads"):
        ModelConfig.preset("tiny", num_kv_heads=3)
    with pytest.raises(ValueError, match="dtype"):
        ModelConfig.preset("tiny", dtype="float16")
    with pytest.raises(ValueError, match="unsupported rope_type 'dynamic'"):
        RopeScaling("dynamic", factor=2.0)
    with pytest.raises(ValueError, match="needs"):
        RopeScaling("llama3", factor=8.0)


@pytest.mark.parametrize("family", FAMILIES)
def test_hf_config_round_trip(family):
    hf = tiny_hf_config(family, num_heads=3, num_kv_heads=1).to_dict()
    config = ModelConfig.from_hf_config(hf)
    assert config.architecture == family
    assert (config.num_heads, config.num_kv_heads, config.head_dim) == (3, 1, 8)
    assert config.qkv_bias == (family == "qwen2") and config.qk_norm == (family == "qwen3")
    assert ModelConfig.from_hf_config(config.to_hf_config()) == config


def test_reads_transformers_v4_and_v5_rope_keys():
    v5 = {
        "model_type": "llama",
        "vocab_size": 64,
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": 2048,
        "rope_parameters": {
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    }
    v4 = {k: v for k, v in v5.items() if k != "rope_parameters"}
    v4["rope_theta"] = 500000.0
    v4["rope_scaling"] = {k: v for k, v in v5["rope_parameters"].items() if k != "rope_theta"}
    v4["rope_scaling"]["type"] = v4["rope_scaling"].pop("rope_type")
    assert ModelConfig.from_hf_config(v4) == ModelConfig.from_hf_config(v5)
    config = ModelConfig.from_hf_config(v4)
    assert config.rope_theta == 500000.0 and config.rope_scaling.factor == 32.0
    assert config.num_kv_heads == 4 and config.head_dim == 8 and not config.tie_embeddings
    yarn = {**v4, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}
    assert ModelConfig.from_hf_config(yarn).rope_scaling.original_max_position_embeddings == 2048


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "mistral"}, "unsupported architecture: model_type='mistral'"),
        ({"use_sliding_window": True}, "sliding"),
        ({"hidden_act": "gelu"}, "hidden_act"),
        ({"rope_parameters": {"rope_type": "longrope"}}, "longrope"),
        ({"partial_rotary_factor": 0.5}, "partial_rotary_factor"),
    ],
)
def test_unsupported_hf_configs_are_named(change, message):
    hf = {**tiny_hf_config("qwen2").to_dict(), **change}
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_hf_config(hf)


@pytest.mark.parametrize("family", ["qwen2", "qwen3"])
def test_num_params_matches_transformers(family):
    model = build_tiny_hf_model(family)
    config = ModelConfig.from_hf_config(model.config.to_dict())
    assert num_params(config) == sum(p.numel() for p in model.parameters())


def test_flops_per_token_counts_matmuls_and_attention():
    config = ModelConfig.preset("qwen05b")
    no_attention = flops_per_token(config, context_length=0)
    embedding = config.vocab_size * config.hidden_size
    norms = config.num_layers * 2 * config.hidden_size + config.hidden_size
    biases = config.num_layers * (config.num_heads + 2 * config.num_kv_heads) * config.head_dim
    # every matmul weight once (tied embedding used only as unembedding) times 2 FLOPs
    assert no_attention == 2 * (num_params(config) - norms - biases)
    assert num_params(config) - embedding > 0
    per_key = flops_per_token(config, 1) - no_attention
    assert per_key == 4 * config.num_layers * config.num_heads * config.head_dim
