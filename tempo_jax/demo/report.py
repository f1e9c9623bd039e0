"""The demo's results table (markdown + JSON) and plots, read back from each run's metrics.jsonl."""
from __future__ import annotations

import json
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tempo_jax.demo.plan import DemoPlan  # noqa: E402
from tempo_jax.train.metrics import read_metrics  # noqa: E402

CRITIC_METHODS = ("tempo", "tempo_frozen_critic", "zero_rl_ppo")


def _dataset(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def eval_series(run_dir: str, dataset: str, metric: str) -> list[tuple[int, float]]:
    """(step, value) of ``eval/<dataset>/<metric>`` over the run, in step order."""
    key = f"eval/{dataset}/{metric}"
    out = {}
    for row in read_metrics(run_dir):
        if key in row and isinstance(row[key], (int, float)) and math.isfinite(row[key]):
            out[row["step"]] = float(row[key])
    return sorted(out.items())


def _first_last(series):
    return (series[0][1], series[-1][1]) if series else (float("nan"), float("nan"))


def _fmt(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def collect(out: str, plan: DemoPlan, data: dict[str, str]) -> dict[str, dict]:
    du, val = _dataset(data["unlabeled"]), _dataset(data["val"])
    n = plan.eval_n
    table = {}
    for method in plan.methods:
        run = os.path.join(out, method)
        avg = eval_series(run, du, f"avg@{n}")
        p8 = eval_series(run, du, "pass@8")
        maj = eval_series(run, du, f"maj@{n}")
        row = {"avg_before": _first_last(avg)[0], "avg_after": _first_last(avg)[1],
               "pass8_before": _first_last(p8)[0], "pass8_after": _first_last(p8)[1],
               "maj_after": _first_last(maj)[1]}
        if method in CRITIC_METHODS:
            row["auroc_du_after"] = _first_last(eval_series(run, du, "critic/auroc"))[1]
            row["auroc_val_after"] = _first_last(eval_series(run, val, "critic/auroc"))[1]
        table[method] = row
    return table


def markdown(table: dict[str, dict], plan: DemoPlan, timings: dict[str, float], command: str) -> str:
    n = plan.eval_n
    lines = [
        "| method | avg@{0} before | avg@{0} after | pass@8 before | pass@8 after | maj@{0} after | critic AUROC D_U | critic AUROC D_L held-out |".format(n),
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, r in table.items():
        lines.append(f"| {method} | {_fmt(r['avg_before'])} | {_fmt(r['avg_after'])} | {_fmt(r['pass8_before'])} | "
                     f"{_fmt(r['pass8_after'])} | {_fmt(r['maj_after'])} | {_fmt(r.get('auroc_du_after'))} | "
                     f"{_fmt(r.get('auroc_val_after'))} |")
    setup = plan.setup
    lines += ["", f"D_U = {setup.du_count} test questions of levels {setup.du_levels} (answers hidden from "
              f"training); every method starts from the same stage-1 checkpoint and runs {plan.stage2_steps} steps of "
              f"{plan.train_batch_size} prompts x {plan.n} samples. 'before' is step 0 of each run.",
              f"Produced by `{command}` in {timings.get('total', float('nan')) / 60:.1f} min."]
    return "\n".join(lines) + "\n"


def plot_accuracy(out: str, plan: DemoPlan, data: dict[str, str], path: str) -> str:
    du = _dataset(data["unlabeled"])
    metrics = [(f"avg@{plan.eval_n}", f"D_U avg@{plan.eval_n}"), ("pass@8", "D_U pass@8"),
               (f"maj@{plan.eval_n}", f"D_U majority-vote accuracy (maj@{plan.eval_n})")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4))
    for ax, (metric, title) in zip(axes, metrics):
        for method in plan.methods:
            series = eval_series(os.path.join(out, method), du, metric)
            if series:
                ax.plot(*zip(*series), marker="o", label=method)
        ax.set_title(title)
        ax.set_xlabel("stage-2 step")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_auroc(out: str, plan: DemoPlan, data: dict[str, str], path: str) -> str:
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in plan.methods:
        if method not in CRITIC_METHODS:
            continue
        for dataset, style in ((_dataset(data["unlabeled"]), "-"), (_dataset(data["val"]), "--")):
            series = eval_series(os.path.join(out, method), dataset, "critic/auroc")
            if series:
                ax.plot(*zip(*series), style, marker="o", label=f"{method} on {dataset}")
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set_title("critic AUROC (V_T vs correctness) over the E-steps")
    ax.set_xlabel("stage-2 step")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(out: str, plan: DemoPlan, data: dict[str, str], timings: dict[str, float],
                 command: str = "tempo-jax demo") -> dict[str, str]:
    table = collect(out, plan, data)
    paths = {
        "results table": os.path.join(out, "results.md"),
        "accuracy plot": plot_accuracy(out, plan, data, os.path.join(out, "accuracy_vs_step.png")),
        "critic AUROC plot": plot_auroc(out, plan, data, os.path.join(out, "critic_auroc.png")),
        "TEMPO actor (HF)": os.path.join(out, "tempo", "export", "actor"),
    }
    with open(paths["results table"], "w", encoding="utf-8") as fh:
        fh.write(markdown(table, plan, timings, command))
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as fh:
        json.dump({"table": table, "timings_s": timings}, fh, indent=2, allow_nan=True)
    return paths
