"""Tests for r1jax/sampling/budget_forcing.py: cap, extend ("Wait") and the answer phase."""

import jax
import numpy as np

from r1jax.models import ModelConfig, init_params, token_logprobs
from r1jax.sampling import budget_forcing, stopping
from r1jax.sampling.budget_forcing import BudgetForcing, sample_with_budget
from r1jax.sampling.rollout import PromptBatch, Rollout
from r1jax.sampling.sampler import SamplingParams, sample

END = (90, 91)  # a two-token end of thinking
WAIT = (50,)
EOS = 99
PREFIX = (70,)


def scripted_sampler(streams):
    """A stand-in for `sample` whose row ``r`` emits ``streams[r]`` in order across calls."""
    positions = [0] * len(streams)

    def fake_sample(
        params, config, prompts, key, sampling_params, *, mesh, rules, max_new_tokens_per_row
    ):
        del params, config, key, mesh, rules
        rows = len(streams)
        width = sampling_params.max_new_tokens
        tokens = np.zeros((rows, width), np.int32)
        lengths = np.zeros(rows, np.int32)
        reasons = np.full(rows, stopping.FINISH_LENGTH, np.int32)
        for row in range(rows):
            generated = []
            while len(generated) < max_new_tokens_per_row[row]:
                generated.append(streams[row][positions[row]])
                positions[row] += 1
                if generated[-1] in sampling_params.stop_token_ids:
                    reasons[row] = stopping.FINISH_STOP_TOKEN
                    break
                if any(tuple(generated[-len(s) :]) == s for s in sampling_params.stop_sequences):
                    reasons[row] = stopping.FINISH_STOP_SEQUENCE
                    break
            tokens[row, : len(generated)] = generated
            lengths[row] = len(generated)
        prompt_tokens = np.asarray(prompts.tokens)
        return Rollout(
            tokens=tokens,
            logprobs=-np.ones((rows, width), np.float32) * (tokens > 0),
            mask=(np.arange(width)[None] < lengths[:, None]).astype(np.int32),
            lengths=lengths,
            finish_reason=reasons,
            prompt_tokens=np.repeat(prompt_tokens, rows // prompt_tokens.shape[0], axis=0),
            prompt_lengths=np.repeat(np.asarray(prompts.lengths), rows // prompt_tokens.shape[0]),
        )

    return fake_sample


def test_extend_cap_and_stop_phases(monkeypatch):
    streams = [
        [1, 2, *END, 3, 4, *END, 5, 6, EOS],  # ends thinking twice: one "Wait", then answers
        [*range(1, 11), 11, 12, EOS],  # never ends thinking: capped at 10
        [1, EOS],  # stops while thinking
    ]
    monkeypatch.setattr(budget_forcing, "sample", scripted_sampler(streams))
    budget = BudgetForcing(
        end_of_thinking=END,
        max_thinking_tokens=10,
        max_answer_tokens=5,
        num_ignores=1,
        ignore=WAIT,
        answer_prefix=PREFIX,
    )
    out = sample_with_budget(
        None,
        None,
        PromptBatch.from_token_lists([[7, 7], [8], [9, 9, 9]]),
        jax.random.key(0),
        SamplingParams(max_new_tokens=1, stop_token_ids=(EOS,)),
        budget,
    )
    completions = out.rollout.completions()
    assert completions[0] == [1, 2, *WAIT, 3, 4, *END, 5, 6, EOS]
    assert completions[1] == [*range(1, 11), *END, *PREFIX, 11, 12, EOS]
    assert completions[2] == [1, EOS]
    assert out.forced[0].tolist()[:10] == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    assert out.forced[1].tolist()[:16] == [0] * 10 + [1, 1, 1] + [0] * 3
    assert out.num_ignored.tolist() == [1, 0, 0]
    assert out.capped.tolist() == [False, True, False]
    assert out.thinking_lengths.tolist() == [7, 12, 2]
    assert out.rollout.finish_reason_names() == ["stop_token"] * 3
    assert out.rollout.tokens.shape == (3, budget.completion_length)
    assert np.all(out.rollout.logprobs[out.forced > 0] == 0)
    np.testing.assert_array_equal(out.rollout.mask.sum(axis=1), out.rollout.lengths)


def test_budget_forcing_with_a_real_model_keeps_learner_logprobs():
    config = ModelConfig.preset("tiny", vocab_size=64, hidden_size=64, mlp_dim=128, head_dim=16)
    params = init_params(config, jax.random.key(0))
    prompts = PromptBatch.from_token_lists([[5, 9, 11], [8, 2]])
    greedy = SamplingParams(max_new_tokens=6, temperature=0.0)
    plain = sample(params, config, prompts, jax.random.key(0), greedy)
    end = (int(plain.tokens[0, 2]),)  # row 0 ends its thinking at its third token
    budget = BudgetForcing(
        end_of_thinking=end, max_thinking_tokens=6, max_answer_tokens=3, num_ignores=1, ignore=(60,)
    )
    out = sample_with_budget(params, config, prompts, jax.random.key(0), greedy, budget)
    first = out.rollout.completions()[0]
    stop = np.asarray(plain.tokens[0]).tolist().index(end[0])
    assert first[: stop + 1] == [*np.asarray(plain.tokens[0, :stop]).tolist(), 60]
    assert out.num_ignored[0] == 1 and out.forced[0, stop] == 1
    tokens, mask, positions = out.rollout.sequences()
    width = out.rollout.prompt_tokens.shape[1]
    learner = np.asarray(
        token_logprobs(params, tokens, positions, config, attention_mask=mask, target_start=width)
    )
    scored = (np.asarray(out.rollout.mask) > 0) & (out.forced == 0)
    np.testing.assert_allclose(learner[scored], out.rollout.logprobs[scored], atol=1e-5)
