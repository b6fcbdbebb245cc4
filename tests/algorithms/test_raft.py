"""RAFT: row selection, the NLL against NumPy, and two RL steps through the trainer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import config as config_lib
from r1jax import metrics, train
from r1jax.algorithms import raft
from r1jax.models import init_params
from tests.learner.test_step import MODEL, make_batch, make_config, run_step
from tests.test_train import DEFAULT


def test_selection_rules():
    rewards = jnp.array([1.0, 2.0, 0.0, 0.0, 1.0, 1.0])
    correct = jnp.array([True, True, False, False, True, True])
    np.testing.assert_array_equal(
        raft.select_rows(rewards, correct, group_size=2, selection="correct"), correct
    )
    np.testing.assert_array_equal(  # best-of-G, first on ties, only if correct
        raft.select_rows(rewards, correct, group_size=2, selection="best"),
        [False, True, False, False, True, False],
    )


@pytest.mark.parametrize("selection", ["correct", "best"])
def test_loss_is_the_nll_of_the_selected_rows(selection):
    params = init_params(MODEL, jax.random.key(0))
    config = make_config("raft", f"objective.selection={selection}")
    batch = make_batch()
    _, step_metrics = run_step(params, config, batch)
    logprobs = np.asarray(jax.device_get(_policy_logprobs(params, batch, config)))
    correct = np.asarray(batch.is_correct)
    rewards = correct.astype(np.float32)  # default rewards: correctness only
    if selection == "best":
        best = np.zeros_like(correct)
        for start in range(0, len(correct), 4):
            best[start + int(np.argmax(rewards[start : start + 4]))] = True
        selected = best & correct
    else:
        selected = correct
    mask = np.asarray(batch.completion_mask) & selected[:, None]
    expected = -np.sum(logprobs * mask) / mask.sum()
    assert float(step_metrics["loss"]) == pytest.approx(expected, rel=1e-5)
    assert float(step_metrics["raft/selected_fraction"]) == pytest.approx(selected.mean())


def test_nothing_selected_is_a_zero_loss_not_a_skipped_update():
    params = init_params(MODEL, jax.random.key(0))
    batch = make_batch(is_correct=jnp.zeros(8, bool))
    _, step_metrics = run_step(params, make_config("raft"), batch)
    assert float(step_metrics["loss"]) == 0.0 and float(step_metrics["skipped_updates"]) == 0.0
    assert float(step_metrics["raft/prompts_without_sample"]) == 2.0


def _policy_logprobs(params, batch, config):
    from r1jax import learner

    return learner.reference_logprobs(params, batch, config)


@pytest.mark.slow
def test_two_steps_through_the_trainer(tmp_path):
    config = config_lib.load_config(
        f"{DEFAULT}:smoke", ["objective.algorithm=raft", "eval.num_problems=0"]
    )
    summary = train.run(config, str(tmp_path), devices=jax.devices()[:1])
    assert summary["final_step"] == 4
    records = [r for r in metrics.read_metrics(str(tmp_path)) if "raft/selected_fraction" in r]
    assert len(records) == 2 and all(r["skipped_updates"] == 0 for r in records)
    lines = (tmp_path / "problem_rewards.jsonl").read_text().splitlines()
    assert len(lines) == 4  # 2 RL steps x 2 prompts
