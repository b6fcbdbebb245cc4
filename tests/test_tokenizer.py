"""Tokenizer: agreement with transformers' AutoTokenizer on a locally trained byte-level BPE."""

import json
import logging
import pickle
import random
import shutil
import warnings

import numpy as np
import pytest

from r1jax.tokenizer import QWEN_CHAT_TEMPLATE, QWEN_SPECIAL_TOKENS, Tokenizer

transformers = pytest.importorskip("transformers")

_WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "answer",
    "think",
    "step",
    "by",
    "step",
    "equation",
    "number",
    "naïve",
    "café",
    "résumé",
    "Ünïcödé",
    "Привет",
    "мир",
    "中文",
    "字符",
    "日本語",
    "テキスト",
    "한국어",
    "emoji",
    "😀",
    "🚀",
    "👍🏽",
    "x**2",
    "+",
    "3*x",
    "-",
    "7",
    "=",
    "0",
    "\\boxed{42}",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "I'm",
    "you're",
    "we'll",
]

TEXTS = [
    "",
    " ",
    "hello world",
    "   leading spaces and trailing   ",
    "tabs\t\tand\nnewlines\n\n\nand\r\nwindows",
    "12345678901234567890 3.14159 + 2e10 = -7",
    "naïve café Ünïcödé e\u0301 (decomposed accent)",
    "中文字符和日本語のテキスト 한국어",
    "emoji 😀🚀👍🏽 and zero\u200bwidth",
    "<|im_start|>user\nhi<|im_end|>\n",
    "text<|endoftext|>more<|im_end|><|im_end|>",
    "almost special <|im_ and |> and <|im_end",
    "<think> 2 * 3 = 6 </think> <answer> 6 </answer>",
    "I'M YOU'RE we'LL it's",
    "\\frac{1}{2} \\boxed{\\sqrt{2}}",
    "    def f(x):\n        return x  # comment\n",
]


def _corpus(num_lines=300):
    rng = random.Random(0)
    lines = []
    for i in range(num_lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 14))]
        separator = rng.choice([" ", " ", " ", "  ", "\t", "\n"])
        lines.append(separator.join(words) + f" {i * 37 % 1000}")
    return lines


@pytest.fixture(scope="module")
def trained():
    return Tokenizer.train(_corpus(), vocab_size=700)


@pytest.fixture(scope="module")
def saved_dir(trained, tmp_path_factory):
    directory = tmp_path_factory.mktemp("tok")
    trained.save_pretrained(directory)
    return directory


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def hf_and_warnings(saved_dir):
    handler = _Records()
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hf = transformers.AutoTokenizer.from_pretrained(str(saved_dir))
    finally:
        logger.removeHandler(handler)
    return hf, handler.messages + [str(w.message) for w in caught]


@pytest.fixture(scope="module")
def hf(hf_and_warnings):
    return hf_and_warnings[0]


def _copy(saved_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(saved_dir, target)
    return target


def test_autotokenizer_loads_saved_dir_without_warnings(hf_and_warnings, trained):
    hf, messages = hf_and_warnings
    assert messages == []
    assert len(hf) == trained.vocab_size
    assert hf.eos_token_id == trained.eos_token_ids[0] == trained.token_to_id("<|im_end|>")
    assert hf.pad_token_id == trained.pad_token_id == trained.token_to_id("<|endoftext|>")
    assert hf.bos_token_id is None and trained.bos_token_id is None


def test_special_tokens_come_after_the_bpe_vocab(trained):
    ids = [trained.token_to_id(t) for t in QWEN_SPECIAL_TOKENS]
    assert ids == list(range(trained.vocab_size - 3, trained.vocab_size))
    assert trained.id_to_token(ids[-1]) == "<|im_end|>"
    assert trained.id_to_token(trained.vocab_size) is None
    assert trained.token_to_id("<|not a token|>") is None


@pytest.mark.parametrize("add_special_tokens", [False, True])
def test_encode_matches_transformers(trained, hf, add_special_tokens):
    for text in TEXTS:
        ours = trained.encode(text, add_special_tokens=add_special_tokens)
        assert ours == hf.encode(text, add_special_tokens=add_special_tokens), text
    assert trained.encode_batch(TEXTS) == [trained.encode(t) for t in TEXTS]


def test_special_tokens_inside_text_encode_to_single_ids(trained):
    ids = trained.encode("a<|im_end|>b")
    assert trained.token_to_id("<|im_end|>") in ids


@pytest.mark.parametrize("skip_special_tokens", [False, True])
def test_decode_matches_transformers(trained, hf, skip_special_tokens):
    rng = np.random.default_rng(0)
    batches = [trained.encode(t) for t in TEXTS]
    # Random ids include lone UTF-8 continuation bytes and special tokens mid-sequence.
    batches += [rng.integers(0, trained.vocab_size, size=n).tolist() for n in (1, 5, 40)]
    for ids in batches:
        expected = hf.decode(ids, skip_special_tokens=skip_special_tokens)
        assert trained.decode(ids, skip_special_tokens=skip_special_tokens) == expected, ids
    assert trained.decode_batch(
        batches, skip_special_tokens=skip_special_tokens
    ) == hf.batch_decode(batches, skip_special_tokens=skip_special_tokens)


def test_decode_round_trips_text(trained):
    for text in TEXTS:
        if "\u0301" not in text:  # NFC normalisation composes the decomposed accent
            assert trained.decode(trained.encode(text)) == text


def test_decode_batch_accepts_arrays_and_drops_out_of_vocab_ids(trained):
    ids = np.array([trained.encode("hello world")[:2]] * 3, dtype=np.int32)  # [B, T]
    assert trained.decode_batch(ids) == [trained.decode(ids[0])] * 3
    padded_vocab_id = trained.vocab_size + 5
    assert trained.decode([*ids[0].tolist(), padded_vocab_id]) == trained.decode(ids[0])


CONVERSATIONS = [
    [{"role": "user", "content": "What is 2 + 2?"}],
    [
        {"role": "system", "content": "Think step by step. 中文 😀"},
        {"role": "user", "content": "Solve x**2 = 4.\n\nShow <think> tags."},
    ],
    [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "<think> ok </think> <answer> 1 </answer>"},
        {"role": "user", "content": "  second\twith  spaces  "},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "third <|im_end|> inside"},
    ],
    [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "system", "content": "late system"},
        {"role": "assistant", "content": "", "tool_calls": None},
    ],
]


@pytest.mark.parametrize("add_generation_prompt", [True, False])
@pytest.mark.parametrize("conversation", CONVERSATIONS)
def test_chat_template_matches_transformers(trained, hf, conversation, add_generation_prompt):
    kwargs = {"add_generation_prompt": add_generation_prompt}
    text = trained.apply_chat_template(conversation, **kwargs)
    assert text == hf.apply_chat_template(conversation, tokenize=False, **kwargs)
    ids = trained.apply_chat_template(conversation, tokenize=True, **kwargs)
    assert ids == hf.apply_chat_template(conversation, tokenize=True, return_dict=False, **kwargs)


def test_qwen_template_renders_qwen25_prompt_exactly(trained):
    expected = (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
        "assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert trained.apply_chat_template([{"role": "user", "content": "hi"}]) == expected
    assert trained.apply_chat_template("hi") == expected
    assert trained.apply_chat_template("hi", add_generation_prompt=False) == expected.removesuffix(
        "<|im_start|>assistant\n"
    )


def test_system_prompt_argument_equals_a_leading_system_message(trained, hf):
    user = [{"role": "user", "content": "q"}]
    with_system = [{"role": "system", "content": "Be brief."}, *user]
    ours = trained.apply_chat_template(user, system_prompt="Be brief.")
    assert ours == hf.apply_chat_template(with_system, tokenize=False, add_generation_prompt=True)
    # An explicit system message wins over the argument.
    assert trained.apply_chat_template(with_system, system_prompt="other") == ours


def test_tools_and_tojson_match_transformers(trained, hf):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "calc",
                "description": "Évalue <expr> & rend un nombre",
                "parameters": {"type": "object", "properties": {"expr": {"type": "string"}}},
            },
        }
    ]
    conversation = [{"role": "user", "content": "2+2"}]
    ours = trained.apply_chat_template(conversation, tools=tools)
    theirs = hf.apply_chat_template(
        conversation, tools=tools, tokenize=False, add_generation_prompt=True
    )
    assert ours == theirs and "<expr> &" in ours
    template = "{{ bos_token }}{{ eos_token }}{{ messages | tojson(indent=2) }}{{ extra }}"
    ours = trained.apply_chat_template(conversation, chat_template=template, extra="!")
    theirs = hf.apply_chat_template(
        conversation, chat_template=template, extra="!", tokenize=False, add_generation_prompt=True
    )
    assert ours == theirs


def test_from_pretrained_round_trips(trained, saved_dir):
    loaded = Tokenizer.from_pretrained(saved_dir)
    assert loaded.backend.to_str() == trained.backend.to_str()
    assert loaded.chat_template == QWEN_CHAT_TEMPLATE
    assert loaded.eos_token_ids == trained.eos_token_ids
    assert loaded.pad_token_id == trained.pad_token_id
    assert loaded.source == str(saved_dir)
    assert loaded.encode_batch(TEXTS) == trained.encode_batch(TEXTS)


def test_hf_saved_copy_loads_the_same(hf, trained, tmp_path):
    hf.save_pretrained(tmp_path)  # writes chat_template.jinja and a v5-style config
    loaded = Tokenizer.from_pretrained(tmp_path)
    assert loaded.chat_template == trained.chat_template
    assert loaded.encode_batch(TEXTS) == trained.encode_batch(TEXTS)
    assert loaded.apply_chat_template(CONVERSATIONS[2]) == trained.apply_chat_template(
        CONVERSATIONS[2]
    )


@pytest.mark.parametrize("form", ["list", "int"])
def test_eos_ids_merge_generation_config(saved_dir, tmp_path, form):
    directory = _copy(saved_dir, tmp_path)
    probe = Tokenizer.from_pretrained(directory)
    im_end, endoftext = probe.token_to_id("<|im_end|>"), probe.token_to_id("<|endoftext|>")
    eos = [im_end, endoftext, im_end] if form == "list" else endoftext
    (directory / "generation_config.json").write_text(
        json.dumps({"bos_token_id": endoftext, "eos_token_id": eos})
    )
    loaded = Tokenizer.from_pretrained(directory)
    assert loaded.eos_token_ids == (im_end, endoftext)
    assert loaded.bos_token_id is None


def test_pad_falls_back_to_first_eos_and_special_tokens_map_wins(saved_dir, tmp_path):
    directory = _copy(saved_dir, tmp_path)
    config = json.loads((directory / "tokenizer_config.json").read_text())
    config["pad_token"] = None
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    loaded = Tokenizer.from_pretrained(directory)
    assert loaded.pad_token_id == loaded.eos_token_ids[0] == loaded.token_to_id("<|im_end|>")

    special = {"eos_token": {"content": "<|endoftext|>", "lstrip": False, "special": True}}
    (directory / "special_tokens_map.json").write_text(json.dumps(special))
    loaded = Tokenizer.from_pretrained(directory)
    assert loaded.eos_token_ids == (loaded.token_to_id("<|endoftext|>"),)


def test_chat_template_file_wins_over_config(saved_dir, tmp_path):
    directory = _copy(saved_dir, tmp_path)
    (directory / "chat_template.jinja").write_text("{{ messages[0]['content'] }}!")
    assert Tokenizer.from_pretrained(directory).apply_chat_template("hi") == "hi!"


def test_missing_chat_template_names_the_tokenizer(tmp_path):
    Tokenizer.train(_corpus(40), vocab_size=300, chat_template=None).save_pretrained(tmp_path)
    loaded = Tokenizer.from_pretrained(tmp_path)
    assert "chat_template" not in json.loads((tmp_path / "tokenizer_config.json").read_text())
    with pytest.raises(ValueError, match=f"{tmp_path}.*no chat template"):
        loaded.apply_chat_template("hi")


def test_template_errors_carry_the_template_message(trained):
    template = "{{ raise_exception('roles must alternate user/assistant') }}"
    with pytest.raises(ValueError, match="roles must alternate user/assistant"):
        trained.apply_chat_template("hi", chat_template=template)
    with pytest.raises(ValueError, match="not valid jinja"):
        trained.apply_chat_template("hi", chat_template="{% if %}")
    with pytest.raises(ValueError, match="empty conversation"):
        trained.apply_chat_template([])


def test_template_sandbox_blocks_attribute_escapes(trained):
    for template in ("{{ ''.__class__.__mro__ }}", "{{ messages.append(1) }}"):
        with pytest.raises(ValueError, match="unsafe"):
            trained.apply_chat_template("hi", chat_template=template)
    with pytest.raises(ValueError, match="underscore"):
        trained.apply_chat_template("hi", chat_template="{% set ns = namespace(_x=1) %}")


def test_missing_or_broken_files_are_named(saved_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Tokenizer.from_pretrained(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty/tokenizer\.json"):
        Tokenizer.from_pretrained(empty)

    directory = _copy(saved_dir, tmp_path)
    (directory / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"tokenizer_config\.json is not valid JSON"):
        Tokenizer.from_pretrained(directory)
    shutil.copy(saved_dir / "tokenizer_config.json", directory / "tokenizer_config.json")
    (directory / "generation_config.json").write_text('{"eos_token_id": "x"}')
    with pytest.raises(ValueError, match=r"generation_config\.json.*eos_token_id"):
        Tokenizer.from_pretrained(directory)
    (directory / "generation_config.json").unlink()
    (directory / "tokenizer.json").write_text('{"version": "1.0"}')
    with pytest.raises(ValueError, match=r"tokenizer\.json is not a valid tokenizers file"):
        Tokenizer.from_pretrained(directory)


def test_config_token_missing_from_vocab_is_an_error(saved_dir, tmp_path):
    directory = _copy(saved_dir, tmp_path)
    config = json.loads((directory / "tokenizer_config.json").read_text())
    config["eos_token"] = "</s>"
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="eos_token='</s>' is not in the vocab"):
        Tokenizer.from_pretrained(directory)


def test_train_is_deterministic_and_checks_arguments():
    corpus = _corpus(120)
    first = Tokenizer.train(corpus, vocab_size=500)
    second = Tokenizer.train(iter(corpus), vocab_size=500)
    assert first.backend.to_str() == second.backend.to_str()
    assert first.vocab_size <= 500
    with pytest.raises(ValueError, match="vocab_size"):
        Tokenizer.train(corpus, vocab_size=100)
    with pytest.raises(ValueError, match="eos_token"):
        Tokenizer.train(corpus, vocab_size=300, eos_token="</s>")


def test_pickles_for_data_workers(trained):
    trained.apply_chat_template("warm the template cache")
    restored = pickle.loads(pickle.dumps(trained))
    assert restored.apply_chat_template("hi") == trained.apply_chat_template("hi")
    assert restored.encode(TEXTS[8]) == trained.encode(TEXTS[8])
