"""Context stages: the completion cap and group size that change at set RL steps.

DeepScaleR (repo agentica-project/deepscaler, ``scripts/train/run_deepscaler_1.5b_{8k,16k,
24k}.sh``) lengthens the context within one training run: 8,192 tokens with 8 samples per
prompt, then 16,384 and 24,576 tokens with 16. ``schedule.context_stages`` holds such a plan as
``((start_step, max_new_tokens), ...)`` or ``((start_step, max_new_tokens, group_size), ...)``
(RL steps, counted from 0 after any warm start). Before the first stage starts, and for a
stage without a group size, ``sampling.max_new_tokens`` and ``sampling.group_size`` hold.
Each stage compiles its own update (and sampler) once; the optimizer, data and RNG carry on.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from r1jax.config import ConfigError

KEY = "schedule.context_stages"


@dataclasses.dataclass(frozen=True)
class ContextStage:
    """The sampling shape of a stretch of RL steps.

    Attributes:
      index: 0 before the first listed stage starts, then 1, 2, ...
      max_new_tokens: ``T``, the completion cap.
      group_size: ``G``, completions per prompt.
    """

    index: int
    max_new_tokens: int
    group_size: int


def stages(config: ml_collections.ConfigDict) -> list[ContextStage]:
    """Every stage of the run, the one before the first listed stage included, in step order.

    Raises:
      ConfigError: naming ``schedule.context_stages``: an entry that is not 2 or 3 positive
        ints (a start step may be 0), or two stages starting at the same step.

    Example:
      >>> from r1jax import config as config_lib
      >>> c = config_lib.base_config()
      >>> c.schedule.context_stages = ((0, 8192, 8), (1040, 16384, 16))
      >>> [(s.index, s.max_new_tokens, s.group_size) for s in stages(c)]
      [(0, 1024, 8), (1, 8192, 8), (2, 16384, 16)]
    """
    parsed = []
    for entry in config.schedule.context_stages:
        values = tuple(entry) if isinstance(entry, (tuple, list)) else (entry,)
        if len(values) not in (2, 3) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in values
        ):
            raise ConfigError(
                f"{KEY}: entry {entry!r} must be (start_step, max_new_tokens) or "
                "(start_step, max_new_tokens, group_size), all ints"
            )
        start, tokens, *group = values
        if start < 0 or tokens < 1 or (group and group[0] < 1):
            raise ConfigError(
                f"{KEY}: entry {entry!r}: the start step must be >= 0 and the token cap and "
                "group size >= 1"
            )
        parsed.append((start, tokens, group[0] if group else None))
    parsed.sort()
    starts = [start for start, _, _ in parsed]
    if len(set(starts)) != len(starts):
        raise ConfigError(f"{KEY}: two stages start at the same step ({starts})")
    sampling = config.sampling
    result = [ContextStage(0, int(sampling.max_new_tokens), int(sampling.group_size))]
    for index, (_, tokens, group) in enumerate(parsed, start=1):
        result.append(ContextStage(index, tokens, group or int(sampling.group_size)))
    return result


def stage_at(config: ml_collections.ConfigDict, rl_step: int) -> ContextStage:
    """The stage RL step ``rl_step`` (0-based) belongs to.

    Example:
      >>> from r1jax import config as config_lib
      >>> c = config_lib.base_config()
      >>> c.schedule.context_stages = ((0, 8192, 8), (1040, 16384, 16))
      >>> stage_at(c, 1039).max_new_tokens, stage_at(c, 1040).group_size
      (8192, 16)
    """
    every = stages(config)  # checks the entries first
    starts = sorted(entry[0] for entry in config.schedule.context_stages)
    return every[sum(1 for start in starts if rl_step >= start)]


def group_sizes(config: ml_collections.ConfigDict) -> list[int]:
    """The distinct group sizes the RL steps use, in increasing order."""
    return sorted({stage.group_size for stage in stages(config)})
