"""``python -m r1jax.train`` as two processes joined by ``jax.distributed`` on localhost."""

import sys
from pathlib import Path

import pytest

from r1jax import metrics
from tests.multihost.launch import REPO_ROOT, free_port, run_workers

SMOKE = f"{REPO_ROOT / 'experiments' / 'default.py'}:smoke"
TIMING = ("time/", "tokens_per_second", "mfu")


def _train_on_two_processes(out_dir: Path, *overrides: str) -> list[str]:
    port = free_port()
    flags = [
        f"--config.distributed.coordinator_address=localhost:{port}",
        "--config.distributed.num_processes=2",
        "--config.mesh.data=2",
        "--config.mesh.fsdp=2",
        "--config.mesh.tensor=2",
        "--config.data.prompts_per_step=4",
        "--config.sft.batch_size=4",
        "--config.eval.num_problems=4",
        "--config.eval.k=2",
        "--config.eval.budget_forcing.mode=cap",
        "--config.eval.budget_forcing.thinking_budget=6",
        "--config.eval.budget_forcing.answer_reserve=4",
        "--config.objective.entropy_coef=0.01",
        *[f"--config.{o}" for o in overrides],
    ]
    commands = [
        [
            *(sys.executable, "-m", "tests.multihost.train_worker", str(out_dir), "--"),
            *("--config", SMOKE, "--workdir", str(out_dir / "run")),
            *flags,
            f"--config.distributed.process_id={pid}",
        ]
        for pid in range(2)
    ]
    return run_workers(commands, timeout=400)


def _numbers(directory: Path) -> list[dict]:
    return [
        {k: v for k, v in record.items() if not k.startswith(TIMING)}
        for record in metrics.read_metrics(str(directory))
    ]


@pytest.mark.slow
@pytest.mark.multidevice
def test_two_processes_train_agree_on_metrics_and_resume(tmp_path):
    """2 SFT + 2 RL steps on a 2x2x2 mesh over two processes, then one more RL step resumed.

    The budget-forced evaluations after SFT and RL (4 problems x 2 samples, rows sharded over the
    processes' devices) report the same figures on both processes.
    """
    outputs = _train_on_two_processes(tmp_path)
    assert "over 2 process(es)" in outputs[0]
    first, second = _numbers(tmp_path / "process_0"), _numbers(tmp_path / "process_1")
    assert [r["step"] for r in first] == [1, 2, 3, 4]
    assert first == second
    evaluated = [r for r in first if "eval/pass@1" in r]
    assert [r["step"] for r in evaluated] == [2, 4]  # after SFT, after RL
    assert all(r["eval/num_problems"] == 4 and r["eval/num_samples"] == 2 for r in evaluated)
    assert all(0.0 <= r["eval/capped_fraction"] <= 1.0 for r in evaluated)  # budget-forced
    assert "eval after RL (step 4)" in outputs[0] and "eval after RL" not in outputs[1]
    assert all(r["loss"] == r["loss"] for r in first)  # finite, not NaN
    # Process 0 alone writes the shared files; every process wrote its checkpoint shards.
    run = tmp_path / "run"
    assert (run / "export" / "model.safetensors").exists()
    assert (run / "checkpoints" / "4").exists()

    # A restart resumes both processes (each from its own data position) at step 4.
    outputs = _train_on_two_processes(tmp_path, "steps=3")
    assert "resumed" in outputs[0]
    first, second = _numbers(tmp_path / "process_0"), _numbers(tmp_path / "process_1")
    assert first[-1]["step"] == second[-1]["step"] == 5
    assert first == second
