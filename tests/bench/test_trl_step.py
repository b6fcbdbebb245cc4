"""Tests for the TRL side of the step benchmark (`r1jax.bench.trl_step`)."""

import subprocess
import sys

import jax
import numpy as np
import pytest

from r1jax.bench import trl_step
from r1jax.models import ModelConfig, init_params


def test_trl_version_is_none_when_trl_cannot_be_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "trl", None)
    assert trl_step.trl_version() is None


def test_importing_the_module_loads_neither_torch_nor_trl():
    assert "trl" not in vars(trl_step) and "torch" not in vars(trl_step)


def test_prompt_ids_outside_the_vocabulary_are_a_clear_error():
    pytest.importorskip("trl")
    config = ModelConfig.preset("tiny")
    params = init_params(config, jax.random.key(0))
    with pytest.raises(RuntimeError, match=r"prompt_ids\.json row 1"):
        trl_step.measure(
            config,
            params,
            [[1, 2, 3], [4, config.vocab_size, 5]],
            samples=2,
            new_tokens=4,
            kl_coef=0.04,
            repeats=1,
        )


def test_peak_rss_of_a_child_does_not_include_its_parents_peak():
    ballast = np.ones(2**26)  # 512 MiB touched in this (parent) process
    code = "from r1jax.bench.trl_step import _peak_rss_bytes; print(_peak_rss_bytes())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ballast.sum() > 0
    assert int(child.stdout) < 256 * 2**20
