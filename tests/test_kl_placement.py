"""``objective.kl_placement = "reward"`` in the policy-gradient algorithm, against an independent numpy version.

KL in the reward (verl ``apply_kl_penalty``): with the KL in the reward the token reward is
``r_t = 1[t = |o|]·R − β·k1_t``, ``k1_t = log π_old(o_t) − log π_ref(o_t)`` from the rollout
(constant in θ), so it acts only through the advantages and the loss has no KL term. For the
outcome-level estimators (GRPO's group advantages) the sequence reward is
``R − β·Σ_t k1_t``; REINFORCE++ (§3.3) takes returns ``G_t = Σ_{k≥t} r_k`` of the token rewards.

With ``mask_truncated`` (overlong filtering) a truncated row loses its loss only: its reward,
its KL penalty and its returns stay in the baselines.

The batch's ``old_logprobs`` are the policy's own log-probs, so every ratio is 1 and the
clipped surrogate is ``−Â`` per token: the loss is then a plain aggregate of the advantages.
"""

import jax
import numpy as np
import pytest

from r1jax import learner
from r1jax.algorithms.policy_gradient import PolicyGradient
from r1jax.models import ModelConfig, init_params

BETA = 0.05
GROUP = 2
LENGTHS = np.array([5, 3, 4, 2])  # B = 4 rows, T = 5
CORRECT = np.array([True, False, True, True])


@pytest.fixture(scope="module")
def setup():
    model = ModelConfig.preset(
        "tiny", vocab_size=32, hidden_size=32, mlp_dim=64, head_dim=8, num_layers=1
    )
    policy = init_params(model, jax.random.key(0))
    reference = init_params(model, jax.random.key(1))
    rng = np.random.default_rng(0)
    rows, width = len(LENGTHS), 5
    mask = np.arange(width)[None, :] < LENGTHS[:, None]  # [B, T]
    batch = learner.Batch(
        prompt_tokens=rng.integers(1, 32, (rows, 3)).astype(np.int32),
        prompt_mask=np.ones((rows, 3), bool),
        completion_tokens=np.where(mask, rng.integers(1, 32, (rows, width)), 0).astype(np.int32),
        completion_mask=mask,
        old_logprobs=np.zeros((rows, width), np.float32),
        is_correct=CORRECT,
        is_well_formed=CORRECT,
        is_truncated=np.zeros(rows, bool),
        scores=np.zeros(rows, np.float32),
    )
    scoring = learner.LearnerConfig(model=model, algorithm=PolicyGradient(), group_size=GROUP)
    old = np.asarray(learner.reference_logprobs(policy, batch, config=scoring))  # ratio 1
    ref = np.asarray(learner.reference_logprobs(reference, batch, config=scoring))
    batch = learner.Batch(**{**batch.__dict__, "old_logprobs": old})
    return model, policy, reference, batch, old, ref, mask


def run_step(setup, *, truncated=None, **config_fields):
    model, policy, reference, batch, *_ = setup
    if truncated is not None:
        batch = learner.Batch(**{**batch.__dict__, "is_truncated": truncated})
    config_fields.pop("algorithm", None)  # the estimator fields say which algorithm it is
    algorithm = PolicyGradient(**{"kl_coef": BETA, **config_fields})
    config = learner.LearnerConfig(
        model=model,
        algorithm=algorithm,
        optimizer=learner.OptimizerConfig(learning_rate=0.0),
        group_size=GROUP,
    )
    state = learner.init_train_state(
        jax.tree.map(np.copy, policy), config, reference=jax.tree.map(np.copy, reference)
    )
    _, metrics = learner.train_step(state, batch, config=config)
    return {name: float(value) for name, value in metrics.items()}


# ---------------------------------------------------------------- the numpy reference


def numpy_k1(old, ref, mask):
    return np.where(mask, old.astype(np.float64) - ref, 0.0)  # [B, T]


def numpy_group_advantages(rewards, eps=1e-6):
    grouped = rewards.reshape(-1, GROUP)
    mean = grouped.mean(axis=1, keepdims=True)
    std = grouped.std(axis=1, ddof=1, keepdims=True)
    return ((grouped - mean) / (std + eps)).reshape(-1)  # [B]


def numpy_reinforce_pp(rewards, token_kl, mask, beta, eps=1e-8):
    token_rewards = -beta * token_kl
    token_rewards[np.arange(len(rewards)), LENGTHS - 1] += rewards  # R on the last token
    returns = np.where(mask, np.cumsum(token_rewards[:, ::-1], axis=1)[:, ::-1], 0.0)
    valid = returns[mask]
    mean, var = valid.mean(), valid.var(ddof=1)
    return np.where(mask, (returns - mean) / np.sqrt(var + eps), 0.0)  # [B, T]


# ---------------------------------------------------------------- tests


def test_group_advantages_take_the_summed_k1_as_a_reward_penalty(setup):
    *_, old, ref, mask = setup
    metrics = run_step(setup, kl_placement="reward", aggregation="token-mean")
    sequence_kl = numpy_k1(old, ref, mask).sum(axis=1)  # [B]
    assert np.all(np.abs(sequence_kl) > 1e-3)  # the two models differ: the penalty is visible
    rewards = CORRECT.astype(np.float64) - BETA * sequence_kl
    advantages = numpy_group_advantages(rewards)
    np.testing.assert_allclose(metrics["reward/kl"], np.mean(-BETA * sequence_kl), rtol=1e-5)
    np.testing.assert_allclose(metrics["reward/total"], rewards.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["reward/total_std"], rewards.std(), rtol=1e-5)
    np.testing.assert_allclose(
        metrics["advantage/abs_mean"], np.sum(LENGTHS * np.abs(advantages)) / LENGTHS.sum(),
        rtol=1e-5,
    )  # fmt: skip
    # No KL term in the loss: token-mean of -A at ratio 1 is the whole loss.
    expected_loss = -np.sum(LENGTHS * advantages) / LENGTHS.sum()
    assert abs(expected_loss) > 1e-2
    np.testing.assert_allclose(metrics["loss"], expected_loss, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(metrics["pg_loss"], metrics["loss"], rtol=1e-6)
    assert "kl" not in metrics


def test_reward_placement_does_not_depend_on_the_loss_estimator(setup):
    # The reward penalty is k1 whatever kl_estimator says (k3 is the loss placement's default).
    k3 = run_step(setup, kl_placement="reward", kl_estimator="k3")
    k2 = run_step(setup, kl_placement="reward", kl_estimator="k2")
    for name in ("reward/kl", "reward/total", "loss"):
        assert k3[name] == pytest.approx(k2[name], rel=1e-6), name


def test_loss_placement_leaves_the_rewards_alone(setup):
    *_, old, ref, mask = setup
    metrics = run_step(setup, kl_placement="loss", aggregation="token-mean", kl_estimator="k3")
    assert "reward/kl" not in metrics
    np.testing.assert_allclose(metrics["reward/total"], CORRECT.mean(), rtol=1e-6)
    # The loss's KL is the k3 token mean of policy (= old here) against the reference.
    delta = numpy_k1(old, ref, mask)
    k3 = np.where(mask, np.exp(-delta) - 1 + delta, 0.0)
    np.testing.assert_allclose(metrics["kl"], k3.sum() / mask.sum(), rtol=1e-4)
    np.testing.assert_allclose(metrics["loss"], metrics["pg_loss"] + BETA * metrics["kl"], 1e-5)


def test_numpy_reinforce_pp_matches_without_a_kl(setup):
    """Checks the numpy returns and whitening themselves (β = 0: no reference, no KL)."""
    *_, mask = setup
    metrics = run_step(
        setup, algorithm="reinforce_pp", advantage="reinforce_pp", kl_coef=0.0,
        aggregation="seq-mean-token-mean",
    )  # fmt: skip
    advantages = numpy_reinforce_pp(CORRECT.astype(np.float64), np.zeros(mask.shape), mask, 0.0)
    expected_loss = -np.mean(advantages.sum(axis=1) / LENGTHS)
    np.testing.assert_allclose(metrics["loss"], expected_loss, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        metrics["advantage/abs_mean"], np.abs(advantages).sum() / mask.sum(), rtol=1e-5
    )


def test_reinforce_pp_reward_kl_is_per_token_in_the_returns(setup):
    *_, old, ref, mask = setup
    beta = 1.0  # large enough that per-token and summed placements differ clearly
    metrics = run_step(
        setup, algorithm="reinforce_pp", advantage="reinforce_pp", kl_placement="reward",
        aggregation="seq-mean-token-mean", kl_coef=beta,
    )  # fmt: skip
    token_kl = numpy_k1(old, ref, mask)
    advantages = numpy_reinforce_pp(CORRECT.astype(np.float64), token_kl, mask, beta)
    np.testing.assert_allclose(
        metrics["advantage/abs_mean"], np.abs(advantages).sum() / mask.sum(), rtol=1e-4
    )
    expected_loss = -np.mean(advantages.sum(axis=1) / LENGTHS)
    np.testing.assert_allclose(metrics["loss"], expected_loss, rtol=1e-4, atol=1e-6)
    assert "kl" not in metrics


TRUNCATED = np.array([False, True, False, False])  # row 1 hit the length cap


def test_truncated_rows_keep_their_kl_penalty_in_the_group_baseline(setup):
    """Overlong filtering masks the truncated row's loss, not its reward or its KL penalty."""
    *_, old, ref, mask = setup
    metrics = run_step(
        setup, truncated=TRUNCATED, kl_placement="reward", aggregation="token-mean",
        mask_truncated=True,
    )  # fmt: skip
    sequence_kl = numpy_k1(old, ref, mask).sum(axis=1)  # [B], the truncated row's included
    rewards = (CORRECT & ~TRUNCATED).astype(np.float64) - BETA * sequence_kl
    advantages = numpy_group_advantages(rewards)
    kept = LENGTHS * ~TRUNCATED
    np.testing.assert_allclose(metrics["reward/kl"], np.mean(-BETA * sequence_kl), rtol=1e-5)
    np.testing.assert_allclose(metrics["reward/total"], rewards.mean(), rtol=1e-5)
    expected_loss = -np.sum(kept * advantages) / kept.sum()
    np.testing.assert_allclose(metrics["loss"], expected_loss, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        metrics["advantage/abs_mean"], np.sum(kept * np.abs(advantages)) / kept.sum(), rtol=1e-5
    )


def test_truncated_rows_stay_in_the_reinforce_pp_whitening(setup):
    *_, old, ref, mask = setup
    beta = 1.0
    metrics = run_step(
        setup, truncated=TRUNCATED, algorithm="reinforce_pp", advantage="reinforce_pp",
        kl_placement="reward", aggregation="token-mean", kl_coef=beta, mask_truncated=True,
    )  # fmt: skip
    rewards = (CORRECT & ~TRUNCATED).astype(np.float64)
    advantages = numpy_reinforce_pp(rewards, numpy_k1(old, ref, mask), mask, beta)  # all rows
    kept = mask & ~TRUNCATED[:, None]
    np.testing.assert_allclose(metrics["loss"], -advantages[kept].mean(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        metrics["advantage/abs_mean"], np.abs(advantages[kept]).mean(), rtol=1e-4
    )
