"""Problem sources: where problem dicts come from, before any prompt is built.

Two kinds live here, both random-access (``len`` and ``[i]``) so grain can shard, shuffle and
resume them by index:

* ``ProceduralSource``: an endless, seeded stream of generated problems. Record ``i`` is
  ``generate(np.random.default_rng([seed, i]), **options)``, so any record can be rebuilt from
  ``(seed, i)`` alone and resuming needs no saved generator state.
* ``FileProblems`` (``load_problems``): JSONL or Parquet rows mapped to problem dicts
  ``{"question": ..., "answer": ..., "id": ..., **extra}`` through a field mapping, for
  MATH / GSM8K / DeepScaleR-style files. Files are read once, eagerly, so bad rows are found
  (and reported or counted) before training starts; use the ArrayRecord builder in
  ``r1jax.data.tfds_builder`` for sets too large to hold in host memory.

``problems_from_config`` opens the source a ``data`` config section names (``source`` =
``jsonl`` | ``parquet`` | ``tfds``, ``path``, ``split``, the field keys): for ``tfds``,
``path`` is a built ArrayRecord dataset directory (``<data_dir>/<name>`` or
``<data_dir>/<name>/<version>``) and ``split`` a tfds split (slicing allowed); its records hold
whole problem dicts, so the field keys were applied when it was built.

Prompt text, tokenisation, batching and sharding live in ``r1jax.data.prompts`` and
``r1jax.data.pipeline``; this module does not know about tokens.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

BadRowPolicy = Literal["error", "skip"]

#: The default field mapping: problem key -> column name in the file.
DEFAULT_FIELDS: Mapping[str, str] = {"question": "question", "answer": "answer"}

#: Scalar JSON types an answer (or any other mapped field) may have, besides lists of them.
_SCALARS = (str, int, float, bool)


class DataError(ValueError):
    """A data file or row that cannot be used; the message names the file and the row."""


class ProceduralSource:
    """An endless random-access source of generated problems.

    Record ``i`` is ``generate(np.random.default_rng([seed, i]), **options)``: deterministic
    given ``(seed, i)``, independent of which other records were read, so per-process sharding,
    shuffling and resuming are plain index arithmetic.

    Args:
      generate: ``generate(rng, **options) -> dict``, e.g. ``r1jax.tasks.countdown.generate``.
      seed: the stream's seed; two sources with different seeds give unrelated problems.
      num_records: the virtual length; ``None`` means effectively endless (``sys.maxsize``).
      options: keyword options passed to every ``generate`` call.

    Example:
      >>> def generate(rng, *, high):
      ...     return {"a": int(rng.integers(high))}
      >>> source = ProceduralSource(generate, seed=0, num_records=3, options={"high": 10})
      >>> len(source), source[1] == source[1]
      (3, True)
    """

    def __init__(
        self,
        generate: Callable[..., dict],
        *,
        seed: int,
        num_records: int | None = None,
        options: Mapping[str, Any] | None = None,
    ):
        if num_records is not None and num_records <= 0:
            raise ValueError(f"num_records must be positive, got {num_records}")
        self._generate = generate
        self._seed = int(seed)
        self._num_records = sys.maxsize if num_records is None else int(num_records)
        self._options = dict(options or {})

    def __len__(self) -> int:
        return self._num_records

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not 0 <= index < self._num_records:
            raise IndexError(f"record {index} is outside [0, {self._num_records})")
        return self._generate(np.random.default_rng([self._seed, index]), **self._options)

    def __repr__(self) -> str:
        name = getattr(self._generate, "__module__", "") + "." + self._generate.__name__
        return f"ProceduralSource({name}, seed={self._seed}, options={self._options})"


@dataclasses.dataclass(frozen=True)
class FileProblems:
    """Problems read from one file, plus what was skipped on the way.

    Attributes:
      path: the file read.
      problems: problem dicts ``{"question": ..., "answer": ..., "id": ..., **extra}``.
      skipped: bad-row reason -> rows skipped for it (empty unless ``on_bad_row="skip"``).
      rows_read: data rows seen in the file (kept plus skipped; blank JSONL lines excluded).
    """

    path: str
    problems: list[dict]
    skipped: dict[str, int]
    rows_read: int

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def __len__(self) -> int:
        return len(self.problems)

    def __getitem__(self, index: int) -> dict:
        return self.problems[index]


def load_problems(
    path: str | Path,
    *,
    fields: Mapping[str, str] | None = None,
    keep_extra: bool = True,
    on_bad_row: BadRowPolicy = "error",
    file_format: Literal["jsonl", "parquet"] | None = None,
    text_fields: Sequence[str] = ("question",),
) -> FileProblems:
    """Reads a JSONL or Parquet file of problems through a field mapping.

    Args:
      path: ``.jsonl`` / ``.json`` (one JSON object per line) or ``.parquet`` file.
      fields: problem key -> column, e.g. ``{"question": "problem", "answer": "solution",
        "id": "unique_id"}``. Every mapped column is required in every row and must not be
        null. The ``text_fields`` keys must be non-empty strings, ``id`` a string or int (kept
        as a string), the others JSON scalars or lists/dicts of them. Without an ``id`` mapping the
        id is ``"<file name>:<row>"``. Defaults to ``{"question": "question", "answer":
        "answer"}``.
      keep_extra: also keep the row's unmapped columns under their own names (a mapped key
        wins over an unmapped column of the same name).
      on_bad_row: ``"error"`` raises ``DataError`` naming the file and row (JSONL rows are
        1-based line numbers, Parquet rows 0-based indices); ``"skip"`` drops the row and
        counts it by reason in ``FileProblems.skipped``.
      file_format: overrides the guess from the file suffix.
      text_fields: mapped keys that must hold non-empty text (``("question",)`` for RL
        problems; SFT files add ``"response"``).

    Returns:
      A ``FileProblems`` with the problems in file order.

    Raises:
      DataError: the file is missing, unreadable or has no usable rows (whatever
        ``on_bad_row`` says), or a row is bad and ``on_bad_row="error"``.
    """
    path = Path(path)
    fields = dict(DEFAULT_FIELDS if fields is None else fields)
    missing = [key for key in text_fields if key not in fields]
    if missing:
        raise ValueError(f"fields must map {missing} to columns, got {fields}")
    if on_bad_row not in ("error", "skip"):
        raise ValueError(f"on_bad_row must be 'error' or 'skip', got {on_bad_row!r}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    file_format = file_format or _guess_format(path)
    rows = _read_parquet(path) if file_format == "parquet" else _read_jsonl(path)
    problems: list[dict] = []
    skipped: collections.Counter[str] = collections.Counter()
    rows_read = 0
    for where, row in rows:
        rows_read += 1
        try:
            if isinstance(row, _BadRow):
                raise _RowError(row.reason, row.detail)
            default_id = f"{path.name}:{where}"
            problems.append(_to_problem(row, fields, keep_extra, text_fields, default_id))
        except _RowError as error:
            if on_bad_row == "error":
                raise DataError(f"{path}: {where}: {error.detail}") from None
            skipped[error.reason] += 1
    if not problems:
        detail = "is empty" if rows_read == 0 else f"has no usable rows ({dict(skipped)} skipped)"
        raise DataError(f"{path}: {detail}")
    return FileProblems(str(path), problems, dict(skipped), rows_read)


def load_problem_files(
    paths: Sequence[str | Path], **options: Any
) -> tuple[list[dict], dict[str, int]]:
    """Concatenates ``load_problems`` over several files.

    Returns:
      ``(problems, skipped)``: all problems in file order and the summed skip counts.
    """
    problems: list[dict] = []
    skipped: collections.Counter[str] = collections.Counter()
    for path in paths:
        loaded = load_problems(path, **options)
        problems.extend(loaded.problems)
        skipped.update(loaded.skipped)
    return problems, dict(skipped)


#: ``data.source`` values that ``problems_from_config`` reads (the other one: ``procedural``).
FILE_SOURCES = ("jsonl", "parquet", "tfds")


def _config_value(data: Any, key: str) -> Any:
    try:
        return data[key]
    except (KeyError, AttributeError):
        raise ValueError(f"the data config lacks the key {key!r}") from None


def problems_from_config(
    data: Mapping[str, Any] | Any, *, path: str | None = None, split: str | None = None
) -> Sequence[dict]:
    """Random-access problems of a non-procedural ``data`` config section.

    Args:
      data: the ``data`` section (``ConfigDict`` or mapping) with ``source`` (one of
        ``FILE_SOURCES``), ``path``, ``split``, ``prompt_field``, ``answer_field``,
        ``id_field`` and ``on_bad_row``.
      path: read this instead of ``data.path`` (e.g. ``eval.path``); empty or None keeps it.
      split: the tfds split instead of ``data.split`` (e.g. ``eval.split``); JSONL and
        Parquet files have no splits and ignore it.

    Returns:
      A ``FileProblems`` (jsonl / parquet) or an ``ArrayRecordProblems`` (tfds): ``len`` and
      ``[i]``, so ``r1jax.data.pipeline`` shards, shuffles and resumes it by index.

    Raises:
      ValueError: an unknown ``source`` or an empty path (the message names the key).
      DataError: a missing file or dataset directory, a missing split, or a bad row.
    """
    kind = _config_value(data, "source")
    if kind not in FILE_SOURCES:
        raise ValueError(f"data.source={kind!r} is not a file source; expected {FILE_SOURCES}")
    path = path or _config_value(data, "path")
    if not path:
        raise ValueError(f"data.source={kind!r} needs data.path (a file or dataset directory)")
    if kind == "tfds":
        from r1jax.data import tfds_builder  # tensorflow-datasets is an optional extra

        return tfds_builder.ArrayRecordProblems.from_directory(
            path, split=split or _config_value(data, "split")
        )
    fields = {
        "question": _config_value(data, "prompt_field"),
        "answer": _config_value(data, "answer_field"),
    }
    if _config_value(data, "id_field"):
        fields["id"] = _config_value(data, "id_field")
    return load_problems(
        path, fields=fields, on_bad_row=_config_value(data, "on_bad_row"), file_format=kind
    )


class _RowError(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclasses.dataclass(frozen=True)
class _BadRow:
    reason: str
    detail: str


def _guess_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    raise DataError(f"{path}: unknown file type {suffix!r}; expected .jsonl or .parquet")


def _read_jsonl(path: Path):
    """Yields ``("line N", row)``; a malformed line yields a ``_BadRow`` instead of a dict."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as error:
        raise DataError(f"{path}: cannot open ({error})") from None
    with handle:
        line_number = 0
        while True:
            line_number += 1
            try:
                line = handle.readline()
            except UnicodeDecodeError as error:
                yield f"line {line_number}", _BadRow("not_utf8", f"not UTF-8 text ({error})")
                continue
            if not line:
                return
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                yield f"line {line_number}", _BadRow("malformed_json", f"malformed JSON: {error}")
                continue
            if not isinstance(row, dict):
                detail = f"expected a JSON object, got {type(row).__name__}"
                yield f"line {line_number}", _BadRow("not_an_object", detail)
                continue
            yield f"line {line_number}", row


def _read_parquet(path: Path):
    """Yields ``("row N", row)`` for each Parquet row, ``N`` counted from 0."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several unrelated types for corrupt files.
        raise DataError(f"{path}: cannot read as Parquet ({error})") from None
    for index, row in enumerate(table.to_pylist()):
        yield f"row {index}", row


def _to_problem(
    row: dict,
    fields: Mapping[str, str],
    keep_extra: bool,
    text_fields: Sequence[str],
    default_id: str,
) -> dict:
    problem = {}
    if keep_extra:
        mapped_columns = set(fields.values())
        problem.update({k: v for k, v in row.items() if k not in mapped_columns})
    for key, column in fields.items():
        if column not in row:
            raise _RowError("missing_field", f"missing field {column!r} (mapped to {key!r})")
        value = row[column]
        if value is None:
            raise _RowError("missing_field", f"field {column!r} (mapped to {key!r}) is null")
        problem[key] = _check_type(key, column, value, is_text=key in text_fields)
    problem.setdefault("id", default_id)
    return problem


def _check_type(key: str, column: str, value: Any, *, is_text: bool) -> Any:
    if is_text:
        if not isinstance(value, str) or not value.strip():
            got = "an empty string" if isinstance(value, str) else type(value).__name__
            raise _RowError("wrong_type", f"field {column!r} ({key}) must be text, got {got}")
        return value
    if key == "id":
        if isinstance(value, bool) or not isinstance(value, str | int):
            got = type(value).__name__
            raise _RowError("wrong_type", f"field {column!r} (id) must be text or int, got {got}")
        return str(value)
    if not _is_json_value(value):
        got = type(value).__name__
        raise _RowError("wrong_type", f"field {column!r} ({key}) has non-JSON type {got}")
    return value


def _is_json_value(value: Any) -> bool:
    if value is None or isinstance(value, _SCALARS):
        return True
    if isinstance(value, list | tuple):
        return all(_is_json_value(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json_value(v) for k, v in value.items())
    return False
