"""The ``data.source = "tfds"`` problem source: a built ArrayRecord dataset read for training
and evaluation (r1jax.data.sources.problems_from_config, ArrayRecordProblems.from_directory)."""

import json
import pickle

import pytest

pytest.importorskip("tensorflow_datasets")

from r1jax import config as config_lib
from r1jax.data import prompts as prompt_data
from r1jax.data import sources, tfds_builder

FIELDS = {"question": "problem", "answer": "solution", "id": "unique_id"}


class CharTokenizer:
    pad_token_id = 0

    def encode(self, text):
        return [ord(c) % 250 + 1 for c in text]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    rows = [
        {"problem": f"What is {i} * 3?", "solution": 3 * i, "unique_id": f"p{i}", "level": i % 3}
        for i in range(14)
    ]
    train, test = root / "train.jsonl", root / "test.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:10]))
    test.write_text("".join(json.dumps(r) + "\n" for r in rows[10:]))
    tfds_builder.build_array_record_dataset(
        name="times_three",
        split_files={"train": [train], "test": [test]},
        data_dir=root / "data",
        fields=FIELDS,
    )
    expected = {
        "train": sources.load_problems(train, fields=FIELDS).problems,
        "test": sources.load_problems(test, fields=FIELDS).problems,
    }
    return root / "data" / "times_three", expected


def data_section(path, **changes):
    data = config_lib.base_config().data
    data.source = "tfds"
    data.path = str(path)
    for key, value in changes.items():
        data[key] = value
    return data


def test_problems_round_trip_from_the_dataset_directory(dataset):
    directory, expected = dataset
    train = sources.problems_from_config(data_section(directory))
    assert len(train) == 10
    assert [train[i] for i in range(10)] == expected["train"]
    assert train[4] == {"question": "What is 4 * 3?", "answer": 12, "id": "p4", "level": 1}
    # Evaluation: another split (eval.split), or the version directory itself (eval.path).
    held_out = sources.problems_from_config(data_section(directory), split="test")
    assert [held_out[i] for i in range(len(held_out))] == expected["test"]
    by_version = sources.problems_from_config(
        data_section("unused"), path=str(directory / "1.0.0"), split="train[:3]"
    )
    assert [by_version[i] for i in range(3)] == expected["train"][:3] and len(by_version) == 3
    copy = pickle.loads(pickle.dumps(train))  # grain worker processes get a pickled source
    assert copy[9] == expected["train"][9]


def prompt_iterator(source, **options):
    return prompt_data.prompt_batches(
        source,
        prompt_fn=lambda problem: problem["question"],
        tokenizer=CharTokenizer(),
        batch_size=2,
        buckets=(32,),
        seed=3,
        **options,
    )


def ids(batch):
    return [problem["id"] for problem in batch.problems]


def test_prompt_batches_are_deterministic_resumable_and_sharded(dataset):
    directory, expected = dataset
    source = sources.problems_from_config(data_section(directory))
    first = prompt_iterator(source, process_index=0, process_count=1)
    run = [ids(next(first)) for _ in range(7)]  # more than one epoch of 5 batches
    again = prompt_iterator(source, process_index=0, process_count=1)
    assert [ids(next(again)) for _ in range(7)] == run
    assert sorted(i for batch in run[:5] for i in batch) == sorted(
        p["id"] for p in expected["train"]
    )

    resumed = prompt_iterator(source, process_index=0, process_count=1)
    for _ in range(3):
        next(resumed)
    state = resumed.get_state()
    restarted = prompt_iterator(source, process_index=0, process_count=1)
    restarted.set_state(state)
    assert [ids(next(restarted)) for _ in range(4)] == run[3:]

    shards = [prompt_iterator(source, process_index=i, process_count=2) for i in range(2)]
    epoch = [[i for _ in range(2) for i in ids(next(shard))] for shard in shards]  # 4 + 4 of 10
    assert not set(epoch[0]) & set(epoch[1])
    assert set(epoch[0]) | set(epoch[1]) <= {p["id"] for p in expected["train"]}


def test_missing_dataset_directory_split_or_path_is_a_clear_error(dataset, tmp_path):
    directory, _ = dataset
    with pytest.raises(sources.DataError, match=r"nowhere: no such tfds dataset directory"):
        sources.problems_from_config(data_section(tmp_path / "nowhere"))
    with pytest.raises(sources.DataError, match=r"no built tfds dataset here"):
        sources.problems_from_config(data_section(tmp_path))
    with pytest.raises(sources.DataError, match=r"no split 'validation'.*\['test', 'train'\]"):
        sources.problems_from_config(data_section(directory), split="validation")
    with pytest.raises(ValueError, match=r"needs data\.path"):
        sources.problems_from_config(data_section(""))
    with pytest.raises(ValueError, match="not a file source"):
        sources.problems_from_config(data_section(directory, source="procedural"))


def test_jsonl_and_parquet_sources_keep_their_field_mapping(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"q": "What is 2 * 3?", "a": 6, "key": 7}) + "\n")
    data = data_section(path, source="jsonl", prompt_field="q", answer_field="a", id_field="key")
    (problem,) = sources.problems_from_config(data)
    assert problem == {"question": "What is 2 * 3?", "answer": 6, "id": "7"}
