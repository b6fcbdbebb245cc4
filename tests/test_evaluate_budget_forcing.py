"""Tests for s1 budget forcing in r1jax.evaluate and the ``python -m r1jax.eval`` flags."""

import jax
import numpy as np
import pytest

from r1jax import config as config_lib
from r1jax import eval as eval_cli
from r1jax import evaluate
from r1jax.data import padding
from r1jax.data import prompts as prompt_data
from r1jax.models import save_pretrained
from r1jax.sampling import sampler as sampler_lib
from r1jax.sampling.rollout import PromptBatch
from r1jax.tasks import multiplication
from tests.evaluate_fixtures import tiny_multiplication_model

# One token of the test tokenizer, so that a model forced to repeat it ends its thinking.
ONE_TOKEN_END = "think"


@pytest.fixture(scope="module")
def model():
    return tiny_multiplication_model()


def always_emits(params, token: int):
    """The random model changed so that ``token`` wins every step by a logit gap of ~50.

    The blocks' output projections are zeroed (the residual stream is the input embedding),
    every embedding gets ``1`` in dimension 0 (``token`` gets ``2``) and the final norm keeps
    only that dimension, so ``logits[v] ~ 56 * E[v, 0]`` (tied embeddings) whatever the context.
    """
    assert "lm_head" not in params  # the tiny preset ties embeddings
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: (
            jax.numpy.zeros_like(x)
            if any(getattr(p, "key", None) in ("o_proj", "down_proj") for p in path)
            else x
        ),
        params,
    )
    embedding = np.array(params["embed"]["embedding"])
    embedding[:, 0] = 1.0
    embedding[token, 0] = 2.0
    scale = np.zeros_like(np.asarray(params["final_norm"]["scale"]))
    scale[0] = 10.0
    return {
        **params,
        "embed": {"embedding": jax.numpy.asarray(embedding)},
        "final_norm": {"scale": jax.numpy.asarray(scale)},
    }


def settings_for(tokenizer, *, budget=None, num_samples=2, greedy=True):
    return evaluate.EvalSettings(
        num_samples=num_samples,
        greedy=greedy,
        max_new_tokens=8,
        prompts_per_batch=2,
        pad_id=tokenizer.pad_token_id,
        stop_token_ids=tuple(tokenizer.eos_token_ids),
        ks=(1, num_samples),
        budget_forcing=budget,
    )


def run_evaluate(model_tuple, settings, params=None):
    config, random_params, tokenizer, problems = model_tuple
    return evaluate.evaluate(
        random_params if params is None else params,
        config,
        tokenizer,
        problems,
        task="multiplication",
        prompt_fn=prompt_data.make_prompt_fn(multiplication),
        key=jax.random.key(0),
        settings=settings,
    )


def section(**changes):
    values = config_lib.base_config().eval.budget_forcing.to_dict()
    values.update(changes)
    return values


def prompt_ids(tokenizer, problems):
    prompt_fn = prompt_data.make_prompt_fn(multiplication)
    return [tokenizer.encode(prompt_fn(p)) for p in problems]


def test_the_thinking_cap_forces_the_end_of_thinking(model):
    config, params, tokenizer, problems = model
    cap = 6
    budget = evaluate.budget_forcing_from_config(
        section(mode="cap", thinking_budget=cap, answer_reserve=4), tokenizer, max_new_tokens=64
    )
    end = tokenizer.encode("</think>")
    prefix = tokenizer.encode("\nFinal Answer:")
    assert budget.end_of_thinking == tuple(end) and budget.answer_prefix == tuple(prefix)
    assert budget.max_thinking_tokens == cap and budget.num_ignores == 0
    settings = settings_for(tokenizer, budget=budget)
    for temperature, group in ((0.6, 2), (0.0, 1)):  # the shapes `evaluate` then reuses
        sampling = sampler_lib.SamplingParams(
            temperature=temperature,
            num_samples_per_prompt=group,
            stop_token_ids=tuple(tokenizer.eos_token_ids),
            pad_id=tokenizer.pad_token_id,
        )
        out = evaluate.sample_completions(
            params,
            config,
            tokenizer,
            prompt_ids(tokenizer, problems),
            jax.random.key(0),
            sampling,
            settings,
        )
        assert len(out.tokens) == 3 * group
        assert out.capped.any()
        for row, tokens in enumerate(out.tokens):
            assert out.thinking_lengths[row] <= cap + len(end)
            if out.capped[row]:  # exactly `cap` thinking tokens, then the forced strings
                assert tokens[cap : cap + len(end)] == end
                assert tokens[cap + len(end) : cap + len(end) + len(prefix)] == prefix
                assert out.thinking_lengths[row] == cap + len(end)
                assert len(tokens) <= cap + len(end) + len(prefix) + 4
                assert "</think>\nFinal Answer:" in out.texts[row]
            else:  # stopped on EOS before the cap
                assert tokens[-1] in tokenizer.eos_token_ids and len(tokens) <= cap
    results = run_evaluate(model, settings)
    assert 0.0 < results["capped_fraction"] <= 1.0
    assert results["thinking_length"] <= cap + len(end)
    assert results["ignores_per_sample"] == 0.0
    capped_examples = [e for e in results["examples"] if "</think>" in e["completion"]]
    assert capped_examples and all(
        "</think>\nFinal Answer:" in e["completion"] for e in capped_examples
    )


def test_extend_replaces_the_end_of_thinking_with_wait_n_times(model):
    config, params, tokenizer, problems = model
    (end_id,) = tokenizer.encode(ONE_TOKEN_END)
    forced = always_emits(params, end_id)
    wait = tokenizer.encode("Wait")
    budget = evaluate.budget_forcing_from_config(
        section(
            mode="extend",
            thinking_budget=20,
            answer_reserve=3,
            num_ignore=2,
            end_of_thinking=ONE_TOKEN_END,
        ),
        tokenizer,
        max_new_tokens=64,
    )
    assert budget.num_ignores == 2 and budget.ignore == tuple(wait)
    settings = settings_for(tokenizer, budget=budget, greedy=False)
    sampling = sampler_lib.SamplingParams(
        temperature=0.6,
        num_samples_per_prompt=2,
        stop_token_ids=tuple(tokenizer.eos_token_ids),
        pad_id=tokenizer.pad_token_id,
    )
    out = evaluate.sample_completions(
        forced, config, tokenizer, prompt_ids(tokenizer, problems), jax.random.key(1), sampling,
        settings,
    )  # fmt: skip
    # The model ends its thinking at once, twice replaced by "Wait", then the third end stays
    # and the answer phase emits 3 more tokens.
    expected = wait + wait + [end_id] + [end_id] * 3
    assert out.tokens == [expected] * 6
    assert out.texts == ["WaitWait" + ONE_TOKEN_END * 4] * 6
    assert out.num_ignored.tolist() == [2] * 6 and not out.capped.any()
    assert out.thinking_lengths.tolist() == [2 * len(wait) + 1] * 6
    results = run_evaluate(model, settings, params=forced)
    assert results["ignores_per_sample"] == 2.0 and results["capped_fraction"] == 0.0
    assert results["thinking_length"] == 2 * len(wait) + 1
    assert results["examples"][0]["completion"] == "WaitWait" + ONE_TOKEN_END * 4


def test_extend_stops_at_the_cap_when_the_waits_use_up_the_budget(model):
    config, params, tokenizer, problems = model
    (end_id,) = tokenizer.encode(ONE_TOKEN_END)
    wait = tokenizer.encode("Wait")
    budget = evaluate.budget_forcing_from_config(
        section(
            mode="extend",
            thinking_budget=len(wait) + 1,  # room for one "Wait" and one more token
            answer_reserve=2,
            num_ignore=4,
            end_of_thinking=ONE_TOKEN_END,
            answer_prefix="",
        ),
        tokenizer,
        max_new_tokens=64,
    )
    sampling = sampler_lib.SamplingParams(num_samples_per_prompt=1, temperature=0.0)
    out = evaluate.sample_completions(
        always_emits(params, end_id), config, tokenizer, prompt_ids(tokenizer, problems[:1]),
        jax.random.key(0), sampling, settings_for(tokenizer, budget=budget),
    )  # fmt: skip
    # Wait, then the model's end is replaced again (only 1 id of "Wait" fits), then forced end.
    assert out.tokens[0][: len(wait)] == wait
    assert out.capped.tolist() == [True]
    assert out.thinking_lengths.tolist() == [len(wait) + 1 + 1]


def test_budget_forcing_off_is_plain_sampling(model):
    config, params, tokenizer, problems = model
    assert evaluate.budget_forcing_from_config(section(), tokenizer, max_new_tokens=8) is None
    plain = settings_for(tokenizer)
    results = run_evaluate(model, plain)
    assert "capped_fraction" not in results and "thinking_length" not in results
    # The same completions as one direct sampler call over the same padded batch.
    ids = prompt_ids(tokenizer, problems)
    sampling = sampler_lib.SamplingParams(
        max_new_tokens=8,
        temperature=plain.temperature,
        top_p=plain.top_p,
        num_samples_per_prompt=2,
        stop_token_ids=plain.stop_token_ids,
        pad_id=plain.pad_id,
    )
    out = evaluate.sample_completions(
        params, config, tokenizer, ids, jax.random.key(0), sampling, plain
    )
    width = padding.bucket_length(
        max(map(len, ids)), padding.power_of_two_buckets(4096, min_length=16)
    )
    batch = PromptBatch.from_token_lists(ids, length_bucket=width, pad_id=plain.pad_id)
    direct = sampler_lib.sample(params, config, batch, jax.random.key(0), sampling)
    assert out.tokens == direct.completions()
    assert out.thinking_lengths is None
    assert [e["completion"] for e in results["examples"]] == [
        tokenizer.decode(direct.completions()[2 * i], skip_special_tokens=True) for i in range(3)
    ]


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"mode": "sometimes"}, "mode"),
        ({"mode": "cap", "end_of_thinking": ""}, "end_of_thinking"),
        ({"mode": "cap", "answer_reserve": 60}, "auto"),
        ({"mode": "extend", "thinking_budget": 9, "ignore_string": ""}, "ignore_string"),
    ],
)
def test_bad_budget_forcing_settings_name_the_key(model, changes, match):
    tokenizer = model[2]
    with pytest.raises(ValueError, match=match):
        evaluate.budget_forcing_from_config(section(**changes), tokenizer, max_new_tokens=64)


def test_eval_command_line_budget_forcing_flags(model, tmp_path):
    config, params, tokenizer, _ = model
    save_pretrained(tmp_path / "export", config, params, tokenizer)
    common = ["--checkpoint", str(tmp_path), "--task", "multiplication"]
    common += ["--task-option", "digits=2", "--num-problems", "2", "--k", "2", "--workers", "1"]
    results = eval_cli.main(
        [*common, "--budget-forcing", "cap", "--thinking-budget", "4", "--answer-reserve", "2"]
    )
    assert 0.0 < results["capped_fraction"] <= 1.0
    assert results["thinking_length"] <= 4 + len(tokenizer.encode("</think>"))
    with pytest.raises(SystemExit, match="auto"):
        eval_cli.main([*common, "--budget-forcing", "cap", "--max-new-tokens", "8"])
