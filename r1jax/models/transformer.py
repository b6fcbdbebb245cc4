"""The decoder stack and its functional API: params in, logits / log-probs out.

Lives here: the `Transformer` Linen module (embedding, ``layers_0 .. layers_{L-1}``, final
norm, tied or untied unembedding), the masks for full and cached attention, and the public
pure functions `init_params`, `abstract_params`, `param_logical_axes`, `param_shardings`,
`forward`, `kernels_by_rows` and `token_logprobs`. Callers never see a module: params are a
plain nested dict.
Not here: blocks (`r1jax.models.layers`), the cache pytree (`r1jax.models.kv_cache`),
checkpoints (`r1jax.models.hf`).
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from r1jax.models.config import ModelConfig
from r1jax.models.kv_cache import CacheTier, KVCache
from r1jax.models.layers import (
    KERNEL_SCALE,
    Block,
    Embed,
    RMSNorm,
    Unembed,
    attention_implementation,
    dequantize,
    remat_block,
)
from r1jax.models.rope import rope_angles
from r1jax.sharding import ShardingRules, constrain, logical_sharding

Params = dict


class Transformer(nn.Module):
    """Decoder-only transformer (Qwen2/Qwen2.5, Qwen3, Llama 3.x) over a `ModelConfig`.

    Attributes:
      config: shapes and numerics.
      remat: rematerialise each block in the backward pass (training memory).
      attend_length: with a cache, attend over slots ``[0, attend_length)`` only.
      rules: sharding rules for the activation constraints (defaults when None).
      kernels_by_rows: the params hold every kernel output dims first (`kernels_by_rows`).
    """

    config: ModelConfig
    remat: bool = False
    attend_length: int | None = None
    rules: ShardingRules | None = None
    kernels_by_rows: bool = False

    def setup(self):
        cfg = self.config
        by_rows = self.kernels_by_rows
        self.embed = Embed(cfg)
        self.layers = [
            Block(cfg, self.attend_length, self.rules, by_rows) for _ in range(cfg.num_layers)
        ]
        self.final_norm = RMSNorm(cfg)
        if not cfg.tie_embeddings:
            self.lm_head = Unembed(cfg, by_rows)

    def __call__(
        self,
        tokens: jax.Array,
        positions: jax.Array,
        attention_mask: jax.Array | None = None,
        kv_cache: KVCache | None = None,
        last_position_only: bool = False,
        cache_tiers: tuple[CacheTier, ...] = (),
    ) -> tuple[jax.Array, KVCache | None]:
        """``[B, S]`` tokens -> ``[B, S, V]`` (or ``[B, 1, V]``) float32 logits and the cache."""
        hidden, kv_cache = self.trunk(tokens, positions, attention_mask, kv_cache, cache_tiers)
        if last_position_only:
            hidden = hidden[:, -1:]  # [B, 1, D]
        return self.unembed(hidden), kv_cache

    def unembed(self, hidden: jax.Array) -> jax.Array:
        """``[B, S, D]`` final-norm output -> ``[B, S, V]`` float32 logits."""
        if self.config.tie_embeddings:
            logits = self.embed.attend(hidden)
        else:
            logits = self.lm_head(hidden)
        return constrain(logits, ("batch", "seq", "vocab"), self.rules)

    def trunk(
        self,
        tokens: jax.Array,
        positions: jax.Array,
        attention_mask: jax.Array | None = None,
        kv_cache: KVCache | None = None,
        cache_tiers: tuple[CacheTier, ...] = (),
    ) -> tuple[jax.Array, KVCache | None]:
        """Embedding, blocks and final norm: ``[B, S]`` -> ``[B, S, D]`` (compute dtype)."""
        cfg = self.config
        batch, length = tokens.shape
        if cache_tiers and (kv_cache is None or length != 1):
            raise ValueError("cache_tiers need a kv_cache and one new token per row")
        if attention_mask is None:
            attention_mask = jnp.ones((batch, length), jnp.bool_)
        attention_mask = attention_mask.astype(jnp.bool_)
        cos, sin = rope_angles(positions, cfg)  # [B, S, Dh/2] each
        x = constrain(self.embed(tokens), ("batch", "seq", "embed"), self.rules)  # [B, S, D]

        fused = (
            attention_implementation(cfg.attention, compute_dtype=cfg.dtype) != "xla" and length > 1
        )
        if kv_cache is None:
            if fused:  # the blocks take the [B, S] key mask and attend causally
                mask = attention_mask
            else:
                causal = jnp.tril(jnp.ones((length, length), jnp.bool_))  # [S, S]
                mask = causal[None] & attention_mask[:, None, :]  # [B, S, S]
            end = None
        else:
            max_length = kv_cache.max_length
            attended = max_length if self.attend_length is None else self.attend_length
            if not length <= attended <= max_length:
                raise ValueError(
                    f"attend_length={attended} must be >= the {length} new tokens and <= the "
                    f"cache length {max_length}"
                )
            end = kv_cache.end
            valid = lax.dynamic_update_slice(kv_cache.valid, attention_mask, (0, end))
            if fused and attended == length:
                # A prefill: the new tokens fill every attended slot (so ``end`` is 0) and
                # attend only each other, causally.
                mask = attention_mask  # [B, S]
            elif length == 1:
                # One new token attends every valid slot. Nothing past ``end`` is valid in a
                # linear cache, so this is the causal mask there; a ring cache (the continuous
                # sampler's) also holds valid slots past ``end``.
                mask = valid[:, None, :attended]  # [B, 1, A]
            else:
                slots = jnp.arange(attended)  # [A]
                query_slots = end + jnp.arange(length)  # [S]
                mask = valid[:, None, :attended] & (slots[None, :] <= query_slots[:, None])

        new_keys, new_values = [], []
        for index, layer in enumerate(self.layers):
            layer_cache = None
            if kv_cache is not None:
                layer_cache = (kv_cache.keys[index], kv_cache.values[index])
            if self.remat and kv_cache is None and not self.is_initializing():
                x = remat_block(layer, x, cos, sin, mask)
            else:
                tiers = tuple(tier.layer(index) for tier in cache_tiers)
                x, layer_cache = layer(x, cos, sin, mask, layer_cache, end, tiers)
            if layer_cache is not None:
                new_keys.append(layer_cache[0])
                new_values.append(layer_cache[1])
        x = self.final_norm(x)

        if kv_cache is not None:
            kv_cache = KVCache(
                keys=tuple(new_keys), values=tuple(new_values), valid=valid, end=end + length
            )
        return x, kv_cache


def _boxed_init(config: ModelConfig, key: jax.Array) -> dict:
    tokens = jnp.zeros((1, 1), jnp.int32)
    return Transformer(config).init(key, tokens, tokens)["params"]


def _abstract_boxed(config: ModelConfig) -> dict:
    """The params tree of abstract `nn.LogicallyPartitioned` boxes (traced, not run)."""
    return jax.eval_shape(functools.partial(_boxed_init, config), jax.random.key(0))


def _unbox(tree):
    return jax.tree.map(
        lambda leaf: leaf.value if isinstance(leaf, nn.Partitioned) else leaf,
        tree,
        is_leaf=lambda leaf: isinstance(leaf, nn.Partitioned),
    )


def abstract_params(config: ModelConfig) -> Params:
    """The params tree as `jax.ShapeDtypeStruct` leaves (no memory allocated).

    Example:
      >>> tree = abstract_params(ModelConfig.preset("tiny"))
      >>> tree["layers_0"]["attn"]["q_proj"]["kernel"].shape
      (128, 4, 32)
    """
    return _unbox(_abstract_boxed(config))


def param_logical_axes(config: ModelConfig) -> Params:
    """The params tree with a `PartitionSpec` of logical axis names at each leaf.

    Example:
      >>> param_logical_axes(ModelConfig.preset("tiny"))["embed"]["embedding"]
      P('vocab', 'embed')
    """
    return nn.get_partition_spec(_abstract_boxed(config))


def param_shardings(config: ModelConfig, mesh: Mesh, rules: ShardingRules | None = None) -> Params:
    """The params tree with the `NamedSharding` of each param on ``mesh`` under ``rules``.

    Dimensions a mesh axis does not divide fall back to replication over that axis.
    """
    boxed = _abstract_boxed(config)
    abstract, logical = _unbox(boxed), nn.get_partition_spec(boxed)
    return jax.tree.map(
        lambda shape, axes: logical_sharding(mesh, tuple(axes), rules, shape=shape.shape),
        abstract,
        logical,
        is_leaf=lambda leaf: isinstance(leaf, PartitionSpec),
    )


EMBEDDING_STDDEV = 0.02


def _fan_in(path: tuple[str, ...], shape: tuple[int, ...]) -> int:
    """Input width of a kernel: ``H * Dh`` for ``o_proj`` ``[H, Dh, D]``, else ``shape[0]``."""
    return shape[0] * shape[1] if "o_proj" in path else shape[0]


@functools.partial(jax.jit, static_argnames=("config", "mesh", "rules"))
def _random_params(
    key: jax.Array, config: ModelConfig, mesh: Mesh | None, rules: ShardingRules | None
) -> Params:
    """Draws every random param from one normal sample (one RNG op to compile, not ~7 L).

    On a mesh the sample is spread over all devices, so no device holds all of it, and each
    param is constrained to its sharding (which the jit's outputs then keep).
    """
    flat = flatten_params(abstract_params(config))
    random_paths = [path for path in flat if path[-1] in ("kernel", "embedding")]
    total = sum(math.prod(flat[path].shape) for path in random_paths)
    noise = jnp.clip(jax.random.normal(key, (total,), jnp.float32), -2.0, 2.0)  # [N]
    if mesh is not None and total % mesh.size == 0:
        noise = lax.with_sharding_constraint(
            noise, NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names)))
        )
    values, offset = {}, 0
    for path, leaf in flat.items():
        if path[-1] == "scale":
            values[path] = jnp.ones(leaf.shape, leaf.dtype)
        elif path[-1] == "bias":
            values[path] = jnp.zeros(leaf.shape, leaf.dtype)
        else:
            size = math.prod(leaf.shape)
            block = noise[offset : offset + size].reshape(leaf.shape)
            offset += size
            std = EMBEDDING_STDDEV if path[-1] == "embedding" else _fan_in(path, leaf.shape) ** -0.5
            values[path] = (block * std).astype(leaf.dtype)
    params = unflatten_params(values)
    if mesh is not None:
        shardings = param_shardings(config, mesh, rules)
        params = jax.tree.map(lax.with_sharding_constraint, params, shardings)
    return params


def flatten_params(tree: dict, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    """``{"a": {"b": x}}`` -> ``{("a", "b"): x}``."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten_params(value, (*prefix, key)))
        else:
            out[(*prefix, key)] = value
    return out


def unflatten_params(flat: dict[tuple[str, ...], object]) -> dict:
    """The inverse of `flatten_params`."""
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return tree


def init_params(
    config: ModelConfig,
    key: jax.Array,
    *,
    mesh: Mesh | None = None,
    rules: ShardingRules | None = None,
) -> Params:
    """Random params: normal kernels with std ``fan_in**-0.5`` and embeddings with std
    0.02 (both clipped at 2 std), ones for norm scales, zeros for biases.

    All random values are slices of one normal sample, so the init compiles in well under a
    second on CPU whatever the depth. With ``mesh`` every param is created directly in its
    sharding (inside the jit); the values do not depend on the mesh.

    Example:
      >>> params = init_params(ModelConfig.preset("tiny"), jax.random.key(0))
      >>> sorted(params)[:3], params["embed"]["embedding"].shape
      (['embed', 'final_norm', 'layers_0'], (512, 128))
    """
    return _random_params(key, config, mesh, rules)


def forward(
    params: Params,
    tokens: jax.Array,
    positions: jax.Array,
    config: ModelConfig,
    *,
    attention_mask: jax.Array | None = None,
    kv_cache: KVCache | None = None,
    attend_length: int | None = None,
    remat: bool = False,
    last_position_only: bool = False,
    rules: ShardingRules | None = None,
    kernels_by_rows: bool = False,
    cache_tiers: tuple[CacheTier, ...] = (),
) -> tuple[jax.Array, KVCache | None]:
    """Logits for ``tokens``, with or without a KV cache.

    Without a cache the mask is causal and hides pad keys (``attention_mask`` False). With a
    cache the ``S`` new tokens are written to slots ``[end, end + S)``, their ``valid`` bits
    are set from ``attention_mask``, and query ``i`` attends over slots ``[0, attend_length)``
    that are valid and ``<= end + i`` (one new token: every valid slot, so a ring cache whose
    valid slots wrap past ``end`` works too); the returned cache has ``end + S``. Prefill is a
    forward of the whole left-padded prompt on an empty cache; decode is a forward of
    ``[B, 1]`` tokens.

    Args:
      params: the params tree (`init_params` / `load_pretrained`).
      tokens: ``[B, S]`` int32 ids.
      positions: ``[B, S]`` int32 RoPE positions; for a left-padded row
        ``clip(cumsum(mask) - 1, 0)``.
      config: the model config (static under jit).
      attention_mask: ``[B, S]`` bool, True for real tokens; None means all real.
      kv_cache: a `KVCache` to write to and attend over, or None.
      attend_length: static number of cache slots to attend over (default ``Smax``); must
        be ``>= end + S``. Lets decode read only the filled part of a large cache.
      remat: rematerialise each block in the backward pass.
      last_position_only: static; unembed the last position only (a prefill that needs the
        next token's logits, not the prompt's).
      rules: sharding rules for activation constraints (used when a mesh is set with
        ``jax.set_mesh``).
      kernels_by_rows: static; ``params`` are in the layout `kernels_by_rows` returns.
      cache_tiers: older cache bands that some rows also attend over (`CacheTier`; one new
        token per row with a cache): row ``b`` attends over its valid slots of ``kv_cache``
        and of every tier row that belongs to it.

    Returns:
      ``[B, S, V]`` float32 logits (``[B, 1, V]`` with ``last_position_only``) and the updated
      cache (None when none was given).

    Example:
      >>> config = ModelConfig.preset("tiny")
      >>> params = init_params(config, jax.random.key(0))
      >>> tokens = jnp.array([[0, 5, 7]]); positions = jnp.array([[0, 0, 1]])
      >>> mask = jnp.array([[False, True, True]])
      >>> run = jax.jit(forward, static_argnames="config")
      >>> logits, _ = run(params, tokens, positions, config, attention_mask=mask)
      >>> logits.shape, logits.dtype
      ((1, 3, 512), dtype('float32'))
    """
    model = Transformer(
        config,
        remat=remat,
        attend_length=attend_length,
        rules=rules,
        kernels_by_rows=kernels_by_rows,
    )
    return model.apply(
        {"params": params},
        tokens,
        positions,
        attention_mask,
        kv_cache,
        last_position_only,
        cache_tiers,
    )


def kernels_by_rows(params: Params, config: ModelConfig) -> Params:
    """``params`` with every kernel stored output dims first, in the compute dtype: the layout
    `forward` takes with ``kernels_by_rows=True``.

    A ``[D, F]`` kernel becomes ``[F, D]``, q ``[D, H, Dh]`` becomes ``[H, Dh, D]``, o
    ``[H, Dh, D]`` becomes ``[D, H, Dh]``; the embedding (also the tied unembedding) is cast,
    and norm scales and biases are kept; an int8 kernel (a LoRA base, `r1jax.models.lora`) is
    dequantized and its ``kernel_scale`` dropped. A decode step is a matmul of a few rows
    against every weight; on XLA:CPU that product streams a weight stored ``[out, in]`` (each output a dot
    product along contiguous memory) up to twice as fast as one stored ``[in, out]`` (measured
    on the Qwen2.5-0.5B MLP at 8 rows in bfloat16: 30.6 ms against 64.9 ms per step). The
    sampler builds this copy once per call, outside its loops. The values are unchanged; the
    float32 accumulation order inside a dot may differ.

    Example:
      >>> config = ModelConfig.preset("tiny")
      >>> rows = kernels_by_rows(init_params(config, jax.random.key(0)), config)
      >>> rows["layers_0"]["mlp"]["gate_proj"]["kernel"].shape
      (384, 128)
    """
    dtype = config.compute_dtype
    flat = flatten_params(params)

    def convert(path: tuple[str, ...], leaf: jax.Array) -> jax.Array:
        if path[-1] == "embedding":
            return leaf.astype(dtype)
        if path[-1] != "kernel":
            return leaf
        num_in = 2 if "o_proj" in path else 1
        order = (*range(num_in, leaf.ndim), *range(num_in))
        scale = flat.get((*path[:-1], KERNEL_SCALE))  # an int8 kernel: dequantized here
        return jnp.transpose(dequantize(leaf, scale, dtype), order)

    return unflatten_params(
        {path: convert(path, leaf) for path, leaf in flat.items() if path[-1] != KERNEL_SCALE}
    )


def token_logprobs(
    params: Params,
    tokens: jax.Array,
    positions: jax.Array,
    config: ModelConfig,
    *,
    attention_mask: jax.Array | None = None,
    target_start: int = 1,
    temperature: float = 1.0,
    chunk_size: int = 256,
    remat: bool = False,
    return_entropy: bool = False,
    rules: ShardingRules | None = None,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """``log p(tokens[:, t] | tokens[:, :t])`` for ``t`` in ``[target_start, S)``.

    The trunk runs once over all ``S`` tokens; the unembedding, ``log_softmax(logits /
    temperature)`` and the gather then run over chunks of ``chunk_size`` positions, each
    chunk under `jax.checkpoint`, so neither the forward nor the backward holds more than one
    ``[B, chunk_size, V]`` block of logits. Positions before ``target_start - 1`` get no
    logits at all (pass ``target_start = Tp`` to score completions only).

    Args:
      params: the params tree.
      tokens: ``[B, S]`` int32 ids.
      positions: ``[B, S]`` int32 RoPE positions.
      config: the model config (static under jit).
      attention_mask: ``[B, S]`` bool, True for real tokens; None means all real.
      target_start: first scored position, ``1 <= target_start <= S`` (static).
      temperature: the logits are divided by it before the log-softmax.
      chunk_size: positions per unembedding chunk (static).
      remat: rematerialise each block of the trunk.
      return_entropy: also return the entropy of each tempered next-token distribution.
      rules: sharding rules for activation constraints.

    Returns:
      ``[B, S - target_start]`` float32 log-probs, and the same-shaped entropies when
      ``return_entropy``.

    Example:
      >>> config = ModelConfig.preset("tiny")
      >>> params = init_params(config, jax.random.key(0))
      >>> tokens = jnp.array([[3, 5, 7, 9]]); positions = jnp.arange(4)[None]
      >>> run = jax.jit(token_logprobs, static_argnames=("config", "target_start"))
      >>> run(params, tokens, positions, config, target_start=2).shape
      (1, 2)
    """
    batch, length = tokens.shape
    if not 1 <= target_start <= length:
        raise ValueError(f"target_start={target_start} must be in [1, S={length}]")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    model = Transformer(config, remat=remat, rules=rules)
    variables = {"params": params}
    hidden, _ = model.apply(
        variables, tokens, positions, attention_mask, None, method=Transformer.trunk
    )  # [B, S, D]
    num_targets = length - target_start
    if num_targets == 0:
        empty = jnp.zeros((batch, 0), jnp.float32)
        return (empty, empty) if return_entropy else empty
    hidden = hidden[:, target_start - 1 : length - 1]  # [B, N, D]
    targets = tokens[:, target_start:]  # [B, N]
    chunk = min(chunk_size, num_targets)
    num_chunks = -(-num_targets // chunk)
    padding = num_chunks * chunk - num_targets
    hidden = jnp.pad(hidden, ((0, 0), (0, padding), (0, 0)))  # [B, n*C, D]
    targets = jnp.pad(targets, ((0, 0), (0, padding)))  # [B, n*C]
    hidden = hidden.reshape(batch, num_chunks, chunk, -1).swapaxes(0, 1)  # [n, B, C, D]
    targets = targets.reshape(batch, num_chunks, chunk).swapaxes(0, 1)  # [n, B, C]

    @jax.checkpoint
    def score(params, hidden_chunk, target_chunk):
        logits = model.apply({"params": params}, hidden_chunk, method=Transformer.unembed)
        logprobs = jax.nn.log_softmax(logits / temperature, axis=-1)  # [B, C, V]
        picked = jnp.take_along_axis(logprobs, target_chunk[..., None], axis=-1)[..., 0]
        entropy = -jnp.sum(jnp.exp(logprobs) * logprobs, axis=-1)  # [B, C]
        return picked, entropy

    picked, entropy = lax.map(lambda xs: score(params, *xs), (hidden, targets))  # [n, B, C]
    picked = picked.swapaxes(0, 1).reshape(batch, -1)[:, :num_targets]  # [B, N]
    if not return_entropy:
        return picked
    return picked, entropy.swapaxes(0, 1).reshape(batch, -1)[:, :num_targets]
