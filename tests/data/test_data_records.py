"""Readers: every malformed input raises a DataError naming file and line/row, or is counted when skipping."""

import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tempo_jax.data.records import DataError, read_hf, read_records, read_verl, validate_record
from tempo_jax.data.tfds_builders import resolve_source


def _jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


GOOD = {"id": "q1", "problem": "What is 1+1?", "answer": "2"}


def _verl_row(i, gt="7", labeled=True, source="math"):
    return {
        "data_source": source,
        "prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": f"Q{i}?"}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": gt, "is_labeled": labeled},
        "extra_info": {"index": i},
    }


def test_tempo_jsonl_reads_shared_file(data_dir):
    recs, rep = read_records(data_dir / "aime24.jsonl")
    assert len(recs) == 30 and rep.n_ok == 30 and rep.n_skipped == 0
    assert recs[0] == {
        "id": "aime2024-I-01",
        "problem": recs[0]["problem"],
        "answer": "204",
        "is_labeled": True,
        "data_source": "aime24",
    }


@pytest.mark.parametrize(
    "row, needle",
    [
        ({"id": "q2", "problem": "P?"}, "missing field 'answer'"),
        ({"id": "q2", "problem": "   ", "answer": "3"}, "field 'problem' is empty"),
        ({"id": "q2", "problem": "P?", "answer": None}, "field 'answer' is null"),
        (
            {"id": "q2", "problem": "P?", "answer": 3},
            "field 'answer' must be a string, got int 3 (set data.coerce_numbers=True to accept numbers)",
        ),
        ({"id": 5, "problem": "P?", "answer": "3"}, "field 'id' must be a string"),
        ('{"id": "q2", "problem": "P?", "answer": "3"', "broken JSON"),
        ('["a list"]', "expected a JSON object"),
        ({"id": "q1", "problem": "again", "answer": "3"}, "duplicate id 'q1' (first at line 1)"),
        ({"id": "q2", "problem": "P?", "answer": "3", "is_labeled": "yes"}, "'is_labeled' must be a boolean"),
    ],
)
def test_malformed_jsonl_raises_with_file_and_line(tmp_path, row, needle):
    path = _jsonl(tmp_path / "bad.jsonl", [GOOD, "", row])
    with pytest.raises(DataError) as e:
        read_records(path, "tempo")
    msg = str(e.value)
    assert str(path) in msg and "line 3" in msg and needle in msg, msg
    assert "on_error='skip'" in msg  # says what to do


def test_skip_mode_counts_and_reports(tmp_path, caplog):
    rows = [
        GOOD,
        {"id": "a", "problem": "P"},
        {"id": "b", "problem": "", "answer": "1"},
        {"id": "c", "problem": "P", "answer": 1},
        "{oops",
        {"id": "d", "problem": "Q", "answer": "4"},
        {"id": "d", "problem": "Q", "answer": "4"},
    ]
    path = _jsonl(tmp_path / "mixed.jsonl", rows)
    with caplog.at_level(logging.WARNING):
        recs, rep = read_records(path, on_error="skip")
    assert [r["id"] for r in recs] == ["q1", "d"]
    assert rep.n_rows == 7 and rep.n_ok == 2 and rep.n_skipped == 5
    assert dict(rep.reasons) == {
        "missing_answer": 1,
        "empty_problem": 1,
        "non_string_field": 1,
        "broken_json": 1,
        "duplicate_id": 1,
    }
    assert rep.examples[0].startswith("line 2: missing field 'answer'")
    assert len(rep.examples) == 5
    assert "5 skipped" in caplog.text and str(path) in caplog.text
    assert rep.to_dict()["n_skipped"] == 5


def test_coerce_numbers_accepts_int_answers(tmp_path):
    path = _jsonl(tmp_path / "ints.jsonl", [{"id": "q", "problem": "P", "answer": 12}])
    recs, _ = read_records(path, coerce_numbers=True)
    assert recs[0]["answer"] == "12"


def test_file_level_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_records(tmp_path / "nope.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported file type"):
        read_records(tmp_path / "x.csv")
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"this is not parquet at all")
    with pytest.raises(DataError) as e:
        read_records(bad, on_error="skip")  # file-level: raises even when skipping rows
    assert "unreadable Parquet" in str(e.value) and str(bad) in str(e.value)
    truncated = tmp_path / "trunc.parquet"
    pq.write_table(pa.Table.from_pylist([GOOD] * 50), tmp_path / "ok.parquet")
    truncated.write_bytes((tmp_path / "ok.parquet").read_bytes()[:-40])
    with pytest.raises(DataError, match="unreadable Parquet"):
        read_records(truncated)
    empty = _jsonl(tmp_path / "empty.jsonl", [""])
    with pytest.raises(DataError, match="no usable rows"):
        read_records(empty)


def test_unknown_dataset_name():
    with pytest.raises(DataError) as e:
        resolve_source("aime2099")
    assert "unknown dataset name 'aime2099'" in str(e.value) and "aime24" in str(e.value)


def test_hf_jsonl_and_parquet(tmp_path):
    rows = [
        {"question": "Q0", "meta": {"uid": "u0"}, "final": "1"},
        {"question": "Q1", "meta": {"uid": "u1"}, "final": "2"},
    ]
    recs, _ = read_hf(_jsonl(tmp_path / "hf.jsonl", rows), "question", "final", id_key="meta.uid")
    assert [(r["id"], r["problem"], r["answer"]) for r in recs] == [("u0", "Q0", "1"), ("u1", "Q1", "2")]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "hf.parquet")
    recs, _ = read_hf(tmp_path / "hf.parquet", "question", "final")
    assert [r["id"] for r in recs] == ["hf-0", "hf-1"] and recs[1]["data_source"] == "hf"
    bad = [{"question": "Q0", "final": "1"}, {"question": "Q1"}]
    pq.write_table(pa.Table.from_pylist(bad), tmp_path / "hf_bad.parquet")
    with pytest.raises(DataError) as e:
        read_hf(tmp_path / "hf_bad.parquet", "question", "final")
    assert "row 1" in str(e.value) and "field 'final' is null" in str(e.value)
    with pytest.raises(DataError, match="question_key"):
        read_records(tmp_path / "hf.jsonl", "hf")


def test_verl_parquet_and_defaults(tmp_path):
    rows = [_verl_row(0), _verl_row(1, labeled=False, source="aime24"), _verl_row(2)]
    rows[2]["reward_model"].pop("is_labeled")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "mixed.parquet")
    recs, rep = read_verl(tmp_path / "mixed.parquet", default_is_labeled=False)
    assert [(r["id"], r["problem"], r["answer"], r["is_labeled"], r["data_source"]) for r in recs] == [
        ("math-0", "Q0?", "7", True, "math"),
        ("aime24-1", "Q1?", "7", False, "aime24"),
        ("math-2", "Q2?", "7", False, "math"),
    ]
    assert rep.defaulted["is_labeled"] == 1  # a default was applied, and it is reported
    # the prompt's messages travel with the record, its system prompt included, for the template
    assert recs[1]["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Q1?"}]


def test_verl_malformed_rows(tmp_path):
    ints = [_verl_row(0, gt=7), _verl_row(1, gt=8)]
    pq.write_table(pa.Table.from_pylist(ints), tmp_path / "ints.parquet")
    with pytest.raises(DataError) as e:
        read_verl(tmp_path / "ints.parquet")
    assert "row 0" in str(e.value) and "'reward_model.ground_truth' must be a string" in str(e.value)
    no_user = _verl_row(0)
    no_user["prompt"] = [{"role": "system", "content": "x"}]
    no_gt = _verl_row(1)
    no_gt["reward_model"].pop("ground_truth")
    empty_q = _verl_row(2)
    empty_q["prompt"][1]["content"] = ""
    path = _jsonl(tmp_path / "verl.jsonl", [_verl_row(9), no_user, no_gt, empty_q])
    with pytest.raises(DataError, match=r"line 2: prompt has no 'user' message"):
        read_verl(path)
    recs, rep = read_verl(path, on_error="skip")
    assert len(recs) == 1 and rep.n_skipped == 3
    assert set(rep.reasons) == {"missing_problem", "missing_ground_truth", "empty_content"}
    odd = _verl_row(3)
    odd["prompt"][0]["content"] = {"text": "be brief"}  # a system message must be text as well
    with pytest.raises(DataError, match=r"field 'prompt\[0\].content' must be a string"):
        read_verl(_jsonl(tmp_path / "odd.jsonl", [odd]))


def test_validate_record():
    validate_record({**GOOD, "is_labeled": True, "data_source": "x"})
    with pytest.raises(DataError, match="is_labeled"):
        validate_record({**GOOD, "data_source": "x"})


def test_json_array_file(tmp_path):
    """DeepScaleR-style .json files hold one JSON array; bad items are named by index."""
    path = tmp_path / "arr.json"
    path.write_text(json.dumps([{"problem": "P0", "answer": "1", "id": "a"}, {"problem": "P1", "id": "b"}]))
    with pytest.raises(DataError, match=r"arr.json, item 1: missing field 'answer'"):
        read_records(path)
    recs, rep = read_records(path, on_error="skip")
    assert [r["id"] for r in recs] == ["a"] and rep.n_skipped == 1
    path.write_text('[{"problem": "P0",')
    with pytest.raises(DataError, match="broken JSON array"):
        read_records(path)
