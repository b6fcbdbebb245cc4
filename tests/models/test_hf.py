"""Hugging Face interop: logits parity with transformers, save/load round trips, named errors."""

import json
import logging
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.models import (
    GenerationConfig,
    ModelConfig,
    forward,
    init_params,
    load_generation_config,
    load_pretrained,
    save_pretrained,
)
from tests.models.hf_fixtures import build_tiny_hf_model, hf_logits, write_tiny_hf_model

pytestmark = pytest.mark.torch_reference

LLAMA3_ROPE = dict(
    rope_type="llama3",
    factor=8.0,
    low_freq_factor=1.0,
    high_freq_factor=4.0,
    original_max_position_embeddings=16,
)
YARN_ROPE = dict(rope_type="yarn", factor=8.0, original_max_position_embeddings=32)

CASES = {
    "qwen2_tied_6h_3kv": ("qwen2", {}),
    "qwen3_untied_3h_1kv": ("qwen3", dict(num_heads=3, num_kv_heads=1, head_dim=16)),
    "llama3_rope_4h_2kv": ("llama", dict(num_heads=4, num_kv_heads=2, rope_scaling=LLAMA3_ROPE)),
    "llama_yarn_tied": ("llama", dict(tie_embeddings=True, rope_scaling=YARN_ROPE)),
    "qwen2_linear_untied": (
        "qwen2",
        dict(tie_embeddings=False, rope_scaling=dict(rope_type="linear", factor=2.0)),
    ),
}

_jit_forward = jax.jit(forward, static_argnames=("config",))


def _batch(seed=0, batch=3, length=24, vocab=128):
    """Tokens with mixed left padding: row 0 full, row 1 pads 5, row 2 pads 11."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, vocab, (batch, length)).astype(np.int32)
    mask = np.ones((batch, length), bool)
    for row, pads in enumerate([0, 5, 11][:batch]):
        mask[row, :pads] = False
        tokens[row, :pads] = 0
    positions = np.clip(np.cumsum(mask, axis=1) - 1, 0, None).astype(np.int32)
    return tokens, positions, mask


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Case name -> (torch model, checkpoint dir) for every case in `CASES`."""
    root = tmp_path_factory.mktemp("hf")
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (family, overrides) in CASES.items():
            out[name] = (
                build_tiny_hf_model(family, seed=1, **overrides),
                write_tiny_hf_model(root / name, family, seed=1, **overrides),
            )
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_logits_match_transformers_on_left_padded_batch(written, case):
    model, path = written[case]
    config, params = load_pretrained(path)
    assert config.architecture == CASES[case][0]
    tokens, positions, mask = _batch()
    expected = hf_logits(model, tokens, mask)
    logits, cache = _jit_forward(params, tokens, positions, config, attention_mask=mask)
    assert cache is None
    assert logits.dtype == jnp.float32
    logits = np.asarray(logits)
    assert np.isfinite(logits).all()
    rel = np.abs(logits - expected)[mask].max() / np.abs(expected[mask]).max()
    assert rel <= 1e-4, rel


def test_left_padding_does_not_change_real_logits(written):
    _, path = written["qwen2_tied_6h_3kv"]
    config, params = load_pretrained(path)
    tokens, positions, mask = _batch()
    padded, _ = _jit_forward(params, tokens, positions, config, attention_mask=mask)
    row = tokens[2:3, 11:]
    alone, _ = _jit_forward(params, row, np.arange(row.shape[1])[None], config)
    np.testing.assert_allclose(padded[2, 11:], alone[0], atol=1e-5, rtol=1e-5)


def test_load_reads_config_fields(written):
    config, _ = load_pretrained(written["llama3_rope_4h_2kv"][1], dtype="bfloat16")
    assert (config.num_heads, config.num_kv_heads, config.head_dim) == (4, 2, 8)
    assert config.rope_scaling.rope_type == "llama3"
    assert not config.tie_embeddings and not config.qkv_bias and not config.qk_norm
    assert config.dtype == config.param_dtype == "bfloat16"


def test_bfloat16_load_gives_float32_logits_close_to_float32(written):
    path = written["qwen3_untied_3h_1kv"][1]
    config, params = load_pretrained(path, dtype="bfloat16")
    assert params["layers_0"]["attn"]["q_proj"]["kernel"].dtype == jnp.bfloat16
    tokens, positions, mask = _batch()
    logits, _ = _jit_forward(params, tokens, positions, config, attention_mask=mask)
    assert logits.dtype == jnp.float32
    config32, params32 = load_pretrained(path)
    reference, _ = _jit_forward(params32, tokens, positions, config32, attention_mask=mask)
    rel = np.abs(np.asarray(logits - reference))[mask].max() / np.abs(reference).max()
    assert rel < 0.05, rel


@pytest.mark.parametrize("param_dtype", ["float32", "bfloat16"])
def test_save_load_round_trip_is_bit_exact_with_shards(tmp_path, param_dtype):
    config = ModelConfig.preset("tiny", dtype=param_dtype, param_dtype=param_dtype)
    params = init_params(config, jax.random.key(3))
    save_pretrained(tmp_path, config, params, max_shard_bytes=200_000)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    loaded_config, loaded = load_pretrained(tmp_path, dtype=param_dtype)
    assert loaded_config == config
    flat, tree = jax.tree.flatten(params)
    loaded_flat, loaded_tree = jax.tree.flatten(loaded)
    assert tree == loaded_tree
    for a, b in zip(flat, loaded_flat):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_transformers_loads_saved_checkpoint_without_warnings(written, tmp_path):
    import transformers

    source = written["qwen3_untied_3h_1kv"][1]
    config, params = load_pretrained(source)
    generation = load_generation_config(source)
    save_pretrained(tmp_path, config, params, generation_config=generation)

    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = transformers.AutoModelForCausalLM.from_pretrained(
                tmp_path, attn_implementation="eager"
            )
    finally:
        logger.removeHandler(handler)
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in records] == []
    tokens, positions, mask = _batch()
    expected = hf_logits(model.eval(), tokens, mask)
    logits, _ = _jit_forward(params, tokens, positions, config, attention_mask=mask)
    rel = np.abs(np.asarray(logits) - expected)[mask].max() / np.abs(expected[mask]).max()
    assert rel <= 1e-4
    assert load_generation_config(tmp_path) == generation


def test_save_calls_tokenizer_save_pretrained(tmp_path):
    class FakeTokenizer:
        def save_pretrained(self, path):
            (path / "tokenizer.json").write_text("{}")

    config = ModelConfig.preset("tiny")
    save_pretrained(tmp_path, config, init_params(config, jax.random.key(0)), FakeTokenizer())
    assert (tmp_path / "tokenizer.json").is_file()
    assert (tmp_path / "model.safetensors").is_file()
    assert not (tmp_path / "generation_config.json").exists()


def test_generation_config_accepts_int_and_list_eos(tmp_path):
    (tmp_path / "generation_config.json").write_text(
        json.dumps({"eos_token_id": [2, 7], "bos_token_id": 1, "temperature": 0.7})
    )
    generation = load_generation_config(tmp_path)
    assert generation == GenerationConfig((2, 7), 1, None, {"temperature": 0.7})
    (tmp_path / "generation_config.json").unlink()
    (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": 5, "pad_token_id": 0}))
    assert load_generation_config(tmp_path).eos_token_ids == (5,)
    (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": "x"}))
    with pytest.raises(ValueError, match=r"config.json: eos_token_id"):
        load_generation_config(tmp_path)


def _copy(src, dst):
    dst.mkdir()
    for file in src.iterdir():
        (dst / file.name).write_bytes(file.read_bytes())
    return dst


def test_missing_files_are_named(written, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained(tmp_path / "nowhere")
    path = _copy(written["qwen2_tied_6h_3kv"][1], tmp_path / "m")
    (path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors"):
        load_pretrained(path)
    (path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_pretrained(path)


def test_truncated_safetensors_is_named(written, tmp_path):
    path = _copy(written["qwen2_tied_6h_3kv"][1], tmp_path / "m")
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(ValueError, match=r"truncated safetensors file .*model.safetensors"):
        load_pretrained(path)


def test_shape_mismatch_and_missing_tensor_are_named(written, tmp_path):
    path = _copy(written["qwen2_tied_6h_3kv"][1], tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "intermediate_size": 64}))
    with pytest.raises(ValueError, match=r"model.layers.0.mlp.\w+_proj.weight .* shape"):
        load_pretrained(path)
    (path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    with pytest.raises(ValueError, match=r"missing tensors .*model.layers.2"):
        load_pretrained(path)
    (path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 1}))
    with pytest.raises(ValueError, match=r"does not use .*model.layers.1"):
        load_pretrained(path)


def test_sharded_checkpoint_errors_name_the_shard(tmp_path):
    config = ModelConfig.preset("tiny")
    save_pretrained(tmp_path, config, init_params(config, jax.random.key(0)), max_shard_bytes=2**18)
    index_file = tmp_path / "model.safetensors.index.json"
    index = json.loads(index_file.read_text())
    name = "model.layers.1.mlp.up_proj.weight"
    first_shard = index["weight_map"]["model.embed_tokens.weight"]
    assert index["weight_map"][name] != first_shard
    index["weight_map"][name] = first_shard
    index_file.write_text(json.dumps(index))
    with pytest.raises(ValueError, match=rf"{name} from .*{first_shard}"):
        load_pretrained(tmp_path)
    (tmp_path / first_shard).unlink()
    with pytest.raises(FileNotFoundError, match=first_shard):
        load_pretrained(tmp_path)


def test_unsupported_architecture_is_named(written, tmp_path):
    path = _copy(written["qwen2_tied_6h_3kv"][1], tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    config["model_type"] = "gpt2"
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config\.json: unsupported architecture.*gpt2"):
        load_pretrained(path)
