"""Text <-> token ids and chat prompts, over a Hugging Face ``tokenizers`` backend.

What lives here: `Tokenizer`, which reads and writes the Hugging Face tokenizer files
(``tokenizer.json``, ``tokenizer_config.json``, ``generation_config.json``,
``special_tokens_map.json``, ``chat_template.jinja``), encodes and decodes single strings and
batches (batch decoding goes through the Rust batch path, since every rollout is decoded), and
renders chat templates with jinja2 the way ``transformers`` does, so a prompt built here is the
prompt a ``transformers`` tokenizer would build from the same files. `Tokenizer.train` fits a
small byte-level BPE tokenizer with Qwen2's pre-tokenizer and special tokens, for tests and
smoke runs that cannot download a real one.

What does not live here: prompt wording for tasks (``tasks/``), batching and padding of prompts
(``data/``), and stop-token handling during sampling (``sampling/``); those read
`Tokenizer.eos_token_ids` and `Tokenizer.pad_token_id`.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
import jinja2.sandbox
import jinja2.utils
import tokenizers
from jinja2 import nodes
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

QWEN_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# Qwen2's pre-tokenization split (the same regex as `transformers`' Qwen2Tokenizer).
QWEN_PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# The chat template shipped in the Qwen2.5 instruct checkpoints' tokenizer_config.json, verbatim
# (tool-calling branches included). With no system message it inserts Qwen's default one.
QWEN_CHAT_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

# Named special-token keys of tokenizer_config.json, as `transformers` reads them.
_NAMED_TOKEN_KEYS = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)
# Keys `transformers` adds to a config in memory that do not belong in a saved file.
_TRANSIENT_CONFIG_KEYS = ("name_or_path", "is_local", "local_files_only", "tokenizer_file")


class Tokenizer:
    """A ``tokenizers.Tokenizer`` plus the special tokens and chat template of a checkpoint.

    Build one with `from_pretrained` (a checkpoint directory) or `train`; the constructor is
    for wrapping a backend you already hold.

    Special tokens resolve as in ``transformers``: ``special_tokens_map.json`` overrides
    ``tokenizer_config.json``. `eos_token_ids` holds the config's ``eos_token`` first, then
    every ``eos_token_id`` of ``generation_config.json`` (Qwen2.5 instruct lists both
    ``<|im_end|>`` and ``<|endoftext|>``), deduplicated. `pad_token_id` is the pad token, else
    the first eos id. `bos_token_id` comes from the tokenizer config only (Qwen2.5 sets no BOS
    token there, although its generation config names one), since that is what a template's
    ``bos_token`` renders.

    Attributes:
      backend: the ``tokenizers.Tokenizer`` doing the work.
      config: the tokenizer_config.json mapping this tokenizer was read from (or built with);
        `save_pretrained` writes it back with the special tokens and chat template updated.
      chat_template: the jinja chat template, or ``None``.
      source: the directory this tokenizer was read from, named in error messages.
    """

    def __init__(
        self,
        backend: tokenizers.Tokenizer,
        *,
        config: Mapping[str, Any] | None = None,
        chat_template: str | None = None,
        generation_eos_token_ids: Sequence[int] = (),
        source: str = "<in-memory tokenizer>",
    ):
        self.backend = backend
        self.config = dict(config or {})
        self.chat_template = chat_template
        self.source = source
        self._compiled_templates: dict[str, jinja2.Template] = {}

        self.special_tokens: dict[str, str] = {}
        for key in _NAMED_TOKEN_KEYS:
            content = _token_content(self.config.get(key))
            if content is not None:
                self.special_tokens[key] = content
        ids = {
            key: self._special_token_id(key, token) for key, token in self.special_tokens.items()
        }

        eos_ids = [ids["eos_token"]] if "eos_token" in ids else []
        eos_ids += [int(i) for i in generation_eos_token_ids]
        self.eos_token_ids: tuple[int, ...] = tuple(dict.fromkeys(eos_ids))
        if "pad_token" in ids:
            self.pad_token_id: int = ids["pad_token"]
        elif self.eos_token_ids:
            self.pad_token_id = self.eos_token_ids[0]
        else:
            raise ValueError(
                f"{source}: no eos or pad token (tokenizer_config.json 'eos_token'/'pad_token', "
                "generation_config.json 'eos_token_id'); sampling needs one to stop and pad"
            )
        self.bos_token_id: int | None = ids.get("bos_token")

    def _special_token_id(self, key: str, token: str) -> int:
        token_id = self.backend.token_to_id(token)
        if token_id is None:
            raise ValueError(f"{self.source}: tokenizer config {key}={token!r} is not in the vocab")
        return token_id

    # ------------------------------------------------------------------ files

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> Tokenizer:
        """Reads a tokenizer from a Hugging Face checkpoint directory.

        Args:
          path: directory holding ``tokenizer.json`` and usually ``tokenizer_config.json``;
            ``generation_config.json``, ``special_tokens_map.json`` and ``chat_template.jinja``
            are read when present (``chat_template.jinja`` wins over the config's
            ``chat_template``, as in ``transformers``).

        Returns:
          The tokenizer.

        Raises:
          FileNotFoundError: ``path`` or its ``tokenizer.json`` is missing.
          ValueError: a file is not valid JSON / not a tokenizer, or names a token the vocab
            lacks.
        """
        directory = Path(path)
        if not directory.is_dir():
            raise FileNotFoundError(f"tokenizer directory {directory} does not exist")
        tokenizer_file = directory / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise FileNotFoundError(f"{tokenizer_file} is missing (only tokenizer.json is read)")
        try:
            backend = tokenizers.Tokenizer.from_str(tokenizer_file.read_text(encoding="utf-8"))
        except Exception as error:  # the Rust loader raises plain Exception
            raise ValueError(f"{tokenizer_file} is not a valid tokenizers file: {error}") from error

        config = _read_json(directory / "tokenizer_config.json") or {}
        special_tokens_map = _read_json(directory / "special_tokens_map.json") or {}
        for key in _NAMED_TOKEN_KEYS:
            if special_tokens_map.get(key) is not None:
                config[key] = special_tokens_map[key]
        generation_config = _read_json(directory / "generation_config.json") or {}
        generation_eos = generation_config.get("eos_token_id")
        if generation_eos is None:
            generation_eos = []
        elif isinstance(generation_eos, int):
            generation_eos = [generation_eos]
        elif not all(isinstance(i, int) for i in generation_eos):
            raise ValueError(
                f"{directory / 'generation_config.json'}: eos_token_id must be an int or a list "
                f"of ints, got {generation_eos!r}"
            )

        template_file = directory / "chat_template.jinja"
        if template_file.is_file():
            chat_template = template_file.read_text(encoding="utf-8")
        else:
            chat_template = _default_template(config.get("chat_template"), directory)
        return cls(
            backend,
            config=config,
            chat_template=chat_template,
            generation_eos_token_ids=generation_eos,
            source=str(directory),
        )

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Writes ``tokenizer.json`` and ``tokenizer_config.json`` (with the chat template).

        The config keeps every key it was read with and rewrites ``added_tokens_decoder``, the
        named special tokens and ``chat_template``, so ``transformers.AutoTokenizer`` (v4 and
        v5) loads the directory and encodes, decodes and renders prompts exactly like this
        class. The generation config's extra eos ids are not written: they belong to the
        model's ``generation_config.json``.
        """
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(directory / "tokenizer.json"))

        config = {k: v for k, v in self.config.items() if k not in _TRANSIENT_CONFIG_KEYS}
        config["added_tokens_decoder"] = {
            str(token_id): {
                "content": token.content,
                "lstrip": token.lstrip,
                "normalized": token.normalized,
                "rstrip": token.rstrip,
                "single_word": token.single_word,
                "special": token.special,
            }
            for token_id, token in sorted(self.backend.get_added_tokens_decoder().items())
        }
        for key in _NAMED_TOKEN_KEYS:
            config[key] = self.special_tokens.get(key)
        config.setdefault("clean_up_tokenization_spaces", False)
        config.setdefault("tokenizer_class", "PreTrainedTokenizerFast")
        if self.chat_template is not None:
            config["chat_template"] = self.chat_template
        else:
            config.pop("chat_template", None)
        text = json.dumps(dict(sorted(config.items())), indent=2, ensure_ascii=False)
        (directory / "tokenizer_config.json").write_text(text + "\n", encoding="utf-8")

    # ------------------------------------------------------------------ training

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        *,
        vocab_size: int,
        special_tokens: Sequence[str] = QWEN_SPECIAL_TOKENS,
        chat_template: str | None = QWEN_CHAT_TEMPLATE,
        eos_token: str = "<|im_end|>",
        pad_token: str | None = "<|endoftext|>",
        bos_token: str | None = None,
        min_frequency: int = 2,
        model_max_length: int = 32768,
    ) -> Tokenizer:
        """Trains a byte-level BPE tokenizer laid out like Qwen2's, for tests and smoke runs.

        The pipeline is Qwen2's (NFC normalisation, Qwen2's split regex, byte-level mapping
        with no prefix space, byte-level decoding). The 256 byte tokens and the learned merges
        come first and the special tokens last, as in Qwen's vocab. Training is deterministic:
        the same texts give the same ``tokenizer.json``.

        Args:
          texts: training text, one string per document or line.
          vocab_size: total vocab size including ``special_tokens``; fewer tokens come out when
            the text has too few distinct pairs. At least ``256 + len(special_tokens)``.
          special_tokens: added tokens, special (skipped by ``skip_special_tokens``), in order.
          chat_template: jinja template stored with the tokenizer; ``None`` for none.
          eos_token: the end-of-sequence token, one of ``special_tokens``.
          pad_token: the padding token, one of ``special_tokens``, or ``None`` (pads with eos).
          bos_token: a beginning-of-sequence token from ``special_tokens``, or ``None`` (Qwen).
          min_frequency: pairs seen fewer times than this are not merged.
          model_max_length: stored in the config for ``transformers``' length checks.

        Returns:
          The trained tokenizer.

        Example:
          >>> tok = Tokenizer.train(["hello world"] * 20, vocab_size=300)
          >>> tok.decode(tok.encode("hello <|im_end|>"))
          'hello <|im_end|>'
          >>> tok.eos_token_ids == (tok.token_to_id("<|im_end|>"),)
          True
        """
        special_tokens = tuple(special_tokens)
        for name, token in (("eos_token", eos_token), ("pad_token", pad_token)):
            if token is not None and token not in special_tokens:
                raise ValueError(f"{name}={token!r} is not one of special_tokens {special_tokens}")
        if bos_token is not None and bos_token not in special_tokens:
            raise ValueError(f"bos_token={bos_token!r} is not one of special_tokens")
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        if vocab_size < len(alphabet) + len(special_tokens):
            raise ValueError(
                f"vocab_size={vocab_size} is below the {len(alphabet)} byte tokens plus "
                f"{len(special_tokens)} special tokens"
            )

        backend = tokenizers.Tokenizer(
            models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False)
        )
        backend.normalizer = normalizers.NFC()
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(
                    tokenizers.Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated", invert=False
                ),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size - len(special_tokens),
            min_frequency=min_frequency,
            initial_alphabet=alphabet,
            show_progress=False,
        )
        texts = list(texts)
        backend.train_from_iterator(texts, trainer=trainer, length=len(texts))
        backend.add_special_tokens(
            [tokenizers.AddedToken(t, special=True, normalized=False) for t in special_tokens]
        )
        config = {
            "add_bos_token": False,
            "add_prefix_space": False,
            "additional_special_tokens": [
                t for t in special_tokens if t not in (eos_token, pad_token, bos_token)
            ],
            "bos_token": bos_token,
            "clean_up_tokenization_spaces": False,
            "eos_token": eos_token,
            "errors": "replace",
            "model_max_length": model_max_length,
            "pad_token": pad_token,
            "split_special_tokens": False,
            # The pipeline above is Qwen2Tokenizer's, which `transformers` v5 rebuilds from the
            # vocab and merges instead of reading it from tokenizer.json.
            "tokenizer_class": "Qwen2Tokenizer",
            "unk_token": None,
        }
        return cls(backend, config=config, chat_template=chat_template)

    # ------------------------------------------------------------------ vocab

    @property
    def vocab_size(self) -> int:
        """Number of token ids, added tokens included."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def token_to_id(self, token: str) -> int | None:
        """The id of ``token``, or ``None`` if it is not in the vocab."""
        return self.backend.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        """The token string (byte-level form) of ``token_id``, or ``None`` if out of range."""
        return self.backend.id_to_token(int(token_id))

    def token_bytes(self) -> list[bytes]:
        """The bytes each token id contributes to decoded text, indexed by id (``[V]``).

        Byte-level BPE tokens (Qwen, Llama 3) map back through GPT-2's byte-to-unicode table,
        so a token that holds part of a UTF-8 character gets exactly its bytes; added tokens
        (``<|im_end|>``, ...) get their content as UTF-8, as ``decode`` without
        ``skip_special_tokens`` writes them. Other decoders fall back to ``decode([id])``.
        Sampling uses this to match stop strings however the text was split into tokens.

        Example:
          >>> tok = Tokenizer.train(["héllo"] * 20, vocab_size=300)
          >>> b"".join(tok.token_bytes()[i] for i in tok.encode("héllo")).decode()
          'héllo'
        """
        added = {
            token_id: token.content.encode("utf-8")
            for token_id, token in self.backend.get_added_tokens_decoder().items()
        }
        byte_level = isinstance(self.backend.decoder, decoders.ByteLevel)
        to_byte = {char: byte for byte, char in _bytes_to_unicode().items()}
        result = []
        for token_id in range(self.vocab_size):
            if token_id in added:
                result.append(added[token_id])
                continue
            token = self.backend.id_to_token(token_id)
            if token is None:
                result.append(b"")
            elif byte_level and all(char in to_byte for char in token):
                result.append(bytes(to_byte[char] for char in token))
            else:
                result.append(self.backend.decode([token_id]).encode("utf-8"))
        return result

    # ------------------------------------------------------------------ encode / decode

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text``; special tokens written in the text become their ids.

        Args:
          text: the string.
          add_special_tokens: apply the tokenizer's post-processor (a BOS or EOS token some
            tokenizers add around a sequence; Qwen's adds none).
        """
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def encode_batch(
        self, texts: Sequence[str], *, add_special_tokens: bool = False
    ) -> list[list[int]]:
        """`encode` over a batch, in Rust without offsets; ``P`` strings -> ``P`` id lists."""
        encodings = self.backend.encode_batch_fast(
            list(texts), add_special_tokens=add_special_tokens
        )
        return [encoding.ids for encoding in encodings]

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str:
        """Text of ``ids`` (a list or a 1-D integer array).

        Ids outside ``[0, vocab_size)`` (a model's padded vocab rows) decode to nothing, and byte
        sequences that are not UTF-8 decode to U+FFFD, so model output never makes this raise.
        """
        return self.backend.decode(_as_id_list(ids), skip_special_tokens=skip_special_tokens)

    def decode_batch(
        self, batch_ids: Sequence[Sequence[int]], *, skip_special_tokens: bool = False
    ) -> list[str]:
        """`decode` over ``B`` id sequences (lists, or a ``[B, T]`` integer array), in Rust.

        Padding is not stripped: cut each row to its length first, or pass
        ``skip_special_tokens=True`` when the pad token is special.
        """
        rows = [_as_id_list(ids) for ids in _as_rows(batch_ids)]
        return self.backend.decode_batch(rows, skip_special_tokens=skip_special_tokens)

    # ------------------------------------------------------------------ chat

    def apply_chat_template(
        self,
        messages: Sequence[Mapping[str, Any]] | str,
        *,
        add_generation_prompt: bool = True,
        tokenize: bool = False,
        system_prompt: str | None = None,
        chat_template: str | None = None,
        **template_kwargs: Any,
    ) -> str | list[int]:
        """Renders a conversation with the chat template, as ``transformers`` does.

        The template sees ``messages`` (message keys whose value is ``None`` dropped),
        ``add_generation_prompt``, ``tools=None``, ``documents=None``, the named special tokens
        (``eos_token``, ``pad_token``, ``bos_token`` when set, ...), ``raise_exception``,
        ``strftime_now``, a ``tojson`` filter that does not escape HTML, and
        ``template_kwargs`` (which win over the special tokens). The environment is jinja2's
        immutable sandbox with ``trim_blocks`` and ``lstrip_blocks``.

        Note ``add_generation_prompt`` defaults to ``True`` here (an RL prompt always ends with
        the assistant header), unlike ``transformers``.

        Args:
          messages: ``[{"role": ..., "content": ...}, ...]``, or a string taken as one user
            message.
          add_generation_prompt: end with the header that opens the assistant's turn.
          tokenize: return token ids (encoded without post-processor tokens) instead of text.
          system_prompt: a system message put first when ``messages`` has none; with Qwen's
            template, ``None`` leaves the default "You are Qwen, ..." system prompt.
          chat_template: render with this template instead of the tokenizer's.
          **template_kwargs: extra template variables (``tools``, ``enable_thinking``, ...).

        Returns:
          The prompt string, or its token ids when ``tokenize``.

        Raises:
          ValueError: no chat template, an empty conversation, or the template raised (the
            message is the template's).
        """
        template = chat_template if chat_template is not None else self.chat_template
        if template is None:
            raise ValueError(
                f"{self.source} has no chat template (no 'chat_template' in tokenizer_config.json "
                "and no chat_template.jinja); pass chat_template= or use a plain-text prompt"
            )
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        conversation = [
            {key: value for key, value in dict(message).items() if value is not None}
            for message in messages
        ]
        if not conversation:
            raise ValueError("cannot apply a chat template to an empty conversation")
        if system_prompt is not None and conversation[0].get("role") != "system":
            conversation.insert(0, {"role": "system", "content": system_prompt})

        variables: dict[str, Any] = {"tools": None, "documents": None, **self.special_tokens}
        variables.update(template_kwargs)
        try:
            text = self._compile(template).render(
                messages=conversation, add_generation_prompt=add_generation_prompt, **variables
            )
        except jinja2.TemplateError as error:
            raise ValueError(f"chat template of {self.source} failed: {error}") from error
        return self.encode(text) if tokenize else text

    def _compile(self, template: str) -> jinja2.Template:
        compiled = self._compiled_templates.get(template)
        if compiled is None:
            try:
                compiled = _template_environment().from_string(template)
            except jinja2.TemplateSyntaxError as error:
                raise ValueError(
                    f"chat template of {self.source} is not valid jinja (line {error.lineno}): "
                    f"{error.message}"
                ) from error
            self._compiled_templates[template] = compiled
        return compiled

    def __getstate__(self) -> dict[str, Any]:
        # Compiled jinja templates do not pickle (data-loader workers pickle the tokenizer).
        state = self.__dict__.copy()
        state["_compiled_templates"] = {}
        return state

    def __repr__(self) -> str:
        return (
            f"Tokenizer(source={self.source!r}, vocab_size={self.vocab_size}, "
            f"eos_token_ids={self.eos_token_ids}, pad_token_id={self.pad_token_id})"
        )


# ---------------------------------------------------------------------- helpers


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table used by byte-level BPE vocabularies.

    openai/gpt-2 ``src/encoder.py`` ``bytes_to_unicode``: printable Latin-1 bytes map to
    themselves, the other 68 bytes to ``chr(256 + k)`` in byte order.
    """
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    table = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


def _read_json(file: Path) -> dict[str, Any] | None:
    """The JSON object in ``file``, ``None`` when the file is absent."""
    if not file.is_file():
        return None
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{file} is not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise ValueError(f"{file} must hold a JSON object, got {type(value).__name__}")
    return value


def _token_content(value: Any) -> str | None:
    """A config's special-token entry (a string or an AddedToken dict) as its text."""
    if isinstance(value, Mapping):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _default_template(value: Any, directory: Path) -> str | None:
    """The config's ``chat_template``: a string, or the ``default`` of a named-template list."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, Mapping)}
        return named.get("default")
    raise ValueError(
        f"{directory / 'tokenizer_config.json'}: chat_template must be a string or a list of "
        f"{{'name', 'template'}} objects, got {type(value).__name__}"
    )


def _as_rows(batch_ids: Any) -> Sequence[Any]:
    return batch_ids.tolist() if hasattr(batch_ids, "tolist") else batch_ids


def _as_id_list(ids: Any) -> list[int]:
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    return ids if isinstance(ids, list) else list(ids)


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # jinja's own tojson escapes <, >, & and ' for HTML; chat templates want plain JSON.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(format_string: str) -> str:
    return datetime.datetime.now().strftime(format_string)


def _make_dict(*args: Any, **kwargs: Any) -> dict[Any, Any]:
    # The builtin `dict` type exposes its class attributes to the template; a function does not.
    return dict(*args, **kwargs)


class _Namespace(jinja2.utils.Namespace):
    """jinja's ``namespace`` that refuses underscore names, so templates cannot reach dunders."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # same signature trick as jinja's Namespace
        self, args = args[0], args[1:]
        attributes = dict(*args, **kwargs)
        for name in attributes:
            _Namespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attributes)

    def __setitem__(self, name: str, value: Any) -> None:
        _Namespace._check_name(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"chat templates cannot set underscore attributes on a namespace: {name!r}"
            )


class _GenerationBlock(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}`` renders its body unchanged.

    ``transformers`` uses these tags to mark assistant tokens for training masks; here they
    only need to parse.
    """

    tags = frozenset({"generation"})

    def parse(self, parser: Any) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller: Any) -> str:
        return caller()


def _template_environment() -> jinja2.sandbox.ImmutableSandboxedEnvironment:
    """A fresh jinja environment configured like ``transformers``' chat-template renderer."""
    environment = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationBlock, jinja2.ext.loopcontrols],
    )
    environment.filters["tojson"] = _tojson
    environment.globals["raise_exception"] = _raise_exception
    environment.globals["strftime_now"] = _strftime_now
    environment.globals["dict"] = _make_dict
    environment.globals["namespace"] = _Namespace
    return environment
