import json
import types

import numpy as np
import pytest

from r1jax.data import prompts, sources
from r1jax.tasks import countdown, knights_knaves, multiplication

COUNTDOWN_BASE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer.\nUser: Using the numbers [44, 19, 35], create an "
    "equation that equals 98. You can use basic arithmetic operations (+, -, *, /) and each "
    "number can only be used once. Show your work in <think> </think> tags. And return the "
    "final answer in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>.\n"
    "Assistant: Let me solve this step by step.\n<think>"
)

MULTIPLICATION_BASE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process "
    "here </think> <answer> RESULT_NUMBER </answer>. User: Give me the answer of the following "
    "equation: 12 * 34 = Assistant: Ok let me think about it.\n<think>"
)

TASK_TEMPLATES = [
    (task, template)
    for task in (countdown, multiplication, knights_knaves)
    for template in task.TEMPLATES
]

# A task whose prompt is n tokens long under the test tokenizer (" the" is one token).
WORDS = types.SimpleNamespace(prompt=lambda problem, *, template: " the" * problem["n"])


def _words_source(lengths):
    return [{"n": n, "id": f"w{i}"} for i, n in enumerate(lengths)]


def _batches(source, tokenizer, **options):
    defaults = dict(
        prompt_fn=prompts.make_prompt_fn(WORDS),
        tokenizer=tokenizer,
        batch_size=2,
        buckets=(8, 16, 32),
        shuffle=False,
        num_epochs=1,
        process_index=0,
        process_count=1,
    )
    return prompts.prompt_batches(source, **{**defaults, **options})


@pytest.mark.parametrize(
    ("task", "template"), TASK_TEMPLATES, ids=lambda x: getattr(x, "__name__", x)
)
def test_prompt_texts_are_the_task_templates(tokenizer, task, template):
    source = sources.ProceduralSource(task.generate, seed=0)
    batches = prompts.prompt_batches(
        source,
        prompt_fn=prompts.make_prompt_fn(task, template=template),
        tokenizer=tokenizer,
        batch_size=3,
        buckets=(512, 1024, 2048),
        shuffle=False,
        process_index=0,
        process_count=1,
    )
    batch = next(batches)
    for row, problem in enumerate(batch.problems):
        assert problem == task.generate(np.random.default_rng([0, row]))
        assert batch.texts[row] == task.prompt(problem, template=template)
        real = batch.tokens[row, batch.tokens.shape[1] - batch.lengths[row] :]
        assert tokenizer.decode(real) == batch.texts[row]


def test_prompts_match_the_specified_strings():
    countdown_problem = {"numbers": [44, 19, 35], "target": 98}
    assert prompts.make_prompt_fn(countdown)(countdown_problem) == COUNTDOWN_BASE
    multiplication_problem = multiplication.generate(np.random.default_rng(0))
    multiplication_problem.update(a=12, b=34, target=408)
    assert prompts.make_prompt_fn(multiplication)(multiplication_problem) == MULTIPLICATION_BASE


def test_left_padding_lengths_and_smallest_bucket(tokenizer):
    lengths_in_words = [1, 8, 5, 17, 9, 16]
    batches = list(_batches(_words_source(lengths_in_words), tokenizer, batch_size=3))
    assert len(batches) == 2
    for batch in batches:
        encoded = [tokenizer.encode(text) for text in batch.texts]
        longest = max(len(ids) for ids in encoded)
        width = batch.tokens.shape[1]
        assert width == min(b for b in (8, 16, 32) if b >= longest)
        assert batch.tokens.dtype == np.int32 and batch.lengths.dtype == np.int32
        np.testing.assert_array_equal(batch.lengths, [len(ids) for ids in encoded])
        for row, ids in enumerate(encoded):
            pad = width - len(ids)
            assert (batch.tokens[row, :pad] == tokenizer.pad_token_id).all()
            assert batch.tokens[row, pad:].tolist() == ids
            assert batch.mask[row].tolist() == [False] * pad + [True] * len(ids)
            assert batch.positions[row, pad:].tolist() == list(range(len(ids)))
    assert batches[0].ids == ["w0", "w1", "w2"]
    np.testing.assert_array_equal(batches[1].indices, [3, 4, 5])


def test_overlong_prompt_error_names_the_problem(tokenizer):
    with pytest.raises(ValueError, match=r"prompt of problem 'w1' \(record 1\) has \d+ tokens"):
        next(_batches(_words_source([1, 40]), tokenizer))


def test_overlong_prompts_are_skipped_and_counted(tokenizer):
    batches = _batches(_words_source([1, 40, 2, 3, 50]), tokenizer, overlong="skip")
    assert [b.ids for b in batches] == [["w0", "w2"]]
    assert batches.counts["skipped_overlong"] == 2


def test_overlong_prompts_are_truncated_on_the_left(tokenizer):
    batches = _batches(_words_source([1, 40]), tokenizer, overlong="truncate_left")
    batch = next(batches)
    full = tokenizer.encode(batch.texts[1])
    assert len(full) == 40
    assert batch.tokens.shape[1] == 32 and batch.lengths.tolist()[1] == 32
    assert batch.tokens[1].tolist() == full[-32:]
    assert batches.counts["truncated_overlong"] == 1


def _assert_same(a, b):
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert (a.problems, a.texts, a.ids) == (b.problems, b.texts, b.ids)


def _resume_check(make, steps_before):
    reference = make()
    expected = [next(reference) for _ in range(steps_before + 2)]
    iterator = make()
    for _ in range(steps_before):
        next(iterator)
    state = json.loads(json.dumps(iterator.get_state()))
    resumed = make()
    resumed.set_state(state)
    _assert_same(next(resumed), expected[steps_before])
    _assert_same(next(resumed), expected[steps_before + 1])


def test_resume_mid_epoch_procedural_source(tokenizer):
    source = sources.ProceduralSource(countdown.generate, seed=5)

    def make():
        return prompts.prompt_batches(
            source,
            prompt_fn=prompts.make_prompt_fn(countdown),
            tokenizer=tokenizer,
            batch_size=4,
            buckets=(128, 256, 512),
            shuffle=False,
            process_index=1,
            process_count=2,
        )

    _resume_check(make, steps_before=3)


def test_resume_mid_epoch_file_source_across_epochs(tmp_path, tokenizer):
    path = tmp_path / "math.jsonl"
    rows = [{"problem": f"What is {i} + {i * 3}?", "solution": str(4 * i)} for i in range(10)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = sources.load_problems(path, fields={"question": "problem", "answer": "solution"})
    math_like = types.SimpleNamespace(prompt=lambda p, *, template: f"User: {p['question']}")

    def make():
        return prompts.prompt_batches(
            source,
            prompt_fn=prompts.make_prompt_fn(math_like),
            tokenizer=tokenizer,
            batch_size=3,
            buckets=(16, 32, 64),
            seed=11,
            shuffle=True,
            num_epochs=3,
            process_index=0,
            process_count=2,
        )

    _resume_check(make, steps_before=1)  # the next batch spans the first epoch boundary
    ids = [i for batch in make() for i in batch.ids]
    assert len(ids) == 15  # half of each epoch's global order, a fresh order every epoch
    assert all(len(set(ids[e * 5 : (e + 1) * 5])) == 5 for e in range(3))


def test_two_processes_read_disjoint_prompts(tokenizer):
    source = _words_source(range(1, 9))
    ids = [
        [
            i
            for batch in _batches(
                source, tokenizer, process_index=p, process_count=2, seed=4, shuffle=True
            )
            for i in batch.ids
        ]
        for p in range(2)
    ]
    assert not set(ids[0]) & set(ids[1])
    assert sorted(ids[0] + ids[1]) == sorted(p["id"] for p in source)


def test_chat_prompt_wraps_the_question(tokenizer):
    math_like = types.SimpleNamespace(prompt=lambda p, *, template: "unused")
    prompt_fn = prompts.make_prompt_fn(
        math_like,
        template="chat",
        tokenizer=tokenizer,
        system_prompt="Please reason step by step.",
        assistant_prefix="<think>\n",
    )
    text = prompt_fn({"question": "What is 1 + 1?", "answer": "2"})
    assert text == (
        "<|im_start|>system\nPlease reason step by step.<|im_end|>\n"
        "<|im_start|>user\nWhat is 1 + 1?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    )
    with pytest.raises(ValueError, match="user_message"):
        prompts.make_prompt_fn(math_like, template="chat", tokenizer=tokenizer)({"target": 3})
    countdown_chat = prompts.make_prompt_fn(countdown, template="chat", tokenizer=tokenizer)
    assert countdown.user_message({"numbers": [1, 2], "target": 3}) in countdown_chat(
        {"numbers": [1, 2], "target": 3}
    )
    with pytest.raises(ValueError, match="needs a tokenizer"):
        prompts.make_prompt_fn(countdown, template="chat")


def test_malformed_problem_error_names_the_problem(tokenizer):
    source = [{"numbers": [1, 2], "target": 3, "id": "ok"}, {"target": 3, "id": "broken"}]
    batches = prompts.prompt_batches(
        source,
        prompt_fn=prompts.make_prompt_fn(countdown),
        tokenizer=tokenizer,
        batch_size=2,
        buckets=(512,),
        shuffle=False,
        process_index=0,
        process_count=1,
    )
    with pytest.raises(ValueError, match=r"problem 'broken' \(record 1\): KeyError"):
        next(batches)
