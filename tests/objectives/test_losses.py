"""Tests for r1jax.objectives.losses: composed losses vs NumPy, gradients, micro-batching."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.objectives import advantages as adv_lib
from r1jax.objectives import aggregation as agg
from r1jax.objectives import kl as kl_lib
from r1jax.objectives import losses

P, G, T, D = 3, 2, 5, 3
B = P * G

EXPECTED_METRICS = {
    "loss",
    "pg_loss",
    "clip_frac_low",
    "clip_frac_high",
    "clip_frac_dual",
    "ratio_mean",
    "ratio_min",
    "ratio_max",
    "advantage_mean",
    "advantage_std",
    "advantage_min",
    "advantage_max",
    "num_tokens",
    "denominator",
}

LOSSES = {
    "grpo": functools.partial(losses.grpo_loss, group_size=G),
    "dr_grpo": functools.partial(losses.dr_grpo_loss, group_size=G, kl_coef=0.01),
    "dapo": functools.partial(losses.dapo_loss, group_size=G, dual_clip=10.0),
    "gspo": functools.partial(losses.gspo_loss, group_size=G, eps_low=0.05, eps_high=0.05),
    "reinforce_pp": losses.reinforce_pp_loss,
    "reinforce_pp_baseline": functools.partial(
        losses.reinforce_pp_loss, group_size=G, kl_coef=0.001
    ),
    "rloo": functools.partial(losses.rloo_loss, group_size=G, kl_coef=0.001),
}


def make_batch(seed, *, spread=0.3):
    rng = np.random.default_rng(seed)
    inputs = jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
    theta = jnp.asarray(rng.normal(size=D), jnp.float32)
    old = np.asarray(logprobs_fn(theta, inputs)) + rng.normal(scale=spread, size=(B, T))
    ref = np.asarray(logprobs_fn(theta, inputs)) + rng.normal(scale=spread, size=(B, T))
    rewards = rng.integers(0, 2, size=B).astype(np.float32)
    lengths = rng.integers(1, T + 1, size=B)
    mask = np.arange(T)[None, :] < lengths[:, None]
    mask[-1] = False  # one fully masked row
    return (
        theta,
        inputs,
        jnp.asarray(old, jnp.float32),
        jnp.asarray(ref, jnp.float32),
        rewards,
        mask,
    )


def logprobs_fn(theta, inputs):
    """A tiny differentiable 'policy': per-token log-probs from shared parameters ``[D]``."""
    return -jax.nn.softplus(inputs @ theta)  # [B, T]


def np_grpo(logprobs, old, ref, rewards, mask, *, eps, beta):
    logprobs, old, ref = (np.asarray(x, np.float64) for x in (logprobs, old, ref))
    grouped = rewards.reshape(P, G).astype(np.float64)
    advantages = (
        (grouped - grouped.mean(-1, keepdims=True))
        / (grouped.std(-1, ddof=1, keepdims=True) + 1e-6)
    ).reshape(-1)[:, None]
    ratio = np.exp(logprobs - old)
    surrogate = np.maximum(-advantages * ratio, -advantages * np.clip(ratio, 1 - eps, 1 + eps))
    k3 = np.exp(ref - logprobs) - 1 - (ref - logprobs)
    per_token = (surrogate + beta * k3) * mask
    rows = mask.sum(-1)
    keep = rows > 0
    return (per_token[keep].sum(-1) / rows[keep]).mean()


def test_grpo_matches_numpy():
    theta, inputs, old, ref, rewards, mask = make_batch(0)
    logprobs = logprobs_fn(theta, inputs)
    fn = jax.jit(functools.partial(losses.grpo_loss, group_size=G, kl_coef=0.04))
    loss, metrics = fn(logprobs, old, ref, rewards, mask)
    want = np_grpo(logprobs, old, ref, rewards, mask, eps=0.2, beta=0.04)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    want_kl = np.asarray(kl_lib.kl_k3(logprobs, ref))[mask].mean()
    np.testing.assert_allclose(metrics["kl"], want_kl, rtol=1e-5)
    assert float(metrics["num_tokens"]) == mask.sum()
    assert float(metrics["denominator"]) == (mask.sum(-1) > 0).sum()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_composed_losses_are_finite_report_metrics_and_handle_empty_batches(name):
    theta, inputs, old, ref, rewards, mask = make_batch(1)

    @jax.jit
    def loss_and_grad(theta, mask):
        def loss(theta):
            return LOSSES[name](logprobs_fn(theta, inputs), old, ref, rewards, mask)

        return jax.value_and_grad(loss, has_aux=True)(theta)

    (loss, metrics), grad = loss_and_grad(theta, mask)
    assert loss.shape == () and np.isfinite(float(loss))
    assert np.all(np.isfinite(np.asarray(grad))) and np.any(np.asarray(grad) != 0)
    assert EXPECTED_METRICS | {"kl"} <= set(metrics)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert 0.0 <= float(metrics["clip_frac_high"]) <= 1.0
    # A fully masked batch gives 0, not NaN, and a zero gradient.
    (empty_loss, empty_metrics), empty_grad = loss_and_grad(theta, np.zeros((B, T), bool))
    assert float(empty_loss) == 0.0
    assert np.all(np.asarray(empty_grad) == 0.0)
    assert all(np.isfinite(float(v)) for v in empty_metrics.values())


def _full_advantages(name, old, ref, rewards, mask):
    if name in ("grpo", "dapo", "gspo"):
        return adv_lib.group_relative_advantages(rewards, group_size=G)
    if name == "dr_grpo":
        return adv_lib.dr_grpo_advantages(rewards, group_size=G)
    if name == "rloo":
        return adv_lib.rloo_advantages(rewards, group_size=G)
    kl = kl_lib.kl_k1(old, ref)
    group_size = G if name == "reinforce_pp_baseline" else None
    return adv_lib.reinforce_pp_advantages(
        rewards, mask, kl=kl, kl_coef=0.001, group_size=group_size
    )[0]


MODES = {
    "grpo": "seq-mean-token-mean",
    "dr_grpo": "seq-mean-token-sum-norm",
    "dapo": "token-mean",
    "gspo": "seq-mean-token-mean",
    "reinforce_pp": "token-mean",
    "reinforce_pp_baseline": "token-mean",
    "rloo": "token-mean",
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_microbatch_gradients_sum_to_full_batch(name):
    theta, inputs, old, ref, rewards, mask = make_batch(3, spread=0.5)
    loss_fn = LOSSES[name]

    def loss(theta, x, o, r, rw, m, **kwargs):
        return loss_fn(logprobs_fn(theta, x), o, r, rw, m, **kwargs)[0]

    grad_fn = jax.jit(jax.value_and_grad(loss))
    full_value, full_grad = grad_fn(theta, inputs, old, ref, rewards, mask)
    advantages = _full_advantages(name, old, ref, rewards, mask)
    denominator = agg.aggregation_denominator(mask, mode=MODES[name])
    value_sum, grad_sum = 0.0, jnp.zeros_like(theta)
    for rows in np.split(np.arange(B), P):  # one prompt group per micro-batch
        value, grad = grad_fn(
            theta, inputs[rows], old[rows], ref[rows], None, mask[rows],
            advantages=advantages[rows], denominator=denominator,
        )  # fmt: skip
        value_sum, grad_sum = value_sum + value, grad_sum + grad
    np.testing.assert_allclose(value_sum, full_value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad_sum, full_grad, rtol=1e-4, atol=1e-6)


def test_grpo_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        theta, inputs, old, ref, rewards, mask = make_batch(4)
        theta, inputs = jnp.asarray(theta, jnp.float64), jnp.asarray(inputs, jnp.float64)
        old, ref = jnp.asarray(old, jnp.float64), jnp.asarray(ref, jnp.float64)

        @jax.jit
        def loss(theta):
            lp = logprobs_fn(theta, inputs)
            return losses.grpo_loss(lp, old, ref, rewards, mask, group_size=G, kl_coef=0.04)[0]

        grad = jax.jit(jax.grad(loss))(theta)
        step = 1e-6
        eye = jnp.eye(D, dtype=jnp.float64)
        numeric = [
            (loss(theta + step * eye[i]) - loss(theta - step * eye[i])) / (2 * step)
            for i in range(D)
        ]
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-9)


def test_on_policy_grpo_gradient_is_plain_policy_gradient():
    rewards = jnp.array([1.0, 0.0, 0.0, 0.0])
    mask = jnp.array([[1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 1, 1]])
    logprobs = jnp.full((4, 3), -1.0)
    grad = jax.jit(jax.grad(
        lambda lp: losses.grpo_loss(lp, jax.lax.stop_gradient(lp), None, rewards, mask,
                                    group_size=2, kl_coef=0.0)[0]
    ))(logprobs)  # fmt: skip
    advantages = np.asarray(adv_lib.group_relative_advantages(rewards, group_size=2))
    lengths = np.asarray(mask).sum(-1)
    want = -advantages[:, None] * np.asarray(mask) / lengths[:, None] / 4
    np.testing.assert_allclose(grad, want, rtol=1e-6, atol=1e-8)


def test_dapo_clip_fractions_and_ratio_stats():
    old = jnp.zeros((2, 2))
    logprobs = jnp.log(jnp.array([[1.5, 1.0], [0.5, 1.0]]))
    _, metrics = losses.dapo_loss(
        logprobs, old, None, jnp.array([1.0, 0.0]), jnp.ones((2, 2)), group_size=2
    )
    assert float(metrics["clip_frac_high"]) == 0.25
    assert float(metrics["clip_frac_low"]) == 0.25
    assert float(metrics["ratio_max"]) == pytest.approx(1.5)
    assert float(metrics["ratio_min"]) == pytest.approx(0.5)
    assert "kl" not in metrics


def test_entropy_bonus_is_subtracted_with_the_same_aggregation():
    theta, inputs, old, ref, rewards, mask = make_batch(5)
    logprobs = logprobs_fn(theta, inputs)
    entropy = jnp.asarray(np.random.default_rng(5).uniform(size=(B, T)), jnp.float32)
    base, _ = losses.grpo_loss(logprobs, old, ref, rewards, mask, group_size=G, entropy=entropy)
    bonus, metrics = losses.grpo_loss(
        logprobs, old, ref, rewards, mask, group_size=G, entropy=entropy, entropy_coef=0.01
    )
    reduced = agg.aggregate_value(agg.seq_mean_token_mean(entropy, mask))
    np.testing.assert_allclose(bonus, base - 0.01 * reduced, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(metrics["entropy"], np.asarray(entropy)[mask].mean(), rtol=1e-5)


def test_dr_grpo_constant_normaliser_defaults_to_completion_length():
    theta, inputs, old, _, rewards, mask = make_batch(6)
    logprobs = logprobs_fn(theta, inputs)
    default, _ = losses.dr_grpo_loss(logprobs, old, None, rewards, mask, group_size=G)
    explicit, _ = losses.dr_grpo_loss(
        logprobs, old, None, rewards, mask, group_size=G, max_length=T
    )
    verl, _ = losses.dr_grpo_loss(
        logprobs, old, None, rewards, mask, group_size=G, aggregation_mode="constant"
    )
    rows = float((mask.sum(-1) > 0).sum())
    np.testing.assert_allclose(default, explicit)
    np.testing.assert_allclose(verl, default * rows, rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_low_precision_logprobs(dtype):
    theta, inputs, old, ref, rewards, mask = make_batch(7)
    logprobs = logprobs_fn(theta, inputs)
    cast = [jnp.asarray(x, dtype) for x in (logprobs, old, ref)]
    loss, _ = losses.grpo_loss(*cast, rewards, mask, group_size=G)
    assert loss.dtype == jnp.float32
    want = np_grpo(*(np.asarray(x, np.float32) for x in cast), rewards, mask, eps=0.2, beta=0.001)
    np.testing.assert_allclose(loss, want, rtol=1e-4, atol=1e-6)


def test_argument_errors_are_clear():
    lp, mask = jnp.zeros((2, 2)), jnp.ones((2, 2))
    with pytest.raises(ValueError, match="ref_logprobs is None"):
        losses.grpo_loss(lp, lp, None, jnp.ones(2), mask, group_size=2, kl_coef=0.1)
    with pytest.raises(ValueError, match="rewards or precomputed advantages"):
        losses.grpo_loss(lp, lp, lp, None, mask, group_size=2)
    with pytest.raises(ValueError, match="entropy"):
        losses.grpo_loss(lp, lp, lp, jnp.ones(2), mask, group_size=2, entropy_coef=0.1)
