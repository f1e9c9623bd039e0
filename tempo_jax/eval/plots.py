"""PNG plots (matplotlib's Agg canvas through the object API: no pyplot, no global backend).

* :func:`plot_pass_at_k` -- pass@k against k (log2 axis), one curve per dataset/method.
* :func:`plot_accuracy_vs_step` -- eval metrics over training steps from a run's metrics
  JSONL (one JSON object per line with a step key -- ``step``, ``global_step`` or
  ``train/step``, else the line number -- and keys ``eval/<dataset>/<metric>``, e.g.
  ``eval/aime24/avg@16``; lines without a key are skipped for that curve).
* :func:`plot_critic_auroc` -- every key containing ``auroc`` over steps.
* :func:`plot_lines` / :func:`draw_lines` -- the line-plot drawing both use, and the demo's report
  (panels of :class:`Line` series over steps, optional ±SE bands and a reference line).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tempo_jax import storage

STEP_KEYS = ("step", "global_step", "train/step")
METRICS_FILENAMES = ("metrics.jsonl", "metrics/metrics.jsonl")


def _figure(size):
    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _new_figure(size=(6.0, 4.0)):
    fig = _figure(size)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, where: str | os.PathLike, dpi: float | None = None) -> storage.Path:
    path = storage.as_path(where)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    with path.open("wb") as fh:  # a file object: matplotlib would treat a gs:// string as a local path
        fig.savefig(fh, format="png", **({"dpi": dpi} if dpi else {}))
    return path


@dataclasses.dataclass
class Line:
    """One series of a line plot: ``ys`` over ``xs``, an optional ±``band`` shaded around it (a
    band that is all NaN is not drawn), the matplotlib line ``style`` and marker size."""

    label: str
    xs: Sequence[float] | np.ndarray
    ys: Sequence[float] | np.ndarray
    band: Sequence[float] | np.ndarray | None = None
    style: str = "-"
    markersize: float | None = None


def draw_lines(
    ax,
    lines: Sequence[Line],
    *,
    title: str,
    xlabel: str = "step",
    ylabel: str | None = None,
    ylim: tuple[float, float] | None = None,
    hline: float | None = None,
    legend: Mapping[str, Any] | None = None,
) -> None:
    """Draw ``lines`` (marker ``o``) on ``ax`` with a grid; ``hline`` a grey reference line;
    ``legend`` the keyword arguments of ``ax.legend`` (``None``: no legend)."""
    for ln in lines:
        kw = {} if ln.markersize is None else {"markersize": ln.markersize}
        (drawn,) = ax.plot(ln.xs, ln.ys, ln.style, marker="o", label=ln.label, **kw)
        if ln.band is not None and not np.isnan(np.asarray(ln.band, float)).all():
            ys, band = np.asarray(ln.ys, float), np.asarray(ln.band, float)
            ax.fill_between(ln.xs, ys - band, ys + band, color=drawn.get_color(), alpha=0.2)
    if hline is not None:
        ax.axhline(hline, color="grey", lw=0.8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(True, alpha=0.3)
    if legend is not None:
        ax.legend(**legend)


def plot_lines(
    panels: Sequence[tuple[Sequence[Line], Mapping[str, Any]]],
    path: str | os.PathLike,
    *,
    size: tuple[float, float],
    dpi: float | None = None,
    suptitle: str | None = None,
    suptitle_size: float | None = None,
) -> storage.Path:
    """A PNG of one row of panels, each ``(lines, draw_lines keyword arguments)``; ``dpi`` of the
    saved file (default the figure's 100)."""
    fig = _figure(size)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (lines, kw) in zip(axes, panels):
        draw_lines(ax, lines, **kw)
    if suptitle:
        fig.suptitle(suptitle, fontsize=suptitle_size)
    return _save(fig, path, dpi)


def plot_pass_at_k(curves, path: str | os.PathLike, *, title: str | None = None) -> storage.Path:
    """``curves``: ``{label: {k: pass@k}}`` or an ``EvalResult`` (label = its dataset)."""
    if hasattr(curves, "pass_at_k"):
        curves = {curves.dataset or "eval": curves.pass_at_k}
    fig, ax = _new_figure()
    all_k: set[int] = set()
    for label, pk in curves.items():
        ks = sorted(int(k) for k in pk)
        if not ks:
            continue
        all_k.update(ks)
        ax.plot(ks, [100.0 * pk[k] for k in ks], marker="o", label=str(label))
    if not all_k:
        raise ValueError("plot_pass_at_k: no pass@k values to plot")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(all_k))
    ax.set_xticklabels([str(k) for k in sorted(all_k)])
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k (%)")
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title or "pass@k")
    return _save(fig, path)


def find_metrics_file(run: str | os.PathLike) -> storage.Path:
    p = storage.as_path(run)
    if p.is_file():
        return p
    for name in METRICS_FILENAMES:
        if (p / name).is_file():
            return p / name
    found = sorted(p.glob("*metrics*.jsonl"))
    if found:
        return found[0]
    raise FileNotFoundError(f"no metrics JSONL in {p} (looked for {METRICS_FILENAMES} and *metrics*.jsonl)")


def read_metrics_jsonl(path: str | os.PathLike) -> list[dict]:
    """Rows of a metrics JSONL; a broken line raises with its line number."""
    rows = []
    with storage.open_file(path) as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {i}: broken JSON in metrics file ({e.msg})") from e
    return rows


def _step(row: dict, i: int) -> float:
    for k in STEP_KEYS:
        if isinstance(row.get(k), (int, float)):
            return float(row[k])
    return float(i)


def _series(rows: Sequence[dict], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, r in enumerate(rows):
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            xs.append(_step(r, i))
            ys.append(float(v))
    return xs, ys


def _plot_keys(rows, keys, path, *, ylabel, title, scale=1.0, ylim=None) -> storage.Path:
    lines = []
    for key in keys:
        xs, ys = _series(rows, key)
        lines.append(Line(key, xs, [scale * y for y in ys], markersize=3))
    return plot_lines(
        [(lines, dict(title=title, ylabel=ylabel, ylim=ylim, legend=dict(fontsize=7, loc="best")))],
        path,
        size=(7.0, 4.0),
    )


def plot_accuracy_vs_step(
    run: str | os.PathLike,
    out_path: str | os.PathLike | None = None,
    *,
    metrics: Sequence[str] = ("avg@16",),
    datasets: Sequence[str] | None = None,
) -> storage.Path:
    """Curves ``eval/<dataset>/<metric>`` (in %) over steps; default PNG next to the metrics file."""
    mfile = find_metrics_file(run)
    rows = read_metrics_jsonl(mfile)
    pattern = re.compile(r"^eval/([^/]+)/(" + "|".join(re.escape(m) for m in metrics) + r")$")
    keys = sorted(
        {k for r in rows for k in r if (m := pattern.match(k)) and (datasets is None or m.group(1) in datasets)}
    )
    if not keys:
        raise ValueError(
            f"{mfile}: no keys matching eval/<dataset>/{{{', '.join(metrics)}}}"
            + (f" for datasets {list(datasets)}" if datasets else "")
        )
    out = out_path or mfile.parent / "accuracy_vs_step.png"
    return _plot_keys(
        rows, keys, out, ylabel="accuracy (%)", title="evaluation over training", scale=100.0, ylim=(0, 100)
    )


def plot_critic_auroc(run: str | os.PathLike, out_path: str | os.PathLike | None = None) -> storage.Path:
    """Every metric whose key contains ``auroc`` over steps (0.5 = chance)."""
    mfile = find_metrics_file(run)
    rows = read_metrics_jsonl(mfile)
    keys = sorted({k for r in rows for k in r if "auroc" in k})
    if not keys:
        raise ValueError(f"{mfile}: no key containing 'auroc'")
    out = out_path or mfile.parent / "critic_auroc.png"
    return _plot_keys(rows, keys, out, ylabel="AUROC of V_T vs correctness", title="critic AUROC", ylim=(0, 1))


def plot_run(
    run: str | os.PathLike, out_dir: str | os.PathLike | None = None, metrics: Sequence[str] = ("avg@16", "pass@8")
) -> list[storage.Path]:
    """Both step plots that the run's metrics support (missing kinds are left out)."""
    mfile = find_metrics_file(run)
    folder = storage.as_path(out_dir) if out_dir else mfile.parent
    paths = []
    for fn, name, kw in (
        (plot_accuracy_vs_step, "accuracy_vs_step.png", {"metrics": metrics}),
        (plot_critic_auroc, "critic_auroc.png", {}),
    ):
        try:
            paths.append(fn(mfile, folder / name, **kw))
        except ValueError:
            pass
    return paths
