"""Algorithms: one module per family, each a frozen config whose methods the generic update
step calls (`r1jax.algorithms.base` says which and when).

``ALGORITHMS`` maps each ``objective.algorithm`` name to its module. A module holds the
algorithm's config class (``CONFIG``), its named presets (``PRESETS``: config keys each preset
sets) and the config class's methods. Adding an algorithm is one new module and one line here
(README, "Add an algorithm").

- ``policy_gradient``: GRPO, Dr. GRPO, DAPO, GSPO, CISPO, GMPO, REINFORCE++ (with and without
  baseline), RLOO.
- ``raft``: reward-ranked fine-tuning on the policy's own correct samples.
- ``online_dpo``: DPO on pairs built from each step's verified groups, iterative with
  ``reference.mode=reset_every``.
- ``ppo``: PPO with a learned critic (Open-Reasoner-Zero, TinyZero).
- ``prime``: PRIME, with an implicit process reward model trained online.
- ``sft``: supervised fine-tuning (the warm start).
"""

from types import ModuleType
from typing import Any

from r1jax.algorithms import online_dpo, policy_gradient, ppo, prime, raft, sft

ALGORITHMS: dict[str, ModuleType] = {
    "grpo": policy_gradient,
    "dr_grpo": policy_gradient,
    "dapo": policy_gradient,
    "gspo": policy_gradient,
    "reinforce_pp": policy_gradient,
    "reinforce_pp_baseline": policy_gradient,
    "rloo": policy_gradient,
    "cispo": policy_gradient,
    "gmpo": policy_gradient,
    "raft": raft,
    "online_dpo": online_dpo,
    "iterative_dpo": online_dpo,
    "ppo": ppo,
    "ppo_tinyzero": ppo,
    "prime": prime,
}
"""``objective.algorithm`` -> the module that implements it (its ``PRESETS`` has the name)."""


def module_of(name: str) -> ModuleType:
    """The module of algorithm ``name``.

    Raises:
      ValueError: an unknown name (the message lists the known ones).
    """
    if name not in ALGORITHMS:
        raise ValueError(f"objective.algorithm must be one of {sorted(ALGORITHMS)}, got {name!r}")
    return ALGORITHMS[name]


def preset(name: str) -> dict[str, Any]:
    """The config keys algorithm ``name`` sets, as ``{dotted key: value}``.

    Example:
      >>> preset("dapo")["objective.clip_eps_high"]
      0.28
    """
    return dict(module_of(name).PRESETS[name])


__all__ = [
    "ALGORITHMS",
    "module_of",
    "online_dpo",
    "policy_gradient",
    "ppo",
    "preset",
    "prime",
    "raft",
    "sft",
]
