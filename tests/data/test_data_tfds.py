"""TFDS builders: array_record preparation and reading without TensorFlow."""

import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tempo_jax.data import tfds_builders as tb
from tempo_jax.data.records import DataError


def test_aime24_round_trip(data_dir, tmp_path):
    expected = [json.loads(line) for line in (data_dir / "aime24.jsonl").read_text().splitlines() if line.strip()]
    recs = tb.load_records("aime24", data_dir=data_dir, tfds_dir=tmp_path)
    assert [(r["id"], r["answer"], r["problem"]) for r in recs] == [
        (e["id"], e["answer"], e["problem"]) for e in expected
    ]
    assert len({r["id"] for r in recs}) == 30
    assert all(r["is_labeled"] and r["data_source"] == "aime24" for r in recs)
    files = list(tmp_path.rglob("*.array_record-*"))
    assert len(files) == 1 and "test" in files[0].name
    # The raw data source: bytes, shuffled order, ids intact.
    src = tb.as_data_source("aime24", data_dir=data_dir, tfds_dir=tmp_path)
    assert len(src) == 30
    assert {src[i]["id"].decode() for i in range(30)} == {e["id"] for e in expected}
    # Reading it back needs no builder class at all, and TensorFlow is never imported.
    import tensorflow_datasets as tfds

    ro = tfds.builder_from_directory(str(files[0].parent))
    assert len(ro.as_data_source("test")) == 30
    assert "tensorflow" not in sys.modules


def test_verl_parquet_builder(tmp_path):
    rows = []
    for i in range(6):
        rows.append(
            {
                "data_source": "math" if i % 2 else "aime24",
                "prompt": [{"role": "user", "content": f"Problem {i}. Let's think step by step."}],
                "reward_model": {"style": "rule", "ground_truth": str(10 + i), "is_labeled": bool(i % 2)},
                "extra_info": {"index": i, "question": f"Problem {i}."},
            }
        )
    src = tmp_path / "train_mixed.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    recs, report = tb.load_records(src, tfds_dir=tmp_path / "tfds", return_report=True)
    assert [r["answer"] for r in recs] == [str(10 + i) for i in range(6)]
    assert [r["is_labeled"] for r in recs] == [False, True] * 3
    assert [r["id"] for r in recs] == [f"{'math' if i % 2 else 'aime24'}-{i}" for i in range(6)]
    assert report.n_ok == 6 and report.schema == "auto->verl"
    # Editing the source prepares a fresh copy (config name carries a content digest).
    pq.write_table(pa.Table.from_pylist(rows[:4]), src)
    assert len(tb.load_records(src, tfds_dir=tmp_path / "tfds")) == 4


def test_verl_messages_survive_the_prepared_copy(tmp_path):
    system = {"role": "system", "content": "Answer in one line. Ünïcode ok."}
    rows = [
        {"prompt": [system, {"role": "user", "content": f"Q{i}?"}], "reward_model": {"ground_truth": str(i)}}
        for i in range(2)
    ]
    src = tmp_path / "sys.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for _ in range(2):  # prepare, then read the cached copy
        recs = tb.load_records(src, tfds_dir=tmp_path / "tfds")
        assert [r["messages"] for r in recs] == [r["prompt"] for r in rows]
        assert [r["problem"] for r in recs] == ["Q0?", "Q1?"]
    tempo = tmp_path / "plain.jsonl"
    tempo.write_text(json.dumps({"id": "a", "problem": "P", "answer": "1"}) + "\n")
    assert "messages" not in tb.load_records(tempo, tfds_dir=tmp_path / "tfds")[0]  # only verl rows have them


def test_skip_report_survives_cache(tmp_path):
    src = tmp_path / "dirty.jsonl"
    src.write_text('{"id": "a", "problem": "P", "answer": "1"}\n{"id": "b", "problem": "P"}\n{bad\n')
    with pytest.raises(DataError, match="line 2"):
        tb.load_records(src, tfds_dir=tmp_path / "t")
    for _ in range(2):  # prepare, then read from cache: the report is stored with the dataset
        recs, report = tb.load_records(src, tfds_dir=tmp_path / "t", on_error="skip", return_report=True)
        assert [r["id"] for r in recs] == ["a"]
        assert report.n_skipped == 2 and dict(report.reasons) == {"missing_answer": 1, "broken_json": 1}


def test_dir_resolution(monkeypatch, tmp_path, data_dir):
    monkeypatch.setenv(tb.DATA_DIR_ENV, str(data_dir))
    monkeypatch.setenv(tb.TFDS_DIR_ENV, str(tmp_path / "env_cache"))
    assert tb.resolve_data_dir() == data_dir.resolve()
    assert tb.resolve_data_dir(tmp_path) == tmp_path.resolve()  # argument wins
    assert tb.resolve_tfds_dir() == (tmp_path / "env_cache").resolve()
    path, split, label = tb.resolve_source("math500")
    assert path == (data_dir / "math500.jsonl").resolve() and split == "test" and label == "math500"
    monkeypatch.delenv(tb.DATA_DIR_ENV)
    monkeypatch.chdir(tmp_path)
    assert tb.resolve_data_dir() == (tmp_path / ".." / "shared" / "data").resolve()
    with pytest.raises(DataError, match="TEMPO_JAX_DATA_DIR"):
        tb.resolve_source("aime25")
    with pytest.raises(DataError, match="unknown dataset name"):
        tb.load_records("aime_2099", tfds_dir=tmp_path)


def test_a_directory_given_as_data_file_is_named(tmp_path):
    (tmp_path / "shards").mkdir()
    with pytest.raises(DataError, match=r"shards: is a directory, not a data file. Give one .jsonl"):
        tb.resolve_source(str(tmp_path / "shards"))
