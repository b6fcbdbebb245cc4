"""Processes, the device mesh and host <-> device data movement of a (multi-host) training run.

Lives here: `initialize` (``jax.distributed.initialize`` from the ``distributed.*`` config keys,
before any other JAX call), `mesh_from_config` and `rules_from_config` (the ``mesh.*`` and
``sharding.*`` keys as a `jax.sharding.Mesh` and `r1jax.sharding.ShardingRules`, with
`r1jax.config.ConfigError` naming the keys when they do not fit the devices),
`check_batch_rows`, and the few collectives the host loop needs: `put_rows` (host rows -> a
global array sharded over the batch axes), `to_host` (a global array -> numpy on every process),
`gather_rows` / `gather_objects` (each process's rows or JSON values, concatenated in process
order on every process) and `process_rows` (this process's slice of such a concatenation).

How the trainer uses them (one process or many, the same code): each process reads its own
slice of every prompt batch (the data iterators shard by ``jax.process_index()``); the slices
are gathered into one global batch that every process passes to the sampler; the sampled
rollout comes back to every host (`to_host`), each process verifies only its own rows, and the
verdicts are gathered so every process builds the same update batch and the same metrics. With
one process every collective is the identity and nothing is copied between processes.

Not here: which arrays carry which logical axes (`r1jax.models`), the rules themselves
(`r1jax.sharding`), and the training loop (`r1jax.train`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

from r1jax import schedule
from r1jax import sharding as sharding_lib
from r1jax.checkpointing import CheckpointError
from r1jax.config import ConfigError


def initialize(section: ml_collections.ConfigDict) -> bool:
    """Joins a multi-process job as the ``distributed`` config section says; call it first.

    ``distributed.auto=True`` calls ``jax.distributed.initialize()`` without arguments (TPU pods,
    SLURM and other clusters JAX detects); a non-empty ``distributed.coordinator_address``
    (``host:port`` of process 0) passes it with ``num_processes`` and ``process_id``. Otherwise
    nothing happens (one process). A job that is already initialized is left as it is.

    Returns:
      Whether ``jax.distributed`` is initialized after the call.

    Raises:
      ConfigError: a coordinator address without a valid ``num_processes`` / ``process_id``,
        or both ``auto`` and an address.

    Example:
      >>> from r1jax import config
      >>> initialize(config.base_config().distributed)
      False
    """
    address = section.coordinator_address
    if section.auto and address:
        raise ConfigError(
            "distributed.auto=True detects the cluster itself; leave "
            "distributed.coordinator_address empty (or set auto=False)"
        )
    if not section.auto and not address:
        return jax.distributed.is_initialized()
    if jax.distributed.is_initialized():
        return True
    if section.auto:
        jax.distributed.initialize()
        return True
    count, index = section.num_processes, section.process_id
    if count < 1 or not 0 <= index < count:
        raise ConfigError(
            f"distributed.coordinator_address={address!r} needs distributed.num_processes >= 1 "
            f"and 0 <= distributed.process_id < num_processes, got num_processes={count}, "
            f"process_id={index}"
        )
    jax.distributed.initialize(coordinator_address=address, num_processes=count, process_id=index)
    return True


def is_main_process() -> bool:
    """Whether this is process 0 (the one that writes metrics, summaries and exports)."""
    return jax.process_index() == 0


def mesh_from_config(
    config: ml_collections.ConfigDict, devices: Sequence[jax.Device] | None = None
) -> jax.sharding.Mesh:
    """The ``data x fsdp x tensor`` mesh of ``mesh.*`` over ``devices`` (all of JAX's).

    ``-1`` for one axis takes the remaining devices (``mesh.data=-1`` by default).

    Raises:
      ConfigError: naming ``mesh.data``, ``mesh.fsdp`` and ``mesh.tensor`` when the sizes do not
        fit the number of devices.

    Example:
      >>> from r1jax import config
      >>> dict(mesh_from_config(config.base_config(), jax.devices()[:2]).shape)
      {'data': 2, 'fsdp': 1, 'tensor': 1}
    """
    devices = list(jax.devices() if devices is None else devices)
    m = config.mesh
    try:
        return sharding_lib.make_mesh(data=m.data, fsdp=m.fsdp, tensor=m.tensor, devices=devices)
    except ValueError as error:
        raise ConfigError(
            f"mesh.data={m.data}, mesh.fsdp={m.fsdp}, mesh.tensor={m.tensor} do not fit the "
            f"{len(devices)} devices: {error}"
        ) from None


def rules_from_config(
    config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None
) -> sharding_lib.ShardingRules:
    """`ShardingRules` with the ``sharding.*`` overrides (None keeps a rule, ``()`` replicates).

    Raises:
      ConfigError: a value that is not a mesh axis name or a tuple of them (key named).

    Example:
      >>> from r1jax import config
      >>> c = config.load_config("", ["sharding.kv_heads=()"])
      >>> rules_from_config(c).kv_heads is None
      True
    """
    axes = tuple(mesh.axis_names) if mesh is not None else sharding_lib.MESH_AXES
    overrides = {}
    for name, value in config.sharding.items():
        if value is None:
            continue
        names = (value,) if isinstance(value, str) else tuple(value)
        unknown = [axis for axis in names if axis not in axes]
        if unknown or len(set(names)) != len(names):
            raise ConfigError(
                f"sharding.{name}={value!r}: expected mesh axes from {axes} (each at most once), "
                "a tuple of them, or () to replicate"
            )
        overrides[name] = None if not names else names[0] if len(names) == 1 else names
    return sharding_lib.ShardingRules(**overrides)


def batch_axes(mesh: jax.sharding.Mesh, rules: sharding_lib.ShardingRules) -> tuple[str, ...]:
    """The mesh axes that split batch rows (``rules.batch``) and have more than one device."""
    spec = sharding_lib.logical_to_spec(("batch",), rules)[0]
    axes = () if spec is None else (spec,) if isinstance(spec, str) else tuple(spec)
    return tuple(axis for axis in axes if mesh.shape[axis] > 1)


def data_parallel_size(mesh: jax.sharding.Mesh, rules: sharding_lib.ShardingRules) -> int:
    """How many ways batch rows are split (product of the batch axes' sizes).

    Example:
      >>> mesh = sharding_lib.make_mesh(data=1, fsdp=-1, devices=jax.devices()[:4])
      >>> data_parallel_size(mesh, sharding_lib.ShardingRules())
      4
    """
    return math.prod(mesh.shape[axis] for axis in batch_axes(mesh, rules))


def check_batch_rows(
    rows: int, what: str, mesh: jax.sharding.Mesh, rules: sharding_lib.ShardingRules
) -> None:
    """Raises ConfigError unless ``rows`` split evenly over the data-parallel axes and processes.

    Args:
      rows: global rows of a batch.
      what: the config keys that make ``rows``, for the message (``"data.prompts_per_step *
        sampling.group_size"``).
      mesh: the mesh.
      rules: the sharding rules (``rules.batch`` names the data-parallel axes).
    """
    size = data_parallel_size(mesh, rules)
    if rows % size:
        axes = " * ".join(f"mesh.{axis}" for axis in batch_axes(mesh, rules))
        raise ConfigError(
            f"{what} = {rows} rows do not split over the data-parallel size {size} ({axes} = "
            f"{' * '.join(str(mesh.shape[a]) for a in batch_axes(mesh, rules))}); change the "
            "batch or the mesh sizes"
        )
    processes = jax.process_count()
    if rows % processes:
        raise ConfigError(
            f"{what} = {rows} rows do not split over {processes} processes (each process reads "
            "an equal share of every batch)"
        )


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    """The fully replicated sharding on ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())


def row_sharding(mesh: jax.sharding.Mesh, rules: sharding_lib.ShardingRules) -> NamedSharding:
    """Rows (dimension 0) split over the batch axes, every other dimension replicated.

    The same sharding fits arrays of any rank (``[B]``, ``[B, T]``), so one covers a batch.
    """
    axes = batch_axes(mesh, rules)
    return NamedSharding(mesh, PartitionSpec(axes if axes else None))


def put_rows(tree: Any, sharding: NamedSharding) -> Any:
    """Host arrays (the same global values on every process) -> global arrays in ``sharding``.

    Each device receives only its block, read from the host array; nothing is compared or
    sent between processes. ``None`` leaves stay ``None``.

    Example:
      >>> mesh = sharding_lib.make_mesh(data=2, fsdp=1, devices=jax.devices()[:2])
      >>> x = put_rows(np.arange(4), row_sharding(mesh, sharding_lib.ShardingRules()))
      >>> x.sharding.spec, x.tolist()
      (P('data',), [0, 1, 2, 3])
    """

    def put(leaf):
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


to_host = sharding_lib.to_host  # the sampler uses it too, so it lives in r1jax.sharding


def gather_rows(tree: Any) -> Any:
    """Each process's host rows, concatenated in process order on every process.

    Every process must pass leaves of the same shape. With one process, returns ``tree``.
    """
    if jax.process_count() == 1:
        return tree
    return jax.tree.map(
        np.asarray, multihost_utils.process_allgather(jax.tree.map(np.asarray, tree), tiled=True)
    )


def gather_objects(value: Any) -> list[Any]:
    """Every process's JSON-serialisable ``value``, as a list indexed by process.

    Values JSON cannot encode (numpy scalars in a problem dict) arrive as their ``str()``.

    Example:
      >>> gather_objects({"a": 1})
      [{'a': 1}]
    """
    if jax.process_count() == 1:
        return [value]
    blob = np.frombuffer(json.dumps(value, default=str).encode(), np.uint8)
    sizes = multihost_utils.process_allgather(np.array([blob.size], np.int64))
    padded = np.zeros(int(np.max(sizes)), np.uint8)
    padded[: blob.size] = blob
    blobs = np.asarray(multihost_utils.process_allgather(padded))  # [processes, max size]
    return [
        json.loads(bytes(blobs[i, : int(size)]).decode()) for i, size in enumerate(np.ravel(sizes))
    ]


def global_max(value: int) -> int:
    """The largest ``value`` over all processes (e.g. a prompt bucket width)."""
    if jax.process_count() == 1:
        return int(value)
    return int(np.max(multihost_utils.process_allgather(np.array([value], np.int64))))


def process_rows(global_rows: int) -> slice:
    """This process's rows of a batch gathered with `gather_rows` (equal shares, in order).

    Example:
      >>> process_rows(8)
      slice(0, 8, None)
    """
    count = jax.process_count()
    share = global_rows // count
    index = jax.process_index()
    return slice(index * share, (index + 1) * share)


def put_local_rows(tree: Any, sharding: NamedSharding) -> Any:
    """This process's host rows -> global arrays in ``sharding`` (rows of all processes).

    Each process passes an equal share of the rows (``jax.make_array_from_process_local_data``);
    with one process this is `put_rows`.
    """

    def put(leaf):
        host = np.asarray(leaf)
        shape = (host.shape[0] * jax.process_count(), *host.shape[1:])
        return jax.make_array_from_process_local_data(sharding, host, shape)

    return jax.tree.map(put, tree)


def any_process(flag: bool) -> bool:
    """Whether ``flag`` is true on any process (e.g. a SIGTERM seen by one worker)."""
    if jax.process_count() == 1:
        return bool(flag)
    return bool(np.any(multihost_utils.process_allgather(np.array([flag], bool))))


def barrier(name: str) -> None:
    """Waits until every process reaches the barrier called ``name`` (no-op for one)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def check_layout(
    config: ml_collections.ConfigDict,
    mesh: jax.sharding.Mesh,
    rules: sharding_lib.ShardingRules,
    *,
    sft: bool,
) -> None:
    """ConfigError unless the trainer's batches split over the data-parallel axes and processes.

    The RL batch has ``data.prompts_per_step * sampling.group_size`` rows (with each context
    stage's group size, `r1jax.schedule`), the supervised one ``sft.batch_size`` (checked when
    ``sft``); each process reads an equal share of the prompts.
    Evaluation, budget-forced or not, runs on every process (`r1jax.evaluate` gathers the
    sampled rows and the verdicts), so it needs no check here.
    """
    processes = jax.process_count()
    prompts = config.data.prompts_per_step
    for group in schedule.group_sizes(config):
        what = "data.prompts_per_step * sampling.group_size"
        if group != config.sampling.group_size:
            what = f"data.prompts_per_step * {group} (a group size of schedule.context_stages)"
        check_batch_rows(prompts * group, what, mesh, rules)
    if prompts % processes:
        raise ConfigError(
            f"data.prompts_per_step={prompts} does not split over {processes} processes"
        )
    if sft:
        check_batch_rows(config.sft.batch_size, "sft.batch_size", mesh, rules)


def quiet(*args: Any, **kwargs: Any) -> None:
    """A ``print`` that prints nothing (processes other than 0 use it for progress lines)."""
    del args, kwargs


def per_process(state: Any) -> Any:
    """A host-side state to checkpoint: itself with one process, else every process's (a list).

    Every process must call it (it gathers).
    """
    return state if jax.process_count() == 1 else gather_objects(state)


def this_process(saved: Any, where: str) -> Any:
    """This process's entry of a `per_process` value read back from a checkpoint.

    Raises:
      CheckpointError: the checkpoint was written by another number of processes (``where``
        names it), so the per-process data positions cannot be resumed.
    """
    processes = jax.process_count()
    saved_by = len(saved) if isinstance(saved, list) else 1
    if saved_by != processes:
        raise CheckpointError(
            f"{where}: its data positions were written by {saved_by} process(es), this run has "
            f"{processes}; resume with {saved_by} process(es)"
        )
    return saved[jax.process_index()] if isinstance(saved, list) else saved
