"""Two processes x 4 devices train to the same parameters as one process x 8 devices, and resume.

Both runs train the tiny model of ``experiments/default.py:smoke`` with GRPO only (no warm
start, no evaluation; an entropy bonus and a KL term so that the untrained model gets gradients)
for three steps on the same 2x2x2 mesh (``data x fsdp x tensor``) of 8 simulated CPU devices;
the two-process run spreads it over two ``python -m r1jax.train`` processes joined by
``jax.distributed`` on localhost. The exported safetensors of the two runs are compared.

``data.prompts_per_step`` equals the number of processes (2): each process reads its prompts
from a strided shard of the problem stream (process ``p`` reads positions ``p, p + 2, ...``) and
the global batch is process 0's prompts followed by process 1's, so only with one prompt per
process per step is the global batch the same prompts in the same order as a single process
reads them (with 4 prompts it would be problems ``[0, 2, 1, 3]`` instead of ``[0, 1, 2, 3]``,
other sampling keys per problem, other completions).
"""

import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from r1jax import metrics
from tests.multihost.launch import REPO_ROOT, free_port, run_workers

SMOKE = f"{REPO_ROOT / 'experiments' / 'default.py'}:smoke"
TIMING = ("time/", "tokens_per_second", "mfu")
# Tolerance. Both runs compile the same programs for the same 8-device mesh; they differ only in
# how collectives between the two halves of the mesh run (gloo between processes, in-process
# otherwise), which may add partial sums in another order. Measured: the exported parameters
# differ by at most 8.3e-8 and the logged losses by about 1e-7 relative. Three AdamW steps at
# lr 2e-4 move a parameter by up to about 6e-4, so 1e-6 leaves room for rounding and still
# fails when the runs diverge (another batch, other samples, a step applied twice).
ATOL = 1e-6
RTOL = 1e-5


def _flags(*overrides: str) -> list[str]:
    return [
        "--config.mesh.data=2",
        "--config.mesh.fsdp=2",
        "--config.mesh.tensor=2",
        "--config.sft.mode=none",
        "--config.steps=3",
        "--config.data.prompts_per_step=2",
        "--config.sampling.group_size=4",
        "--config.eval.num_problems=0",
        # The from-scratch model earns no reward yet (every group's advantages are 0): an
        # entropy bonus and a KL term against a frozen reference give every step a gradient.
        "--config.objective.entropy_coef=0.01",
        "--config.objective.kl_coef=0.01",
        "--config.reference.mode=frozen",
        *[f"--config.{o}" for o in overrides],
    ]


def _worker(out_dir: Path, *args: str, devices: int = 4) -> list[str]:
    return [
        *(sys.executable, "-m", "tests.multihost.train_worker", str(out_dir), str(devices), "--"),
        *("--config", SMOKE, "--workdir", str(out_dir / "run")),
        *args,
    ]


def _train_on_two_processes(out_dir: Path, *overrides: str) -> list[str]:
    port = free_port()
    distributed = [
        f"--config.distributed.coordinator_address=localhost:{port}",
        "--config.distributed.num_processes=2",
    ]
    commands = [
        _worker(out_dir, *_flags(*overrides), *distributed, f"--config.distributed.process_id={p}")
        for p in range(2)
    ]
    return run_workers(commands, timeout=400)


def _numbers(directory: Path) -> list[dict]:
    return [
        {k: v for k, v in record.items() if not k.startswith(TIMING)}
        for record in metrics.read_metrics(str(directory))
    ]


def _exported(out_dir: Path) -> dict[str, np.ndarray]:
    return load_file(out_dir / "run" / "export" / "model.safetensors")


@pytest.mark.slow
@pytest.mark.multidevice
def test_two_processes_end_with_the_parameters_of_one_and_resume(tmp_path):
    pair, single = tmp_path / "pair", tmp_path / "single"
    outputs = _train_on_two_processes(pair)
    assert "over 2 process(es)" in outputs[0]
    run_workers([_worker(single, *_flags(), devices=8)], timeout=400)

    first, second = _numbers(pair / "process_0"), _numbers(pair / "process_1")
    assert [r["step"] for r in first] == [1, 2, 3]
    assert first == second
    reference = _numbers(single / "process_0")
    assert [r["step"] for r in reference] == [1, 2, 3]
    for got, want in zip(first, reference):  # the same samples, rewards and losses
        assert got.keys() == want.keys()
        np.testing.assert_allclose(
            [got[k] for k in sorted(got)], [want[k] for k in sorted(want)], rtol=1e-5, atol=1e-6
        )

    two, one = _exported(pair), _exported(single)
    assert two.keys() == one.keys()
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=RTOL, atol=ATOL, err_msg=name)
    # The comparison means something only if training moved the parameters.
    assert all(r["grad_norm"] > 0 and r["skipped_updates"] == 0 for r in first)

    # Rerun the pair with one more step: both processes resume from the pair's step-3
    # checkpoint and finish step 4.
    outputs = _train_on_two_processes(pair, "steps=4")
    assert "resumed" in outputs[0] and "at step 3" in outputs[0]
    first, second = _numbers(pair / "process_0"), _numbers(pair / "process_1")
    assert [r["step"] for r in first] == [1, 2, 3, 4]
    assert first == second
    assert (pair / "run" / "checkpoints" / "4").exists()
