"""Hugging Face checkpoints in and out: safetensors <-> the r1jax params tree.

Lives here: `load_pretrained` (``config.json`` + ``model.safetensors`` or a sharded
``model.safetensors.index.json``, every array placed straight into its target sharding by
reading only the slice each device needs), `save_pretrained` (a directory transformers loads
with ``AutoModelForCausalLM.from_pretrained``), `load_generation_config`, and the name / layout
map between HF tensors and r1jax params. Not here: tokenizers (`r1jax.tokenizer`), orbax
training checkpoints.

Layout map (HF ``nn.Linear`` weights are ``[out, in]``): ``q_proj.weight`` ``[H*Dh, D]`` ->
kernel ``[D, H, Dh]``; ``k_proj``/``v_proj`` ``[K*Dh, D]`` -> ``[D, K, Dh]``; ``o_proj.weight``
``[D, H*Dh]`` -> ``[H, Dh, D]``; ``gate_proj``/``up_proj`` ``[F, D]`` -> ``[D, F]``;
``down_proj`` ``[D, F]`` -> ``[F, D]``; ``lm_head.weight`` ``[V, D]`` -> ``[D, V]``; embedding,
norms and biases keep their shape (biases reshaped per head).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, SingleDeviceSharding
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from r1jax.models.config import ModelConfig
from r1jax.models.transformer import (
    Params,
    abstract_params,
    flatten_params,
    param_shardings,
    unflatten_params,
)
from r1jax.sharding import ShardingRules

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


@dataclasses.dataclass(frozen=True)
class _Layout:
    """An r1jax param is ``hf.reshape(flat(split)).transpose(perm)``.

    ``split`` gives, per HF dimension, the factors it is made of (outer to inner), e.g.
    ``((H, Dh), (D,))`` for ``q_proj.weight``; ``perm`` orders the flattened factors.
    """

    hf_name: str
    split: tuple[tuple[int, ...], ...]
    perm: tuple[int, ...]

    @property
    def hf_shape(self) -> tuple[int, ...]:
        return tuple(math.prod(group) for group in self.split)

    @property
    def shape(self) -> tuple[int, ...]:
        factors = [f for group in self.split for f in group]
        return tuple(factors[p] for p in self.perm)

    def read(self, tensor: Any, index: tuple[slice, ...]) -> np.ndarray:
        """Reads the block ``index`` (in r1jax layout) from a safetensors slice object."""
        factors = [f for group in self.split for f in group]
        factor_slices = [slice(None)] * len(factors)
        for dim, item in enumerate(index):
            factor_slices[self.perm[dim]] = item
        ranges = [s.indices(size)[:2] for s, size in zip(factor_slices, factors)]
        hf_index, block_shape, inner_slices = [], [], []
        first = 0
        for group in self.split:
            start, stop = ranges[first]
            inner = math.prod(group[1:])
            hf_index.append(slice(start * inner, stop * inner))
            block_shape.extend([stop - start, *group[1:]])
            inner_slices.append(slice(None))
            inner_slices.extend(slice(*ranges[j]) for j in range(first + 1, first + len(group)))
            first += len(group)
        block = np.asarray(tensor[tuple(hf_index)]).reshape(block_shape)
        return block[tuple(inner_slices)].transpose(self.perm)

    def to_hf(self, array: np.ndarray) -> np.ndarray:
        """The inverse map: an r1jax-layout array -> the HF tensor."""
        return np.ascontiguousarray(array.transpose(np.argsort(self.perm)).reshape(self.hf_shape))


def _layouts(config: ModelConfig) -> dict[tuple[str, ...], _Layout]:
    """Param path (keys into the params tree) -> its HF tensor and layout."""
    d, h, k, dh = config.hidden_size, config.num_heads, config.num_kv_heads, config.head_dim
    f, v = config.mlp_dim, config.vocab_size
    out = {
        ("embed", "embedding"): _Layout("model.embed_tokens.weight", ((v,), (d,)), (0, 1)),
        ("final_norm", "scale"): _Layout("model.norm.weight", ((d,),), (0,)),
    }
    if not config.tie_embeddings:
        out["lm_head", "kernel"] = _Layout("lm_head.weight", ((v,), (d,)), (1, 0))
    for i in range(config.num_layers):
        hf, me = f"model.layers.{i}.", f"layers_{i}"
        attn = hf + "self_attn."
        out[me, "attn_norm", "scale"] = _Layout(hf + "input_layernorm.weight", ((d,),), (0,))
        out[me, "mlp_norm", "scale"] = _Layout(
            hf + "post_attention_layernorm.weight", ((d,),), (0,)
        )
        for name, heads in (("q_proj", h), ("k_proj", k), ("v_proj", k)):
            out[me, "attn", name, "kernel"] = _Layout(
                f"{attn}{name}.weight", ((heads, dh), (d,)), (2, 0, 1)
            )
            if config.qkv_bias:
                out[me, "attn", name, "bias"] = _Layout(
                    f"{attn}{name}.bias", ((heads, dh),), (0, 1)
                )
        out[me, "attn", "o_proj", "kernel"] = _Layout(
            attn + "o_proj.weight", ((d,), (h, dh)), (1, 2, 0)
        )
        if config.qk_norm:
            out[me, "attn", "q_norm", "scale"] = _Layout(attn + "q_norm.weight", ((dh,),), (0,))
            out[me, "attn", "k_norm", "scale"] = _Layout(attn + "k_norm.weight", ((dh,),), (0,))
        for name in ("gate_proj", "up_proj"):
            out[me, "mlp", name, "kernel"] = _Layout(f"{hf}mlp.{name}.weight", ((f,), (d,)), (1, 0))
        out[me, "mlp", "down_proj", "kernel"] = _Layout(
            hf + "mlp.down_proj.weight", ((d,), (f,)), (1, 0)
        )
    return out


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"missing {path}")
    try:
        with path.open() as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def _weight_map(path: Path) -> dict[str, Path]:
    """HF tensor name -> the safetensors file holding it."""
    index_path = path / INDEX_FILE
    if index_path.is_file():
        weight_map = _read_json(index_path).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ValueError(f"{index_path} has no 'weight_map' object")
        return {name: path / file for name, file in weight_map.items()}
    single = path / SINGLE_FILE
    if not single.is_file():
        raise FileNotFoundError(f"no {SINGLE_FILE} or {INDEX_FILE} in {path}")
    with _open_safetensors(single) as handle:
        return dict.fromkeys(handle.keys(), single)


def _open_safetensors(file: Path):
    if not file.is_file():
        raise FileNotFoundError(f"missing weight file {file}")
    try:
        return safe_open(str(file), framework="numpy")
    except SafetensorError as err:
        raise ValueError(f"corrupt or truncated safetensors file {file}: {err}") from err


def load_pretrained(
    path: str | Path,
    *,
    dtype: str = "float32",
    param_dtype: str | None = None,
    mesh: Mesh | None = None,
    rules: ShardingRules | None = None,
) -> tuple[ModelConfig, Params]:
    """Loads an HF Qwen2/Qwen3/Llama checkpoint directory into ``(config, params)``.

    Each param is assembled with `jax.make_array_from_callback` in its target sharding
    (`param_shardings` on ``mesh``, or the default device); the callback reads only the
    block that device holds from the memory-mapped safetensors file, transposes it to the
    r1jax layout and casts it to ``dtype``.

    Args:
      path: a directory with ``config.json`` and ``model.safetensors`` or
        ``model.safetensors.index.json`` plus its shards.
      dtype: compute dtype (``float32`` or ``bfloat16``).
      param_dtype: the dtype params are stored (and trained) in; None means ``dtype``. Training
        keeps float32 master weights (``param_dtype="float32"``) whatever the checkpoint's
        dtype, so small updates (lr 1e-6) do not round away.
      mesh: the device mesh to place params on; single default device when None.
      rules: logical -> mesh axis rules.

    Returns:
      The `ModelConfig` (with ``dtype`` and ``param_dtype`` set) and params.

    Raises:
      FileNotFoundError: a missing directory, ``config.json`` or weight file (named).
      ValueError: corrupt/truncated safetensors (file named), a missing or unexpected tensor,
        a tensor whose shape does not match the config (name, file and both shapes given),
        a non-float tensor, or an unsupported architecture.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint directory {path} does not exist")
    config_file = path / "config.json"
    try:
        config = ModelConfig.from_hf_config(_read_json(config_file), dtype=dtype)
        if param_dtype is not None:
            config = dataclasses.replace(config, param_dtype=param_dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{config_file}: {err}") from err
    weight_map = _weight_map(path)
    layouts = _layouts(config)
    needed = {layout.hf_name for layout in layouts.values()}
    missing = sorted(needed - set(weight_map))
    if missing:
        raise ValueError(f"checkpoint {path} is missing tensors {missing[:5]} ({len(missing)})")
    ignorable = {"lm_head.weight"} if config.tie_embeddings else set()
    unexpected = sorted(
        name
        for name in set(weight_map) - needed - ignorable
        if not name.endswith("rotary_emb.inv_freq")
    )
    if unexpected:
        raise ValueError(
            f"checkpoint {path} has tensors r1jax does not use for {config.architecture}: "
            f"{unexpected[:5]} ({len(unexpected)})"
        )
    shardings = flatten_params(
        param_shardings(config, mesh, rules)
        if mesh is not None
        else jax.tree.map(lambda _: SingleDeviceSharding(jax.devices()[0]), abstract_params(config))
    )
    np_dtype = np.dtype(config.params_dtype)
    flat = {}
    with contextlib.ExitStack() as stack:
        handles = {}
        for param_path, layout in layouts.items():
            file = weight_map[layout.hf_name]
            if file not in handles:
                handles[file] = stack.enter_context(_open_safetensors(file))
            try:
                tensor = handles[file].get_slice(layout.hf_name)
            except SafetensorError as err:
                raise ValueError(f"cannot read tensor {layout.hf_name} from {file}: {err}") from err
            found_shape, found_dtype = tuple(tensor.get_shape()), tensor.get_dtype()
            if found_shape != layout.hf_shape:
                raise ValueError(
                    f"tensor {layout.hf_name} in {file} has shape {found_shape}, but the config "
                    f"needs {layout.hf_shape}"
                )
            if found_dtype not in FLOAT_DTYPES:
                raise ValueError(
                    f"tensor {layout.hf_name} in {file} has dtype {found_dtype}; need one of "
                    f"{FLOAT_DTYPES}"
                )
            flat[param_path] = _place(tensor, layout, shardings[param_path], np_dtype)
    return config, unflatten_params(flat)


def _place(tensor: Any, layout: _Layout, sharding: jax.sharding.Sharding, dtype) -> jax.Array:
    """Builds one sharded array, reading each distinct block once."""
    blocks: dict[tuple, np.ndarray] = {}

    def read(index: tuple[slice, ...]) -> np.ndarray:
        key = tuple(s.indices(n)[:2] for s, n in zip(index, layout.shape))
        if key not in blocks:
            blocks[key] = layout.read(tensor, index).astype(dtype)
        return blocks[key]

    return jax.make_array_from_callback(layout.shape, sharding, read)


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    """Token ids from ``generation_config.json`` (falling back to ``config.json``).

    Attributes:
      eos_token_ids: every id that ends a completion (the HF int-or-list form, as a tuple).
      bos_token_id: the begin-of-sequence id, or None.
      pad_token_id: the pad id, or None.
      extra: the remaining keys (e.g. default ``temperature``, ``top_p``), unchanged.
    """

    eos_token_ids: tuple[int, ...] = ()
    bos_token_id: int | None = None
    pad_token_id: int | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``generation_config.json`` dict (a single eos id is written as an int)."""
        out = dict(self.extra)
        if self.bos_token_id is not None:
            out["bos_token_id"] = self.bos_token_id
        if self.eos_token_ids:
            eos = list(self.eos_token_ids)
            out["eos_token_id"] = eos[0] if len(eos) == 1 else eos
        if self.pad_token_id is not None:
            out["pad_token_id"] = self.pad_token_id
        return out


def _token_id(value: Any, key: str, file: Path) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{file}: {key} must be a non-negative int, got {value!r}")
    return value


def load_generation_config(path: str | Path) -> GenerationConfig:
    """Reads eos / bos / pad ids of a checkpoint directory.

    Uses ``generation_config.json`` when present, else the same keys of ``config.json``.
    ``eos_token_id`` may be an int or a list of ints.

    Raises:
      FileNotFoundError: if neither file exists.
      ValueError: if an id is not a non-negative int (file and key named).
    """
    path = Path(path)
    file = path / "generation_config.json"
    if not file.is_file():
        file = path / "config.json"
    data = _read_json(file)
    eos = data.get("eos_token_id")
    eos_list = eos if isinstance(eos, list) else [] if eos is None else [eos]
    eos_ids = tuple(_token_id(value, "eos_token_id", file) for value in eos_list)
    keys = ("eos_token_id", "bos_token_id", "pad_token_id")
    return GenerationConfig(
        eos_token_ids=eos_ids,
        bos_token_id=_token_id(data.get("bos_token_id"), "bos_token_id", file),
        pad_token_id=_token_id(data.get("pad_token_id"), "pad_token_id", file),
        extra={k: v for k, v in data.items() if k not in keys},
    )


def save_pretrained(
    path: str | Path,
    config: ModelConfig,
    params: Params,
    tokenizer: Any = None,
    *,
    generation_config: GenerationConfig | Mapping[str, Any] | None = None,
    max_shard_bytes: int = 5 * 2**30,
) -> None:
    """Writes an HF checkpoint directory that transformers loads without warnings.

    Writes ``config.json``, the weights in ``config.param_dtype`` as ``model.safetensors``
    (or ``model-0000i-of-0000n.safetensors`` shards of at most ``max_shard_bytes`` plus
    ``model.safetensors.index.json``), ``generation_config.json`` when given, and the
    tokenizer files via ``tokenizer.save_pretrained(path)`` when a tokenizer is given.
    Loading the result with `load_pretrained` gives bit-identical params.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    flat = flatten_params(params)
    layouts = _layouts(config)
    if set(flat) != set(layouts):
        raise ValueError(
            "params do not match the config: "
            f"missing {sorted(set(layouts) - set(flat))[:5]}, "
            f"unexpected {sorted(set(flat) - set(layouts))[:5]}"
        )
    shards: list[dict[str, np.ndarray]] = [{}]
    shard_bytes = 0
    for param_path, layout in layouts.items():
        array = np.asarray(jax.device_get(flat[param_path]))
        if array.shape != layout.shape:
            raise ValueError(
                f"param {'/'.join(param_path)} has shape {array.shape}, need {layout.shape}"
            )
        tensor = layout.to_hf(array.astype(config.params_dtype))
        if shards[-1] and shard_bytes + tensor.nbytes > max_shard_bytes:
            shards.append({})
            shard_bytes = 0
        shards[-1][layout.hf_name] = tensor
        shard_bytes += tensor.nbytes
    _remove_stale_weights(path)
    if len(shards) == 1:
        save_file(shards[0], str(path / SINGLE_FILE), metadata={"format": "pt"})
    else:
        weight_map, total = {}, 0
        for i, shard in enumerate(shards):
            name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, str(path / name), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(shard, name))
            total += sum(t.nbytes for t in shard.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        _write_json(path / INDEX_FILE, index)

    hf_config = config.to_hf_config()
    if generation_config is not None:
        if isinstance(generation_config, GenerationConfig):
            generation_config = generation_config.to_dict()
        generation_config = dict(generation_config)
        for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
            if key in generation_config:
                hf_config[key] = generation_config[key]
        _write_json(path / "generation_config.json", generation_config)
    _write_json(path / "config.json", hf_config)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)


def _remove_stale_weights(path: Path) -> None:
    """Deletes weight files of an earlier save so a reload cannot mix two checkpoints."""
    stale: Sequence[Path] = [
        path / SINGLE_FILE,
        path / INDEX_FILE,
        *path.glob("model-*-of-*.safetensors"),
    ]
    for file in stale:
        if file.is_file():
            file.unlink()


def _write_json(file: Path, data: Mapping[str, Any]) -> None:
    with file.open("w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
