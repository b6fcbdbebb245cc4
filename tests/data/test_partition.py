"""Tests for r1jax/data/partition.py and ``data.heldout_fraction``: held-out problems that
training never draws, for every generator task and through the trainer's data setup."""

from pathlib import Path

import numpy as np
import pytest

from r1jax import build
from r1jax import config as config_lib
from r1jax.data import from_config as data_setup
from r1jax.data import partition, sources
from r1jax.tasks import countdown, knights_knaves, multiplication

TASK_OPTIONS = {
    multiplication: {"digits": 2, "digits_b": 1, "distribution": "exact_digits"},  # 810 problems
    countdown: {},
    knights_knaves: {"n_people": 2},
}


@pytest.mark.parametrize("task", list(TASK_OPTIONS), ids=lambda t: t.__name__.split(".")[-1])
def test_training_and_heldout_sides_share_no_problem(task):
    """2,000 training draws and 500 held-out draws of a 10% split: no key in common, every
    held-out problem on the held-out side, and about a tenth of raw draws held out."""
    options = TASK_OPTIONS[task]
    train = sources.ProceduralSource(
        partition.split_task(task, 0.1, heldout=False).generate, seed=0, options=options
    )
    heldout = sources.ProceduralSource(
        partition.split_task(task, 0.1, heldout=True).generate, seed=1, options=options
    )
    train_keys = {partition.problem_key(task, train[i]) for i in range(2000)}
    heldout_keys = {partition.problem_key(task, heldout[i]) for i in range(500)}
    assert not train_keys & heldout_keys
    assert all(partition.heldout_score(key) < 0.1 for key in heldout_keys)
    raw = sources.ProceduralSource(task.generate, seed=2, options=options)
    share = np.mean([partition.is_heldout(task, raw[i], 0.1) for i in range(2000)])
    assert 0.07 <= share <= 0.13


def test_a_record_depends_on_seed_and_index_only():
    """Records read in another order, from another wrapper of the same task, are the same."""
    first = sources.ProceduralSource(
        partition.split_task(countdown, 0.3, heldout=True).generate, seed=5
    )
    second = sources.ProceduralSource(
        partition.split_task(countdown, 0.3, heldout=True).generate, seed=5
    )
    forward = [first[i] for i in range(6)]
    backward = [second[i] for i in reversed(range(6))][::-1]
    assert forward == backward
    assert len({countdown.problem_key(p) for p in forward}) > 1


def test_a_copied_wrapper_keeps_its_side():
    import copy

    wrapped = partition.split_task(multiplication, 0.2, heldout=True)
    copied = copy.copy(wrapped)  # a module cannot be deep-copied, with or without the wrapper
    problem = copied.generate(np.random.default_rng(0))
    assert partition.is_heldout(multiplication, problem, 0.2)
    assert copied.problem_key is multiplication.problem_key


def test_countdown_key_ignores_number_order_and_witness():
    a = {"numbers": [3, 25, 7], "target": 4, "witness": "7 - 3"}
    b = {"numbers": [25, 7, 3], "target": 4, "witness": "(25 - 7) / 3 - 2"}
    assert countdown.problem_key(a) == countdown.problem_key(b)
    assert partition.is_heldout(countdown, a, 0.5) == partition.is_heldout(countdown, b, 0.5)


def test_a_side_too_small_to_reach_is_an_error_naming_the_fraction():
    def generate(rng):
        return {"x": 1}  # one problem: it is on one side only

    task = type("OneProblem", (), {"generate": staticmethod(generate)})()
    side = not partition.is_heldout(task, {"x": 1}, 0.5)
    with pytest.raises(ValueError, match=r"data\.heldout_fraction=0\.5"):
        partition.split_task(task, 0.5, heldout=side).generate(np.random.default_rng(0))


def test_zero_fraction_leaves_the_task_as_it_is():
    assert partition.split_task(multiplication, 0.0, heldout=True) is multiplication


DEFAULT = Path(__file__).resolve().parents[2] / "experiments" / "default.py"


def smoke_config(*overrides):
    return config_lib.load_config(f"{DEFAULT}:smoke", list(overrides))


def test_the_trainers_rl_and_warm_start_problems_miss_every_eval_problem():
    """``data.heldout_fraction=0.25`` on the default experiment: the RL prompts' problems and
    the warm start's traces come from the training side, the evaluation set from the other."""
    config = smoke_config("data.heldout_fraction=0.25", "eval.num_problems=200")
    task = build.task(config)
    evaluation = data_setup.eval_problems(config, task)
    eval_keys = {multiplication.problem_key(p) for p in evaluation}
    assert len(evaluation) == 200
    assert all(partition.is_heldout(multiplication, p, 0.25) for p in evaluation)
    rl = data_setup.problem_source(config, task, seed=config.data.seed)
    options = data_setup.task_options(config)
    warm = data_setup.mixed_reference_source(task, config.sft.source, seed=3, options=options)
    for source in (rl, warm):
        keys = {multiplication.problem_key(source[i]) for i in range(1000)}
        assert not keys & eval_keys


@pytest.mark.parametrize(
    "overrides",
    [
        ("data.heldout_fraction=1.0",),
        ("data.heldout_fraction=-0.1",),
        ("data.heldout_fraction=0.1", "data.source=jsonl", "data.path=train.jsonl"),
    ],
)
def test_bad_heldout_fractions_are_config_errors_naming_the_key(overrides):
    with pytest.raises(config_lib.ConfigError, match=r"data\.heldout_fraction"):
        data_setup.heldout_fraction(smoke_config(*overrides))


def test_distinct_eval_holds_num_problems_different_held_out_problems():
    """Without ``eval.distinct`` 500 draws from a held-out share of 1,226 problems repeat some
    problems; with it the set is 500 different held-out problems, drawn in record order."""
    config = smoke_config(
        "data.heldout_fraction=0.15", "eval.num_problems=500", "eval.distinct=false"
    )
    task = build.task(config)
    drawn = data_setup.eval_problems(config, task)
    assert len({multiplication.problem_key(p) for p in drawn}) < 500
    config = smoke_config(
        "data.heldout_fraction=0.15", "eval.num_problems=500", "eval.distinct=true"
    )
    distinct = data_setup.eval_problems(config, task)
    keys = [multiplication.problem_key(p) for p in distinct]
    assert len(distinct) == len(set(keys)) == 500
    assert all(partition.is_heldout(multiplication, p, 0.15) for p in distinct)
    assert distinct[0] == drawn[0]


def test_distinct_eval_beyond_the_held_out_share_is_a_config_error_naming_the_keys():
    config = smoke_config(
        "data.heldout_fraction=0.01", "eval.num_problems=500", "eval.distinct=true"
    )
    with pytest.raises(config_lib.ConfigError, match=r"eval\.distinct.*eval\.num_problems=500"):
        data_setup.eval_problems(config, build.task(config))


def test_distinct_problems_keeps_the_first_of_each_key_in_order():
    source = [{"a": 3}, {"a": 1}, {"a": 3}, {"a": 2}]
    assert partition.distinct_problems(source, object(), 3, max_draws=4) == [
        {"a": 3},
        {"a": 1},
        {"a": 2},
    ]
    with pytest.raises(ValueError, match="only 3 distinct problems in 4 draws, 4 wanted"):
        partition.distinct_problems(source, object(), 4, max_draws=10)
