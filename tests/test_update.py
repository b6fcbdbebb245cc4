"""Tests for r1jax.update: the compiled update step on a tiny random model."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import update
from r1jax.models import ModelConfig, init_params, token_logprobs

MODEL = ModelConfig.preset("tiny", vocab_size=64, hidden_size=32, mlp_dim=64, head_dim=8)
B, TP, T = 8, 4, 6


@pytest.fixture(scope="module")
def params():
    return init_params(MODEL, jax.random.key(0))


def make_batch(seed=0, **changes):
    rng = np.random.default_rng(seed)
    batch = update.UpdateBatch(
        prompt_tokens=jnp.asarray(rng.integers(1, 64, (B, TP)), jnp.int32),
        prompt_mask=jnp.ones((B, TP), bool).at[:, 0].set(False),
        completion_tokens=jnp.asarray(rng.integers(1, 64, (B, T)), jnp.int32),
        completion_mask=jnp.asarray(np.arange(T)[None] < rng.integers(1, T + 1, (B, 1))),
        old_logprobs=jnp.asarray(rng.normal(-4.1, 0.1, (B, T)), jnp.float32),
        is_correct=jnp.asarray([1, 0, 0, 1, 1, 1, 0, 0], bool),
        is_well_formed=jnp.ones(B, bool),
        is_truncated=jnp.zeros(B, bool),
    )
    return dataclasses.replace(batch, **changes)


def make_config(algorithm="grpo", **changes):
    fields = update.algorithm_defaults(algorithm)
    fields.setdefault("kl_coef", 0.05)
    fields.update(
        model=MODEL,
        group_size=4,
        max_new_tokens=T,
        overlong_cache_length=2,
        optimizer=update.OptimizerConfig(learning_rate=1e-3),
    )
    fields.update(changes)
    return update.UpdateConfig(**fields)


def run_step(params, config, batch):
    state = update.init_train_state(jax.tree.map(jnp.copy, params), config)
    return update.update_step(state, batch, config=config)


@pytest.mark.parametrize(
    "algorithm",
    [
        "grpo",
        "reinforce_pp",
        pytest.param("dr_grpo", marks=pytest.mark.slow),
        pytest.param("dapo", marks=pytest.mark.slow),
        pytest.param("gspo", marks=pytest.mark.slow),
        pytest.param("rloo", marks=pytest.mark.slow),
        pytest.param("sft", marks=pytest.mark.slow),
    ],
)
def test_micro_batches_give_the_full_batch_loss_and_gradient(params, algorithm):
    batch = make_batch()
    _, whole = run_step(params, make_config(algorithm), batch)
    _, split = run_step(params, make_config(algorithm, micro_batch_size=2), batch)
    np.testing.assert_allclose(split["loss"], whole["loss"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(split["grad_norm"], whole["grad_norm"], rtol=1e-4)
    assert np.isfinite(float(whole["loss"]))


def test_kl_weight_zero_keeps_no_reference(params):
    state = update.init_train_state(params, make_config(kl_coef=0.0))
    assert state.reference is None
    assert update.init_train_state(params, make_config(kl_coef=0.1)).reference is not None


def test_reference_is_stored_in_the_compute_dtype_with_identical_logprobs(params):
    bf16 = ModelConfig.preset(
        "tiny", vocab_size=64, hidden_size=32, mlp_dim=64, head_dim=8, dtype="bfloat16"
    )
    config = dataclasses.replace(make_config(), model=bf16)
    state = update.init_train_state(params, config)
    assert state.reference["layers_0"]["mlp"]["up_proj"]["kernel"].dtype == jnp.bfloat16
    assert state.reference["embed"]["embedding"].dtype == jnp.bfloat16
    assert state.reference["final_norm"]["scale"].dtype == jnp.float32  # applied in float32
    batch = make_batch()
    stored = update.reference_logprobs(state.reference, batch, config)
    from_policy = update.reference_logprobs(params, batch, config)
    np.testing.assert_array_equal(stored, from_policy)
    # float32 compute keeps a float32 copy.
    state = update.init_train_state(params, make_config())
    assert state.reference["embed"]["embedding"].dtype == jnp.float32


def test_kl_is_zero_against_an_identical_reference(params):
    _, metrics = run_step(params, make_config(), make_batch())
    assert float(metrics["kl"]) == pytest.approx(0.0, abs=1e-6)


def test_non_finite_update_is_skipped_and_counted(params):
    config = make_config()
    batch = make_batch(old_logprobs=jnp.full((B, T), jnp.nan))
    state = update.init_train_state(jax.tree.map(jnp.copy, params), config)
    before = jax.tree.map(np.asarray, state.policy)
    state, metrics = update.update_step(state, batch, config=config)
    assert int(state.nonfinite_streak) == 1 and int(state.nonfinite_total) == 1
    assert float(metrics["skipped_updates"]) == 1.0
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state.policy)):
        np.testing.assert_array_equal(a, b)
    state, _ = update.update_step(state, make_batch(), config=config)
    assert int(state.nonfinite_streak) == 0 and int(state.step) == 2


def test_equal_rewards_give_no_policy_gradient(params):
    batch = make_batch(is_correct=jnp.ones(B, bool))
    _, metrics = run_step(params, make_config(), batch)  # the k3 KL has no gradient at 0
    assert float(metrics["reward/equal_group_fraction"]) == 1.0
    assert float(metrics["grad_norm"]) == pytest.approx(0.0, abs=1e-6)


def test_sft_loss_is_the_token_mean_nll(params):
    rng = np.random.default_rng(1)
    tokens = rng.integers(1, 64, (4, 7)).astype(np.int32)
    loss_mask = np.zeros((4, 7), np.int32)
    loss_mask[:, 3:6] = 1
    lengths = np.array([6, 6, 5, 7])
    batch = update.UpdateBatch.from_sft(tokens, loss_mask, lengths)
    _, metrics = run_step(params, make_config("sft"), batch)
    logprobs = token_logprobs(params, jnp.asarray(tokens), jnp.arange(7)[None].repeat(4, 0), MODEL)
    mask = (loss_mask & (np.arange(7)[None] < lengths[:, None]))[:, 1:]
    expected = -np.sum(np.asarray(logprobs) * mask) / mask.sum()
    assert float(metrics["loss"]) == pytest.approx(expected, rel=1e-5)


def test_several_updates_per_rollout_move_away_from_the_sampler(params):
    config = make_config(num_iterations=2, minibatches_per_step=2)
    state, metrics = run_step(params, config, make_batch())
    assert int(state.step) == 1
    assert jax.tree.leaves(state.opt_state)[0].shape == ()  # first leaf: the update count
    assert float(metrics["learning_rate"]) == pytest.approx(1e-3)


def test_same_config_compiles_once(params):
    config = make_config()
    state = update.init_train_state(jax.tree.map(jnp.copy, params), config)
    state, _ = update.update_step(state, make_batch(0), config=config)
    before = update.update_step._cache_size()
    state, _ = update.update_step(state, make_batch(1), config=config)
    assert update.update_step._cache_size() == before


def test_learning_rate_warms_up_then_decays():
    schedule = update.learning_rate_schedule(
        update.OptimizerConfig(learning_rate=1.0, warmup_steps=2, decay="linear", total_steps=4)
    )
    assert [round(float(schedule(s)), 3) for s in range(5)] == [0.0, 0.5, 1.0, 0.5, 0.0]


def test_unknown_algorithm_is_a_clear_error():
    with pytest.raises(ValueError, match=r"objective\.algorithm"):
        update.algorithm_defaults("ppo2")
