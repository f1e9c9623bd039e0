"""Runner with fake sampler/grader writes samples JSONL, markdown table, summary and PNGs; run plots."""

import json
import re

import numpy as np
import pytest

from tempo_jax.data.tfds_builders import load_records
from tempo_jax.eval import plots
from tempo_jax.eval.runner import evaluate, write_results_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_sample_fn(prompts, n):
    out = []
    for i, p in enumerate(prompts):
        rng = np.random.default_rng(len(p))
        samples = []
        for j in range(n):
            ans = re.search(r"ANS=(\w+)", p).group(1) if (j % (i % 4 + 2) == 0) else str(rng.integers(0, 3))
            text = f"work... \\boxed{{{ans}}}" if j % 7 != 6 else "rambling without an answer"
            samples.append({"text": text, "length": 10 + j, "finish_reason": "stop" if j % 7 != 6 else "length"})
        out.append(samples)
    return out


def fake_grader(responses, answers):
    extracted = [(m.group(1) if (m := re.search(r"\\boxed\{([^}]*)\}", r)) else None) for r in responses]
    return np.array([e is not None and e == a for e, a in zip(extracted, answers)]), extracted


def fake_values(prompts, responses):
    return [[0.8 if "boxed" in r else -0.9 for r in rows] for rows in responses]


def test_runner_on_aime24_writes_outputs(data_dir, tmp_path):
    questions = load_records("aime24", data_dir=data_dir, tfds_dir=tmp_path / "tfds")
    calls = []

    def sample_fn(prompts, n):
        calls.append(len(prompts))
        return fake_sample_fn(prompts, n)

    res = evaluate(
        questions,
        sample_fn,
        fake_grader,
        n=8,
        value_fn=fake_values,
        dataset_name="aime24",
        prompt_fn=lambda q: f"{q['problem']} ANS={q['answer']}",
        chunk_size=16,
    )
    assert calls == [16, 14]
    m = res.metrics
    assert m["n_questions"] == 30 and m["n_samples"] == 8 and set(res.pass_at_k) == {1, 2, 4, 8}
    assert 0 < m["avg@8"] < m["pass@2"] < m["pass@4"] <= m["pass@8"] <= 1
    assert m["finish/length"] == 30 and m["length/max"] == 17 and "critic/auroc" in m and "maj@8" in m
    paths = res.write(tmp_path / "out", "aime24")
    lines = [json.loads(x) for x in paths["samples"].read_text().splitlines()]
    assert len(lines) == 240
    assert set(lines[0]) == {
        "question_id",
        "sample",
        "answer",
        "response",
        "extracted",
        "correct",
        "length",
        "finish_reason",
        "value",
    }
    assert lines[0]["question_id"] == "aime2024-I-01" and lines[0]["correct"] is True
    assert lines[6]["extracted"] is None and lines[6]["value"] == pytest.approx(-0.9)
    table = paths["table"].read_text()
    assert "| aime24 |" in table and "pass@8" in table and "avg@8" in table and "finish reasons" in table
    summary = json.loads(paths["summary"].read_text())
    assert summary["metrics"]["avg@8"] == pytest.approx(m["avg@8"]) and len(summary["per_question"]) == 30
    png = paths["pass_at_k_png"].read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 5000
    write_results_table({"aime24": res, "again": res}, tmp_path / "out" / "results.md")
    assert (tmp_path / "out" / "results.md").read_text().count("\n") == 4


def test_runner_validates_callables():
    qs = [{"id": "q", "problem": "P ANS=1", "answer": "1"}]
    with pytest.raises(ValueError, match="expected n=4"):
        evaluate(qs, lambda p, n: [[{"text": "x", "length": 1}]], fake_grader, n=4)
    with pytest.raises(ValueError, match="'length'"):
        evaluate(qs, lambda p, n: [[{"text": "x"}] * n], fake_grader, n=2)
    with pytest.raises(ValueError, match="grader_fn returned"):
        evaluate(qs, fake_sample_fn, lambda r, a: (np.zeros(1, bool), [None]), n=2)
    with pytest.raises(ValueError, match="string 'answer'"):
        evaluate([{"id": "q", "problem": "P"}], fake_sample_fn, fake_grader)
    # values can also come from the sampler; nan-safe output without a critic
    res = evaluate(
        qs,
        lambda p, n: [[{"text": "\\boxed{1}", "length": 3, "finish_reason": "stop", "value": 0.1}] * n],
        fake_grader,
        n=2,
        prompt_fn=lambda q: q["problem"],
    )
    assert res.metrics["critic/value_mean"] == pytest.approx(0.1)
    assert res.metrics["critic/auroc"] != res.metrics["critic/auroc"]  # one class only -> nan


def test_step_plots(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with open(run / "metrics.jsonl", "w") as f:
        for step in range(1, 13):
            row = {"step": step, "train/loss": 1.0 / step}
            if step % 4 == 0:
                row.update(
                    {
                        "eval/aime24/avg@16": 0.2 + 0.01 * step,
                        "eval/aime25/avg@16": 0.1 + 0.01 * step,
                        "eval/aime24/pass@8": 0.5,
                        "eval/heldout/critic/auroc": 0.6 + 0.01 * step,
                        "eval/aime24/critic/auroc": float("nan") if step == 4 else 0.55,
                    }
                )
            f.write(json.dumps(row) + "\n")
    p = plots.plot_accuracy_vs_step(run)
    assert p == run / "accuracy_vs_step.png" and p.read_bytes().startswith(PNG_MAGIC)
    assert plots.plot_critic_auroc(run / "metrics.jsonl", tmp_path / "a.png").stat().st_size > 5000
    assert len(plots.plot_run(run, tmp_path / "plots")) == 2
    with pytest.raises(ValueError, match="no keys matching"):
        plots.plot_accuracy_vs_step(run, metrics=("maj@16",))
    with pytest.raises(FileNotFoundError):
        plots.find_metrics_file(tmp_path / "empty_dir_does_not_exist")
