"""Learner configs for tests, built through the trainer's own translation of a config."""

import dataclasses

from r1jax import config as config_lib
from r1jax.learner import LearnerConfig, OptimizerConfig
from r1jax.learner import from_config as learner_setup


def learner_config(
    model, *overrides: str, sft: bool = False, max_new_tokens: int = 6, lr: float = 1e-3, **fields
) -> LearnerConfig:
    """`LearnerConfig` of ``config.key=value`` overrides (presets applied), then ``fields``.

    ``fields`` replace `LearnerConfig` fields (``group_size``, ``micro_batch_size`` ...) or,
    with an ``algorithm__`` prefix, fields of the algorithm object.
    """
    config = config_lib.load_config("", ["reference.mode=frozen", *overrides])
    result = learner_setup.learner_config(config, model, sft=sft, max_new_tokens=max_new_tokens)
    algorithm_fields = {
        k.removeprefix("algorithm__"): v for k, v in fields.items() if k.startswith("algorithm__")
    }
    fields = {k: v for k, v in fields.items() if not k.startswith("algorithm__")}
    algorithm = dataclasses.replace(result.algorithm, **algorithm_fields)
    return dataclasses.replace(
        result,
        algorithm=algorithm,
        optimizer=OptimizerConfig(learning_rate=lr),
        **fields,
    )
