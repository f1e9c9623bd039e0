"""The demo's reports: per seed and across seeds, every change with its paired standard error.

"Before" is stage 1's last evaluation (the checkpoint every stage-2 method starts from);
"after" is each method's evaluation at its last step. Changes and method-vs-TEMPO differences
are paired per question (tempo_jax.eval.paired); a star marks |mean| > 2 SE.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from tempo_jax.demo.diagnose import GATE_AUROC, GATE_MARGIN, dataset_name, read_summary, style_stats
from tempo_jax.demo.plan import DemoPlan
from tempo_jax.eval.paired import Change, combine_seeds, paired_change
from tempo_jax.eval.plots import Line, plot_lines

CRITIC_METHODS = ("tempo", "tempo_frozen_critic", "zero_rl_ppo")
SERIES_KEYS = ("avg@16", "pass@8", "maj@16", "critic/auroc_within")


def _fmt(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def eval_steps(run_dir: str) -> list[int]:
    """Steps at which a run evaluated (``eval/step_<N>/``)."""
    base = os.path.join(run_dir, "eval")
    if not os.path.isdir(base):
        return []
    return sorted(int(name.split("_")[1]) for name in os.listdir(base) if name.startswith("step_"))


def per_question(run_dir: str, step: int, dataset: str, key: str) -> dict[str, float]:
    return {q["id"]: float(q[key]) for q in read_summary(run_dir, step, dataset)["per_question"]}


def _metric(run_dir: str, step: int, dataset: str, key: str) -> float:
    value = read_summary(run_dir, step, dataset)["metrics"].get(key)
    return float("nan") if value is None else float(value)


def _change_dict(c: Change) -> dict:
    return {"mean": c.mean, "se": c.se, "n": c.n, "per_seed": list(c.per_seed)}


def _change(d: dict) -> Change:
    return Change(d["mean"], d["se"], d["n"], tuple(d["per_seed"]))


# ----------------------------------------------------------------------------- one seed


def seed_summary(out: str, plan: DemoPlan, data: dict[str, str], diagnosis: dict) -> dict:
    """Per method: before/after levels, paired changes, TEMPO-minus-method differences and the
    series over evaluation steps (step 0 = stage 1's last evaluation)."""
    du, val = dataset_name(data["unlabeled"]), dataset_name(data["val"])
    stage1, s1 = os.path.join(out, "stage1"), plan.stage1_steps
    before = {k: per_question(stage1, s1, du, k) for k in ("avg", "pass@8")}
    base_levels = {k: _metric(stage1, s1, du, k) for k in SERIES_KEYS}
    base_val_auroc = _metric(stage1, s1, val, "critic/auroc_within")
    base_careful = style_stats(stage1, s1, data["unlabeled"])["share/careful"]
    methods: dict[str, dict] = {}
    after_q: dict[str, dict] = {}
    for method in plan.methods:
        run = os.path.join(out, method)
        steps = [s for s in eval_steps(run) if s > 0]
        if not steps:
            continue
        last = steps[-1]
        after_q[method] = {k: per_question(run, last, du, k) for k in ("avg", "pass@8")}
        row = {
            "step": last,
            "before": {**{k: base_levels[k] for k in ("avg@16", "pass@8", "maj@16")}, "share/careful": base_careful},
            "after": {
                **{k: _metric(run, last, du, k) for k in SERIES_KEYS},
                "share/careful": style_stats(run, last, data["unlabeled"])["share/careful"],
            },
            "change_avg": _change_dict(paired_change(before["avg"], after_q[method]["avg"])),
            "change_pass8": _change_dict(paired_change(before["pass@8"], after_q[method]["pass@8"])),
            "series": {k: [(0, base_levels[k])] + [(s, _metric(run, s, du, k)) for s in steps] for k in SERIES_KEYS},
            "series_change": {
                k: [(0, _change_dict(Change(0.0, 0.0, len(before[k]), (0.0,))))]
                + [(s, _change_dict(paired_change(before[k], per_question(run, s, du, k)))) for s in steps]
                for k in ("avg", "pass@8")
            },
            "series_val_auroc": [(0, base_val_auroc)]
            + [(s, _metric(run, s, val, "critic/auroc_within")) for s in steps],
        }
        methods[method] = row
    if "tempo" in after_q:
        for method, row in methods.items():
            if method != "tempo":
                row["tempo_minus"] = _change_dict(paired_change(after_q[method]["avg"], after_q["tempo"]["avg"]))
    return {"seed": plan.seed, "dir": out, "diagnosis": diagnosis, "stage1": base_levels, "methods": methods}


def seed_markdown(summary: dict, plan: DemoPlan) -> str:
    return table_markdown([summary], plan)


def write_seed_report(
    out: str,
    plan: DemoPlan,
    data: dict[str, str],
    diagnosis: dict,
    timings: dict[str, float],
    diagnose_only: bool = False,
) -> dict:
    summary: dict[str, Any] = (
        seed_summary(out, plan, data, diagnosis)
        if not diagnose_only
        else {"seed": plan.seed, "dir": out, "diagnosis": diagnosis, "methods": {}}
    )
    summary["timings_s"] = timings
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2)
    with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as fh:
        fh.write(diagnosis_markdown([summary["diagnosis"]]) + "\n")
        if summary["methods"]:
            fh.write(seed_markdown(summary, plan))
    return summary


# ----------------------------------------------------------------------------- across seeds


def combined(summaries: Sequence[dict], method: str, key: str) -> Change | None:
    changes = [
        _change(s["methods"][method][key]) for s in summaries if method in s["methods"] and key in s["methods"][method]
    ]
    return combine_seeds(changes) if changes else None


def _mean(summaries, method, part, key) -> float:
    vals = [s["methods"][method][part][key] for s in summaries if method in s["methods"]]
    return float(np.mean(vals)) if vals else float("nan")


def table_markdown(summaries: Sequence[dict], plan: DemoPlan) -> str:
    """Per method: D_U avg@16 and pass@8 before -> after, their paired changes, maj@16 after, the
    share of careful solutions before -> after, the critic's within-question AUROC on D_U after,
    and TEMPO's avg@16 minus the method's."""
    seeds = [s["seed"] for s in summaries]
    lines = [
        "| method | avg@16 before → after | Δ avg@16 | pass@8 before → after | Δ pass@8 | maj@16 after | "
        "careful share before → after | critic AUROC (within, D_U) after | TEMPO − method, avg@16 after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    first = summaries[0]["methods"]
    if first:
        maj0 = float(np.mean([s["stage1"]["maj@16"] for s in summaries]))
        avg0 = float(np.mean([s["stage1"]["avg@16"] for s in summaries]))
        p0 = float(np.mean([s["stage1"]["pass@8"] for s in summaries]))
        lines.append(
            f"| stage-1 model, majority vote of 16 (no training) | {avg0:.3f} | – | {p0:.3f} | – | "
            f"{maj0:.3f} | – | – | – |"
        )
    for method in plan.methods:
        if not any(method in s["methods"] for s in summaries):
            continue
        d_avg, d_p8 = combined(summaries, method, "change_avg"), combined(summaries, method, "change_pass8")
        assert d_avg is not None and d_p8 is not None  # every method row has both (seed_summary)
        vs = combined(summaries, method, "tempo_minus")
        lines.append(
            f"| {method} | {_mean(summaries, method, 'before', 'avg@16'):.3f} → "
            f"{_mean(summaries, method, 'after', 'avg@16'):.3f} | {d_avg.format()} | "
            f"{_mean(summaries, method, 'before', 'pass@8'):.3f} → {_mean(summaries, method, 'after', 'pass@8'):.3f} | "
            f"{d_p8.format()} | {_mean(summaries, method, 'after', 'maj@16'):.3f} | "
            f"{_mean(summaries, method, 'before', 'share/careful'):.2f} → "
            f"{_mean(summaries, method, 'after', 'share/careful'):.2f} | "
            f"{_fmt(_mean(summaries, method, 'after', 'critic/auroc_within') if method in CRITIC_METHODS else None)} | "
            f"{vs.format() if vs else '–'} |"
        )
    k = len(seeds)
    n_q = plan.setup.du_count
    lines += [
        "",
        f"Seeds {seeds}; D_U = {n_q} test questions per seed (level {plan.setup.du_levels}), 16 samples "
        f"each at T = 1; {plan.stage2_steps} stage-2 steps of {plan.train_batch_size} prompts x {plan.n} samples "
        "per method, all from the same stage-1 checkpoint. Changes are paired per question; "
        + ("mean over seeds ± sqrt(sum SE²)/K" if k > 1 else "± one standard error")
        + "; * marks |mean| > 2 SE.",
    ]
    if k > 1:
        lines.append("")
        per_method = {m: combined(summaries, m, "change_avg") for m in plan.methods}
        lines.append(
            "Per-seed Δ avg@16: "
            + "; ".join(f"{m} " + ", ".join(f"{x:+.3f}" for x in c.per_seed) for m, c in per_method.items() if c)
        )
    return "\n".join(lines) + "\n"


def diagnosis_markdown(diagnoses: Sequence[dict]) -> str:
    """The stage-1 diagnosis per seed: can the critic rank answers better than voting can?"""
    lines = [
        "| seed | set | critic AUROC within | answer-frequency AUROC within | avg@16 | maj@16 | pass@8 | "
        "maj wrong, some right | careful share (acc) | hasty share (acc) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, d in enumerate(diagnoses):
        seed = d.get("seed", i)
        for key, name in (("du", "D_U"), ("dl_heldout", "D_L held-out")):
            r = d[key]
            lines.append(
                f"| {seed} | {name} | {_fmt(r['critic/auroc_within'])} | {_fmt(r['frequency/auroc_within'])} | "
                f"{_fmt(r['avg@16'])} | {_fmt(r['maj@16'])} | {_fmt(r['pass@8'])} | "
                f"{_fmt(r['maj_wrong_some_right'])} | {_fmt(r['share/careful'])} ({_fmt(r['acc/careful'])}) | "
                f"{_fmt(r['share/hasty'])} ({_fmt(r['acc/hasty'])}) |"
            )
    passed = [d["gate"]["passed"] for d in diagnoses]
    lines += [
        "",
        f"Gate (critic within-question AUROC on D_U >= {GATE_AUROC:.2f} and >= {GATE_MARGIN:.2f} above answer "
        f"frequency's): {'passed' if all(passed) else 'NOT passed'} on {sum(passed)} of {len(passed)} seed(s).",
    ]
    return "\n".join(lines) + "\n"


def diagnosis_lines(diagnosis: dict) -> str:
    g = diagnosis["gate"]
    return (
        f"[demo] diagnosis: critic within-question AUROC on D_U {_fmt(g['critic_auroc_within_du'])}, answer "
        f"frequency {_fmt(g['frequency_auroc_within_du'])} -> gate {'passed' if g['passed'] else 'NOT passed'}"
    )


# ----------------------------------------------------------------------------- plots


def _series_change(summaries, method, key) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Per evaluation step: the change from step 0, paired per question and combined over seeds
    (mean, SE) for ``avg``/``pass@8``; the plain mean change of the level for other keys (no SE)."""
    runs = [s["methods"][method] for s in summaries if method in s["methods"]]
    if key in ("avg", "pass@8"):
        per_seed = [{t: _change(c) for t, c in r["series_change"][key]} for r in runs]
        steps = sorted(set.intersection(*(set(p) for p in per_seed)))
        changes = [combine_seeds([p[t] for p in per_seed]) for t in steps]
        return steps, np.array([c.mean for c in changes]), np.array([c.se for c in changes])
    levels = [dict(r["series"][key]) for r in runs]
    steps = sorted(set.intersection(*(set(p) for p in levels)))
    deltas = np.array([[p[t] - p[0] for t in steps] for p in levels])
    return steps, deltas.mean(axis=0), np.full(len(steps), np.nan)


def plot_accuracy(summaries: Sequence[dict], plan: DemoPlan, path: str) -> str:
    panels = []
    for i, (key, label) in enumerate((("avg", "avg@16"), ("pass@8", "pass@8"), ("maj@16", "maj@16"))):
        lines = [
            Line(method, *_series_change(summaries, method, key))
            for method in plan.methods
            if any(method in s["methods"] for s in summaries)
        ]
        panels.append(
            (
                lines,
                dict(
                    title=f"D_U {label}: change from the stage-1 model",
                    xlabel="stage-2 step",
                    hline=0.0,
                    legend=dict(fontsize=8) if i == 0 else None,
                ),
            )
        )
    plot_lines(
        panels,
        path,
        size=(5 * len(panels), 4),
        dpi=110,
        suptitle=(f"mean over {len(summaries)} seed(s); bands: ±1 paired SE (questions), combined over seeds"),
        suptitle_size=9,
    )
    return path


def plot_auroc(summaries: Sequence[dict], plan: DemoPlan, path: str) -> str:
    lines = []
    for method in ("tempo", "tempo_frozen_critic"):
        if not any(method in s["methods"] for s in summaries):
            continue
        for key, style, where in (("series", "-", "D_U"), ("series_val_auroc", "--", "D_L held-out")):
            per_seed = [
                dict(
                    s["methods"][method][key]
                    if key == "series_val_auroc"
                    else s["methods"][method]["series"]["critic/auroc_within"]
                )
                for s in summaries
                if method in s["methods"]
            ]
            steps = sorted(set.intersection(*(set(p) for p in per_seed)))
            mean = [np.nanmean([p[t] for p in per_seed]) for t in steps]
            lines.append(Line(f"{method} on {where}", steps, mean, style=style))
    plot_lines(
        [
            (
                lines,
                dict(
                    title="critic within-question AUROC of V_T over the E-steps",
                    xlabel="stage-2 step",
                    ylim=(0, 1),
                    hline=0.5,
                    legend=dict(fontsize=7),
                ),
            )
        ],
        path,
        size=(6.5, 4),
        dpi=110,
    )
    return path


def write_report(
    out: str, plan: DemoPlan, summaries: Sequence[dict], total_seconds: float, command: str, diagnose_only: bool = False
) -> dict[str, str]:
    """results.md / results.json over all seeds (+ the two plots unless ``diagnose_only``)."""
    paths = {"results table": os.path.join(out, "results.md")}
    text = [
        f"Produced by `{command}` in {total_seconds / 60:.1f} min.",
        "",
        "## Diagnosis (stage 1, before stage 2)",
        "",
        diagnosis_markdown([s["diagnosis"] | {"seed": s["seed"]} for s in summaries]),
    ]
    if not diagnose_only:
        text += ["## Stage 2", "", table_markdown(summaries, plan)]
        paths["accuracy plot"] = plot_accuracy(summaries, plan, os.path.join(out, "accuracy_vs_step.png"))
        paths["critic AUROC plot"] = plot_auroc(summaries, plan, os.path.join(out, "critic_auroc.png"))
        paths["TEMPO actor (HF)"] = os.path.join(summaries[0]["dir"], "tempo", "export", "actor")
    with open(paths["results table"], "w", encoding="utf-8") as fh:
        fh.write("\n".join(text))
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as fh:
        json.dump({"command": command, "seconds": total_seconds, "seeds": list(summaries)}, fh, indent=2)
    return paths


def write_diagnosis(diagnosis: dict, out: str) -> dict[str, str]:
    paths = {"json": os.path.join(out, "diagnosis.json"), "md": os.path.join(out, "diagnosis.md")}
    with open(paths["json"], "w", encoding="utf-8") as fh:
        json.dump(diagnosis, fh, indent=2)
    with open(paths["md"], "w", encoding="utf-8") as fh:
        fh.write(diagnosis_markdown([diagnosis]))
    return paths
