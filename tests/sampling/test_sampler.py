"""Tests for r1jax/sampling/sampler.py: exactness, stops, compilation, sharding, determinism."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import sharding
from r1jax.models import (
    ModelConfig,
    forward,
    init_params,
    kernels_by_rows,
    load_pretrained,
    param_shardings,
    token_logprobs,
)
from r1jax.sampling import sampler, stopping
from r1jax.sampling.rollout import PromptBatch
from r1jax.sampling.sampler import SamplingParams, sample

CONFIG = ModelConfig.preset("tiny", vocab_size=64, hidden_size=64, mlp_dim=128, head_dim=16)
PROMPTS = [[5, 9, 11, 3, 7], [8, 2], [4, 4, 6, 1], [12]]


@pytest.fixture(scope="module")
def params():
    return init_params(CONFIG, jax.random.key(0))


def prompt_batch(prompts=PROMPTS, **kwargs):
    return PromptBatch.from_token_lists(prompts, length_bucket=6, **kwargs)


@pytest.mark.parametrize("by_rows", [False, True])
def test_decode_logits_equal_full_forward(params, by_rows):
    """Every decode step's logits match a cache-free forward over the same prefix, with the
    kernels in either layout."""
    batch = prompt_batch()
    sampling_params = SamplingParams(
        max_new_tokens=8, temperature=1.0, num_samples_per_prompt=2, kernels_by_rows=by_rows
    )
    plan = sampler.decode_plan(sampling_params)
    controls = sampler.runtime_controls(sampling_params)
    decode_params = kernels_by_rows(params, CONFIG) if by_rows else params
    rows = len(PROMPTS) * 2
    state, prompt_cache = sampler.prefill_program(
        decode_params,
        jnp.asarray(batch.tokens),
        jnp.asarray(batch.lengths),
        jnp.asarray(batch.prompt_ids),
        jax.random.key(3),
        jnp.full((rows,), 8, jnp.int32),
        controls,
        config=CONFIG,
        plan=plan,
    )
    width = batch.tokens.shape[1]
    cache = sampler._broadcast_prompt_cache(prompt_cache, CONFIG, 2, width + 7, None)

    @jax.jit
    def step(state, cache):
        logits, cache = sampler.next_token_logits(
            decode_params, state, cache, CONFIG, kernels_by_rows=by_rows
        )
        return logits, sampler._emit(state, logits, controls, plan), cache

    logits = []
    for _ in range(1, 8):
        step_logits, state, cache = step(state, cache)
        logits.append(step_logits)
    # One cache-free forward over prompt + generated tokens gives every prefix's logits.
    prompt_tokens = np.repeat(batch.tokens, 2, axis=0)
    prompt_mask = np.arange(width)[None] >= width - np.repeat(batch.lengths, 2)[:, None]
    generated = np.asarray(state.tokens)
    tokens = np.concatenate([prompt_tokens, generated], axis=1)
    mask = np.concatenate([prompt_mask, np.ones_like(generated, bool)], axis=1)
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    full, _ = jax.jit(forward, static_argnums=3)(
        params, tokens, positions, CONFIG, attention_mask=mask
    )
    for t in range(1, 8):
        np.testing.assert_allclose(logits[t - 1], full[:, width + t - 1], atol=1e-5, rtol=0)


def test_group_rows_follow_their_prompt(params):
    batch = prompt_batch()
    greedy = SamplingParams(max_new_tokens=8, temperature=0.0, num_samples_per_prompt=2)
    grouped = sample(params, CONFIG, batch, jax.random.key(0), greedy)
    single = sample(
        params,
        CONFIG,
        batch,
        jax.random.key(0),
        dataclasses.replace(greedy, num_samples_per_prompt=1),
    )
    np.testing.assert_array_equal(grouped.tokens, np.repeat(single.tokens, 2, axis=0))
    np.testing.assert_array_equal(grouped.prompt_tokens, np.repeat(batch.tokens, 2, axis=0))
    sampled = sample(
        params, CONFIG, batch, jax.random.key(0), dataclasses.replace(greedy, temperature=1.0)
    )
    assert not np.array_equal(sampled.tokens[0], sampled.tokens[1]), (
        "samples of a group must differ"
    )


def _learner_logprobs(params, rollout, temperature=1.0):
    """The learner's ``[B, T]`` log-probs of a rollout's completions (one full forward)."""
    tokens, mask, positions = rollout.sequences()
    return token_logprobs(
        params,
        tokens,
        positions,
        CONFIG,
        attention_mask=mask,
        target_start=rollout.prompt_tokens.shape[1],
        temperature=temperature,
    )


def test_logprobs_agree_with_learner(params):
    batch = prompt_batch()
    sampling_params = SamplingParams(
        max_new_tokens=8, temperature=0.8, top_p=0.9, num_samples_per_prompt=2, stop_token_ids=(3,)
    )
    rollout = sample(params, CONFIG, batch, jax.random.key(5), sampling_params)
    learner = _learner_logprobs(params, rollout, temperature=0.8)
    completion_mask = np.asarray(rollout.mask) > 0
    np.testing.assert_allclose(
        np.asarray(learner)[completion_mask],
        np.asarray(rollout.logprobs)[completion_mask],
        atol=1e-5,
    )


def test_kernel_layouts_sample_the_same_rollout(params):
    """The decode layout changes speed only: same tokens, same log-probs."""
    plan = sampler.decode_plan(SamplingParams())
    assert sampler.decodes_by_rows(dataclasses.replace(CONFIG, dtype="bfloat16"), plan)  # CPU
    assert not sampler.decodes_by_rows(CONFIG, plan)  # float32 keeps the stored layout
    batch = prompt_batch()
    by_rows = SamplingParams(
        max_new_tokens=10, temperature=1.0, num_samples_per_prompt=3, kernels_by_rows=True
    )
    stored = dataclasses.replace(by_rows, kernels_by_rows=False)
    fast = sample(params, CONFIG, batch, jax.random.key(2), by_rows)
    plain = sample(params, CONFIG, batch, jax.random.key(2), stored)
    np.testing.assert_array_equal(fast.tokens, plain.tokens)
    np.testing.assert_array_equal(fast.lengths, plain.lengths)
    np.testing.assert_allclose(fast.logprobs, plain.logprobs, atol=1e-6)


def test_growing_cache_segments_match_one_segment_and_the_learner(params):
    """Many short segments (the cache padded between them) give the tokens and log-probs of
    one segment, and the learner's recomputation agrees."""
    batch = prompt_batch()
    one = SamplingParams(max_new_tokens=11, temperature=1.0, num_samples_per_prompt=2)
    many = dataclasses.replace(one, decode_segment_length=3)
    assert sampler.decode_plan(many).segment_ends == (3, 6, 9, 11)
    single = sample(params, CONFIG, batch, jax.random.key(9), one)
    segmented = sample(params, CONFIG, batch, jax.random.key(9), many)
    np.testing.assert_array_equal(segmented.tokens, single.tokens)
    np.testing.assert_allclose(segmented.logprobs, single.logprobs, atol=1e-6)
    learner = _learner_logprobs(params, segmented)
    np.testing.assert_allclose(learner, segmented.logprobs, atol=1e-5)


def test_stops_mask_lengths_and_finish_reasons(params):
    batch = prompt_batch()
    free = sample(params, CONFIG, batch, jax.random.key(1), SamplingParams(max_new_tokens=8))
    free_tokens = np.asarray(free.tokens)
    stop_token = int(free_tokens[0, 4])
    stop_sequence = tuple(int(t) for t in free_tokens[1, 2:5])
    stopped = sample(
        params,
        CONFIG,
        batch,
        jax.random.key(1),
        SamplingParams(
            max_new_tokens=8,
            stop_token_ids=(stop_token, 63),
            stop_sequences=(stop_sequence,),
            pad_id=-1,
        ),
    )
    for row in range(len(PROMPTS)):
        row_tokens = free_tokens[row].tolist()
        expected_length, expected_reason = 8, stopping.FINISH_LENGTH
        for t in range(8):
            if row_tokens[t] in (stop_token, 63):
                expected_length, expected_reason = t + 1, stopping.FINISH_STOP_TOKEN
                break
            if t >= 2 and tuple(row_tokens[t - 2 : t + 1]) == stop_sequence:
                expected_length, expected_reason = t + 1, stopping.FINISH_STOP_SEQUENCE
                break
        assert int(stopped.lengths[row]) == expected_length
        assert int(stopped.finish_reason[row]) == expected_reason
        np.testing.assert_array_equal(
            stopped.tokens[row, :expected_length], row_tokens[:expected_length]
        )
        assert np.all(np.asarray(stopped.tokens[row, expected_length:]) == -1)
        assert np.all(np.asarray(stopped.logprobs[row, expected_length:]) == 0)
        np.testing.assert_array_equal(stopped.mask[row], np.arange(8) < expected_length)
    assert "stop_token" in stopped.finish_reason_names()
    assert "stop_sequence" in stopped.finish_reason_names()
    np.testing.assert_array_equal(np.sum(stopped.mask, axis=1), stopped.lengths)


def test_per_row_limits(params):
    rollout = sample(
        params,
        CONFIG,
        prompt_batch(),
        jax.random.key(2),
        SamplingParams(max_new_tokens=8),
        max_new_tokens_per_row=np.array([0, 1, 8, 3]),
    )
    np.testing.assert_array_equal(rollout.lengths, [0, 1, 8, 3])
    assert rollout.finish_reason_names() == ["length"] * 4


def test_runtime_controls_compile_once(params):
    batch = PromptBatch.from_token_lists(PROMPTS[:3], length_bucket=7)  # shapes unique to this test
    before = (sampler.prefill_program._cache_size(), sampler.decode_program._cache_size())
    for temperature, top_k, top_p, min_p, stops in [
        (1.0, 0, 1.0, 0.0, (1, 2)),
        (0.7, 5, 0.9, 0.1, (7, 9)),
        (0.0, 50, 0.5, 0.3, (3, 4)),
    ]:
        sampling_params = SamplingParams(
            max_new_tokens=9,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            min_p=min_p,
            stop_token_ids=stops,
            stop_sequences=((stops[0], stops[1]),),
        )
        jax.block_until_ready(sample(params, CONFIG, batch, jax.random.key(0), sampling_params))
    after = (sampler.prefill_program._cache_size(), sampler.decode_program._cache_size())
    assert after == (before[0] + 1, before[1] + 1)


def test_tokens_do_not_depend_on_batch_position(params):
    sampling_params = SamplingParams(max_new_tokens=8, num_samples_per_prompt=2, top_k=20)
    batch = prompt_batch(prompt_ids=[10, 11, 12, 13])
    rollout = sample(params, CONFIG, batch, jax.random.key(4), sampling_params)
    order = [2, 0, 3, 1]
    shuffled = prompt_batch([PROMPTS[i] for i in order], prompt_ids=[10 + i for i in order])
    moved = sample(params, CONFIG, shuffled, jax.random.key(4), sampling_params)
    rows = np.concatenate([[2 * i, 2 * i + 1] for i in order])
    np.testing.assert_array_equal(moved.tokens, np.asarray(rollout.tokens)[rows])
    padded = prompt_batch(PROMPTS[:3], batch_bucket=4, prompt_ids=[10, 11, 12])
    bucketed = sample(params, CONFIG, padded, jax.random.key(4), sampling_params)
    np.testing.assert_array_equal(bucketed.tokens[:6], rollout.tokens[:6])


@pytest.mark.multidevice
@pytest.mark.parametrize("by_rows", [False, True])
def test_sharded_equals_single_device(params, by_rows):
    mesh = sharding.make_mesh(data=2, fsdp=2, tensor=2)
    sharded_params = jax.device_put(params, param_shardings(CONFIG, mesh))
    sampling_params = SamplingParams(
        max_new_tokens=8, num_samples_per_prompt=2, top_p=0.95, kernels_by_rows=by_rows
    )
    batch = prompt_batch()
    single = sample(params, CONFIG, batch, jax.random.key(9), sampling_params)
    sharded = sample(sharded_params, CONFIG, batch, jax.random.key(9), sampling_params, mesh=mesh)
    assert len(sharded.tokens.sharding.device_set) == 8
    np.testing.assert_array_equal(sharded.tokens, single.tokens)
    np.testing.assert_allclose(sharded.logprobs, single.logprobs, atol=1e-5)


def test_bad_prompts_are_rejected(params):
    with pytest.raises(ValueError, match="prompt row 1 has length 0"):
        sample(
            params,
            CONFIG,
            (np.zeros((2, 3), np.int32), np.array([2, 0])),
            jax.random.key(0),
            SamplingParams(max_new_tokens=2),
        )
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0.0)


@pytest.mark.torch_reference
@pytest.mark.parametrize("family", ["qwen2", "qwen3", "llama"])
def test_greedy_matches_transformers_generate(tmp_path, family):
    import torch

    from tests.models.hf_fixtures import build_tiny_hf_model, write_tiny_hf_model

    path = write_tiny_hf_model(tmp_path / family, family, seed=1)
    config, params = load_pretrained(path)
    model = build_tiny_hf_model(family, seed=1)
    prompts = [[5, 9, 11, 3, 7], [8, 2, 100, 17]]
    new_tokens = 12
    rollout = sample(
        params,
        config,
        PromptBatch.from_token_lists(prompts),
        jax.random.key(0),
        SamplingParams(max_new_tokens=new_tokens, temperature=0.0),
    )
    for row, prompt in enumerate(prompts):
        with torch.inference_mode():
            out = model.generate(
                torch.tensor([prompt]),
                do_sample=False,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=0,
                eos_token_id=None,
            )
        assert out[0, len(prompt) :].tolist() == np.asarray(rollout.tokens[row]).tolist()


def test_cache_dtype_defaults_to_float32_on_cpu_for_16_bit_models(params):
    bf16 = dataclasses.replace(CONFIG, dtype="bfloat16")
    plan = sampler.decode_plan(SamplingParams(max_new_tokens=4))
    assert sampler.cache_dtype(bf16, plan) == jnp.float32  # the test backend is CPU
    assert sampler.cache_dtype(CONFIG, plan) == jnp.float32
    explicit = sampler.decode_plan(SamplingParams(max_new_tokens=4, cache_dtype="bfloat16"))
    assert sampler.cache_dtype(bf16, explicit) == jnp.bfloat16
    greedy = SamplingParams(max_new_tokens=6, temperature=0.0)
    auto = sample(params, bf16, prompt_batch(), jax.random.key(0), greedy)
    bf16_cache = sample(
        params,
        bf16,
        prompt_batch(),
        jax.random.key(0),
        dataclasses.replace(greedy, cache_dtype="bfloat16"),
    )
    assert auto.tokens.shape == bf16_cache.tokens.shape == (len(PROMPTS), 6)
    # The two caches differ only by rounding: the greedy tokens agree almost everywhere.
    assert np.mean(np.asarray(auto.tokens) == np.asarray(bf16_cache.tokens)) > 0.8
