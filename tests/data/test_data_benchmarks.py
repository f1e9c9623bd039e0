"""The non-math benchmark loaders (tempo_jax/data/benchmarks.py) on hand-written samples in each
release format (tests/data/benchmarks/), their prepared TFDS copies, and per-record instructions."""

import csv
import json
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tempo_jax.data import benchmarks as B
from tempo_jax.data import tfds_builders as tb
from tempo_jax.data.records import DataError, read_records
from tempo_jax.data.templates import BOXED_INSTRUCTION, render_records

SAMPLES = pathlib.Path(__file__).resolve().parent / "benchmarks"


def _by_id(records):
    return {r["id"]: r for r in records}


def _one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_bbh_tasks_map_to_records():
    recs, report = B.read_source(SAMPLES / "bbh")
    assert report.n_ok == len(recs) == 7 and report.schema == "bbh"
    assert [r["id"] for r in recs[:4]] == [
        "bbh/boolean_expressions-0",
        "bbh/boolean_expressions-1",
        "bbh/boolean_expressions-2",
        "bbh/date_understanding-0",
    ]
    got = _by_id(recs)
    boolean = got["bbh/boolean_expressions-0"]
    assert boolean["problem"] == "not ( False or True ) and True is" and boolean["answer"] == "False"
    assert boolean["data_source"] == "bbh/boolean_expressions" and boolean["is_labeled"]
    assert "options" not in boolean and boolean["instruction"] == B.BBH_INSTRUCTION
    date = got["bbh/date_understanding-0"]
    assert date["answer"] == "(A)" and date["options"][:2] == ["04/03/2021", "04/04/2021"] and len(date["options"]) == 5
    assert date["instruction"] == B.BBH_CHOICE_INSTRUCTION and "Options:\n(A) 04/03/2021" in date["problem"]
    dyck = got["bbh/dyck_languages-1"]  # the repository's JSON-lines variant
    assert dyck["answer"] == "] >" and dyck["data_source"] == "bbh/dyck_languages"


def test_agieval_choice_and_cloze_tasks():
    recs, _ = B.read_source(SAMPLES / "agieval")
    got = _by_id(recs)
    lsat = got["agieval/lsat-ar-0"]
    assert lsat["answer"] == "B" and lsat["data_source"] == "agieval/lsat-ar"
    assert lsat["options"][1] == "tulip, lily, peony, rose, iris"  # "(B)" prefix stripped
    assert lsat["problem"].startswith("A florist arranges") and "\n\nQ: Which one of the following" in lsat["problem"]
    assert "Answer Choices: (A) iris, rose, tulip, lily, peony (B) tulip" in lsat["problem"]
    assert "among A through E, the answer is" in lsat["instruction"]
    sat = got["agieval/sat-math-0"]
    assert sat["problem"] == "Q: If $3x-7=11$, what is the value of $x$? Answer Choices: (A) 3 (B) 4 (C) 6 (D) 18"
    assert sat["answer"] == "C" and "among A through D" in sat["instruction"]
    cloze = got["agieval/math-1"]
    assert cloze["answer"] == "\\frac{2}{3}" and cloze["problem"] == "Simplify $\\frac{12}{18}$."
    assert "instruction" not in cloze and "options" not in cloze  # maths: the boxed instruction
    assert render_records([cloze], "plain")[0].endswith(BOXED_INSTRUCTION)


def test_zebralogic_grid_mode_jsonl_and_parquet(tmp_path):
    rows = [json.loads(line) for line in (SAMPLES / "zebralogic" / "grid_mode.jsonl").read_text().splitlines()]
    recs, _ = B.read_source(SAMPLES / "zebralogic" / "grid_mode.jsonl")
    parquet = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    from_parquet, report = B.read_source(parquet)
    assert from_parquet == recs and report.schema == "zebralogic"
    first = recs[0]
    assert first["id"] == "lgp-test-2x2-7" and first["data_source"] == "zebralogic" and first["size"] == "2*2"
    assert json.loads(first["answer"]) == rows[0]["solution"]
    assert first["problem"] == rows[0]["puzzle"]
    template = json.loads(first["instruction"].split("json format:\n\n", 1)[1])
    assert template == {"reasoning": "___", "solution": {f"House {i}": {"Name": "___", "Color": "___"} for i in (1, 2)}}
    assert "# Instruction\n\nNow please solve the above puzzle." in first["instruction"]


def test_zebralogic_masked_solutions_are_unlabeled_only(tmp_path):
    row = json.loads((SAMPLES / "zebralogic" / "grid_mode.jsonl").read_text().splitlines()[0])
    row["solution"]["rows"] = [[r[0]] + ["___"] * (len(r) - 1) for r in row["solution"]["rows"]]
    path = tmp_path / "public.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError) as err:
        B.read_source(path)
    assert _one_line(err).startswith(f"{path}, line 1: the solution is masked")
    recs, _ = B.read_source(path, default_is_labeled=False)
    assert recs[0]["answer"] == "" and not recs[0]["is_labeled"] and "House 2" in recs[0]["instruction"]


def test_gpqa_options_are_shuffled_once_per_question(tmp_path):
    recs, report = B.read_source(SAMPLES / "gpqa_diamond.csv")
    assert report.schema == "gpqa" and [r["data_source"] for r in recs] == ["gpqa_diamond"] * 3
    with open(SAMPLES / "gpqa_diamond.csv", newline="", encoding="utf-8") as f:
        rows = {r["Record ID"]: r for r in csv.DictReader(f)}
    for rec in recs:
        row = rows[rec["id"]]
        letter = rec["answer"]
        assert rec["options"][B.LETTERS.index(letter)] == row["Correct Answer"].strip()
        assert sorted(rec["options"]) == sorted(
            row[k].strip() for k in ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
        )
        assert f"\n{letter}) {row['Correct Answer'].strip()}\n" in rec["problem"] + "\n"
        assert rec["problem"].startswith(row["Question"].strip()) and "'Answer: $LETTER'" in rec["instruction"]
    assert {r["answer"] for r in recs} != {"A"}  # the correct answer is not always first
    # the order depends on the question id only: the same in another file, order or format
    shuffled = tmp_path / "gpqa_diamond.jsonl"
    shuffled.write_text("".join(json.dumps(rows[rid]) + "\n" for rid in reversed(list(rows))))
    again, _ = B.read_source(shuffled)
    assert {r["id"]: (r["answer"], r["options"]) for r in again} == {r["id"]: (r["answer"], r["options"]) for r in recs}
    assert B.gpqa_order("recSampleGas0001") == B.gpqa_order("recSampleGas0001") != B.gpqa_order("recOther")


def test_malformed_rows_name_the_file_and_row(tmp_path):
    bbh = tmp_path / "navigate.json"
    bbh.write_text(json.dumps({"examples": [{"input": "Take 3 steps. Is it home?", "target": "No"}, {"input": "x"}]}))
    with pytest.raises(DataError) as err:
        B.read_source(bbh)
    assert _one_line(err).startswith(f"{bbh}, example 1: missing field 'target'")
    assert "data.on_error=skip" in str(err.value)
    recs, report = B.read_source(bbh, on_error="skip")
    assert len(recs) == 1 and report.n_skipped == 1 and report.reasons == {"missing_target": 1}

    agieval = tmp_path / "logiqa-en.jsonl"
    good = {"passage": "p", "question": "q?", "options": ["(A)a", "(B)b"], "label": "A", "answer": None}
    agieval.write_text(json.dumps(good) + "\n" + json.dumps({**good, "label": "F"}) + "\n")
    with pytest.raises(DataError) as err:
        B.read_source(agieval)
    assert _one_line(err).startswith(f"{agieval}, line 2: field 'label' must be an option letter A-B")

    gpqa = tmp_path / "gpqa_diamond.csv"
    with open(gpqa, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"])
        w.writerow(["Q1", "a", "b", "c", "d"])
        w.writerow(["Q2", "a", "b", "", "d"])
    with pytest.raises(DataError) as err:
        B.read_source(gpqa)
    assert _one_line(err).startswith(f"{gpqa}, line 3: field 'Incorrect Answer 2' is empty")

    zebra = tmp_path / "grid.jsonl"
    zebra.write_text(json.dumps({"id": "z", "puzzle": "p", "solution": {"header": ["House", "A"], "rows": [["1"]]}}))
    with pytest.raises(DataError) as err:
        B.read_source(zebra)
    assert _one_line(err).startswith(f"{zebra}, line 1: solution 'rows' must be lists of 2 strings")


def test_directories_and_files_that_are_not_benchmarks(tmp_path):
    plain = tmp_path / "mine.jsonl"
    plain.write_text(json.dumps({"id": "a", "problem": "1+1", "answer": "2", "options": ["2", "3"]}) + "\n")
    assert B.detect(plain) is None and not B.is_benchmark_dir(tmp_path)
    recs, _ = B.read_source(plain)  # our own schema: read_records, options and instruction kept
    want = {
        "id": "a",
        "problem": "1+1",
        "answer": "2",
        "is_labeled": True,
        "data_source": "mine",
        "options": ["2", "3"],
    }
    assert recs == [want]
    assert read_records(plain)[0][0]["options"] == ["2", "3"]
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "sports_understanding.jsonl").write_text('{"input": "Is it plausible?", "target": "no"}\n')
    (tmp_path / "bench" / "notes.jsonl").write_text('{"id": "x", "problem": "p", "answer": "a"}\n')
    with pytest.raises(DataError, match=r"notes.jsonl: is not a benchmark release file"):
        B.read_source(tmp_path / "bench")
    with pytest.raises(DataError, match="is a directory, not a data file. Give one .jsonl"):
        tb.resolve_source(str(tmp_path / "bench"))
    (tmp_path / "bench" / "notes.jsonl").unlink()
    path, split, label = tb.resolve_source(str(tmp_path / "bench"))
    assert path.is_dir() and label == "bench"
    other = tmp_path / "table.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="a .csv file is read as GPQA only"):
        B.read_source(other)


def test_named_benchmarks_through_the_prepared_copy(tmp_path):
    for name, n, source in (("bbh", 7, "bbh/"), ("agieval", 5, "agieval/"), ("zebralogic", 2, "zebralogic")):
        recs, report = tb.load_records(name, data_dir=SAMPLES, tfds_dir=tmp_path, return_report=True)
        direct, _ = B.read_source(SAMPLES / name)
        assert recs == direct and len(recs) == n and report.n_ok == n  # options, instruction, size survive
        assert all(r["data_source"].startswith(source) for r in recs)
    gpqa = tb.load_records("gpqa_diamond", data_dir=SAMPLES, tfds_dir=tmp_path)
    assert gpqa == B.read_source(SAMPLES / "gpqa_diamond.csv")[0]
    # editing a file of a directory source prepares a fresh copy
    copy = tmp_path / "bbh"
    copy.mkdir()
    for f in (SAMPLES / "bbh").iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    assert len(tb.load_records(str(copy), tfds_dir=tmp_path / "tfds")) == 7
    (copy / "dyck_languages.jsonl").write_text('{"input": "Input: [", "target": "]"}\n')
    assert len(tb.load_records(str(copy), tfds_dir=tmp_path / "tfds")) == 6


def test_a_record_instruction_replaces_the_default_one():
    recs, _ = B.read_source(SAMPLES / "gpqa_diamond.csv")
    plain = render_records(recs[:1], "plain")[0]
    assert plain == recs[0]["problem"] + recs[0]["instruction"]  # no space before "\n\nThink step by step"
    assert BOXED_INSTRUCTION not in plain
    chat = render_records(recs[:1], "qwen3")[0]
    assert chat.startswith("<|im_start|>user\n" + recs[0]["problem"] + "\n\nThink step by step")
    # an instruction chosen explicitly applies to every row; "" on a row means none
    assert render_records(recs[:1], "plain", instruction="Reply.")[0] == recs[0]["problem"] + " Reply."
    assert render_records([{**recs[0], "instruction": ""}], "plain")[0] == recs[0]["problem"]
    assert render_records([{"problem": "1+1?"}], "plain")[0] == f"1+1? {BOXED_INSTRUCTION}"
