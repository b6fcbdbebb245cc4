"""A curriculum over the task's generator options (r1jax.data.curriculum, data.curriculum)."""

import json

import jax
import pytest

from r1jax import build, train
from r1jax import config as config_lib
from r1jax.data import curriculum
from r1jax.data import from_config as data_setup

STAGES = "((0, {'n_people': 2}), (2, {'n_people': 3}), (4, {'n_people': (4, 5)}))"


def _config(*overrides):
    return config_lib.load_config(
        "",
        [
            "data.task=knights_knaves",
            "data.prompts_per_step=2",
            "data.bucket_sizes=(2048,)",
            f"data.curriculum={STAGES}",
            *overrides,
        ],
    )


def _iterator(config, tokenizer):
    task = build.task(config)
    return data_setup.prompt_iterator(config, task, tokenizer, build.prompt_fn(config, task, None))


def _draw(iterator, rl_steps):
    """The people per puzzle of each step's batch, and the batches' prompt texts."""
    people, texts = [], []
    for rl_step in rl_steps:
        iterator.set_step(rl_step)
        batch = next(iterator)
        people.append([problem["n_people"] for problem in batch.problems])
        texts.append(batch.texts)
    return people, texts


def test_each_rl_step_draws_from_its_stage(tokenizer):
    iterator = _iterator(_config(), tokenizer)
    people, _ = _draw(iterator, range(8))
    assert people[:4] == [[2, 2], [2, 2], [3, 3], [3, 3]]
    assert all(set(step) <= {4, 5} for step in people[4:])
    assert {n for step in people[4:] for n in step} == {4, 5}  # a tuple is drawn per puzzle


def test_the_stream_is_deterministic_and_resumes_across_stage_boundaries(tokenizer):
    config = _config()
    _, whole = _draw(_iterator(config, tokenizer), range(7))
    for stop in (1, 2, 3, 5):  # inside a stage, at its last step, at a boundary
        first = _iterator(config, tokenizer)
        _, before = _draw(first, range(stop))
        state = json.loads(json.dumps(first.get_state()))  # as a checkpoint stores it
        resumed = _iterator(config, tokenizer)
        resumed.set_state(state)
        _, after = _draw(resumed, range(stop, 7))
        assert before + after == whole, stop


def test_each_stage_has_its_own_seed():
    assert len({curriculum.stage_seed(0, i) for i in range(5)}) == 5
    assert curriculum.stage_seed(0, 0) != data_setup.EVAL_SEED_OFFSET


@pytest.mark.parametrize(
    "stages, message",
    [
        ("((1, {'n_people': 2}),)", "must start at 0"),
        ("((0, {'n_people': 2}), (0, {'n_people': 3}))", "not after"),
        ("((0, 3),)", r"\(start_step, \{option"),
        ("((0, {'people': 3}),)", r"rejects the options"),
    ],
)
def test_a_malformed_curriculum_is_a_config_error(tokenizer, stages, message):
    config = _config(f"data.curriculum={stages}")
    with pytest.raises(config_lib.ConfigError, match=message):
        _iterator(config, tokenizer)


def test_a_file_source_cannot_have_a_curriculum(tokenizer, tmp_path):
    path = tmp_path / "kk.jsonl"
    path.write_text('{"problem": "q", "answer": "a"}\n')
    config = _config("data.source=jsonl", f"data.path={path}", "data.task=math")
    with pytest.raises(config_lib.ConfigError, match="procedural"):
        _iterator(config, tokenizer)


def test_a_checkpoint_without_a_curriculum_does_not_resume_into_one(tokenizer):
    plain = _iterator(_config("data.curriculum=()"), tokenizer)
    next(plain)
    with pytest.raises(ValueError, match=r"without data\.curriculum"):
        _iterator(_config(), tokenizer).set_state(plain.get_state())


def test_the_trainer_follows_the_stages_and_logs_them(tmp_path):
    default = config_lib.experiment_path("default")
    config = config_lib.load_config(
        f"{default}:smoke",
        [
            "steps=3",
            "eval.num_problems=0",
            "sft.mode=none",
            "checkpoint.every=0",
            "logging.samples_to_log=4",
            "data.curriculum=((0, {'digits': 1}), (2, {'digits': 2}))",
        ],
    )
    train.run(config, str(tmp_path), devices=jax.devices()[:1])
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["data/curriculum_stage"] for r in records] == [0, 0, 1]
    digits = {}
    for line in (tmp_path / "samples.jsonl").read_text().splitlines():
        record = json.loads(line)
        for sample in json.loads(record["samples"]):
            digits.setdefault(record["step"], set()).add(len(str(sample["prompt"]["a"])))
    assert digits == {1: {1}, 2: {1}, 3: {2}}
