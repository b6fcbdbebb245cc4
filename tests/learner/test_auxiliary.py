"""Auxiliary models in the train state (`r1jax.learner.auxiliary`): shardings like the policy,
checkpoint round trips, nothing added for algorithms without them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import checkpointing, learner
from r1jax.models import init_params, param_shardings
from r1jax.sharding import ShardingRules
from tests.learner.helpers import learner_config
from tests.learner.test_step import MODEL, T


@pytest.fixture(scope="module")
def params():
    return init_params(MODEL, jax.random.key(0))


def pick(tree):
    return tree["layers_0"]["mlp"]["up_proj"]["kernel"]


def config_of(algorithm, *overrides):
    return learner_config(
        MODEL, f"objective.algorithm={algorithm}", *overrides, max_new_tokens=T, group_size=4
    )


def test_algorithms_without_auxiliary_models_keep_the_old_state_tree(params):
    state = learner.init_train_state(params, config_of("grpo"))
    assert state.aux == {} and "aux" not in state.to_tree()
    assert learner.TrainState.from_tree(state.to_tree()).aux == {}


def test_auxiliary_models_are_sharded_like_the_policy(params):
    mesh = jax.make_mesh((2, 4, 1), ("data", "fsdp", "tensor"), devices=jax.devices()[:8])
    rules = ShardingRules(embed="fsdp")
    policy_sharding = param_shardings(MODEL, mesh, rules)
    for algorithm, name in (("ppo", "critic"), ("prime", "prm")):
        config = config_of(algorithm)
        abstract = jax.eval_shape(lambda p, c=config: learner.init_train_state(p, c), params)
        shardings = learner.state_shardings(abstract, policy_sharding).aux[name]
        assert pick(shardings["params"]) == pick(policy_sharding)
        moments = [
            leaf
            for leaf in jax.tree.leaves(shardings["opt_state"])
            if leaf.spec == pick(policy_sharding).spec
        ]
        assert moments  # Adam's moments follow the params
        if name == "critic":
            assert shardings["params"]["value_head"]["kernel"].spec == jax.sharding.PartitionSpec()


@pytest.mark.parametrize("algorithm", ["ppo", "prime"])
def test_the_checkpoint_restores_the_auxiliary_model_exactly(params, algorithm, tmp_path):
    state = learner.init_train_state(jax.tree.map(jnp.copy, params), config_of(algorithm))
    tree = state.to_tree()
    assert "aux" in tree
    with checkpointing.Checkpointer(str(tmp_path), async_save=False) as checkpointer:
        checkpointer.save(1, train_state=tree, host_state={})
        restored, _ = checkpointer.restore(abstract_train_state=checkpointing.abstract_like(tree))
    again = learner.TrainState.from_tree(restored)
    for a, b in zip(jax.tree.leaves(state.aux), jax.tree.leaves(again.aux)):
        np.testing.assert_array_equal(a, b)
    assert jax.tree.structure(again) == jax.tree.structure(state)
