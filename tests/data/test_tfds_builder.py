import json

import pytest

from r1jax.data import pipeline, sources, tfds_builder

FIELDS = {"question": "problem", "answer": "solution", "id": "unique_id"}


def test_jsonl_round_trips_through_array_record(tmp_path):
    rows = [
        {"problem": f"What is {i} + {i}?", "solution": 2 * i, "unique_id": f"p{i}", "tags": [i]}
        for i in range(7)
    ]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:5]))
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps(r) + "\n" for r in rows[5:]) + "{oops\n")
    data_dir = tmp_path / "tfds"

    builder = tfds_builder.build_array_record_dataset(
        name="toy_math",
        split_files={"train": [train], "test": [test]},
        data_dir=data_dir,
        fields=FIELDS,
        on_bad_row="skip",
    )
    assert builder.skipped == {"train": {}, "test": {"malformed_json": 1}}
    assert list((data_dir / "toy_math" / "1.0.0").glob("toy_math-train.array_record-*"))

    expected = sources.load_problems(train, fields=FIELDS).problems
    read_back = tfds_builder.ArrayRecordProblems("toy_math", split="train", data_dir=data_dir)
    assert len(read_back) == 5
    assert [read_back[i] for i in range(5)] == expected  # same records, same order, same types
    assert read_back[3]["answer"] == 6 and read_back[3]["tags"] == [3]
    held_out = tfds_builder.ArrayRecordProblems("toy_math", split="test", data_dir=data_dir)
    assert [held_out[i]["id"] for i in range(len(held_out))] == ["p5", "p6"]


def test_building_from_a_bad_file_names_file_and_row(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"problem": "q", "solution": "1", "unique_id": "a"}\n{"problem": "q"}\n')
    with pytest.raises(sources.DataError, match=r"bad\.jsonl: line 2: missing field 'solution'"):
        tfds_builder.build_array_record_dataset(
            name="bad_math", split_files={"train": [path]}, data_dir=tmp_path, fields=FIELDS
        )


def test_array_record_source_feeds_the_record_stream(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(
        "".join(json.dumps({"question": f"q{i}", "answer": i}) + "\n" for i in range(6))
    )
    tfds_builder.build_array_record_dataset(
        name="stream_math", split_files={"train": [path]}, data_dir=tmp_path
    )
    source = tfds_builder.ArrayRecordProblems("stream_math", split="train", data_dir=tmp_path)
    records = list(
        pipeline.record_dataset(source, seed=1, num_epochs=1, process_index=0, process_count=1)
    )
    assert sorted(index for index, _ in records) == list(range(6))
    assert all(problem["answer"] == index for index, problem in records)
