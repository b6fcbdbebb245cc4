"""Algorithms that train a second model (PPO's critic, PRIME's PRM) through `r1jax.train.run`:
two steps on the smoke preset, an export without the second model, and an exact resume after
``kill -9`` with the second model in the checkpoint (the experiment files' smoke presets are
tests/test_experiments.py's)."""

import json
import signal
from pathlib import Path

import pytest
from safetensors import safe_open

from r1jax import metrics
from tests.test_train import (
    deterministic,
    run_on_one_device,
    smoke_config,
    start_training,
    wait_for_step,
)

ALGORITHMS = {
    "ppo": ("objective.algorithm=ppo", "critic.lr=1e-3"),
    "prime": ("objective.algorithm=prime", "reference.mode=frozen", "prm.lr=1e-4"),
}


def export_names(directory: Path) -> set[str]:
    names = set()
    for path in directory.glob("*.safetensors"):
        with safe_open(str(path), "np") as f:
            names.update(f.keys())
    return names


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_two_steps_train_the_second_model_and_export_only_the_policy(tmp_path, algorithm):
    name = "critic" if algorithm == "ppo" else "prm"
    config = smoke_config("eval.num_problems=0", *ALGORITHMS[algorithm])
    summary = run_on_one_device(config, str(tmp_path))
    assert summary["final_step"] == 4
    records = metrics.read_metrics(str(tmp_path))
    rl = [r for r in records if r["step"] > 2]
    assert len(rl) == 2 and all(r["skipped_updates"] == 0 for r in rl)
    assert all(f"{name}/grad_norm" in r and r[f"{name}/skipped_updates"] == 0 for r in rl)
    if algorithm == "ppo":
        assert all("critic/value_loss" in r and "critic/explained_variance" in r for r in rl)
    else:
        assert all("prm/loss" in r and "prime/kept_group_fraction" in r for r in rl)
    names = export_names(tmp_path / "export")
    assert names and not any("value_head" in n or name in n for n in names)
    hf = json.loads((tmp_path / "export" / "config.json").read_text())
    assert hf["num_hidden_layers"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_kill_minus_nine_and_restart_reproduce_the_uninterrupted_run(tmp_path, algorithm):
    overrides = ("steps=8", "eval.num_problems=0", *ALGORITHMS[algorithm])
    whole_run = start_training(tmp_path / "whole", *overrides)
    interrupted = start_training(tmp_path / "killed", *overrides)
    wait_for_step(interrupted, tmp_path / "killed", 5)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    assert whole_run.wait(timeout=900) == 0, whole_run.stdout.read()
    resumed = start_training(tmp_path / "killed", *overrides)
    output = resumed.communicate(timeout=900)[0]
    assert resumed.returncode == 0, output
    assert "resumed" in output
    whole = deterministic(metrics.read_metrics(str(tmp_path / "whole")))
    again = deterministic(metrics.read_metrics(str(tmp_path / "killed")))
    assert [r["step"] for r in again] == [r["step"] for r in whole] == list(range(1, 11))
    assert again == whole
