"""Tests for r1jax/bench/sample.py: the harness runs end to end on a tiny workload."""

import argparse

import pytest

from r1jax.bench import sample as sample_bench
from r1jax.models import ModelConfig, flops_per_token


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
            "--layout-rounds",
            "2",
        ]
    )
    results = sample_bench.run(args)
    assert results["rows"] == 4 and results["new_tokens"] == 5
    assert results["kernels_by_rows"] is False  # float32 on CPU keeps the stored layout
    layouts = results["layouts"]
    assert layouts["rounds"] == 2 and layouts["by_rows_seconds"] > 0
    low, high = layouts["stored_over_by_rows_range"]
    assert 0 < low <= layouts["stored_over_by_rows"] <= high
    for name in ("tokens_per_second", "flops_per_second", "peak_flops_per_second"):
        assert results[name] > 0
    assert results["fraction_of_peak"] > 0
    assert results["memory_bandwidth_bytes_per_second"] > 0
    assert results["fraction_of_roofline"] > 0
    assert results["weight_matmuls_seconds"] > 0
    assert results["weight_matmuls_share_of_call"] > 0
    assert results["weight_matmuls_fraction_of_peak"] > 0
    out = capsys.readouterr().out
    assert "tok/s" in out and "matmuls only" in out and "stored / by rows" in out


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


def test_bfloat16_run_also_reports_its_share_of_the_float32_peak(capsys):
    workload = ["--prompts", "1", "--samples", "2", "--prompt-length", "4", "--new-tokens", "3"]
    probes = ["--repeats", "1", "--peak-size", "128", "--bandwidth-mib", "8"]
    args = parse(["--model", "tiny", "--dtype", "bfloat16", *workload, *probes])
    results = sample_bench.run(args)
    assert results["float32_peak_flops_per_second"] > 0
    assert results["fraction_of_float32_peak"] == pytest.approx(
        results["flops_per_second"] / results["float32_peak_flops_per_second"]
    )
    assert "of measured float32 matmul peak" in capsys.readouterr().out
