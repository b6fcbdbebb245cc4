"""Tests for r1jax/sampling/rollout.py: prompt batching and the learner layout of a Rollout."""

import jax
import numpy as np
import pytest

from r1jax.sampling.rollout import PromptBatch, Rollout


def test_prompt_batch_left_pads_and_fills_batch_bucket():
    batch = PromptBatch.from_token_lists(
        [[3, 4], [5, 6, 7]], length_bucket=4, batch_bucket=3, pad_id=9, prompt_ids=[10, 11]
    )
    assert batch.tokens.tolist() == [[9, 9, 3, 4], [9, 5, 6, 7], [9, 5, 6, 7]]
    assert batch.lengths.tolist() == [2, 3, 3]
    assert batch.prompt_ids.tolist() == [10, 11, 11]


@pytest.mark.parametrize(
    "prompts, kwargs, message",
    [
        ([[1, 2, 3]], dict(length_bucket=2), "length_bucket"),
        ([[1], []], {}, "prompt 1 is empty"),
        ([[1], [2]], dict(batch_bucket=1), "batch_bucket"),
        ([], {}, "no prompts"),
    ],
)
def test_prompt_batch_rejects_bad_input(prompts, kwargs, message):
    with pytest.raises(ValueError, match=message):
        PromptBatch.from_token_lists(prompts, **kwargs)


def test_rollout_sequences_and_completions():
    rollout = Rollout(
        tokens=np.array([[7, 8, 0], [9, 0, 0]], np.int32),
        logprobs=np.zeros((2, 3), np.float32),
        mask=np.array([[1, 1, 0], [1, 0, 0]], np.int32),
        lengths=np.array([2, 1], np.int32),
        finish_reason=np.array([1, 1], np.int32),
        prompt_tokens=np.array([[0, 5], [4, 5]], np.int32),
        prompt_lengths=np.array([1, 2], np.int32),
    )
    tokens, mask, positions = jax.jit(Rollout.sequences)(rollout)
    assert tokens.tolist() == [[0, 5, 7, 8, 0], [4, 5, 9, 0, 0]]
    assert mask.tolist() == [[0, 1, 1, 1, 0], [1, 1, 1, 0, 0]]
    assert positions.tolist() == [[0, 0, 1, 2, 2], [0, 1, 2, 2, 2]]
    assert rollout.completions() == [[7, 8], [9]]
    assert rollout.finish_reason_names() == ["stop_token", "stop_token"]
