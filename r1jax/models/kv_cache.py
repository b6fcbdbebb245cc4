"""The key/value cache pytree that `forward` reads and writes during sampling.

Lives here: `KVCache` (one key and one value buffer per layer, a per-slot validity mask and
the next slot to write), its empty constructor and its logical axes / shardings. Not here:
the writes themselves (`r1jax.models.transformer.forward` does them with
``lax.dynamic_update_slice``, in place when the caller donates the cache) and the decode loop
(`r1jax.sampling`).

Rows are left-padded to a common prompt length, so every row writes the same slots and one
scalar ``end`` serves the whole batch; ``valid`` marks which slots hold real tokens.

The buffers are head-major, keys ``[B, K, Dh, Smax]`` and values ``[B, K, Smax, Dh]``: a
decode step's attention is then a batch of ``(B, K)`` plain matrix products, ``[G, Dh] x
[Dh, A]`` for the scores and ``[G, A] x [A, Dh]`` for the output, that read the cache as it
lies. Slot-major buffers (``[B, Smax, K, Dh]``) cost a transpose of the attended slots every
step; on XLA:CPU the one-query attention was about 3x slower with them.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding

from r1jax.models.config import ModelConfig
from r1jax.sharding import ShardingRules, logical_sharding


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class KVCache:
    """Per-layer key/value buffers for ``B`` rows of up to ``Smax`` tokens.

    Attributes:
      keys: one ``[B, K, Dh, Smax]`` buffer per layer (keys after RoPE and QK-norm).
      values: one ``[B, K, Smax, Dh]`` buffer per layer.
      valid: ``[B, Smax]`` bool, True where a slot holds a real (non-pad) token.
      end: ``[]`` int32, the next slot to write (the same for every row).
    """

    keys: tuple[jax.Array, ...]
    values: tuple[jax.Array, ...]
    valid: jax.Array
    end: jax.Array

    KEY_AXES: ClassVar[tuple[str, ...]] = ("batch", "kv_heads", "head_dim", "cache_seq")
    VALUE_AXES: ClassVar[tuple[str, ...]] = ("batch", "kv_heads", "cache_seq", "head_dim")
    VALID_AXES: ClassVar[tuple[str, ...]] = ("batch", "cache_seq")
    END_AXES: ClassVar[tuple[str, ...]] = ()

    @property
    def max_length(self) -> int:
        """``Smax``, the number of slots."""
        return self.valid.shape[1]

    @property
    def batch_size(self) -> int:
        """``B``, the number of rows."""
        return self.valid.shape[0]

    @classmethod
    def init(
        cls,
        config: ModelConfig,
        batch_size: int,
        max_length: int,
        dtype: str | jnp.dtype | None = None,
        *,
        mesh: Mesh | None = None,
        rules: ShardingRules | None = None,
    ) -> KVCache:
        """An empty cache (zeros, nothing valid, ``end = 0``).

        Args:
          config: the model config (layers, KV heads, head dim, compute dtype).
          batch_size: ``B``.
          max_length: ``Smax``, prompt plus completion slots.
          dtype: buffer dtype; ``config.dtype`` when None.
          mesh: when given, the buffers are created directly in `KVCache.shardings`.
          rules: logical -> mesh axis rules for ``mesh``.

        Example:
          >>> cache = KVCache.init(ModelConfig.preset("tiny"), batch_size=2, max_length=8)
          >>> len(cache.keys), cache.keys[0].shape, int(cache.end)
          (2, (2, 2, 32, 8), 0)
        """
        dtype = jnp.dtype(config.dtype if dtype is None else dtype)
        key_shape = (batch_size, config.num_kv_heads, config.head_dim, max_length)
        value_shape = (batch_size, config.num_kv_heads, max_length, config.head_dim)

        def build() -> KVCache:
            return cls(
                keys=tuple(jnp.zeros(key_shape, dtype) for _ in range(config.num_layers)),
                values=tuple(jnp.zeros(value_shape, dtype) for _ in range(config.num_layers)),
                valid=jnp.zeros((batch_size, max_length), jnp.bool_),
                end=jnp.zeros((), jnp.int32),
            )

        if mesh is None:
            return build()
        shardings = cls.shardings(config, batch_size, max_length, mesh, rules)
        return jax.jit(build, out_shardings=shardings)()

    @classmethod
    def logical_axes(cls, config: ModelConfig) -> dict[str, object]:
        """The logical axis names of each field, as a dict keyed by field name.

        Example:
          >>> KVCache.logical_axes(ModelConfig.preset("tiny"))["valid"]
          ('batch', 'cache_seq')
        """
        return {
            "keys": (cls.KEY_AXES,) * config.num_layers,
            "values": (cls.VALUE_AXES,) * config.num_layers,
            "valid": cls.VALID_AXES,
            "end": cls.END_AXES,
        }

    @classmethod
    def shardings(
        cls,
        config: ModelConfig,
        batch_size: int,
        max_length: int,
        mesh: Mesh,
        rules: ShardingRules | None = None,
    ) -> KVCache:
        """A `KVCache` whose leaves are the `NamedSharding` of each buffer on ``mesh``.

        Dimensions that a mesh axis does not divide (e.g. 2 KV heads on ``tensor=4``) are
        replicated over it.
        """
        key_shape = (batch_size, config.num_kv_heads, config.head_dim, max_length)
        value_shape = (batch_size, config.num_kv_heads, max_length, config.head_dim)
        key: NamedSharding = logical_sharding(mesh, cls.KEY_AXES, rules, shape=key_shape)
        value: NamedSharding = logical_sharding(mesh, cls.VALUE_AXES, rules, shape=value_shape)
        return cls(
            keys=(key,) * config.num_layers,
            values=(value,) * config.num_layers,
            valid=logical_sharding(mesh, cls.VALID_AXES, rules, shape=(batch_size, max_length)),
            end=logical_sharding(mesh, cls.END_AXES, rules, shape=()),
        )


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class CacheTier:
    """An older band of cache columns that ``C`` rows of a one-token decode step also attend
    over (read-only; `r1jax.models.layers.attend_tiered`).

    The continuous sampler (`r1jax.sampling.continuous`) attends every row over its newest
    columns (the `KVCache` it passes) and only the rows that reach further back over the older
    bands, so a step reads far less than every row's whole cache.

    Attributes:
      rows: ``[C]`` int32, the distinct batch rows the tier rows belong to.
      keys: one ``[C, K, Dh, W]`` buffer per layer.
      values: one ``[C, K, W, Dh]`` buffer per layer.
      valid: ``[C, W]`` bool; all False for a padding row.
    """

    rows: jax.Array
    keys: tuple[jax.Array, ...]
    values: tuple[jax.Array, ...]
    valid: jax.Array

    def layer(self, index: int) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """``(rows, keys, values, valid)`` of layer ``index``."""
        return self.rows, self.keys[index], self.values[index], self.valid
