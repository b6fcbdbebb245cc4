import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from r1jax.data import sources

MATH_FIELDS = {"question": "problem", "answer": "solution", "id": "unique_id"}


def _write_jsonl(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _rows(n):
    return [
        {"problem": f"q{i}", "solution": str(i), "unique_id": f"u{i}", "level": i} for i in range(n)
    ]


def test_procedural_record_depends_only_on_seed_and_index():
    def generate(rng, *, high):
        return {"value": int(rng.integers(high))}

    source = sources.ProceduralSource(generate, seed=3, options={"high": 1000})
    expected = generate(np.random.default_rng([3, 41]), high=1000)
    assert source[41] == expected
    assert [source[i] for i in (5, 41, 5)] == [source[5], expected, source[5]]
    other = sources.ProceduralSource(generate, seed=4, options={"high": 1000})
    assert [source[i] for i in range(20)] != [other[i] for i in range(20)]
    assert len(source) > 2**60
    with pytest.raises(IndexError):
        sources.ProceduralSource(generate, seed=3, num_records=5, options={"high": 2})[5]


def test_jsonl_field_mapping_keeps_extra_columns(tmp_path):
    path = _write_jsonl(tmp_path / "math.jsonl", [json.dumps(r) for r in _rows(3)] + [""])
    loaded = sources.load_problems(path, fields=MATH_FIELDS)
    assert loaded.problems[1] == {"question": "q1", "answer": "1", "id": "u1", "level": 1}
    assert (len(loaded), loaded.rows_read, loaded.skipped) == (3, 3, {})


def test_default_id_names_file_and_line(tmp_path):
    path = _write_jsonl(tmp_path / "gsm.jsonl", ['{"question": "a", "answer": 1}'] * 2)
    loaded = sources.load_problems(path, keep_extra=False)
    assert [p["id"] for p in loaded.problems] == ["gsm.jsonl:line 1", "gsm.jsonl:line 2"]
    assert loaded.problems[0] == {"question": "a", "answer": 1, "id": "gsm.jsonl:line 1"}


def test_parquet_matches_jsonl(tmp_path):
    rows = _rows(4)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "math.parquet")
    jsonl = _write_jsonl(tmp_path / "math.jsonl", [json.dumps(r) for r in rows])
    from_parquet = sources.load_problems(tmp_path / "math.parquet", fields=MATH_FIELDS)
    assert from_parquet.problems == sources.load_problems(jsonl, fields=MATH_FIELDS).problems


@pytest.mark.parametrize(
    ("bad_line", "reason", "message"),
    [
        ('{"problem": "q", "unique_id": "x"}', "missing_field", "missing field 'solution'"),
        ('{"problem": "q", "solution": null, "unique_id": "x"}', "missing_field", "is null"),
        ('{"problem": 7, "solution": "1", "unique_id": "x"}', "wrong_type", "must be text"),
        ('{"problem": "q", "solution": "1", "unique_id": [1]}', "wrong_type", "(id)"),
        ('{"problem": "q", "solution": "1"', "malformed_json", "malformed JSON"),
        ('["problem", "q"]', "not_an_object", "expected a JSON object"),
    ],
)
def test_bad_jsonl_row_errors_or_is_skipped(tmp_path, bad_line, reason, message):
    good = [json.dumps(r) for r in _rows(3)]
    path = _write_jsonl(tmp_path / "data.jsonl", [good[0], good[1], bad_line, good[2]])
    with pytest.raises(sources.DataError, match=r"data\.jsonl: line 3: ") as error:
        sources.load_problems(path, fields=MATH_FIELDS)
    assert message in str(error.value)
    loaded = sources.load_problems(path, fields=MATH_FIELDS, on_bad_row="skip")
    assert [p["id"] for p in loaded.problems] == ["u0", "u1", "u2"]
    assert (loaded.skipped, loaded.num_skipped, loaded.rows_read) == ({reason: 1}, 1, 4)


def test_bad_parquet_row_names_row_index(tmp_path):
    rows = _rows(3)
    rows[1]["problem"] = ""
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    with pytest.raises(sources.DataError, match=r"d\.parquet: row 1: .*empty string"):
        sources.load_problems(tmp_path / "d.parquet", fields=MATH_FIELDS)
    loaded = sources.load_problems(tmp_path / "d.parquet", fields=MATH_FIELDS, on_bad_row="skip")
    assert loaded.skipped == {"wrong_type": 1} and len(loaded) == 2


def test_empty_or_unusable_files_always_error(tmp_path):
    empty = _write_jsonl(tmp_path / "empty.jsonl", [])
    with pytest.raises(sources.DataError, match=r"empty\.jsonl: is empty"):
        sources.load_problems(empty, on_bad_row="skip")
    junk = _write_jsonl(tmp_path / "junk.jsonl", ["{", "{"])
    with pytest.raises(sources.DataError, match=r"junk\.jsonl: has no usable rows"):
        sources.load_problems(junk, on_bad_row="skip")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(sources.DataError, match=r"bad\.parquet: cannot read as Parquet"):
        sources.load_problems(tmp_path / "bad.parquet")
    with pytest.raises(sources.DataError, match="no such file"):
        sources.load_problems(tmp_path / "missing.jsonl")
    with pytest.raises(sources.DataError, match="unknown file type"):
        sources.load_problems(_write_jsonl(tmp_path / "x.csv", ["a"]))


def test_load_problem_files_sums_skips(tmp_path):
    a = _write_jsonl(tmp_path / "a.jsonl", ['{"question": "x", "answer": 1}', "{"])
    b = _write_jsonl(tmp_path / "b.jsonl", ['{"question": "y", "answer": 2}', "{", "[]"])
    problems, skipped = sources.load_problem_files([a, b], on_bad_row="skip")
    assert [p["question"] for p in problems] == ["x", "y"]
    assert skipped == {"malformed_json": 2, "not_an_object": 1}
