"""Turns local JSONL/Parquet problem files into a tfds ArrayRecord dataset, and reads it back.

``build_array_record_dataset`` runs a ``tfds.core.GeneratorBasedBuilder`` over the files (rows
mapped and checked exactly as ``r1jax.data.sources.load_problems`` does) and writes
``<data_dir>/<name>/<version>/<name>-<split>.array_record-*``. ``ArrayRecordProblems`` opens
it with ``tfds.data_source``: random access without holding the set in memory, and without
TensorFlow installed. Each record stores the problem's ``id`` and the whole problem dict as a
JSON string (``problem``), so answers keep their JSON types (ints, lists, ...).

The builder is not registered by name with tfds (``skip_registration=True``): reading goes
through tfds's "builder from directory" path, which needs only the written files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tensorflow_datasets as tfds

from r1jax.data import sources


class ProblemFilesBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A tfds builder over local problem files; one instance per dataset name.

    Args:
      name: the dataset name (a directory under ``data_dir``), e.g. ``"gsm8k_problems"``.
      split_files: split name -> files, e.g. ``{"train": ["train.jsonl"], "test": [...]}``.
      load_options: keyword options for ``load_problems`` (``fields``, ``on_bad_row`` ...).
      version: the dataset version string.
      data_dir: where the dataset is written.
    """

    # No checksums file next to the code: the inputs are local files. (tfds would otherwise
    # look for one through `importlib_resources`, which is not a tfds dependency.)
    code_path = None

    def __init__(
        self,
        *,
        name: str,
        split_files: Mapping[str, Sequence[str | Path]],
        load_options: Mapping[str, Any] | None = None,
        version: str = "1.0.0",
        data_dir: str | Path,
    ):
        self.name = name
        self.VERSION = tfds.core.Version(version)
        self._split_files = {split: list(files) for split, files in split_files.items()}
        self._load_options = dict(load_options or {})
        self.skipped: dict[str, dict[str, int]] = {}
        super().__init__(data_dir=str(data_dir), file_format="array_record")

    def _info(self) -> tfds.core.DatasetInfo:
        features = tfds.features.FeaturesDict(
            {"id": tfds.features.Text(), "problem": tfds.features.Text()}
        )
        return tfds.core.DatasetInfo(
            builder=self,
            description="Problems read from local JSONL/Parquet files by r1jax.",
            features=features,
            disable_shuffling=True,  # Keep file order; r1jax shuffles at read time.
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {split: self._generate_examples(split) for split in self._split_files}

    def _generate_examples(self, split: str):
        problems, skipped = sources.load_problem_files(
            self._split_files[split], **self._load_options
        )
        self.skipped[split] = skipped
        for index, problem in enumerate(problems):
            yield index, {"id": problem["id"], "problem": json.dumps(problem)}


def build_array_record_dataset(
    *,
    name: str,
    split_files: Mapping[str, Sequence[str | Path]],
    data_dir: str | Path,
    version: str = "1.0.0",
    **load_options: Any,
) -> ProblemFilesBuilder:
    """Builds (or reuses, if already built) the ArrayRecord dataset ``<data_dir>/<name>``.

    Args:
      name: dataset name.
      split_files: split name -> list of JSONL/Parquet files.
      data_dir: output root directory.
      version: dataset version; a built version is reused, not rebuilt.
      **load_options: ``fields``, ``keep_extra``, ``on_bad_row``, ``file_format`` as in
        ``r1jax.data.sources.load_problems``.

    Returns:
      The builder; ``builder.skipped[split]`` holds the skip counts of a fresh build.
    """
    builder = ProblemFilesBuilder(
        name=name,
        split_files=split_files,
        load_options=load_options,
        version=version,
        data_dir=data_dir,
    )
    builder.download_and_prepare()
    return builder


class ArrayRecordProblems:
    """Random-access problems from a built ArrayRecord dataset (``tfds.data_source``).

    Args:
      name: dataset name given to ``build_array_record_dataset``.
      split: a tfds split string, slicing allowed (``"train"``, ``"train[:90%]"``).
      data_dir: the root it was built under.
    """

    def __init__(self, name: str, *, split: str, data_dir: str | Path):
        self._source = tfds.data_source(name, split=split, data_dir=str(data_dir), download=False)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict:
        record = self._source[int(index)]
        text = record["problem"]
        return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)

    def __repr__(self) -> str:
        return f"ArrayRecordProblems({self._source!r})"
