"""``python -m r1jax.compare``: algorithms side by side from one warm start."""

import json
import os
import re
from pathlib import Path

import pytest

from r1jax import compare
from r1jax import config as config_lib
from r1jax.learner import from_config as learner_setup

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "experiments" / "comparisons" / "algorithms.py"


def _write_spec(tmp_path: Path, body: str) -> str:
    path = tmp_path / "spec.py"
    path.write_text(body)
    return str(path)


def test_every_row_of_the_bundled_comparison_resolves_to_a_config_with_its_algorithm():
    spec = compare.load_spec(str(SPEC))
    assert {"grpo", "dr_grpo", "dapo", "reinforce_pp", "rloo", "ppo", "online_dpo", "raft"} <= set(
        spec["ALGORITHMS"]
    )
    assert "prime" in spec["ALGORITHMS"] and len(spec["SEEDS"]) == 2
    for row, overrides in spec["ALGORITHMS"].items():
        flags = {"model.init_from": "/w", "sft.mode": "none", "steps": 1, "seed": 0, **overrides}
        argv = compare.train_command(spec["EXPERIMENT"], "/run", flags)
        config = config_lib.load_config(
            spec["EXPERIMENT"], [a[len("--config.") :] for a in argv if a.startswith("--config.")]
        )
        assert config.objective.algorithm == overrides["objective.algorithm"], row
        learner_setup.algorithm_config(config)  # the learner accepts it (e.g. a needed reference)
        assert config.sft.mode == "none" and config.model.init_from == "/w"


@pytest.mark.parametrize(
    "body, message",
    [
        ("EXPERIMENT = 'default'\nSTEPS = 1\nSEEDS = (0,)\n", "ALGORITHMS is not defined"),
        (
            "EXPERIMENT = 'default'\nSTEPS = 0\nSEEDS = (0,)\nALGORITHMS = {'a': {}}\n",
            "STEPS must be a positive int",
        ),
        (
            "EXPERIMENT = 'default'\nSTEPS = 1\nSEEDS = (0,)\nALGORITHMS = {'a': {'steps': 2}}\n",
            "ALGORITHMS['a'] must be a dict that sets objective.algorithm",
        ),
        (
            "EXPERIMENT = 'default'\nSTEPS = 1\nSEEDS = ()\n"
            "ALGORITHMS = {'a': {'objective.algorithm': 'grpo'}}\n",
            "SEEDS must be a non-empty sequence of ints",
        ),
    ],
)
def test_a_malformed_comparison_file_is_an_error_naming_what_is_wrong(tmp_path, body, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        compare.load_spec(_write_spec(tmp_path, body))


def test_a_warm_start_without_a_summary_is_an_error(tmp_path):
    spec = {"EXPERIMENT": "default", "STEPS": 1, "SEEDS": (0,), "ALGORITHMS": {}}
    with pytest.raises(FileNotFoundError, match=r"holds no summary\.json"):
        compare.compare(spec, str(tmp_path / "out"), warm_start=str(tmp_path))


@pytest.mark.slow
def test_compare_runs_the_warm_start_and_each_row_once_and_reuses_finished_runs(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("XLA_FLAGS", raising=False)  # the runs see one CPU device, as a user's
    spec = _write_spec(
        tmp_path,
        "EXPERIMENT = 'default:smoke'\nSTEPS = 1\nSEEDS = (3,)\n"
        "ALGORITHMS = {'grpo': {'objective.algorithm': 'grpo'},\n"
        "              'rloo': {'objective.algorithm': 'rloo'}}\n",
    )
    workdir = tmp_path / "out"
    results = compare.main([spec, "--workdir", str(workdir)])
    printed = capsys.readouterr().out
    table = printed[printed.index("| algorithm |") :]
    assert printed.count("run: ") == 3  # the warm start and one run per row
    assert "| warm start |" in table and "| grpo |" in table and "| rloo |" in table
    warm = json.loads((workdir / "warm_start" / "summary.json").read_text())
    assert warm["final_step"] == 2  # the smoke preset's two warm-start steps, no RL step
    for row in ("grpo", "rloo"):
        run = workdir / row / "seed3"
        config = json.loads((run / "config.json").read_text())
        assert config["seed"] == 3 and config["objective"]["algorithm"] == row
        assert config["model"]["init_from"] == str(workdir / "warm_start")
        assert json.loads((run / "summary.json").read_text())["final_step"] == 1
        assert results["rows"][row]["runs"][0]["seed"] == 3
    assert (workdir / "comparison.md").read_text().strip() == table.strip()
    # A second call finds every summary and runs nothing again.
    logs = {p: p.stat().st_mtime_ns for p in workdir.rglob("train.log")}
    again = compare.main([spec, "--workdir", str(workdir)])
    assert {p: p.stat().st_mtime_ns for p in workdir.rglob("train.log")} == logs
    assert again["rows"] == results["rows"]
    assert os.path.exists(workdir / "comparison.json")


def test_only_with_a_row_the_file_lacks_is_an_error_naming_the_rows(tmp_path, capsys):
    with pytest.raises(SystemExit):
        compare.main([str(SPEC), "--workdir", str(tmp_path), "--only", "grpo", "nope"])
    assert "--only: ['nope'] not in ALGORITHMS" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing ran
