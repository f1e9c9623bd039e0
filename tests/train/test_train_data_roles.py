"""Which rows are D_L and which D_U: each row's own is_labeled flag decides, so a mixed file
never trains its test questions with their answers, and test questions may come without answers."""

import json
import logging

import pytest

from tempo_jax.train.config import RecipeError
from tempo_jax.train.data_roles import load_roles
from tempo_jax.train.loop import Trainer
from tempo_jax.train.metrics import read_metrics


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _mixed(tmp_path):
    """The reference's layout: one train file; test questions flagged is_labeled=false (two without answers)."""
    rows = [{"id": f"l{i}", "problem": f"{i}+1", "answer": str(i + 1)} for i in range(6)]
    rows += [
        {"id": "u0", "problem": "7+7", "answer": "14", "is_labeled": False},
        {"id": "u1", "problem": "8+8", "is_labeled": False},
        {"id": "u2", "problem": "9+9", "answer": None, "is_labeled": False},
    ]
    return _jsonl(tmp_path / "mixed.jsonl", rows)


def _verl_mixed(tmp_path):
    def row(i, labeled, answer):
        rm = {"ground_truth": answer, "is_labeled": labeled} if answer is not None else {"is_labeled": labeled}
        return {"data_source": "toy", "prompt": [{"role": "user", "content": f"{i}+2"}], "reward_model": rm}

    return _jsonl(
        tmp_path / "verl.jsonl", [row(0, True, "2"), row(1, True, "3"), row(2, False, "4"), row(3, False, None)]
    )


def test_mixed_file_as_labeled_splits_by_its_flags_for_tempo(tiny_config, tmp_path, caplog):
    cfg = tiny_config("tempo", data__labeled=_mixed(tmp_path), data__unlabeled="")
    with caplog.at_level(logging.WARNING):
        labeled, unlabeled = load_roles(cfg)
    assert [r["id"] for r in labeled] == [f"l{i}" for i in range(6)]
    assert [(r["id"], r["answer"], r["is_labeled"]) for r in unlabeled] == [
        ("u0", "14", False),
        ("u1", "", False),
        ("u2", "", False),
    ]
    assert "3 row(s) flagged is_labeled=false join D_U; their answers are never used for training" in caplog.text


def test_verl_layout_reward_model_flags_decide_too(tiny_config, tmp_path):
    labeled, unlabeled = load_roles(tiny_config("tempo", data__labeled=_verl_mixed(tmp_path), data__unlabeled=""))
    assert [r["answer"] for r in labeled] == ["2", "3"]
    assert [(r["problem"], r["answer"]) for r in unlabeled] == [("2+2", "4"), ("3+2", "")]


def test_stage1_leaves_flagged_test_questions_out(tiny_config, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        labeled, unlabeled = load_roles(tiny_config("stage1", data__labeled=_mixed(tmp_path)))
    assert len(labeled) == 6 and unlabeled == []
    assert "are left out (method stage1 trains on D_L only)" in caplog.text


def test_labeled_flag_inside_unlabeled_file_is_refused(tiny_config, tmp_path):
    bad = _jsonl(
        tmp_path / "du.jsonl",
        [{"id": "a", "problem": "1+1", "is_labeled": True, "answer": "2"}, {"id": "b", "problem": "2+2"}],
    )
    with pytest.raises(RecipeError, match=r"has 1 row\(s\) flagged is_labeled=true \(e.g. \['a'\]\)"):
        load_roles(tiny_config("tempo", data__unlabeled=bad))


def test_labeled_rows_still_need_answers(tiny_config, tmp_path):
    from tempo_jax.data.records import DataError

    bad = _jsonl(tmp_path / "dl.jsonl", [{"id": "a", "problem": "1+1"}])
    with pytest.raises(DataError, match="missing field 'answer'"):
        load_roles(tiny_config("stage1", data__labeled=bad))


def test_tempo_trains_on_answerless_test_questions(tiny_config, tmp_path):
    du = _jsonl(tmp_path / "du.jsonl", [{"id": f"u{i}", "problem": f"{i}+{i}"} for i in range(4)])
    cfg = tiny_config("tempo", data__unlabeled=du, train__total_steps=2, data__replicate_unlabeled_to=32)
    Trainer(cfg).run()
    rows = [r for r in read_metrics(cfg.run_dir) if "actor/loss" in r]
    assert len(rows) == 2 and any(r["batch/labeled_fraction"] < 1.0 for r in rows)  # D_U rows were trained on
    assert all("acc/unlabeled" not in r for r in rows)  # no answer, no accuracy
