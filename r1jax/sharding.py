"""Device mesh and logical-axis sharding rules.

Lives here: `make_mesh` (a `data x fsdp x tensor` device mesh), `ShardingRules` (logical axis
name -> mesh axes), `logical_to_spec` / `logical_sharding` (a tuple of logical names -> a
`PartitionSpec` / `NamedSharding`), and `constrain` (a sharding constraint on an activation,
a no-op when no mesh is active). Not here: which arrays carry which logical names (the models
package declares them on its params and activations) and any model or training code.

Model code speaks logical names only: ``batch``, ``seq``, ``embed``, ``vocab``, ``heads``,
``kv_heads``, ``head_dim``, ``mlp``, ``norm``, ``cache_seq``. The rules map each to zero, one or
several mesh axes. Two rules make every mapping safe to apply to any shape:

* a mesh axis whose size does not divide the dimension is dropped (that dimension is then
  replicated over it), e.g. 2 KV heads on ``tensor=4`` stay replicated instead of failing;
* a mesh axis already used by an earlier dimension of the same array is dropped, so an
  activation ``("batch", "seq", "embed")`` is sharded over ``data`` and ``fsdp`` on its batch
  dimension while the ``embed -> fsdp`` rule still shards the weights (FSDP).

Axis types: `make_mesh` builds ``AxisType.Auto`` axes. The partitioner then propagates
shardings from the params and from the `constrain` calls at block boundaries, and einsums over
sharded contraction dimensions need no ``out_sharding`` argument. With ``Explicit`` axes (the
default of ``jax.make_mesh`` in this jax version) every such contraction must name its output
sharding, which would spread mesh knowledge through all model code; r1jax does not do that.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

MeshAxes = str | tuple[str, ...] | None


@dataclasses.dataclass(frozen=True)
class ShardingRules:
    """Maps each logical axis name to the mesh axes that shard it (``None``: replicated).

    A plain frozen dataclass, so a config can override one field
    (``dataclasses.replace(rules, kv_heads=None)``) and it can be a static jit argument.
    """

    batch: MeshAxes = ("data", "fsdp")
    seq: MeshAxes = None
    embed: MeshAxes = "fsdp"
    vocab: MeshAxes = "tensor"
    heads: MeshAxes = "tensor"
    kv_heads: MeshAxes = "tensor"
    head_dim: MeshAxes = None
    mlp: MeshAxes = "tensor"
    norm: MeshAxes = None
    cache_seq: MeshAxes = None


def make_mesh(
    *, data: int = 1, fsdp: int = -1, tensor: int = 1, devices: Sequence[jax.Device] | None = None
) -> Mesh:
    """Builds a ``("data", "fsdp", "tensor")`` mesh with ``AxisType.Auto`` axes.

    Args:
      data: size of the pure data-parallel axis (params replicated over it).
      fsdp: size of the fully-sharded data-parallel axis; -1 takes the remaining devices.
      tensor: size of the tensor-parallel axis (heads, MLP width and vocab are split over it).
      devices: the devices to use; all of ``jax.devices()`` when None.

    Returns:
      A `jax.sharding.Mesh` whose axis sizes multiply to the number of devices.

    Raises:
      ValueError: if more than one size is -1, a size is not positive, or the sizes do not
        multiply to the number of devices.

    Example:
      >>> dict(make_mesh(data=1, fsdp=-1, tensor=1, devices=jax.devices()[:1]).shape)
      {'data': 1, 'fsdp': 1, 'tensor': 1}
    """
    devices = list(jax.devices() if devices is None else devices)
    sizes = {"data": data, "fsdp": fsdp, "tensor": tensor}
    free = [name for name, size in sizes.items() if size == -1]
    if len(free) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got {sizes}")
    bad = {name: size for name, size in sizes.items() if size != -1 and size < 1}
    if bad:
        raise ValueError(f"mesh axis sizes must be positive or -1, got {bad}")
    fixed = math.prod(size for size in sizes.values() if size != -1)
    if free:
        if len(devices) % fixed:
            raise ValueError(
                f"cannot fill mesh axis {free[0]!r}: {len(devices)} devices are not divisible "
                f"by the product {fixed} of the other axes {sizes}"
            )
        sizes[free[0]] = len(devices) // fixed
    if math.prod(sizes.values()) != len(devices):
        raise ValueError(
            f"mesh axes {sizes} multiply to {math.prod(sizes.values())}, "
            f"but there are {len(devices)} devices"
        )
    shape = tuple(sizes[name] for name in MESH_AXES)
    return jax.make_mesh(
        shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices
    )


def _as_tuple(axes: MeshAxes) -> tuple[str, ...]:
    if axes is None:
        return ()
    if isinstance(axes, str):
        return (axes,)
    return tuple(axes)


def logical_to_spec(
    axes: Sequence[str | None],
    rules: ShardingRules | None = None,
    *,
    shape: Sequence[int] | None = None,
    mesh: Mesh | jax.sharding.AbstractMesh | None = None,
) -> PartitionSpec:
    """Maps logical axis names to a `PartitionSpec` of mesh axes.

    Args:
      axes: one logical name (or None, replicated) per array dimension.
      rules: the logical -> mesh mapping; `ShardingRules()` when None.
      shape: the array shape; with ``mesh``, mesh axes that do not divide a dimension are
        dropped for that dimension (it is replicated over them instead).
      mesh: the mesh the spec is for; needed for the divisibility check.

    Returns:
      A `PartitionSpec` with one entry per dimension. A mesh axis is used at most once.

    Raises:
      ValueError: on an unknown logical name, a mesh axis missing from ``mesh``, or a
        ``shape`` whose length differs from ``axes``.

    Example:
      >>> logical_to_spec(("batch", "seq", "embed"))
      P(('data', 'fsdp'), None, None)
      >>> logical_to_spec(("embed", "kv_heads", "head_dim"))
      P('fsdp', 'tensor', None)
    """
    rules = ShardingRules() if rules is None else rules
    if shape is not None and len(shape) != len(axes):
        raise ValueError(f"logical axes {tuple(axes)} do not match shape {tuple(shape)}")
    mesh_sizes = dict(mesh.shape) if mesh is not None else None
    used: set[str] = set()
    entries: list[MeshAxes] = []
    for dim, name in enumerate(axes):
        if name is None:
            entries.append(None)
            continue
        if not hasattr(rules, name):
            known = [f.name for f in dataclasses.fields(ShardingRules)]
            raise ValueError(f"unknown logical axis {name!r}; known axes: {known}")
        kept: list[str] = []
        size = 1
        for mesh_axis in _as_tuple(getattr(rules, name)):
            if mesh_axis in used:
                continue
            if mesh_sizes is not None:
                if mesh_axis not in mesh_sizes:
                    raise ValueError(
                        f"rule {name} -> {mesh_axis!r} names an axis missing from the mesh "
                        f"{tuple(mesh_sizes)}"
                    )
                if shape is not None and shape[dim] % (size * mesh_sizes[mesh_axis]):
                    continue
                size *= mesh_sizes[mesh_axis]
            kept.append(mesh_axis)
        used.update(kept)
        entries.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
    return PartitionSpec(*entries)


def logical_sharding(
    mesh: Mesh,
    axes: Sequence[str | None],
    rules: ShardingRules | None = None,
    *,
    shape: Sequence[int] | None = None,
) -> NamedSharding:
    """The `NamedSharding` on ``mesh`` for an array with logical ``axes`` (see `logical_to_spec`).

    Example:
      >>> mesh = make_mesh(devices=jax.devices()[:1])
      >>> logical_sharding(mesh, ("vocab", "embed"), shape=(512, 128)).spec
      P('tensor', 'fsdp')
    """
    return NamedSharding(mesh, logical_to_spec(axes, rules, shape=shape, mesh=mesh))


def constrain(
    x: jax.Array, axes: Sequence[str | None], rules: ShardingRules | None = None
) -> jax.Array:
    """Constrains ``x`` to the sharding of its logical ``axes`` on the active mesh.

    The active mesh is the one set with ``jax.set_mesh(mesh)``; without one (single device,
    or code that does not shard) this returns ``x`` unchanged. Inside ``shard_map`` (all axes
    manual) it is a no-op too.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.zeros((2, 3, 4))
      >>> constrain(x, ("batch", "seq", "embed")) is x
      True
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or all(t == AxisType.Manual for t in mesh.axis_types):
        return x
    spec = logical_to_spec(axes, rules, shape=x.shape, mesh=mesh)
    if all(t == AxisType.Explicit for t in mesh.axis_types):
        return jax.sharding.reshard(x, spec)
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


def to_host(tree):
    """Arrays (global ones included) -> numpy on every process: a ``device_get`` with one
    process, an all-gather of every shard with several.

    Example:
      >>> to_host({"x": jax.numpy.arange(3)})
      {'x': array([0, 1, 2], dtype=int32)}
    """
    if jax.process_count() == 1:
        return jax.device_get(tree)
    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
