"""Turns local JSONL/Parquet problem files into a tfds ArrayRecord dataset, and reads it back.

``build_array_record_dataset`` runs a ``tfds.core.GeneratorBasedBuilder`` over the files (rows
mapped and checked exactly as ``r1jax.data.sources.load_problems`` does) and writes
``<data_dir>/<name>/<version>/<name>-<split>.array_record-*``. ``ArrayRecordProblems`` opens
it with ``tfds.data_source``: random access without holding the set in memory, and without
TensorFlow installed. Each record stores the problem's ``id`` and the whole problem dict as a
JSON string (``problem``), so answers keep their JSON types (ints, lists, ...).

The builder is not registered by name with tfds (``skip_registration=True``): reading goes
through tfds's "builder from directory" path, which needs only the written files.
``ArrayRecordProblems.from_directory`` opens a dataset by its directory alone
(``<data_dir>/<name>``, newest version, or ``<data_dir>/<name>/<version>``); that is what the
trainer's ``data.source = "tfds"`` reads (``r1jax.data.sources.problems_from_config``).
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


def dataset_version_directory(path: str | Path) -> Path:
    """The built version directory of a dataset given by ``<data_dir>/<name>[/<version>]``.

    Raises:
      DataError: the directory is missing or holds no built version (no
        ``dataset_info.json``); the message names the path.
    """
    path = Path(path)
    if not path.is_dir():
        raise sources.DataError(f"{path}: no such tfds dataset directory")
    if (path / "dataset_info.json").is_file():
        return path
    versions = []
    for child in path.iterdir():
        if child.is_dir() and (child / "dataset_info.json").is_file():
            try:
                versions.append((tfds.core.Version(child.name), child))
            except ValueError:
                continue
    if not versions:
        raise sources.DataError(
            f"{path}: no built tfds dataset here (expected <version>/dataset_info.json, e.g. "
            "written by r1jax.data.tfds_builder.build_array_record_dataset)"
        )
    return max(versions)[1]


class ArrayRecordProblems:
    """Random-access problems from a built ArrayRecord dataset (``tfds.data_source``).

    Picklable (grain worker processes can take it), and read lazily record by record.

    Args:
      name: dataset name given to ``build_array_record_dataset``.
      split: a tfds split string, slicing allowed (``"train"``, ``"train[:90%]"``).
      data_dir: the root it was built under.
    """

    def __init__(self, name: str, *, split: str, data_dir: str | Path):
        self._source = tfds.data_source(name, split=split, data_dir=str(data_dir), download=False)

    @classmethod
    def from_directory(cls, path: str | Path, *, split: str) -> ArrayRecordProblems:
        """Opens ``split`` of the dataset at ``<data_dir>/<name>`` (its newest version) or
        ``<data_dir>/<name>/<version>``.

        Raises:
          DataError: no built dataset there, or no such split (the message lists the splits).
        """
        directory = dataset_version_directory(path)
        try:
            builder = tfds.builder_from_directory(str(directory))
        except Exception as error:  # tfds raises several types for a damaged dataset_info
            raise sources.DataError(
                f"{directory}: cannot open as a tfds dataset ({error})"
            ) from None
        splits = sorted(builder.info.splits.keys())
        if split.partition("[")[0] not in splits:
            raise sources.DataError(f"{directory}: no split {split!r}; the dataset has {splits}")
        problems = cls.__new__(cls)
        try:
            problems._source = builder.as_data_source(split=split)
        except Exception as error:
            raise sources.DataError(f"{directory}: cannot read split {split!r} ({error})") from None
        return problems

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict:
        record = self._source[int(index)]
        text = record["problem"]
        return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)

    def __repr__(self) -> str:
        return f"ArrayRecordProblems({self._source!r})"
