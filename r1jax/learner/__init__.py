"""The learner: train state, optimizer, the batch and its log-probs, and the one generic
compiled update step that calls an algorithm of `r1jax.algorithms`.

Modules: ``config`` (`LearnerConfig`, the step's static settings), ``optimizer`` (AdamW and
its schedules), ``state`` (`TrainState`, the reference copy, shardings), ``batch`` (`Batch`,
built on the device from a rollout), ``logprobs`` (completion and reference log-probs),
``step`` (`train_step_fn`, `train_step`, `CompiledSteps`), ``auxiliary`` (second models an
algorithm trains next to the policy: PPO's critic, PRIME's PRM), ``from_config`` (the one
translation of a resolved config into `LearnerConfig`).
"""

from r1jax.learner import auxiliary
from r1jax.learner.auxiliary import AuxiliaryModel
from r1jax.learner.batch import Batch
from r1jax.learner.config import LearnerConfig
from r1jax.learner.logprobs import completion_logprobs, reference_logprobs, reference_logprobs_fn
from r1jax.learner.optimizer import OptimizerConfig, learning_rate_schedule, make_optimizer
from r1jax.learner.state import TrainState, init_train_state, reference_copy, state_shardings
from r1jax.learner.step import CompiledSteps, train_step, train_step_fn

__all__ = [
    "AuxiliaryModel",
    "Batch",
    "CompiledSteps",
    "LearnerConfig",
    "OptimizerConfig",
    "TrainState",
    "auxiliary",
    "completion_logprobs",
    "init_train_state",
    "learning_rate_schedule",
    "make_optimizer",
    "reference_copy",
    "reference_logprobs",
    "reference_logprobs_fn",
    "state_shardings",
    "train_step",
    "train_step_fn",
]
