"""`tempo-jax demo --quick` end to end: table, plots, exported TEMPO actor, accuracies in [0, 1]."""
import json
import math
import os

from tempo_jax.demo import run_demo
from tempo_jax.demo.plan import METHODS
from tempo_jax.models.hf_io import from_hf


def test_quick_demo_produces_table_plots_and_export(tmp_path):
    paths = run_demo(out_dir=str(tmp_path / "demo"), quick=True)
    table = open(paths["results table"], encoding="utf-8").read()
    for method in METHODS:
        assert f"| {method} |" in table
    for key in ("accuracy plot", "critic AUROC plot"):
        assert os.path.getsize(paths[key]) > 10_000
        with open(paths[key], "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    results = json.load(open(tmp_path / "demo" / "results.json", encoding="utf-8"))["table"]
    assert set(results) == set(METHODS)
    for method, row in results.items():
        for key in ("avg_before", "avg_after", "pass8_before", "pass8_after", "maj_after"):
            value = row[key]
            assert isinstance(value, float) and not math.isnan(value) and 0.0 <= value <= 1.0, (method, key, value)
    # Every method starts from the same stage-1 checkpoint: identical step-0 evaluations.
    assert len({(r["avg_before"], r["pass8_before"]) for r in results.values()}) == 1
    actor = from_hf(paths["TEMPO actor (HF)"])
    assert actor.cfg.model_type == "qwen3"
