"""The demo's report on hand-made evaluation files: paired changes, TEMPO-minus-method, seeds, plots."""

import json
import os

import pytest

from tempo_jax.demo import report
from tempo_jax.demo.plan import DemoPlan
from tempo_jax.demo.tasks import styles

EXPR = "7+8-3+9"  # every fake question asks this; the samples' layouts decide the careful share


def _write_eval(run_dir, step, dataset, per_q, metrics, careful_share=0.5):
    d = os.path.join(run_dir, "eval", f"step_{step:06d}")
    os.makedirs(d, exist_ok=True)
    rows = [{"id": q, "avg": a, "pass@8": p} for q, (a, p) in per_q.items()]
    with open(os.path.join(d, f"{dataset}_summary.json"), "w") as fh:
        json.dump({"metrics": metrics, "per_question": rows}, fh)
    with open(os.path.join(d, f"{dataset}_samples.jsonl"), "w") as fh:
        for q in per_q:
            for j in range(4):
                style = "careful" if j < 4 * careful_share else "hasty"
                fh.write(
                    json.dumps(
                        {
                            "question_id": q,
                            "response": styles.format_solution(EXPR, style),
                            "correct": style == "careful",
                        }
                    )
                    + "\n"
                )


def _levels(per_q):
    avg = sum(a for a, _ in per_q.values()) / len(per_q)
    p8 = sum(p for _, p in per_q.values()) / len(per_q)
    return {"avg@16": avg, "pass@8": p8, "maj@16": avg, "critic/auroc_within": 0.8}


def _fake_seed(root, seed, tempo_gain, other_gain, plan):
    out = os.path.join(root, f"seed_{seed}")
    data = {name: os.path.join(root, f"{name}.jsonl") for name in ("du_test", "dl_val")}
    before = {"q0": (0.25, 0.5), "q1": (0.5, 1.0), "q2": (0.0, 0.0), "q3": (0.75, 1.0)}
    for path in data.values():
        with open(path, "w") as fh:
            fh.writelines(json.dumps({"id": q, "problem": f"Evaluate {EXPR}.", "answer": "21"}) + "\n" for q in before)
    data = {"unlabeled": data["du_test"], "val": data["dl_val"], "labeled": "/unused/dl_train.jsonl"}
    for ds in ("du_test", "dl_val"):
        _write_eval(os.path.join(out, "stage1"), plan.stage1_steps, ds, before, _levels(before))
    for method in plan.methods:
        gain = tempo_gain if method == "tempo" else other_gain
        for step in (2, 4):
            after = {q: (a + gain * step / 4 * (i % 2 + 0.5), p) for i, (q, (a, p)) in enumerate(before.items())}
            for ds in ("du_test", "dl_val"):
                _write_eval(
                    os.path.join(out, method), step, ds, after, _levels(after), careful_share=1.0 if gain > 0 else 0.25
                )
    diagnosis = {"du": {}, "dl_heldout": {}, "gate": {"passed": True}}
    return report.seed_summary(out, plan.with_seed(seed), data, diagnosis)


def test_seed_summary_changes_by_hand(tmp_path):
    plan = DemoPlan(stage1_steps=3, methods=("tempo", "ttrl"))
    s = _fake_seed(str(tmp_path), 0, tempo_gain=0.1, other_gain=-0.1, plan=plan)
    tempo = s["methods"]["tempo"]
    # per-question gains 0.05, 0.15, 0.05, 0.15 -> mean 0.1, SE = std([.05,.15,.05,.15], ddof=1)/2
    assert tempo["step"] == 4 and tempo["change_avg"]["mean"] == pytest.approx(0.1)
    assert tempo["change_avg"]["se"] == pytest.approx(0.057735 / 2, rel=1e-4)
    assert tempo["change_pass8"]["mean"] == pytest.approx(0.0)
    assert s["methods"]["ttrl"]["tempo_minus"]["mean"] == pytest.approx(0.2)
    assert [t for t, _ in tempo["series"]["avg@16"]] == [0, 2, 4]
    assert tempo["series_change"]["avg"][1][1]["mean"] == pytest.approx(0.05)


def test_table_over_seeds_and_plots(tmp_path):
    plan = DemoPlan(stage1_steps=3, methods=("tempo", "ttrl", "tempo_frozen_critic"))
    summaries = [_fake_seed(str(tmp_path), s, 0.1 + 0.02 * s, -0.05, plan) for s in range(3)]
    text = report.table_markdown(summaries, plan)
    # per-seed gains g * (0.5, 1.5, 0.5, 1.5): SE_s = 0.2887 g_s; combined sqrt(sum SE_s^2) / 3 = 0.020
    assert "| tempo | 0.375 → 0.495 | +0.120 ± 0.020* |" in text  # mean of 0.10, 0.12, 0.14
    assert "| ttrl | 0.375 → 0.325 | -0.050 ± 0.008* |" in text and "+0.170 ± 0.028*" in text
    assert "Seeds [0, 1, 2]" in text
    assert "| 0.495 | 0.50 → 1.00 | 0.800 | – |" in text  # tempo: maj@16, careful share, critic AUROC
    assert "majority vote of 16 (no training)" in text and "Per-seed Δ avg@16: tempo +0.100, +0.120, +0.140" in text
    acc = report.plot_accuracy(summaries, plan, str(tmp_path / "acc.png"))
    auroc = report.plot_auroc(summaries, plan, str(tmp_path / "auroc.png"))
    for path in (acc, auroc):
        with open(path, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
