"""Multi-host behaviour with two real processes joined by ``jax.distributed`` on localhost."""

import json
import sys

import jax
import numpy as np
import pytest

from r1jax import models
from tests.multihost.launch import free_port, run_workers


@pytest.mark.multidevice
def test_two_processes_share_one_mesh_and_read_disjoint_shards(tmp_path):
    port = free_port()
    commands = [
        [sys.executable, "-m", "tests.multihost.worker", str(pid), str(port), str(tmp_path)]
        for pid in range(2)
    ]
    run_workers(commands, timeout=240)

    reports = [json.loads((tmp_path / f"process_{pid}.json").read_text()) for pid in range(2)]
    assert [r["process_index"] for r in reports] == [0, 1]
    assert all(r["process_count"] == 2 and r["device_count"] == 8 for r in reports)
    # Params were created sharded over the global mesh (vocab over tensor, embed over fsdp).
    assert reports[0]["embedding_spec"] == "P('tensor', 'fsdp')"
    # The two processes read disjoint shards that together cover the data.
    first, second = (set(r["record_indices"]) for r in reports)
    assert not first & second and first | second == set(range(16))

    # The sharded two-process forward equals the single-process forward.
    config = models.ModelConfig.preset("tiny")
    params = models.init_params(config, jax.random.key(0))
    tokens = np.arange(8 * 12, dtype=np.int32).reshape(8, 12) % config.vocab_size
    positions = np.broadcast_to(np.arange(12, dtype=np.int32), (8, 12))
    expected, _ = jax.jit(models.forward, static_argnames="config")(
        params, tokens, positions, config
    )
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected, atol=2e-5, rtol=2e-5)
