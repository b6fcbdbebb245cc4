"""Low-rank adapters (LoRA) as transforms of the params pytree.

LoRA (Hu et al., arXiv:2106.09685 §4.1) freezes a kernel ``W`` and trains ``A`` and ``B`` of
rank ``r``; the projection becomes ``x W + (alpha / r) x A B``. ``A`` starts random and ``B``
at zero, so the adapted model equals the base at step 0.

In r1jax the adapters are a second, small params pytree next to the base's: for each target
projection ``layers_i/{attn,mlp}/<name>`` an entry ``{"lora_a": [*in, r], "lora_b": [r, *out]}``
(the kernel's input dims, then the rank; the rank, then its output dims). Three pure functions
turn ``(base, adapters)`` into what a forward needs:

- `combine`: the base tree with the adapter leaves added to each target projection (``lora_b``
  pre-scaled by ``alpha / r``, plus the dropout leaves in a training forward). No array is
  copied; `r1jax.models.layers.Projection` adds the low-rank term. The learner uses this: the
  gradient reaches only ``A`` and ``B``, and no merged copy or full-size weight gradient exists.
- `merge`: ``W + (alpha / r) A B`` for each target, as one full params tree (the sampler's
  weights and the export).
- the base itself, adapters off: the frozen reference.

Lives here: `LoraConfig`, the adapters' shapes and shardings, `init_adapters`, `combine`,
`merge`, `cast_base` (with `quantize_int8` for an int8 base), `num_adapter_params`. Not here: the low-rank term of a forward
(`r1jax.models.layers.lora_delta`), who trains what (`r1jax.learner`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from r1jax.models.config import DTYPES, ModelConfig
from r1jax.models.layers import (
    KERNEL_SCALE,
    LORA_A,
    LORA_B,
    LORA_DROPOUT_KEY,
    LORA_DROPOUT_RATE,
    dequantize,
)
from r1jax.models.transformer import abstract_params, flatten_params, unflatten_params

BASE_DTYPES = ("", *DTYPES, "int8")
"""Values of `LoraConfig.base_dtype` (``""``: the model's ``param_dtype``)."""

INT8_EMBEDDING_DTYPE = "bfloat16"
"""Dtype of the embeddings in an int8 base (only the projection kernels are quantized)."""

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The projections an adapter can target, as r1jax's params name them."""


@dataclasses.dataclass(frozen=True)
class LoraConfig:
    """Adapter settings (frozen and hashable: part of the learner's static config).

    Attributes:
      rank: ``r``, at least 1 (a run without adapters has no `LoraConfig`).
      alpha: the adapter's output is scaled by ``alpha / rank``.
      targets: projection names of `TARGETS` that get an adapter (in every layer).
      dropout: dropout rate on the adapter's input in the learner's training forward; the
        sampler, the reference and the old-policy log-probs run without it.
      base_dtype: dtype the frozen base is stored in (``float32``, ``bfloat16`` or ``int8``);
        ``""`` keeps the model's ``param_dtype``. ``int8`` stores every projection kernel as
        int8 with a float32 scale per output channel (`quantize_int8`) and the embeddings in
        bfloat16. The adapters and their optimizer state keep ``param_dtype``.
      merge_for_sampling: the sampler decodes with merged weights ``W + (alpha / r) A B``
        (True) or with the low-rank term in every step (False).
      reference_adapters: the reference keeps its own copy of the adapters (R1's reference
        reset, or a reference taken after a warm start that trained the adapters); False: the
        reference is the base with the adapters off, and holds no arrays.
      seed: seed of ``A``'s init and of the dropout masks.
    """

    rank: int
    alpha: float = 16.0
    targets: tuple[str, ...] = TARGETS
    dropout: float = 0.0
    base_dtype: str = ""
    merge_for_sampling: bool = True
    reference_adapters: bool = False
    seed: int = 0

    def __post_init__(self):
        if self.rank < 1:
            raise ValueError(f"lora.rank must be >= 1 (0 turns LoRA off), got {self.rank}")
        unknown = [name for name in self.targets if name not in TARGETS]
        if unknown or not self.targets:
            raise ValueError(
                f"lora.targets={','.join(self.targets)!r}: unknown {unknown or 'empty'}; "
                f"choose from {', '.join(TARGETS)}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        if self.base_dtype not in BASE_DTYPES:
            raise ValueError(
                f"lora.base_dtype={self.base_dtype!r}: one of {', '.join(map(repr, BASE_DTYPES))}"
            )

    @property
    def scale(self) -> float:
        """``alpha / rank``."""
        return self.alpha / self.rank


def parse_targets(text: str | tuple[str, ...]) -> tuple[str, ...]:
    """``"q_proj,v_proj"`` (or a tuple of names) -> ``("q_proj", "v_proj")``; ``"all"`` ->
    `TARGETS`, ``"attention"`` -> q/k/v/o, ``"mlp"`` -> gate/up/down.

    Example:
      >>> parse_targets("attention,down_proj")
      ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'down_proj')
    """
    names = text.split(",") if isinstance(text, str) else list(text)
    groups = {"all": TARGETS, "attention": TARGETS[:4], "mlp": TARGETS[4:]}
    out: list[str] = []
    for name in (n.strip() for n in names):
        for target in groups.get(name, (name,)):
            if target and target not in out:
                out.append(target)
    return tuple(out)


def _num_in(path: tuple[str, ...]) -> int:
    """Kernel dims contracted with the input: 2 for ``o_proj`` ``[H, Dh, D]``, else 1."""
    return 2 if "o_proj" in path else 1


def _target_kernels(model: ModelConfig, lora: LoraConfig) -> dict[tuple[str, ...], Any]:
    """Projection path (``("layers_0", "attn", "q_proj")``) -> its abstract kernel."""
    flat = flatten_params(abstract_params(model))
    return {
        path[:-1]: leaf
        for path, leaf in flat.items()
        if path[-1] == "kernel" and len(path) >= 2 and path[-2] in lora.targets
    }


def abstract_adapters(model: ModelConfig, lora: LoraConfig) -> dict:
    """The adapters tree as `jax.ShapeDtypeStruct` leaves in ``model.params_dtype``.

    Example:
      >>> tree = abstract_adapters(ModelConfig.preset("tiny"), LoraConfig(rank=4))
      >>> q = tree["layers_0"]["attn"]["q_proj"]
      >>> q["lora_a"].shape, q["lora_b"].shape
      ((128, 4), (4, 4, 32))
    """
    dtype = jnp.dtype(model.params_dtype)
    flat = {}
    for path, kernel in _target_kernels(model, lora).items():
        num_in = _num_in(path)
        in_shape, out_shape = kernel.shape[:num_in], kernel.shape[num_in:]
        flat[(*path, LORA_A)] = jax.ShapeDtypeStruct((*in_shape, lora.rank), dtype)
        flat[(*path, LORA_B)] = jax.ShapeDtypeStruct((lora.rank, *out_shape), dtype)
    return unflatten_params(flat)


def num_adapter_params(model: ModelConfig, lora: LoraConfig) -> int:
    """Trainable parameters of the adapters: ``r * (in + out)`` per target projection.

    Example:
      >>> num_adapter_params(ModelConfig.preset("tiny"), LoraConfig(rank=8, targets=("q_proj",)))
      4096
    """
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(abstract_adapters(model, lora)))


def init_adapters(model: ModelConfig, lora: LoraConfig, key: jax.Array) -> dict:
    """Fresh adapters: ``A ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, ``B = 0``.

    ``A``'s bound is PEFT's (``kaiming_uniform_(a=sqrt(5))``, huggingface/peft
    ``src/peft/tuners/lora/layer.py``); ``B = 0`` makes the adapted model equal the base.
    Each projection draws from its own ``fold_in(key, index)``.
    """
    flat = flatten_params(abstract_adapters(model, lora))
    values = {}
    for index, (path, leaf) in enumerate(sorted(flat.items())):
        if path[-1] == LORA_B:
            values[path] = jnp.zeros(leaf.shape, leaf.dtype)
            continue
        bound = math.prod(leaf.shape[:-1]) ** -0.5
        sample = jax.random.uniform(
            jax.random.fold_in(key, index), leaf.shape, jnp.float32, -bound, bound
        )
        values[path] = sample.astype(leaf.dtype)
    return unflatten_params(values)


def adapter_shardings(adapters: Any, params_sharding: Any) -> dict:
    """Each adapter leaf's `NamedSharding`, taken from its kernel's.

    ``A [*in, r]`` is split like the kernel's input dims and ``B [r, *out]`` like its output
    dims; the rank is replicated. ``adapters`` may be abstract; ``params_sharding`` is the
    base's tree of shardings (`r1jax.models.param_shardings`).
    """
    kernel_shardings = flatten_params(params_sharding)

    def sharding(path: tuple[str, ...], leaf: Any) -> NamedSharding:
        kernel = kernel_shardings[(*path[:-1], "kernel")]
        num_in = _num_in(path)
        spec = tuple(kernel.spec) + (None,) * (len(leaf.shape) + num_in - 1 - len(kernel.spec))
        if path[-1] == LORA_A:
            return NamedSharding(kernel.mesh, PartitionSpec(*spec[:num_in], None))
        return NamedSharding(kernel.mesh, PartitionSpec(None, *spec[num_in:]))

    flat = flatten_params(adapters)
    return unflatten_params({path: sharding(path, leaf) for path, leaf in flat.items()})


def quantize_int8(kernel: jax.Array, num_in: int) -> tuple[jax.Array, jax.Array]:
    """Symmetric absmax int8 of a ``[*in, *out]`` kernel, one scale per output channel.

    ``scale = max |W|`` over the input dims ``/ 127`` (1 where a channel is all zero) and
    ``q = round(W / scale)``, so ``q * scale`` is within ``scale / 2`` of ``W`` everywhere
    (LLM.int8(), Dettmers et al., arXiv:2208.07339 §3.1, absmax quantization, per output
    channel as its vector-wise rows).

    Returns:
      ``(q [*in, *out] int8, scale [*out] float32)``.

    Example:
      >>> q, scale = quantize_int8(jnp.array([[1.0, -1.27], [-2.54, 0.64]]), 1)
      >>> q, scale
      (Array([[  50, -127],
             [-127,   64]], dtype=int8), Array([0.02, 0.01], dtype=float32))
    """
    w = kernel.astype(jnp.float32)
    absmax = jnp.max(jnp.abs(w), axis=tuple(range(num_in)))  # [*out]
    scale = jnp.where(absmax > 0, absmax / 127.0, 1.0)
    q = jnp.clip(jnp.round(w / scale), -127, 127).astype(jnp.int8)
    return q, scale


def base_shardings(base: Any, params_sharding: Any) -> dict:
    """Each leaf's `NamedSharding` in a (possibly int8) frozen base: ``params_sharding``'s,
    and for a ``kernel_scale [*out]`` its kernel's output dims' split."""
    kernels = flatten_params(params_sharding)
    out = {}
    for path in flatten_params(base):
        if path[-1] != KERNEL_SCALE:
            out[path] = kernels[path]
            continue
        kernel = kernels[(*path[:-1], "kernel")]
        spec = tuple(kernel.spec)[_num_in(path) :]
        out[path] = NamedSharding(kernel.mesh, PartitionSpec(*spec))
    return unflatten_params(out)


def cast_base(params: Any, lora: LoraConfig) -> Any:
    """The frozen base in ``lora.base_dtype`` (kernels and embeddings; norm scales and biases
    keep their dtype: they are applied in float32).

    ``int8``: each projection's ``kernel`` becomes int8 and gains a ``kernel_scale`` leaf
    (`quantize_int8`); the embeddings are cast to bfloat16.
    """
    if not lora.base_dtype:
        return params
    if lora.base_dtype == "int8":
        flat = {}
        for path, leaf in flatten_params(params).items():
            if path[-1] == "kernel":
                flat[path], flat[(*path[:-1], KERNEL_SCALE)] = quantize_int8(leaf, _num_in(path))
            elif path[-1] == "embedding":
                flat[path] = leaf.astype(INT8_EMBEDDING_DTYPE)
            else:
                flat[path] = leaf
        return unflatten_params(flat)
    dtype = jnp.dtype(lora.base_dtype)

    def cast(path, leaf):
        if getattr(path[-1], "key", None) in ("kernel", "embedding"):
            return leaf.astype(dtype)
        return leaf

    return jax.tree_util.tree_map_with_path(cast, params)


def combine(
    base: Any, adapters: Any, lora: LoraConfig, *, dropout_key: jax.Array | None = None
) -> Any:
    """The params a forward with adapters applied takes: ``base`` plus the adapter leaves.

    Args:
      base: the frozen base params.
      adapters: the adapters tree (`init_adapters`), or None for the base alone.
      lora: the settings (``alpha / rank`` scales ``lora_b``).
      dropout_key: a key for the dropout masks of a training forward (each projection folds
        in its own index); None or ``lora.dropout == 0``: no dropout.

    Returns:
      A params tree with the structure of ``base`` plus ``lora_a`` / ``lora_b`` (and the
      dropout leaves) in each target projection; arrays are shared, not copied.
    """
    if adapters is None:
        return base
    flat = flatten_params(base)
    entries = sorted(flatten_params(adapters).items())
    for index, (path, value) in enumerate(entries):
        flat[path] = value * jnp.asarray(lora.scale, value.dtype) if path[-1] == LORA_B else value
        if dropout_key is not None and lora.dropout > 0 and path[-1] == LORA_A:
            key = jax.random.fold_in(dropout_key, index)
            flat[(*path[:-1], LORA_DROPOUT_KEY)] = jax.random.key_data(key)
            flat[(*path[:-1], LORA_DROPOUT_RATE)] = jnp.asarray(lora.dropout, jnp.float32)
    return unflatten_params(flat)


def merge(base: Any, adapters: Any, lora: LoraConfig, dtype: Any = None) -> Any:
    """Full params with ``W + (alpha / r) A B`` in place of each target kernel.

    The sum is formed in float32 and cast to ``dtype`` (None: the base kernel's dtype);
    other leaves are the base's. An int8 base is dequantized first: every kernel in ``dtype``
    (None: float32), and no ``kernel_scale`` leaf is left. ``[*in, r] x [r, *out] -> [*in, *out]``, the kernel's layout.
    """
    flat = flatten_params(base)
    pieces = flatten_params(adapters)
    for path in [p[:-1] for p in flat if p[-1] == KERNEL_SCALE]:  # an int8 base: dequantize
        scale = flat.pop((*path, KERNEL_SCALE))
        flat[(*path, "kernel")] = dequantize(
            flat[(*path, "kernel")], scale, jnp.float32 if dtype is None else dtype
        )
    for path in {p[:-1] for p in pieces}:
        kernel = flat[(*path, "kernel")]
        a = pieces[(*path, LORA_A)].astype(jnp.float32)  # [*in, r]
        b = pieces[(*path, LORA_B)].astype(jnp.float32)  # [r, *out]
        delta = jnp.tensordot(a, b, axes=1)  # [*in, *out]
        merged = kernel.astype(jnp.float32) + lora.scale * delta
        flat[(*path, "kernel")] = merged.astype(kernel.dtype if dtype is None else dtype)
    return unflatten_params(flat)
