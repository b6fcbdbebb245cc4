"""Tests for r1jax/sampling/continuous.py: row-for-row equality with the static sampler, slot
and refill order independence, no recompiles, partial rollouts, dynamic sampling, memory."""

import jax
import numpy as np
import pytest

from r1jax import sharding
from r1jax.models import ModelConfig, init_params
from r1jax.sampling import continuous
from r1jax.sampling.rollout import PromptBatch
from r1jax.sampling.sampler import SamplingParams, sample

CONFIG = ModelConfig.preset("tiny", dtype="float32", param_dtype="float32")
GROUP = 4


@pytest.fixture(scope="module")
def params():
    return init_params(CONFIG, jax.random.key(0))


def workload(prompts=6, new_tokens=256, seed=0, config=CONFIG, group=GROUP):
    rng = np.random.default_rng(seed)
    token_lists = [
        rng.integers(1, config.vocab_size, rng.integers(2, 9)).tolist() for _ in range(prompts)
    ]
    batch = PromptBatch.from_token_lists(
        token_lists, length_bucket=8, prompt_ids=[10 + i for i in range(prompts)]
    )
    limits = rng.integers(0, new_tokens + 1, prompts * group).astype(np.int32)
    sampling_params = SamplingParams(
        max_new_tokens=new_tokens,
        temperature=1.0,
        top_p=0.9,
        top_k=50,
        num_samples_per_prompt=group,
        stop_token_ids=(7,),
        stop_sequences=((5, 6), (11, 12, 13)),
    )
    return batch, limits, sampling_params


def assert_same_rows(reference, rollout, atol=1e-5):
    reference = jax.device_get(reference)
    np.testing.assert_array_equal(rollout.lengths, reference.lengths)
    np.testing.assert_array_equal(rollout.tokens, reference.tokens)
    np.testing.assert_array_equal(rollout.finish_reason, reference.finish_reason)
    np.testing.assert_array_equal(rollout.mask, reference.mask)
    np.testing.assert_array_equal(rollout.prompt_tokens, reference.prompt_tokens)
    np.testing.assert_array_equal(rollout.prompt_lengths, reference.prompt_lengths)
    np.testing.assert_allclose(rollout.logprobs, reference.logprobs, atol=atol, rtol=0)


@pytest.mark.parametrize("tiers", [(), (32, 96)], ids=["whole-rings", "bands"])
def test_matches_static_sampler_row_for_row(params, tiers):
    """256 new tokens with stop ids, stop sequences, per-row budgets, top-k and top-p, the
    decode attending over whole rings or in bands: the same tokens as `sample` for every row,
    log-probs to float rounding."""
    batch, limits, sampling_params = workload()
    key = jax.random.key(3)
    reference = sample(params, CONFIG, batch, key, sampling_params, max_new_tokens_per_row=limits)
    rollout = continuous.sample_continuous(
        params,
        CONFIG,
        batch,
        key,
        sampling_params,
        num_slots=8,
        max_new_tokens_per_row=limits,
        attention_tiers=tiers,
    )
    assert rollout.tokens.shape == (24, 256)
    assert set(rollout.finish_reason_names()) >= {"stop_token", "length"}
    assert_same_rows(reference, rollout)


@pytest.mark.parametrize("start", range(11))
def test_ring_read_and_write_wrap_like_numpy(start):
    """Band copies out of and back into a slot's ring: columns ``(start + j) % R``."""
    rng = np.random.default_rng(start)
    ring = rng.normal(size=(2, 3, 11)).astype(np.float32)
    block = rng.normal(size=(2, 3, 4)).astype(np.float32)
    columns = (start + np.arange(4)) % 11
    read = continuous._ring_read(ring, jax.numpy.int32(start), 4, axis=2)
    np.testing.assert_array_equal(read, ring[..., columns])
    want = ring.copy()
    want[..., columns] = block
    written = continuous._ring_write(ring, block, jax.numpy.int32(start), axis=2)
    np.testing.assert_array_equal(written, want)


def test_tiering_profiles_and_bounds():
    """Capacities 0, N/8, N/4, N/2 per band, non-increasing; bounds that leave no older band
    are dropped; bad bounds are refused."""
    tiers = continuous.tiering(16, 300, (64, 128, 290))
    assert tiers.bounds == (64, 128)
    assert tiers.profiles[0] == (0, 0) and tiers.profiles[-1] == (8, 8)
    assert all(a >= b for a, b in tiers.profiles)
    assert {c for p in tiers.profiles for c in p} == {0, 2, 4, 8}
    assert continuous.tiering(16, 90, (64,)) is None
    with pytest.raises(ValueError, match="increasing"):
        continuous.tiering(16, 300, (128, 64))


@pytest.mark.parametrize("slots", [8, 12])
def test_banded_attention_rows_match_static_sampler(params, slots):
    """Attention in bands (bounds 8 and 16 columns, so rows reach the older bands early and,
    past half the slots, chunks fall back to the whole rings): the same tokens as `sample`
    for every row, log-probs to float rounding."""
    batch, limits, sampling_params = workload(new_tokens=64, seed=8)
    key = jax.random.key(6)
    reference = sample(params, CONFIG, batch, key, sampling_params, max_new_tokens_per_row=limits)
    sampler = continuous.ContinuousSampler(
        params, CONFIG, sampling_params, slots, prompt_length=8, attention_tiers=(8, 16)
    )
    assert sampler.tiering.bounds == (8, 16)
    ids = sampler.submit(batch, key, max_new_tokens_per_row=limits)
    by_id = {group.group_id: group for group in sampler.generate()}
    assert_same_rows(reference, continuous.groups_to_rollout([by_id[i] for i in ids]))


def test_rows_do_not_depend_on_slots_or_refill_order(params):
    """Other slot counts and a reversed submission order give every row the same tokens."""
    batch, limits, sampling_params = workload(new_tokens=64, seed=1)
    key = jax.random.key(4)
    first = continuous.sample_continuous(
        params, CONFIG, batch, key, sampling_params, num_slots=4, max_new_tokens_per_row=limits
    )
    sampler = continuous.ContinuousSampler(
        params, CONFIG, sampling_params, num_slots=12, prompt_length=8
    )
    order = np.arange(6)[::-1]
    reversed_batch = PromptBatch(
        tokens=np.asarray(batch.tokens)[order],
        lengths=np.asarray(batch.lengths)[order],
        prompt_ids=np.asarray(batch.prompt_ids)[order],
    )
    reversed_limits = limits.reshape(6, GROUP)[order].reshape(-1)
    sampler.submit(reversed_batch, key, max_new_tokens_per_row=reversed_limits)
    groups = {g.prompt_id: g for g in sampler.generate()}
    for p in range(6):
        group = groups[10 + p]
        rows = slice(p * GROUP, (p + 1) * GROUP)
        np.testing.assert_array_equal(group.tokens, first.tokens[rows])
        np.testing.assert_allclose(group.logprobs, first.logprobs[rows], atol=1e-5)


def test_no_recompiles_after_warm_up(params):
    """Refill and decode compile once per shape; new keys, control values, budgets and
    submission patterns reuse them."""
    batch, limits, sampling_params = workload(new_tokens=32, seed=2)
    other = SamplingParams(
        **{**sampling_params.__dict__, "temperature": 0.7, "top_p": 1.0, "top_k": 0}
    )
    continuous.sample_continuous(
        params, CONFIG, batch, jax.random.key(0), sampling_params, num_slots=8
    )
    sizes = (continuous.refill_program._cache_size(), continuous.decode_program._cache_size())
    for index, controls in enumerate((sampling_params, other)):
        sampler = continuous.ContinuousSampler(
            params, CONFIG, controls, num_slots=8, prompt_length=8, partial_rollouts=True
        )
        sampler.submit(batch, jax.random.key(index), max_new_tokens_per_row=limits)
        sampler.generate(2, max_decode_steps=5)
        sampler.submit(batch, jax.random.key(7))
        sampler.generate()
    after = (continuous.refill_program._cache_size(), continuous.decode_program._cache_size())
    assert after == sizes


@pytest.mark.parametrize("tiers", [(), (8, 16)], ids=["whole-rings", "bands"])
def test_partial_rollouts_carry_rows_with_their_versions_and_log_probs(params, tiers):
    """Rows unfinished at the step budget continue in the next call; with unchanged params the
    result equals one uninterrupted run, and rows record the version they started at."""
    batch, limits, sampling_params = workload(new_tokens=64, seed=3)
    key = jax.random.key(5)
    reference = jax.device_get(
        sample(params, CONFIG, batch, key, sampling_params, max_new_tokens_per_row=limits)
    )
    sampler = continuous.ContinuousSampler(
        params,
        CONFIG,
        sampling_params,
        num_slots=8,
        prompt_length=8,
        partial_rollouts=True,
        attention_tiers=tiers,
    )
    sampler.submit(batch, key, max_new_tokens_per_row=limits)
    groups = sampler.generate(max_decode_steps=10)
    stats = sampler.last_call_stats
    assert stats.decode_steps == 10 and stats.carried_rows == 0
    carried = sampler.num_in_flight
    assert carried > 0
    sampler.update_params(params, policy_version=1)
    groups += sampler.generate(max_decode_steps=20)
    assert sampler.last_call_stats.carried_rows == carried
    assert sampler.last_call_stats.carried_ages == (1,) * carried
    sampler.update_params(params, policy_version=2)
    groups += sampler.generate()
    assert sampler.num_in_flight == 0 and sampler.num_pending == 0
    by_id = {g.prompt_id: g for g in groups}
    rollout = continuous.groups_to_rollout([by_id[10 + p] for p in range(6)])
    assert_same_rows(reference, rollout)
    versions = np.concatenate([g.start_versions for g in groups])
    assert versions.min() == 0 and versions.max() >= 1
    assert max(g.finish_version for g in groups) == 2


def test_without_partial_rollouts_unfinished_rows_are_discarded(params):
    batch, _, sampling_params = workload(new_tokens=64, seed=4)
    sampler = continuous.ContinuousSampler(
        params, CONFIG, sampling_params, num_slots=8, prompt_length=8
    )
    sampler.submit(batch, jax.random.key(0))
    groups = sampler.generate(max_decode_steps=3)
    stats = sampler.last_call_stats
    assert stats.discarded_rows > 0 and sampler.num_in_flight == 0
    assert sampler.num_pending == 6 - stats.rows_started // GROUP
    assert stats.generated_tokens == sum(int(g.lengths.sum()) for g in groups)  # kept ones


def test_dynamic_sampling_draws_groups_until_enough(params):
    """The caller submits one more group for each group it rejects until it has enough."""
    batch, _, sampling_params = workload(prompts=2, new_tokens=32, seed=5)
    sampler = continuous.ContinuousSampler(
        params, CONFIG, sampling_params, num_slots=8, prompt_length=8
    )
    sampler.submit(batch, jax.random.key(0))
    kept, seen, extra = [], 0, 0
    for group in sampler.finished_groups():
        seen += 1
        if group.group_id % 2 == 0:  # a stand-in for "all rewards equal"
            extra += 1
            sampler.submit(batch, jax.random.key(extra))
        else:
            kept.append(group)
        if len(kept) == 3:
            break
    assert len(kept) == 3 and seen >= 3
    assert sampler.num_in_flight == 0


def test_cache_is_sized_by_slots(params):
    _, _, sampling_params = workload(new_tokens=32)
    sampler = continuous.ContinuousSampler(
        params, CONFIG, sampling_params, num_slots=8, prompt_length=8
    )
    cache_bytes = sum(x.nbytes for x in jax.tree.leaves(sampler._cache))
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(sampler._state))
    per_slot = continuous.bytes_per_slot(CONFIG, sampling_params, prompt_length=8)
    assert cache_bytes + state_bytes - 12 == 8 * per_slot  # three scalars: end, column, steps
    assert sampler._cache.max_length == continuous.ring_length(8, 32)


def test_rejects_too_few_slots_and_wide_prompts(params):
    _, _, sampling_params = workload()
    with pytest.raises(ValueError, match="num_slots"):
        continuous.ContinuousSampler(params, CONFIG, sampling_params, 2, prompt_length=8)
    sampler = continuous.ContinuousSampler(params, CONFIG, sampling_params, 4, prompt_length=4)
    with pytest.raises(ValueError, match="wide"):
        sampler.submit(PromptBatch.from_token_lists([[1] * 6]), jax.random.key(0))


@pytest.mark.multidevice
def test_sharded_slots_sample_the_same_rows(params):
    batch, limits, sampling_params = workload(new_tokens=32, seed=6)
    key = jax.random.key(1)
    single = continuous.sample_continuous(
        params, CONFIG, batch, key, sampling_params, num_slots=8, max_new_tokens_per_row=limits
    )
    mesh = sharding.make_mesh(data=2, fsdp=2, tensor=2)
    sharded = continuous.sample_continuous(
        params,
        CONFIG,
        batch,
        key,
        sampling_params,
        num_slots=8,
        mesh=mesh,
        max_new_tokens_per_row=limits,
    )
    np.testing.assert_array_equal(sharded.tokens, single.tokens)
    np.testing.assert_allclose(sharded.logprobs, single.logprobs, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("tiers", [(), (64, 160)], ids=["whole-rings", "bands"])
def test_small_model_rows_match_static_sampler(tiers):
    """``small`` float32, 64 rows x 256 tokens, attending over whole rings or in bands: at
    least 99.9% of rows identical to `sample` (here: all), log-probs within 1e-5 where the
    tokens agree."""
    config = ModelConfig.preset("small", dtype="float32", param_dtype="float32")
    small_params = init_params(config, jax.random.key(0))
    batch, limits, sampling_params = workload(prompts=8, seed=7, config=config, group=8)
    key = jax.random.key(2)
    reference = jax.device_get(
        sample(small_params, config, batch, key, sampling_params, max_new_tokens_per_row=limits)
    )
    rollout = continuous.sample_continuous(
        small_params,
        config,
        batch,
        key,
        sampling_params,
        num_slots=16,
        max_new_tokens_per_row=limits,
        attention_tiers=tiers,
    )
    same = np.all(rollout.tokens == reference.tokens, axis=1)
    assert same.mean() >= 0.999
    np.testing.assert_allclose(rollout.logprobs[same], reference.logprobs[same], atol=1e-5)
