"""LIMR selection (`python -m r1jax.select`): the score on a hand-worked table, the CLI."""

import json

import numpy as np
import pytest

from r1jax import config as config_lib
from r1jax import select
from r1jax.data import sources


def test_score_matches_the_hand_worked_table():
    # r̄ = (1/3, 2/3); Σ_k (1 − r̄^k)² = 4/9 + 1/9 = 5/9.
    # a: (1/9 + 1/9) / (5/9) = 0.4 -> 0.6; b: (1/9 + 4/9) -> 0; c: (4/9 + 1/9) -> 0.
    curves = {"a": np.array([0.0, 1.0]), "b": np.array([0.0, 0.0]), "c": np.array([1.0, 1.0])}
    scores = select.limr_scores(curves)
    assert scores == pytest.approx({"a": 0.6, "b": 0.0, "c": 0.0})


def test_epochs_by_visit_or_by_steps_and_back_filling():
    records = [
        {"step": 1, "problem_id": "a", "reward": 0.0},
        {"step": 2, "problem_id": "b", "reward": 0.5},
        {"step": 3, "problem_id": "a", "reward": 1.0},
        {"step": 3, "problem_id": "a", "reward": 0.5},  # a resumed run rewrote step 3
        {"step": 5, "problem_id": "b", "reward": 1.0},
    ]
    records = select_records(records)
    by_visit = select.epoch_curves(records)
    np.testing.assert_array_equal(by_visit["a"], [0.0, 0.5])
    np.testing.assert_array_equal(by_visit["b"], [0.5, 1.0])
    by_steps = select.epoch_curves(records, steps_per_epoch=2)  # epochs: steps 1-2, 3-4, 5-6
    np.testing.assert_array_equal(by_steps["a"], [0.0, 0.5, 0.5])  # last epoch: last seen
    np.testing.assert_array_equal(by_steps["b"], [0.5, 1.0, 1.0])  # epoch 1 back-filled


def select_records(records):
    latest = {(r["step"], r["problem_id"]): r for r in records}
    return [latest[k] for k in sorted(latest)]


def test_the_cli_writes_a_subset_a_run_reads(tmp_path):
    data = tmp_path / "train.jsonl"
    rows = [{"problem": f"q{i}", "answer": str(i), "level": i % 2} for i in range(3)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    workdir = tmp_path / "run"
    workdir.mkdir()
    run_config = config_lib.load_config("", ["data.source=jsonl", f"data.path={data}"])
    config_lib.save_config(run_config, str(workdir))
    # Ids as the trainer logs them: a file row's id is "<file>:line <n>" without data.id_field.
    ids = [f"train.jsonl:line {n}" for n in (1, 2, 3)]
    curves = dict(zip(ids, ([0, 1], [0, 0], [1, 1])))  # the table above
    with open(workdir / "problem_rewards.jsonl", "w") as f:
        for epoch in range(2):
            for step_offset, (problem_id, curve) in enumerate(curves.items()):
                record = {"step": 1 + 3 * epoch + step_offset, "problem_id": problem_id}
                f.write(json.dumps({**record, "reward": curve[epoch]}) + "\n")
    out = tmp_path / "subset.jsonl"
    summary = select.main(
        [str(workdir), "--threshold", "0.6", "--out", str(out), "--scores", str(tmp_path / "s")]
    )
    assert summary["problems"] == 3 and summary["epochs"] == 2 and summary["selected"] == 1
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"level": 0, "problem": "q0", "answer": "0", "id": ids[0]}
    ]
    subset = config_lib.load_config(
        "", ["data.source=jsonl", f"data.path={out}", "data.id_field=id"]
    )
    problems = sources.problems_from_config(subset.data)
    assert len(problems) == 1 and problems[0]["question"] == "q0"
    assert problems[0]["id"] == ids[0]
