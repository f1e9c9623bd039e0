"""The diagnosis before the comparison: can the stage-1 critic rank one question's answers better
than answer frequency (the signal majority voting uses)?

Read from stage 1's last evaluation (``stage1/eval/step_<N>/``: D_U and held-out D_L, 16 samples
per question, V_T of every sample): within-question AUROC of the critic's V_T and of answer
frequency, avg@16, maj@16, pass@8, the share of questions whose majority answer is wrong while
some sample is right, and the share and accuracy of each solution style. The gate
(DESIGN.md): critic within-question AUROC on D_U >= 0.70 and >= 0.10 above answer frequency's.
"""

from __future__ import annotations

import collections
import json
import os

from tempo_jax.demo.tasks.styles import response_style

GATE_AUROC = 0.70
GATE_MARGIN = 0.10
KEYS = (
    "avg@16",
    "maj@16",
    "pass@8",
    "maj_wrong_some_right",
    "critic/auroc_within",
    "frequency/auroc_within",
    "critic/auroc",
)


def dataset_name(path: str) -> str:
    """The evaluator's name for a dataset file (its stem)."""
    return os.path.splitext(os.path.basename(path))[0]


def eval_dir(run_dir: str, step: int) -> str:
    return os.path.join(run_dir, "eval", f"step_{step:06d}")


def read_summary(run_dir: str, step: int, dataset: str) -> dict:
    """``{"metrics": ..., "per_question": [...]}`` of one evaluation of one run."""
    path = os.path.join(eval_dir(run_dir, step), f"{dataset}_summary.json")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def style_stats(run_dir: str, step: int, dataset_path: str) -> dict[str, float]:
    """Share of each solution style among the samples, and the accuracy within each style."""
    problems = {}
    with open(dataset_path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            problems[row["id"]] = row["problem"]
    counts: collections.Counter = collections.Counter()
    right: collections.Counter = collections.Counter()
    path = os.path.join(eval_dir(run_dir, step), f"{dataset_name(dataset_path)}_samples.jsonl")
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            s = json.loads(line)
            style = response_style(problems[s["question_id"]], s["response"]) or "other"
            counts[style] += 1
            right[style] += bool(s["correct"])
    total = sum(counts.values())
    out = {}
    for style in ("careful", "hasty", "other"):
        out[f"share/{style}"] = counts[style] / total if total else float("nan")
        out[f"acc/{style}"] = right[style] / counts[style] if counts[style] else float("nan")
    return out


def diagnose(stage1_dir: str, data: dict[str, str], step: int) -> dict:
    """The diagnosis of a stage-1 run evaluated at ``step`` (see the module docstring)."""
    out: dict = {"step": step}
    for key, path in (("du", data["unlabeled"]), ("dl_heldout", data["val"])):
        metrics = read_summary(stage1_dir, step, dataset_name(path))["metrics"]
        row = {k: metrics.get(k, float("nan")) for k in KEYS}
        row["questions"] = metrics.get("n_questions")
        row.update(style_stats(stage1_dir, step, path))
        out[key] = row
    critic, freq = out["du"]["critic/auroc_within"], out["du"]["frequency/auroc_within"]
    out["gate"] = {
        "critic_auroc_within_du": critic,
        "frequency_auroc_within_du": freq,
        "passed": bool(
            critic is not None and freq is not None and critic >= GATE_AUROC and critic - freq >= GATE_MARGIN
        ),
    }
    return out
