"""Chat prompts and chat SFT data (r1jax/data/prompts.py `chat_prompt_fn`, r1jax/data/sft.py)
against transformers' apply_chat_template on a Qwen2.5-style template, all local."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from r1jax.data import prompts, sft
from r1jax.tasks import countdown
from r1jax.tokenizer import QWEN_CHAT_TEMPLATE, Tokenizer

SYSTEM = "You are a helpful assistant. Think in <think> </think>, answer in <answer> </answer>."
USER = "Solve: {question}\nPut the final answer in \\boxed{} inside <answer> tags."
PROBLEMS = [{"question": "What is 12 * 34?", "answer": "408"}, {"question": "2+2", "answer": "4"}]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    texts = [f"<think> {a} * 7 = {a * 7} </think> <answer> {a * 7} </answer>" for a in range(200)]
    tokenizer = Tokenizer.train(texts, vocab_size=320, chat_template=QWEN_CHAT_TEMPLATE)
    directory = tmp_path_factory.mktemp("qwen-style-tokenizer")
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def reference(tokenizer_dir):
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(tokenizer_dir))


@pytest.mark.parametrize("system", [SYSTEM, None])
@pytest.mark.parametrize("prefill", ["<think>", "<think>\n", ""])
def test_chat_prompts_equal_transformers(tokenizer_dir, reference, system, prefill):
    tokenizer = Tokenizer.from_pretrained(tokenizer_dir)
    prompt_fn = prompts.chat_prompt_fn(
        tokenizer, system_prompt=system, user_template=USER, prefill=prefill
    )
    for problem in PROBLEMS:
        messages = [{"role": "user", "content": USER.replace("{question}", problem["question"])}]
        if system is not None:
            messages.insert(0, {"role": "system", "content": system})
        expected = reference.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        assert prompt_fn(problem) == expected + prefill
        assert tokenizer.encode(prompt_fn(problem)) == reference.encode(
            expected + prefill, add_special_tokens=False
        )
    if system is None:  # Qwen2.5's template brings its own default system message
        assert prompt_fn(PROBLEMS[0]).startswith("<|im_start|>system\nYou are Qwen")


def test_user_template_fields_and_errors(tokenizer_dir):
    tokenizer = Tokenizer.from_pretrained(tokenizer_dir)
    fn = prompts.chat_prompt_fn(tokenizer, user_template="{a} {{b}} {c}", prefill="<think>")
    assert "<|im_start|>user\n1 {b} x<|im_end|>" in fn({"a": 1, "c": "x"})
    with pytest.raises(ValueError, match=r"field \{c\} is not in the problem"):
        fn({"a": 1})
    by_task = prompts.chat_prompt_fn(tokenizer, task=countdown)
    problem = {"numbers": [3, 5, 7], "target": 22}
    assert countdown.user_message(problem) in by_task(problem)


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_sft_examples_from_files_render_like_rl_prompts(tmp_path, tokenizer_dir, file_format):
    tokenizer = Tokenizer.from_pretrained(tokenizer_dir)
    rows = [
        {"problem": "What is 3 * 7?", "solution": "<think> 3 * 7 = 21 </think> <answer> 21 </answer>"},
        {"problem": "What is 4 * 7?", "solution": " 4 * 7 = 28 </think> <answer> 28 </answer>"},
    ]  # fmt: skip
    path = tmp_path / f"sft.{file_format}"
    if file_format == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    examples = sft.load_sft_examples(str(path), prompt_field="problem", response_field="solution")
    prompt_fn, response_fn = sft.chat_sft_fns(
        tokenizer, system_prompt=SYSTEM, user_template=USER, prefill="<think>"
    )
    rl_prompt = prompts.chat_prompt_fn(
        tokenizer, system_prompt=SYSTEM, user_template=USER, prefill="<think>"
    )
    batches = sft.sft_batches(
        examples,
        prompt_fn=prompt_fn,
        response_fn=response_fn,
        tokenizer=tokenizer,
        batch_size=2,
        buckets=[256],
        shuffle=False,
    )
    batch = next(iter(batches))
    eos = tokenizer.eos_token_ids[0]
    for row, example in enumerate(examples):
        prompt_ids = tokenizer.encode(rl_prompt({"question": example["question"]}))
        response = example["response"].removeprefix("<think>")
        expected = prompt_ids + tokenizer.encode(response) + [eos]
        length = int(batch.lengths[row])
        assert batch.tokens[row, :length].tolist() == expected
        assert int(batch.prompt_lengths[row]) == len(prompt_ids)
        turn = tokenizer.decode(expected[:-1]).split("<|im_start|>assistant\n")[1]
        assert turn.startswith("<think> ") and turn.count("<think>") == 1  # the prefill once
