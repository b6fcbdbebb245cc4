"""Tests for r1jax.data.mixture: weighted draws of several tasks' prompts, exact resume."""

import json

import numpy as np
import pytest

from r1jax.data import mixture, prompts, sources
from r1jax.tasks import countdown, knights_knaves


def _stream(task, tokenizer, seed=0):
    """One task's prompt stream, one prompt per ``next`` (as r1jax.mixture builds it)."""
    return prompts.prompt_batches(
        sources.ProceduralSource(task.generate, seed=seed),
        prompt_fn=prompts.make_prompt_fn(task, template="base"),
        tokenizer=tokenizer,
        batch_size=1,
        buckets=(512, 1024),
        shuffle=False,
        process_index=0,
        process_count=1,
    )


def _mixed(tokenizer, weights=None, batch_size=8):
    weights = weights or {"countdown": 0.5, "knights_knaves": 0.5}
    streams = {
        "countdown": _stream(countdown, tokenizer),
        "knights_knaves": _stream(knights_knaves, tokenizer),
    }
    return mixture.MixedPromptBatches(
        streams,
        weights,
        batch_size=batch_size,
        buckets=(512, 1024),
        pad_id=tokenizer.pad_token_id,
        seed=0,
    )


def _key(batch):
    return batch.ids, batch.tokens.tolist(), batch.lengths.tolist(), batch.indices.tolist()


def test_each_row_is_its_own_task_prompted_with_its_own_template(tokenizer):
    batch = next(_mixed(tokenizer))
    names = [problem[mixture.TASK_KEY] for problem in batch.problems]
    assert set(names) == {"countdown", "knights_knaves"}
    for name, problem, text, row, length in zip(
        names, batch.problems, batch.texts, batch.tokens, batch.lengths
    ):
        task = countdown if name == "countdown" else knights_knaves
        assert text == task.prompt(problem, template="base")
        assert tokenizer.decode(row[len(row) - length :].tolist()) == text  # left-padded
        assert ("numbers" in problem) == (name == "countdown")  # the problem is that task's
    width = 512 if max(batch.lengths) <= 512 else 1024  # the smallest bucket that fits
    assert batch.tokens.shape == (8, width)
    assert len(set(batch.indices.tolist())) == 8  # rows never share a sampling key
    assert all(i.startswith(n + "/") for i, n in zip(batch.ids, names))


def test_tasks_are_drawn_by_weight(tokenizer):
    batches = _mixed(tokenizer, {"countdown": 3, "knights_knaves": 1}, batch_size=50)
    names = [p[mixture.TASK_KEY] for _ in range(4) for p in next(batches).problems]
    share = names.count("countdown") / len(names)
    assert 0.65 < share < 0.85, share


def test_the_state_round_trips_through_json_and_resumes_exactly(tokenizer):
    whole = _mixed(tokenizer)
    expected = [_key(next(whole)) for _ in range(4)]
    interrupted = _mixed(tokenizer)
    for _ in range(2):
        next(interrupted)
    state = json.loads(json.dumps(interrupted.get_state()))
    resumed = _mixed(tokenizer)
    resumed.set_state(state)
    assert [_key(next(resumed)) for _ in range(2)] == expected[2:]
    assert resumed.counts["batches"] == 4
    again = _mixed(tokenizer)  # and a fresh iterator repeats the run: deterministic
    assert [_key(next(again)) for _ in range(4)] == expected


def test_a_state_of_other_tasks_is_refused(tokenizer):
    state = _mixed(tokenizer).get_state()
    state["streams"]["multiplication"] = state["streams"].pop("knights_knaves")
    with pytest.raises(ValueError, match="multiplication"):
        _mixed(tokenizer).set_state(state)


@pytest.mark.parametrize("weights", [{}, {"a": 0.0}, {"a": -1.0}, {"a": float("nan")}])
def test_weights_must_be_positive(weights):
    with pytest.raises(ValueError):
        mixture.normalized_weights(weights)


def test_a_weighted_source_is_random_access_and_tags_its_records():
    source = mixture.WeightedSource(
        {"a": [{"x": i} for i in range(3)], "b": [{"x": -1 - i} for i in range(5)]},
        {"a": 1.0, "b": 3.0},
        seed=1,
    )
    records = [source[i] for i in range(400)]
    assert records[17] == source[17]
    share = np.mean([r[mixture.TASK_KEY] == "b" for r in records])
    assert 0.65 < share < 0.85
    assert all((r["x"] >= 0) == (r[mixture.TASK_KEY] == "a") for r in records)
