"""One process of a two-process r1jax run on localhost (4 simulated CPU devices each).

Run by tests/multihost/test_two_processes.py as
``python -m tests.multihost.worker PROCESS_ID PORT OUT_DIR``. Each process joins the job with
``jax.distributed.initialize``, builds the same 8-device mesh, creates the tiny model's params
directly in their shardings, runs a sharded forward and writes what it saw to ``OUT_DIR``.
"""

import json
import os
import sys


def main(process_id: int, port: int, out_dir: str) -> None:
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.experimental import multihost_utils

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"localhost:{port}", num_processes=2, process_id=process_id
    )
    from r1jax import models, sharding
    from r1jax.data import pipeline, sources
    from r1jax.tasks import countdown

    mesh = sharding.make_mesh(data=2, fsdp=2, tensor=2)
    config = models.ModelConfig.preset("tiny")
    params = models.init_params(config, jax.random.key(0), mesh=mesh)
    tokens = np.arange(8 * 12, dtype=np.int32).reshape(8, 12) % config.vocab_size
    positions = np.broadcast_to(np.arange(12, dtype=np.int32), (8, 12))
    batch_sharding = sharding.logical_sharding(mesh, ("batch", "seq"), shape=tokens.shape)

    def global_array(host: np.ndarray) -> jax.Array:
        return jax.make_array_from_callback(host.shape, batch_sharding, lambda index: host[index])

    forward = jax.jit(models.forward, static_argnames="config")
    with jax.set_mesh(mesh):
        logits, _ = forward(params, global_array(tokens), global_array(positions), config)
        logits = jnp.asarray(logits)
    gathered = multihost_utils.process_allgather(logits, tiled=True)
    embedding_spec = str(params["embed"]["embedding"].sharding.spec)

    # Each process reads its own shard of the problem stream (process index and count come
    # from jax.distributed by default).
    source = sources.ProceduralSource(countdown.generate, seed=0, num_records=16)
    records = pipeline.record_dataset(source, seed=0, shuffle=False, num_epochs=1)
    indices = [int(index) for index, _ in records]
    with open(os.path.join(out_dir, f"process_{process_id}.json"), "w") as file:
        json.dump(
            {
                "process_index": jax.process_index(),
                "process_count": jax.process_count(),
                "device_count": jax.device_count(),
                "embedding_spec": embedding_spec,
                "record_indices": indices,
            },
            file,
        )
    if process_id == 0:
        np.save(os.path.join(out_dir, "logits.npy"), np.asarray(gathered))
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
