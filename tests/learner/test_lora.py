"""The learner with LoRA: only adapters train, the reference is the base, the sampler decodes
with the adapters applied."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import distributed, learner
from r1jax import sharding as sharding_lib
from r1jax.models import init_params, lora, param_shardings, token_logprobs
from r1jax.sampling import sampler
from tests.learner.helpers import learner_config
from tests.learner.test_step import MODEL, make_batch, optax_norm

LORA_KEYS = ("lora.rank=4", "lora.alpha=8")


@pytest.fixture(scope="module")
def params():
    return init_params(MODEL, jax.random.key(0))


def make_config(*overrides, **fields):
    return learner_config(
        MODEL, "objective.kl_coef=0.05", *LORA_KEYS, *overrides, group_size=4, **fields
    )


def fresh_state(params, config):
    return learner.init_train_state(jax.tree.map(jnp.copy, params), config)


def test_the_state_trains_adapters_over_a_frozen_base_without_a_reference_copy(params):
    config = make_config("lora.base_dtype=bfloat16")
    state = fresh_state(params, config)
    adapter_leaves = jax.tree_util.tree_flatten_with_path(state.policy)[0]
    assert {path[-1].key for path, _ in adapter_leaves} == {"lora_a", "lora_b"}
    assert state.reference is None  # the base with the adapters off
    assert state.base["layers_0"]["mlp"]["up_proj"]["kernel"].dtype == jnp.bfloat16
    assert state.base["final_norm"]["scale"].dtype == jnp.float32
    moments = [x for x in jax.tree.leaves(state.opt_state) if x.ndim > 0]
    assert sum(x.size for x in moments) == 2 * lora.num_adapter_params(MODEL, config.lora)
    assert set(state.to_tree()) == {"policy", "opt_state", "step", "nonfinite_streak",
                                    "nonfinite_total"}  # fmt: skip


def test_a_step_changes_only_the_adapters(params):
    config = make_config()
    state = fresh_state(params, config)
    base_before = jax.tree.map(np.asarray, state.base)
    state, metrics = learner.train_step(state, make_batch(), config=config)
    for a, b in zip(jax.tree.leaves(base_before), jax.tree.leaves(state.base)):
        np.testing.assert_array_equal(a, b)
    b_matrix = state.policy["layers_0"]["attn"]["q_proj"]["lora_b"]
    assert float(jnp.max(jnp.abs(b_matrix))) > 0  # B left zero
    assert float(metrics["kl"]) == pytest.approx(0.0, abs=1e-6)  # policy = base at step 0
    assert float(metrics["grad_norm"]) > 0


def test_reference_logprobs_are_the_bases(params):
    config = make_config()
    state = fresh_state(params, config)
    state, _ = learner.train_step(state, make_batch(), config=config)
    batch = make_batch(seed=1)
    reference = learner.reference_logprobs(state.reference, batch, config, state.base)
    full = make_config("lora.rank=0")
    np.testing.assert_array_equal(reference, learner.reference_logprobs(params, batch, full))
    adapted = learner.reference_logprobs(state.policy, batch, config, state.base)
    assert float(jnp.max(jnp.abs(adapted - reference))) > 0  # the trained adapters differ


def test_a_resetting_reference_keeps_its_own_adapter_copy(params):
    config = make_config("reference.mode=reset_every", "reference.reset_every=2")
    state = fresh_state(params, config)
    assert config.lora.reference_adapters
    assert jax.tree.structure(state.reference) == jax.tree.structure(state.policy)
    state, _ = learner.train_step(state, make_batch(), config=config)
    kept = state.reference["layers_0"]["mlp"]["down_proj"]["lora_b"]
    assert not np.any(np.asarray(kept))  # the reference's adapters are not trained


def test_micro_batches_give_the_whole_batch_gradient(params):
    batch = make_batch()
    config = make_config()
    state = fresh_state(params, config)
    batch = batch.replace(
        reference_logprobs=learner.reference_logprobs(None, batch, config, state.base)
    )
    prepared, _ = config.algorithm.prepare(batch, config)

    def gradients(config):
        run = jax.jit(
            lambda policy, base: learner.step._gradients(
                policy, batch, prepared, config, base=base
            )[0]
        )
        return run(state.policy, state.base)

    adapters = trained_adapters(state.policy)  # B != 0, so every leaf has a gradient
    state = state.replace(policy=adapters)
    whole = gradients(config)
    split = gradients(make_config(micro_batch_size=2))
    difference = optax_norm(jax.tree.map(jnp.subtract, split, whole))
    assert float(difference / optax_norm(whole)) <= 1e-6


def trained_adapters(adapters, scale=0.05):
    leaves, tree = jax.tree.flatten(adapters)
    keys = jax.random.split(jax.random.key(11), len(leaves))
    return jax.tree.unflatten(
        tree, [scale * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)]
    )


def test_dropout_steps_are_reproducible_and_differ_from_no_dropout(params):
    config = make_config("lora.dropout=0.3")
    runs = []
    for _ in range(2):
        state = fresh_state(params, config)
        state = state.replace(policy=trained_adapters(state.policy))
        runs.append(learner.train_step(state, make_batch(), config=config)[0].policy)
    plain = fresh_state(params, make_config())
    plain = plain.replace(policy=trained_adapters(plain.policy))
    plain = learner.train_step(plain, make_batch(), config=make_config())[0].policy
    for a, b in zip(jax.tree.leaves(runs[0]), jax.tree.leaves(runs[1])):
        np.testing.assert_array_equal(a, b)
    differs = [
        not np.allclose(a, b) for a, b in zip(jax.tree.leaves(runs[0]), jax.tree.leaves(plain))
    ]
    assert any(differs)


@pytest.mark.parametrize("merge", [True, False])
def test_the_sampler_decodes_with_the_adapters(params, merge):
    """The sampler's log-probs (merged weights, or the low-rank term each step) equal a full
    forward with the adapters applied, on a 2-device mesh with sharded adapters."""
    mesh = sharding_lib.make_mesh(data=1, fsdp=2, tensor=1, devices=jax.devices()[:2])
    rules = sharding_lib.ShardingRules()
    config = make_config(f"lora.merge_for_sampling={merge}", rules=rules)
    state = fresh_state(params, config)
    abstract = jax.eval_shape(lambda p: learner.init_train_state(p, config), params)
    steps = learner.CompiledSteps(
        mesh, param_shardings(MODEL, mesh, rules), distributed.row_sharding(mesh, rules), abstract
    )
    state = steps.init(jax.tree.map(jnp.copy, params), config)
    state = state.replace(
        policy=jax.device_put(trained_adapters(state.policy), steps.state_sharding.policy)
    )
    policy = steps.policy_params(state, config, MODEL.dtype)
    if merge:
        assert "lora_a" not in policy["layers_0"]["attn"]["q_proj"]
    prompts = (jnp.array([[0, 5, 9, 3], [7, 2, 8, 1]], jnp.int32), jnp.array([3, 4], jnp.int32))
    settings = sampler.SamplingParams(max_new_tokens=6, num_samples_per_prompt=2)
    rollout = sampler.sample(
        policy, MODEL, prompts, jax.random.key(4), settings, mesh=mesh, rules=rules
    )
    batch = learner.Batch.from_rollout(rollout)
    adapted = lora.combine(state.base, state.policy, config.lora)
    tokens, positions, mask = learner.logprobs.sequence_inputs(batch)
    expected = token_logprobs(
        adapted, tokens, positions, MODEL, attention_mask=mask, target_start=4
    )
    base_only = token_logprobs(
        state.base, tokens, positions, MODEL, attention_mask=mask, target_start=4
    )
    kept = np.asarray(batch.completion_mask)
    np.testing.assert_allclose(
        np.asarray(rollout.logprobs)[kept], np.asarray(expected)[kept], atol=2e-4
    )
    assert np.max(np.abs(np.asarray(base_only - expected)[kept])) > 1e-3


def test_lora_config_errors_name_the_key():
    from r1jax import config as config_lib

    with pytest.raises(config_lib.ConfigError, match=r"lora\.rank=-1"):
        make_config("lora.rank=-1")
    with pytest.raises(config_lib.ConfigError, match=r"lora\.targets.*qkv_proj"):
        make_config("lora.targets=q_proj,qkv_proj")
    with pytest.raises(config_lib.ConfigError, match=r"lora\.dropout"):
        make_config("lora.dropout=1.5")
    with pytest.raises(config_lib.ConfigError, match="critic"):
        make_config("objective.algorithm=ppo")
    with pytest.raises(config_lib.ConfigError, match=r"unknown config key 'lora\.rnak'"):
        make_config("lora.rnak=4")
    assert make_config("lora.rank=0").lora is None
