import json

import numpy as np
import pytest

from r1jax.data import prompts, sft, sources
from r1jax.tasks import countdown


def _jsonl_examples(tmp_path, rows):
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return sources.load_problems(
        path,
        fields={"prompt": "input", "response": "output"},
        text_fields=("prompt", "response"),
    )


def _make(source, tokenizer, **options):
    defaults = dict(
        prompt_fn=lambda example: example["prompt"],
        tokenizer=tokenizer,
        batch_size=2,
        buckets=(16, 32, 64),
        shuffle=False,
        num_epochs=1,
        process_index=0,
        process_count=1,
    )
    return sft.sft_batches(source, **{**defaults, **options})


def test_loss_mask_covers_exactly_the_response_and_eos(tmp_path, tokenizer):
    rows = [
        {"input": "What is 1 + 1?", "output": "<think> 1 + 1 </think> <answer> 2 </answer>"},
        {"input": "Using the numbers", "output": " 9"},
    ]
    batch = next(_make(_jsonl_examples(tmp_path, rows), tokenizer))
    eos = tokenizer.eos_token_ids[0]
    width = batch.tokens.shape[1]
    for row, data in enumerate(rows):
        prompt_ids = tokenizer.encode(data["input"])
        response_ids = [*tokenizer.encode(data["output"]), eos]
        valid = len(prompt_ids) + len(response_ids)
        assert batch.tokens[row].tolist() == (
            prompt_ids + response_ids + [tokenizer.pad_token_id] * (width - valid)
        )
        assert batch.loss_mask[row].tolist() == (
            [0] * len(prompt_ids) + [1] * len(response_ids) + [0] * (width - valid)
        )
        assert (batch.lengths[row], batch.prompt_lengths[row]) == (valid, len(prompt_ids))
        assert batch.attention_mask[row].tolist() == [True] * valid + [False] * (width - valid)
    assert width == min(b for b in (16, 32, 64) if b >= batch.lengths.max())
    assert batch.loss_mask.dtype == np.int32 and batch.tokens.dtype == np.int32
    np.testing.assert_array_equal(batch.positions[1], np.arange(width))


def test_missing_response_is_reported(tmp_path):
    path = tmp_path / "sft.jsonl"
    path.write_text('{"input": "q", "output": "a"}\n{"input": "q"}\n')
    fields = {"prompt": "input", "response": "output"}
    with pytest.raises(sources.DataError, match=r"sft\.jsonl: line 2: missing field 'output'"):
        sources.load_problems(path, fields=fields, text_fields=("prompt", "response"))


def test_truncate_left_keeps_the_response_mask_aligned(tmp_path, tokenizer):
    rows = [{"input": " the" * 30, "output": " the the"}, {"input": "a", "output": "b"}]
    batches = _make(
        _jsonl_examples(tmp_path, rows), tokenizer, buckets=(16,), overlong="truncate_left"
    )
    batch = next(batches)
    response = [*tokenizer.encode(" the the"), tokenizer.eos_token_ids[0]]
    assert batch.tokens[0, -len(response) :].tolist() == response
    assert batch.loss_mask[0].tolist() == [0] * (16 - len(response)) + [1] * len(response)
    assert batch.prompt_lengths[0] == 16 - len(response)
    assert batches.counts["truncated_overlong"] == 1


def test_overlong_examples_skip_or_error(tmp_path, tokenizer):
    rows = [{"input": " the" * 30, "output": "x", "id": "long"}, {"input": "a", "output": "b"}]
    source = _jsonl_examples(tmp_path, rows)
    skipping = _make(source, tokenizer, buckets=(16,), overlong="skip", drop_remainder=False)
    assert [b.ids for b in skipping] == [["sft.jsonl:line 2"]]
    assert skipping.counts["skipped_overlong"] == 1
    with pytest.raises(ValueError, match=r"example 'long' \(record 0\) has 32 tokens"):
        next(_make(source, tokenizer, buckets=(16,)))


def test_an_endless_source_of_overlong_examples_is_an_error_not_a_hang(tokenizer):
    source = sft.reference_trace_source(countdown, seed=0, method="search")
    batches = _make(
        source,
        tokenizer,
        prompt_fn=prompts.make_prompt_fn(countdown),
        buckets=(16,),
        overlong="skip",
        num_epochs=None,
    )
    with pytest.raises(ValueError, match=r"1000 examples in a row are longer than .* \(16 tokens"):
        next(batches)


def test_reference_traces_are_reproducible_and_resume(tokenizer):
    source = sft.reference_trace_source(countdown, seed=2, method="search")
    rng = np.random.default_rng([2, 3])
    problem = countdown.generate(rng)
    response = countdown.reference_completion(problem, rng, method="search")
    assert source[3] == {**problem, "response": response}

    def make():
        return sft.sft_batches(
            source,
            prompt_fn=prompts.make_prompt_fn(countdown),
            tokenizer=tokenizer,
            batch_size=2,
            buckets=(512, 1024),
            shuffle=False,
            process_index=0,
            process_count=1,
        )

    reference = make()
    expected = [next(reference) for _ in range(3)]
    iterator = make()
    next(iterator)
    resumed = make()
    resumed.set_state(json.loads(json.dumps(iterator.get_state())))
    for want in expected[1:]:
        got = next(resumed)
        np.testing.assert_array_equal(got.tokens, want.tokens)
        np.testing.assert_array_equal(got.loss_mask, want.loss_mask)
    text = tokenizer.decode(expected[0].tokens[0][expected[0].loss_mask[0] == 1])
    assert text.endswith("</answer><|im_end|>")
    assert countdown.verify(text.removesuffix("<|im_end|>"), source[0]).correct
