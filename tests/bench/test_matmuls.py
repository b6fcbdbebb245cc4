"""Tests for r1jax/bench/matmuls.py: the weight-matmul floors contract every weight as counted."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.bench import matmuls
from r1jax.models import ModelConfig, flops_per_token, init_params, kernels_by_rows


def _dot_flops(jaxpr) -> int:
    """2 * multiply-adds of every dot_general in a jaxpr, sub-jaxprs included."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            contracted = int(np.prod([lhs[d] for d in lhs_contract]))
            total += 2 * int(np.prod(eqn.outvars[0].aval.shape)) * contracted
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    total += _dot_flops(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    total += _dot_flops(sub)
    return total


@pytest.mark.parametrize("by_rows", [False, True])
@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_weight_matmuls_contract_every_weight_once(tie_embeddings, by_rows):
    config = ModelConfig.preset("tiny", tie_embeddings=tie_embeddings)
    params = init_params(config, jax.random.key(0))
    if by_rows:
        params = kernels_by_rows(params, config)
    hidden = jnp.ones((5, config.hidden_size), jnp.float32)
    unembed = 2 * config.hidden_size * config.vocab_size

    def run(params, hidden):
        return matmuls.weight_matmuls(params, config, hidden, scored_rows=2, by_rows=by_rows)

    jaxpr = jax.make_jaxpr(run)(params, hidden)
    trunk = flops_per_token(config, context_length=0) - unembed
    assert _dot_flops(jaxpr.jaxpr) == 5 * trunk + 2 * unembed
    out, logits = run(params, hidden)
    assert out.shape == hidden.shape and logits.shape == (2, config.vocab_size)
    assert bool(jnp.all(jnp.isfinite(out))) and bool(jnp.all(jnp.isfinite(logits)))


def test_weight_matmuls_by_rows_compute_the_stored_layouts_products():
    config = ModelConfig.preset("tiny", tie_embeddings=False)
    params = init_params(config, jax.random.key(0))
    hidden = jax.random.normal(jax.random.key(1), (3, config.hidden_size))
    stored = matmuls.weight_matmuls(params, config, hidden)
    by_rows = matmuls.weight_matmuls(kernels_by_rows(params, config), config, hidden, by_rows=True)
    for a, b in zip(stored, by_rows, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("by_rows", [False, True])
def test_decode_seconds_counts_the_weight_flops_of_every_step(by_rows):
    config = ModelConfig.preset("tiny")
    params = init_params(config, jax.random.key(0))
    seconds, flops = matmuls.decode_seconds(params, config, 2, 4, repeats=1, by_rows=by_rows)
    assert seconds > 0
    assert flops == 4 * 2 * flops_per_token(config, context_length=0)


@pytest.mark.parametrize("with_reference", [True, False])
def test_update_matmuls_are_reference_forward_and_policy_forward_and_backward(with_reference):
    config = ModelConfig.preset("tiny")
    policy = init_params(config, jax.random.key(0))
    reference = init_params(config, jax.random.key(1)) if with_reference else None
    hidden = jnp.ones((6, config.hidden_size), jnp.float32)
    unembed = 2 * config.hidden_size * config.vocab_size
    one_pass = 6 * (flops_per_token(config, context_length=0) - unembed) + 4 * unembed

    def run(policy, reference, hidden):
        return matmuls.update_matmuls(policy, reference, config, hidden, scored_rows=4)

    jaxpr = jax.make_jaxpr(run)(policy, reference, hidden)
    passes = 4 if with_reference else 3  # backward: input and weight gradients, 2 passes
    assert _dot_flops(jaxpr.jaxpr) == passes * one_pass
    _, grads = run(policy, reference, hidden)
    assert jax.tree.structure(grads) == jax.tree.structure(policy)
    seconds = matmuls.update_seconds(policy, reference, config, rows=6, scored_rows=4, repeats=1)
    assert seconds > 0
