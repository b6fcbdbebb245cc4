"""A curriculum over the task's generator options: which problems the RL steps draw, by step.

``data.curriculum = ((start_step, options), ...)`` splits the RL steps into stages. From RL
step ``start_step`` on (counting from 0, warm-start steps excluded), prompts come from the
task's generator with ``options`` laid over ``data.task_options``, until the next stage's
start. Logic-RL's curriculum (arXiv:2502.14768, its curriculum-learning question; repo Logic-RL
``scripts/curriculum.sh``, one epoch of 900 puzzles at 8 per step per size) is:

    data.curriculum = ((0, {"n_people": 3}), (112, {"n_people": 4}), (224, {"n_people": 5}),
                       (336, {"n_people": 6}), (448, {"n_people": 7}))

An option may be a tuple to draw from per problem (``{"n_people": (3, 4, 5)}``). Only the RL
prompts follow the curriculum: the warm start, the from-scratch tokenizer's text and the
held-out evaluation use ``data.task_options``.

Determinism and resume: stage ``i`` reads its own endless procedural stream, seeded
``stage_seed(data.seed, i)`` and started afresh when the stage begins, so the problems of an
RL step depend only on the seed, the stage and how many batches the stage has drawn.
`CurriculumBatches.get_state` records the stage and its stream's position; `set_state`
rebuilds that stage's stream and moves it there, so a resumed run draws exactly the batches
an uninterrupted one would, across stage boundaries too.

Not here: the batches themselves (`r1jax.data.prompts`), when the trainer changes stage
(`r1jax.train` calls `CurriculumBatches.set_step` before each RL step).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

STAGE_SEED_STRIDE = 10_007  # stage i's stream: data.seed + (i + 1) * STAGE_SEED_STRIDE


@dataclasses.dataclass(frozen=True)
class Stage:
    """One curriculum stage: the first RL step it covers and the generator's options."""

    start: int
    options: dict[str, Any]


def stage_seed(seed: int, index: int) -> int:
    """The procedural seed of stage ``index`` (apart from the plain run's ``seed`` and from
    the evaluation's, which is ``seed + 1_000_003``).

    Example:
      >>> stage_seed(0, 0), stage_seed(0, 1)
      (10007, 20014)
    """
    return int(seed) + (int(index) + 1) * STAGE_SEED_STRIDE


def parse_stages(curriculum: Sequence, base_options: Mapping[str, Any]) -> list[Stage]:
    """Validates ``data.curriculum`` and lays each stage's options over ``base_options``.

    Args:
      curriculum: ``((start_step, options), ...)``; the starts must begin at 0 and increase.
      base_options: ``data.task_options``.

    Returns:
      The stages in order, each with its full generator options.

    Raises:
      ValueError: a malformed entry, a first start other than 0, or starts that do not
        increase (the message names the entry).

    Example:
      >>> parse_stages(((0, {"n_people": 3}), (10, {"n_people": (3, 4)})), {"depth": 2})
      [Stage(start=0, options={'depth': 2, 'n_people': 3}), Stage(start=10, options={'depth': 2, 'n_people': (3, 4)})]
    """
    stages: list[Stage] = []
    for position, entry in enumerate(curriculum):
        if (
            not isinstance(entry, Sequence)
            or isinstance(entry, str)
            or len(entry) != 2
            or not isinstance(entry[1], Mapping)
            or isinstance(entry[0], bool)
            or not isinstance(entry[0], int | np.integer)
        ):
            raise ValueError(
                f"data.curriculum[{position}] = {entry!r}: each stage is (start_step, "
                "{option: value, ...}) with an int start"
            )
        start, options = int(entry[0]), dict(entry[1])
        if not stages and start != 0:
            raise ValueError(
                f"data.curriculum[0] starts at RL step {start}; the first stage must start at 0"
            )
        if stages and start <= stages[-1].start:
            raise ValueError(
                f"data.curriculum[{position}] starts at RL step {start}, not after the previous "
                f"stage's start {stages[-1].start}"
            )
        stages.append(Stage(start, {**dict(base_options), **options}))
    return stages


def stage_index(stages: Sequence[Stage], rl_step: int) -> int:
    """The index of the stage that covers RL step ``rl_step``.

    Example:
      >>> stage_index([Stage(0, {}), Stage(10, {})], 9), stage_index([Stage(0, {}), Stage(10, {})], 10)
      (0, 1)
    """
    index = 0
    for i, stage in enumerate(stages):
        if rl_step >= stage.start:
            index = i
    return index


class CurriculumBatches:
    """Prompt batches whose generator options follow the RL step.

    ``make_batches(index, stage)`` builds stage ``index``'s resumable batch iterator (an
    `r1jax.data.pipeline.ResumableBatches` over the stage's procedural stream). The trainer
    calls `set_step` before each RL step; ``next`` then draws from that step's stage.

    Args:
      stages: from `parse_stages`.
      make_batches: ``(index, stage) -> iterator`` with ``get_state`` / ``set_state`` and
        ``counts``.
    """

    def __init__(
        self, stages: Sequence[Stage], make_batches: Callable[[int, Stage], Any], *, start: int = 0
    ):
        if not stages:
            raise ValueError("a curriculum needs at least one stage")
        self.stages = list(stages)
        self._make_batches = make_batches
        self.stage = stage_index(self.stages, start)
        self._batches = make_batches(self.stage, self.stages[self.stage])

    @property
    def counts(self):
        """The current stage's counters (batches, truncated or skipped prompts)."""
        return self._batches.counts

    def set_step(self, rl_step: int) -> None:
        """Moves to the stage of RL step ``rl_step``; a new stage starts its stream afresh."""
        index = stage_index(self.stages, rl_step)
        if index != self.stage:
            self.stage = index
            self._batches = self._make_batches(index, self.stages[index])

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._batches)

    def get_state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot: the stage and its stream's position."""
        return {"curriculum_stage": self.stage, "batches": self._batches.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        """Resumes from `get_state` output: rebuilds that stage's stream at its position.

        Raises:
          ValueError: the state is not a curriculum's (a checkpoint of a run without
            ``data.curriculum``) or names a stage this curriculum lacks.
        """
        if "curriculum_stage" not in state:
            raise ValueError(
                "the checkpoint's prompt-data state has no curriculum stage: it was written by "
                "a run without data.curriculum"
            )
        index = int(state["curriculum_stage"])
        if not 0 <= index < len(self.stages):
            raise ValueError(
                f"the checkpoint is in curriculum stage {index}, but data.curriculum has "
                f"{len(self.stages)} stages"
            )
        self.stage = index
        self._batches = self._make_batches(index, self.stages[index])
        self._batches.set_state(state["batches"])
