"""README's "Add an algorithm" example, run as written: one module plus one registry line."""

import importlib.util
import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from r1jax import algorithms, learner
from r1jax import config as config_lib
from r1jax.learner import from_config as learner_setup
from r1jax.models import ModelConfig, init_params

README = Path(__file__).resolve().parents[2] / "README.md"


def _example_module(tmp_path):
    text = README.read_text()
    section = text[text.index("### Add an algorithm") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    path = tmp_path / "reinforce_example.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location("reinforce_example", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["reinforce_example"] = module
    spec.loader.exec_module(module)
    return module


def test_the_readme_algorithm_trains_through_the_generic_step(tmp_path, monkeypatch):
    module = _example_module(tmp_path)
    monkeypatch.setitem(algorithms.ALGORITHMS, "reinforce", module)
    config = config_lib.load_config("", ["objective.algorithm=reinforce", "reference.mode=none"])
    assert config.objective.kl_coef == 0.0  # its preset
    model = ModelConfig.preset("tiny", vocab_size=64, hidden_size=32, mlp_dim=64, head_dim=8)
    step_config = learner_setup.learner_config(config, model, sft=False, max_new_tokens=5)
    assert isinstance(step_config.algorithm, module.Reinforce)
    rng = np.random.default_rng(0)
    rows = 8
    batch = learner.Batch(
        prompt_tokens=jnp.asarray(rng.integers(1, 64, (rows, 3)), jnp.int32),
        prompt_mask=jnp.ones((rows, 3), bool),
        completion_tokens=jnp.asarray(rng.integers(1, 64, (rows, 5)), jnp.int32),
        completion_mask=jnp.ones((rows, 5), bool),
        old_logprobs=jnp.zeros((rows, 5), jnp.float32),
        is_correct=jnp.asarray([1, 0, 1, 0, 0, 0, 1, 1], bool),
        is_well_formed=jnp.ones(rows, bool),
        is_truncated=jnp.zeros(rows, bool),
        scores=jnp.zeros(rows, jnp.float32),
    )
    params = init_params(model, jax.random.key(0))
    state = learner.init_train_state(jax.tree.map(jnp.copy, params), step_config)
    state, metrics = learner.train_step(state, batch, config=step_config)
    assert float(metrics["reward/total"]) == 0.5
    assert float(metrics["grad_norm"]) > 0 and np.isfinite(float(metrics["loss"]))
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.policy, params)
    assert any(jax.tree.leaves(moved))
