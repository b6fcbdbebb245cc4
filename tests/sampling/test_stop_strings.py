"""Stop strings hold whatever the tokenization (r1jax/sampling/stopping.py `stop_matchers`)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.models import ModelConfig, init_params
from r1jax.sampling import stopping
from r1jax.sampling.rollout import PromptBatch
from r1jax.sampling.sampler import SamplingParams, sample
from r1jax.tokenizer import Tokenizer

STOP = "</answer>"
CORPUS = [
    f"<think> {a} * {b} is {a * b} </think> <answer> {a * b}</answer>{tail}"
    for a in range(2, 40)
    for b in (3, 7, 12)
    for tail in ("\n", ".\n", "\n\nUser:", " ok", ">")
]


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train(CORPUS, vocab_size=400)


def first_stop(token_bytes, ids, patterns):
    """Reference: index of the first token after which the decoded bytes contain a pattern."""
    text = b""
    for index, token_id in enumerate(ids):
        text += token_bytes[token_id]
        if any(p in text for p in patterns):
            return index
    return None


def scan(matchers, ids, window):
    """Runs `matches_stop_string` token by token, as the decode loop does."""
    recent = jnp.full((1, window), -1, jnp.int32)
    table = jnp.asarray(matchers.table)
    hits = []
    for token_id in ids:
        recent = stopping.push_recent(recent, jnp.array([token_id]))
        hits.append(bool(stopping.matches_stop_string(recent, table)[0]))
    return hits


def test_the_stop_string_tokenizes_differently_in_context(tokenizer):
    alone = tokenizer.encode(STOP)
    for text in ("x</answer>\n", " 42</answer>\n\nUser:"):
        ids = tokenizer.encode(text)
        assert not any(ids[i : i + len(alone)] == alone for i in range(len(ids))), text


@pytest.mark.parametrize("text", ["x</answer>\n", "y</answer>.", " 42</answer>\n\nUser: hi", STOP])
def test_matcher_stops_on_the_token_that_completes_the_string(tokenizer, text):
    matchers = stopping.stop_matchers(tokenizer, [STOP])
    ids = tokenizer.encode(text)
    hits = scan(matchers, ids, matchers.window)
    expected = first_stop(tokenizer.token_bytes(), ids, [STOP.encode()])
    assert hits.index(True) == expected
    stopped = tokenizer.decode(ids[: expected + 1])
    assert stopping.truncate_after_stop(stopped, [STOP]).endswith(STOP)
    assert stopping.truncate_after_stop(stopped, [STOP]) == text[: text.index(STOP) + len(STOP)]


def test_matcher_agrees_with_decoded_text_on_random_token_streams(tokenizer):
    strings = [STOP, "User:", ">."]
    matchers = stopping.stop_matchers(tokenizer, strings)
    token_bytes = tokenizer.token_bytes()
    patterns = [s.encode() for s in strings]
    rng = np.random.default_rng(0)
    pieces = [tokenizer.encode(t) for t in ("</", "answer", ">", ">\n", ">.", "User", ":", " x")]
    for _ in range(40):
        ids = []
        while len(ids) < 24:  # random mixes of pieces and random tokens
            if rng.random() < 0.7:
                ids += pieces[int(rng.integers(len(pieces)))]
            else:
                ids.append(int(rng.integers(tokenizer.vocab_size)))
        expected = first_stop(token_bytes, ids, patterns)
        hits = scan(matchers, ids, matchers.window)
        assert (hits.index(True) if any(hits) else None) == expected, ids


def test_padded_vocab_rows_and_no_strings():
    matchers = stopping.stop_matchers([b"a", b"b"], ["ab"], vocab_size=5)
    assert matchers.table.shape == (1, 2, 5) and matchers.window == 2
    assert stopping.stop_matchers([b"a"], ["", ""]) is None
    controls = stopping.stop_controls([(1,)], matchers)
    assert controls["stop_sequence_ids"].shape == (1, 2)  # widened to the string window
    assert controls["stop_sequence_mask"].tolist() == [[False, True]]
    assert stopping.stop_controls([], None)["stop_string_table"].shape == (0, 1, 1)
    with pytest.raises(ValueError, match="vocab_size"):
        stopping.stop_matchers([b"a", b"b"], ["ab"], vocab_size=1)


def test_sampler_stops_on_a_string_split_across_tokens(tokenizer):
    """A random model's sample; the stop string is cut out of it across a token edge, starting
    or ending inside a token, so its own ids never appear among the sampled ones."""
    config = dataclasses.replace(
        ModelConfig.preset("tiny", hidden_size=64, mlp_dim=128, head_dim=16),
        vocab_size=tokenizer.vocab_size,
    )
    params = init_params(config, jax.random.key(1))
    prompts = PromptBatch.from_token_lists([tokenizer.encode("<think> 3 * 7")], length_bucket=8)
    plain = SamplingParams(max_new_tokens=32, temperature=1.0)
    key = jax.random.key(0)
    tokens = [int(t) for t in np.asarray(sample(params, config, prompts, key, plain).tokens[0])]
    token_bytes = tokenizer.token_bytes()
    edges = set(np.cumsum([0] + [len(token_bytes[t]) for t in tokens]).tolist())
    text = b"".join(token_bytes[t] for t in tokens)
    stop = None
    for start in range(1, len(text) - 4):
        for size in (3, 4):
            candidate, end = text[start : start + size], start + size
            crosses = any(start < edge < end for edge in edges)
            if not crosses or (start in edges and end in edges):
                continue
            try:
                stop = candidate.decode("utf-8")
            except UnicodeDecodeError:
                continue
            own_ids = tokenizer.encode(stop)
            if any(tokens[i : i + len(own_ids)] == own_ids for i in range(len(tokens))):
                stop = None
                continue
            break
        if stop is not None:
            break
    assert stop is not None, "the sample has no usable substring"
    stop_index = first_stop(token_bytes, tokens, [stop.encode()])
    by_ids = dataclasses.replace(plain, stop_sequences=(tuple(tokenizer.encode(stop)),))
    by_string = dataclasses.replace(
        plain, stop_strings=stopping.stop_matchers(tokenizer, [stop], vocab_size=config.vocab_size)
    )
    old = sample(params, config, prompts, key, by_ids)
    new = sample(params, config, prompts, key, by_string)
    assert int(old.lengths[0]) == 32  # the string's own ids never appear: no stop today
    assert int(new.lengths[0]) == stop_index + 1 < 32
    assert stopping.finish_reason_names(new.finish_reason) == ["stop_sequence"]
    assert np.asarray(new.tokens[0, : stop_index + 1]).tolist() == tokens[: stop_index + 1]


def test_id_sequences_stop_as_before_with_strings_added(tokenizer):
    """A stop that the id sequence already catches ends the row at the same token."""
    config = dataclasses.replace(
        ModelConfig.preset("tiny", hidden_size=64, mlp_dim=128, head_dim=16),
        vocab_size=tokenizer.vocab_size,
    )
    params = init_params(config, jax.random.key(1))
    prompts = PromptBatch.from_token_lists([tokenizer.encode("<think> 3 * 7")] * 2, length_bucket=8)
    plain = SamplingParams(max_new_tokens=16, temperature=1.0, num_samples_per_prompt=2)
    key = jax.random.key(3)
    tokens = np.asarray(sample(params, config, prompts, key, plain).tokens)
    sequence = tuple(int(t) for t in tokens[1, 4:6])  # two sampled tokens of row 1
    by_ids = dataclasses.replace(plain, stop_sequences=(sequence,))
    text = tokenizer.decode(list(sequence))
    both = dataclasses.replace(
        by_ids, stop_strings=stopping.stop_matchers(tokenizer, [text], vocab_size=config.vocab_size)
    )
    old = sample(params, config, prompts, key, by_ids)
    new = sample(params, config, prompts, key, both)
    assert int(old.lengths[1]) <= 6
    assert np.all(np.asarray(new.lengths) <= np.asarray(old.lengths))
    assert int(new.lengths[1]) == int(old.lengths[1])
