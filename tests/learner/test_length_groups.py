"""Length-grouped micro-batches (`r1jax.learner.length_groups`): on a long-tailed length mix
their gradients equal the padded full batch's, for every algorithm family that may use them."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import config as config_lib
from r1jax import learner
from r1jax.bench.longtail import draw_lengths
from r1jax.learner import length_groups
from r1jax.learner import step as step_lib
from r1jax.models import ModelConfig, init_params
from tests.learner.helpers import learner_config

MODEL = ModelConfig.preset("tiny", vocab_size=64, hidden_size=32, mlp_dim=64, head_dim=8)
B, G, TP, T = 16, 4, 4, 32
BUDGET = 144  # tokens per micro-batch: at most 16 rows at 4, 12 at 8, 7 at 16, 4 at 32
# (at least 4 rows each: on CPU, float32 matmuls of 1 or 2 rows round differently enough that
# padded row micro-batches of 2 rows already differ from the full batch by ~1e-6 here)


@pytest.fixture(scope="module")
def params():
    return init_params(MODEL, jax.random.key(0))


def long_tailed_batch(seed=0):
    """Completion lengths lognormal with median T/8 and 5% at T (rows of a group differ)."""
    rng = np.random.default_rng(seed)
    lengths = draw_lengths(B, T, seed)
    lengths[3] = T  # at least one row at the limit
    return learner.Batch(
        prompt_tokens=jnp.asarray(rng.integers(1, 64, (B, TP)), jnp.int32),
        prompt_mask=jnp.ones((B, TP), bool).at[::3, 0].set(False),
        completion_tokens=jnp.asarray(rng.integers(1, 64, (B, T)), jnp.int32),
        completion_mask=jnp.asarray(np.arange(T)[None] < lengths[:, None]),
        old_logprobs=jnp.asarray(rng.normal(-4.1, 0.1, (B, T)), jnp.float32),
        is_correct=jnp.asarray(rng.integers(0, 2, B), bool),
        is_well_formed=jnp.ones(B, bool),
        is_truncated=jnp.asarray(lengths == T),
        scores=jnp.zeros(B, jnp.float32),
    )


def make_config(algorithm, *overrides, **fields):
    overrides = (f"objective.algorithm={algorithm}", *overrides)
    if algorithm in ("grpo", "dr_grpo", "dapo", "ppo", "prime"):  # keep a KL term in the loss
        overrides = (*overrides, "objective.kl_coef=0.05")
    return learner_config(MODEL, *overrides, max_new_tokens=T, group_size=G, **fields)


def prepared_of(params, config, batch):
    """The batch with its reference log-probs, and ``prepare``'s output, as the step has them.

    The reference log-probs are the padded pass's for both paths, so the gradients compared
    differ only in how the gradient pass is split (the length-grouped reference pass is
    compared on its own below).
    """
    if config.uses_reference:
        padded = dataclasses.replace(config, micro_batch_tokens=0)
        batch = batch.replace(reference_logprobs=learner.reference_logprobs(params, batch, padded))
    algorithm = config.algorithm
    if config.auxiliary_models:
        state = learner.init_train_state(jax.tree.map(jnp.copy, params), config)
        aux = {name: model["params"] for name, model in state.aux.items()}
        scores = algorithm.score_auxiliary(aux, batch, config)
        return batch, algorithm.prepare(batch, config, auxiliary=scores)[0], aux
    return batch, algorithm.prepare(batch, config)[0], {}


def policy_gradients(params, config, batch):
    batch, prepared, _ = prepared_of(params, config, batch)
    return jax.jit(step_lib._gradients, static_argnums=3)(params, batch, prepared, config)


def relative_difference(a, b):
    def norm(tree):
        return np.sqrt(sum(np.sum(np.square(np.float64(x))) for x in jax.tree.leaves(tree)))

    assert norm(b) > 0
    return norm(jax.tree.map(lambda x, y: np.float64(x) - np.float64(y), a, b)) / norm(b)


ALGORITHMS = ["grpo", "dr_grpo", "dapo", "gspo", "ppo", "prime", "raft"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_length_grouped_gradients_equal_the_padded_batch(params, algorithm):
    batch = long_tailed_batch(seed=1)  # three buckets, part-filled micro-batches
    padded = make_config(algorithm)
    grouped = dataclasses.replace(padded, micro_batch_tokens=BUDGET)
    padded_grads, padded_sums = policy_gradients(params, padded, batch)
    grouped_grads, grouped_sums = policy_gradients(params, grouped, batch)
    assert relative_difference(grouped_grads, padded_grads) <= 1e-6
    for name in padded_sums:
        np.testing.assert_allclose(grouped_sums[name], padded_sums[name], rtol=1e-5, atol=1e-6)


def test_ppo_critic_gradients_equal_the_padded_batch(params):
    batch = long_tailed_batch(seed=0)
    padded = make_config("ppo")
    grouped = dataclasses.replace(padded, micro_batch_tokens=BUDGET)
    batch, prepared, aux = prepared_of(params, padded, batch)
    algorithm = padded.algorithm
    denominator = algorithm.auxiliary_denominator("critic", prepared, padded)

    def critic_gradients(config):
        def loss(critic, micro):
            micro_batch, micro_prepared = micro
            return algorithm.auxiliary_loss(
                "critic", critic, micro_batch, micro_prepared, denominator, config
            )

        grad_fn = jax.grad(loss, has_aux=True)
        run = jax.jit(lambda p, i: step_lib._accumulated(grad_fn, p, i, config))
        return run(aux["critic"], (batch, prepared))[0]

    assert relative_difference(critic_gradients(grouped), critic_gradients(padded)) <= 1e-6


def test_the_step_with_length_groups_matches_the_padded_step_and_compiles_once(params):
    padded = make_config("grpo", minibatches_per_step=2)
    grouped = dataclasses.replace(padded, micro_batch_tokens=BUDGET, length_buckets=3)
    results = []
    for config in (padded, grouped):
        state = learner.init_train_state(jax.tree.map(jnp.copy, params), config)
        state, metrics = learner.train_step(state, long_tailed_batch(), config=config)
        results.append(metrics)
    for name in ("loss", "grad_norm", "kl", "entropy", "clip_fraction"):
        np.testing.assert_allclose(results[1][name], results[0][name], rtol=1e-5, atol=1e-7)
    before = learner.train_step._cache_size()
    state, _ = learner.train_step(state, long_tailed_batch(seed=2), config=grouped)
    assert learner.train_step._cache_size() == before  # new lengths, same program


def test_every_row_is_taken_once_into_micro_batches_cut_to_fit():
    batch = long_tailed_batch(seed=1)  # sorted: 2 3 3 4 5 6 6 6 7 8 9 9 11 14 20 32
    prepared = {"loss_mask": batch.completion_mask}
    lengths = np.asarray(batch.completion_mask).sum(axis=1)

    def count(params, micro):
        micro_batch, _, row_ids, row_lengths = micro
        width = micro_batch.completion_tokens.shape[1]
        real = micro_batch.prompt_mask[:, -1]  # the zero row fills unused places
        return params, {
            "micro_batches": jnp.float32(1),
            "seen": jnp.zeros(B).at[row_ids].add(real),
            "too_wide": jnp.sum(real & (row_lengths > width)),
            "tokens": jnp.float32(micro_batch.rows * (TP + width)),
        }

    inputs = (batch, prepared, jnp.arange(B), jnp.asarray(lengths))
    _, sums = jax.jit(
        lambda i: length_groups.accumulate(count, jnp.float32(0), i, budget=BUDGET, buckets=4)
    )(inputs)
    np.testing.assert_array_equal(sums["seen"], np.ones(B))
    assert int(sums["too_wide"]) == 0
    # 10 rows of 12 at 8, 4 of 7 at 16, 2 of 4 at 32: the most rows per token each time.
    assert int(sums["micro_batches"]) == 3
    assert float(sums["tokens"]) == 12 * 12 + 7 * 20 + 4 * 36  # 428; padded: 16 x 36 = 576
    assert lengths.max() == T


def test_buckets_rows_and_lengths():
    assert length_groups.bucket_lengths(1024, 4) == (128, 256, 512, 1024)
    assert length_groups.bucket_lengths(100, 3) == (32, 56, 100)
    assert length_groups.bucket_lengths(32, 1) == (32,)
    assert length_groups.rows_per_bucket((4, 8, 16, 32), 4, BUDGET, B) == (16, 12, 7, 4)
    batch = long_tailed_batch()
    mask = np.asarray(batch.completion_mask)
    loss_mask = jnp.zeros_like(batch.completion_mask).at[0, T - 1].set(True)
    lengths = np.asarray(length_groups.row_lengths(batch, {"loss_mask": loss_mask}))
    np.testing.assert_array_equal(lengths[1:], mask[1:].sum(axis=1))
    assert lengths[0] == T


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("optim.micro_batch_tokens=-1", "optim.micro_batch_tokens"),
        ("optim.length_buckets=0", "optim.length_buckets"),
    ],
)
def test_bad_values_are_config_errors_naming_the_key(override, key):
    with pytest.raises(config_lib.ConfigError, match=re.escape(key)):
        make_config("grpo", override)


def test_online_dpo_which_pairs_rows_is_refused():
    with pytest.raises(config_lib.ConfigError, match=r"optim\.micro_batch_tokens"):
        learner_config(
            MODEL,
            "objective.algorithm=online_dpo",
            "optim.micro_batch_tokens=64",
            max_new_tokens=T,
            group_size=G,
        )


def test_length_grouped_reference_logprobs_equal_the_padded_ones_on_the_mask(params):
    batch = long_tailed_batch()
    padded = make_config("grpo")
    grouped = dataclasses.replace(padded, micro_batch_tokens=BUDGET)
    mask = np.asarray(batch.completion_mask)
    expected = np.asarray(learner.reference_logprobs(params, batch, padded))
    got = np.asarray(learner.reference_logprobs(params, batch, grouped))
    np.testing.assert_allclose(got[mask], expected[mask], rtol=1e-6, atol=1e-6)
    short = mask.sum(axis=1) <= 8  # sorted: 1 1 2 2 2 4 5 5 5 5 6 7 | 19 32 32 32
    assert short.sum() == 12  # the twelve shortest rows share one micro-batch cut at 8
    assert np.all(got[short, 8:] == 0) and np.all(expected[short, 8:] != 0)
