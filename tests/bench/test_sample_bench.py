"""Tests for r1jax/bench/sample.py: the harness runs end to end on a tiny workload."""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.bench import sample as sample_bench
from r1jax.models import ModelConfig, flops_per_token, init_params


def parse(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    sample_bench.add_arguments(parser)
    return parser.parse_args(argv)


def test_tiny_sample_benchmark_reports_figures(capsys):
    args = parse(
        [
            "--model",
            "tiny",
            "--prompts",
            "2",
            "--samples",
            "2",
            "--prompt-length",
            "4",
            "--new-tokens",
            "5",
            "--repeats",
            "1",
            "--peak-size",
            "256",
            "--bandwidth-mib",
            "8",
        ]
    )
    results = sample_bench.run(args)
    assert results["rows"] == 4 and results["new_tokens"] == 5
    for name in ("tokens_per_second", "flops_per_second", "peak_flops_per_second"):
        assert results[name] > 0
    assert results["fraction_of_peak"] > 0
    assert results["memory_bandwidth_bytes_per_second"] > 0
    assert results["fraction_of_roofline"] > 0
    assert results["weight_matmuls_seconds"] > 0
    assert results["weight_matmuls_share_of_call"] > 0
    assert results["weight_matmuls_fraction_of_peak"] > 0
    out = capsys.readouterr().out
    assert "tok/s" in out and "matmuls only" in out


@pytest.mark.torch_reference
def test_vs_transformers_reports_a_ratio():
    args = parse(
        [
            "--model",
            "tiny",
            "--prompts",
            "1",
            "--samples",
            "2",
            "--prompt-length",
            "4",
            "--new-tokens",
            "3",
            "--repeats",
            "1",
            "--peak-size",
            "128",
            "--bandwidth-mib",
            "8",
            "--vs-transformers",
            "--json",
        ]
    )
    results = sample_bench.run(args)
    assert results["speedup_vs_transformers"] > 0


def test_workload_flops_counts_prefill_once_per_prompt():
    config = ModelConfig.preset("tiny")
    flops = sample_bench.workload_flops(config, prompts=2, samples=3, prompt_length=4, new_tokens=3)
    unembed = 2 * config.hidden_size * config.vocab_size
    prefill = 2 * (sum(flops_per_token(config, t) for t in (1, 2, 3, 4)) - 3 * unembed)
    decode = 6 * (flops_per_token(config, 5) + flops_per_token(config, 6))
    assert flops == prefill + decode


def test_roofline_is_memory_bound_for_few_rows_and_compute_bound_for_many():
    config = ModelConfig.preset("tiny")
    slow_memory = sample_bench.roofline_seconds(config, 1, 1, 4, 3, peak_flops=1e15, bandwidth=1e6)
    weight_bytes = 4 * sample_bench.num_params(config)
    assert slow_memory >= 3 * weight_bytes / 1e6  # prefill and 2 decode steps read all weights
    slow_compute = sample_bench.roofline_seconds(config, 2, 3, 4, 3, peak_flops=1e6, bandwidth=1e15)
    flops = sample_bench.workload_flops(config, 2, 3, 4, 3)
    assert slow_compute == pytest.approx(flops / 1e6, rel=1e-6)


def _dot_flops(jaxpr) -> int:
    """2 * multiply-adds of every dot_general in a closed jaxpr, sub-jaxprs included."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += (
                2
                * int(np.prod(eqn.outvars[0].aval.shape))
                * int(np.prod([lhs[d] for d in lhs_contract]))
            )
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    total += _dot_flops(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    total += _dot_flops(sub)
    return total


@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_weight_matmuls_step_contracts_every_weight_once(tie_embeddings):
    config = ModelConfig.preset("tiny", tie_embeddings=tie_embeddings)
    params = init_params(config, jax.random.key(0))
    hidden = jnp.ones((3, config.hidden_size), jnp.float32)

    def step(p, x):
        return sample_bench._weight_matmuls_step(p, config, x)

    jaxpr = jax.make_jaxpr(step)(params, hidden)
    assert _dot_flops(jaxpr.jaxpr) == 3 * flops_per_token(config, context_length=0)
    out = step(params, hidden)
    assert out.shape == hidden.shape and bool(jnp.all(jnp.isfinite(out)))


def test_weight_matmuls_are_timed_over_the_decode_steps():
    config = ModelConfig.preset("tiny")
    params = init_params(config, jax.random.key(0))
    seconds, flops = sample_bench.measure_weight_matmuls(params, config, rows=2, steps=4, repeats=1)
    assert seconds > 0
    assert flops == 4 * 2 * flops_per_token(config, context_length=0)
