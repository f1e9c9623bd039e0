"""`tempo-jax demo --quick` end to end: diagnosis, table, plots, exported TEMPO actor, levels in [0, 1]."""

import json
import math
import os

import pytest

from tempo_jax.demo import run_demo
from tempo_jax.demo.plan import METHODS
from tempo_jax.models.hf_io import from_hf
from tempo_jax.train.run_dir import RunDirError


def test_quick_demo_produces_diagnosis_table_plots_and_export(tmp_path):
    paths = run_demo(out_dir=str(tmp_path / "demo"), quick=True, seed=3)
    table = open(paths["results table"], encoding="utf-8").read()
    assert "## Diagnosis" in table and "| 3 | D_U |" in table
    for method in METHODS:
        assert f"| {method} |" in table
    for key in ("accuracy plot", "critic AUROC plot"):
        assert os.path.getsize(paths[key]) > 10_000
        with open(paths[key], "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    seed_dir = tmp_path / "demo" / "seed_3"
    summary = json.load(open(seed_dir / "results.json", encoding="utf-8"))
    assert summary["seed"] == 3 and set(summary["methods"]) == set(METHODS)
    assert json.load(open(seed_dir / "plan.json"))["setup"]["seed"] == 3  # one seed drives data and training
    diagnosis = json.load(open(seed_dir / "diagnosis.json", encoding="utf-8"))
    for key in ("critic/auroc_within", "frequency/auroc_within", "avg@16", "maj@16", "pass@8", "maj_wrong_some_right"):
        assert key in diagnosis["du"] and key in diagnosis["dl_heldout"]
    for method, row in summary["methods"].items():
        # every method starts from the same stage-1 evaluation
        assert row["before"] == summary["methods"]["tempo"]["before"]
        for part in ("before", "after"):
            for key in ("avg@16", "pass@8", "maj@16"):
                value = row[part][key]
                assert isinstance(value, float) and not math.isnan(value) and 0.0 <= value <= 1.0, (method, key)
        assert row["change_avg"]["n"] == 16 and row["change_avg"]["se"] >= 0.0
    actor = from_hf(paths["TEMPO actor (HF)"])
    assert actor.cfg.model_type == "qwen3"
    # running again into the same directory is refused before anything is touched
    before = table
    with pytest.raises(RunDirError, match=r"already holds demo output \(seed_3\)"):
        run_demo(out_dir=str(tmp_path / "demo"), quick=True, seed=3)
    assert open(paths["results table"], encoding="utf-8").read() == before


def test_diagnose_only_stops_after_stage_1(tmp_path):
    paths = run_demo(out_dir=str(tmp_path / "d"), quick=True, diagnose_only=True)
    assert set(paths) == {"results table"}
    assert not (tmp_path / "d" / "seed_0" / "tempo").exists()
    assert "Gate (critic within-question AUROC" in open(paths["results table"], encoding="utf-8").read()
