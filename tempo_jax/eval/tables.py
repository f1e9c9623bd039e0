"""The paper's results table over several datasets: per benchmark, per task, and their average.

A question's benchmark is its ``data_source`` before the first ``/`` (``bbh/date_understanding`` ->
``bbh``; :mod:`tempo_jax.data.benchmarks`); questions without one belong to their dataset. A
dataset evaluated as one file or directory may hold several tasks (BBH's 27), and one benchmark
may come as several datasets (one file per task): :func:`benchmark_rows` regroups them.

* a **task** row (:func:`task_rows`): one ``data_source`` of a dataset that holds several, from its
  questions' own statistics (n_questions, avg@n, pass@k);
* a **benchmark** row: the mean over all of the benchmark's questions (its tasks weighted by size,
  as one dataset's row is) -- the dataset's own row when the benchmark is exactly one dataset;
* the **average** row (:func:`average_row`): the unweighted mean over benchmarks of each accuracy
  column (every benchmark counts once, whatever its size), as the paper's "average" column is.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping, Sequence
from typing import Any

from tempo_jax.eval.runner import EvalResult, markdown_table

ACCURACY_PREFIXES = ("avg@", "pass@", "maj@", "best@", "worst@")
AVERAGE = "average"
AVERAGE_NOTE = (
    "average = unweighted mean over the benchmarks of each accuracy column (each benchmark counts once, "
    "whatever its size), as in the paper's table; a benchmark's row is the mean over all its questions"
)


def benchmark_of(data_source: str) -> str:
    """``bbh/date_understanding`` -> ``bbh``; a data_source without ``/`` is its own benchmark."""
    return data_source.split("/", 1)[0]


def _is_accuracy(key: str) -> bool:
    return key.startswith(ACCURACY_PREFIXES)


def _sources(result: EvalResult) -> list[str | None]:
    return [q.get("data_source") for q in result.per_question]


def _question_metrics(questions: Sequence[dict], n: int) -> dict[str, Any]:
    """n_questions, n_samples (per question), avg@n and pass@k of a subset of a dataset's questions."""
    out: dict[str, Any] = {"n_questions": len(questions), "n_samples": n}
    out[f"avg@{n}"] = math.fsum(q["avg"] for q in questions) / len(questions)
    for key in questions[0]:
        if key.startswith("pass@"):
            out[key] = math.fsum(q[key] for q in questions) / len(questions)
    return out


def task_rows(name: str, result: EvalResult) -> dict[str, dict[str, Any]]:
    """``{data_source: metrics}`` of a dataset whose questions have several data_sources, else {}."""
    by_source: dict[str, list[dict]] = collections.defaultdict(list)
    for q, source in zip(result.per_question, _sources(result)):
        by_source[source or name].append(q)
    if len(by_source) < 2:
        return {}
    return {source: _question_metrics(qs, result.n) for source, qs in by_source.items()}


def _weighted(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Question-weighted means of the accuracy columns every row has; summed question counts (and
    the samples per question, when all rows have the same)."""
    sizes = [r.get("n_questions") or 0 for r in rows]
    total = sum(sizes)
    samples = {r.get("n_samples") for r in rows}
    out: dict[str, Any] = {"n_questions": total, "n_samples": samples.pop() if len(samples) == 1 else None}
    shared = [k for k in rows[0] if _is_accuracy(k) and all(k in r for r in rows)]
    for key in shared:
        out[key] = math.fsum(w * float(r[key]) for w, r in zip(sizes, rows)) / total if total else math.nan
    return out


def benchmark_rows(results: Mapping[str, EvalResult]) -> tuple[dict[str, dict], dict[str, dict]]:
    """(``{benchmark: metrics}``, ``{task: metrics}``) over the datasets, in the order given.

    A dataset whose questions all share one data_source is one unit (its own metrics); one with
    several is a unit per data_source (:func:`task_rows`). Units group by :func:`benchmark_of`.
    """
    units: dict[str, list[tuple[str, str, dict]]] = {}  # benchmark -> (dataset, task, metrics)
    tasks: dict[str, dict] = {}
    for name, res in results.items():
        split = task_rows(name, res)
        tasks.update(split)
        sources = {s for s in _sources(res) if s}
        own = next(iter(sources)) if len(sources) == 1 else name
        pieces = list(split.items()) if split else [(own, res.metrics)]
        for task, metrics in pieces:
            units.setdefault(benchmark_of(task), []).append((name, task, metrics))
    benches_of: dict[str, set[str]] = collections.defaultdict(set)  # dataset -> its benchmarks
    for bench, parts in units.items():
        for name, _, _ in parts:
            benches_of[name].add(bench)
    rows = {}
    for bench, parts in units.items():
        datasets = {name for name, _, _ in parts}
        whole = len(datasets) == 1 and benches_of[next(iter(datasets))] == {bench}  # exactly one dataset
        rows[bench] = dict(results[next(iter(datasets))].metrics) if whole else _weighted([m for _, _, m in parts])
    return rows, tasks


def average_row(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The unweighted mean over ``rows`` of each accuracy column all of them have (NaN-safe: a
    missing value makes the column's mean NaN)."""
    if not rows:
        return {}
    values = list(rows.values())
    shared = [k for k in values[0] if _is_accuracy(k) and all(k in r for r in values)]
    out: dict[str, Any] = {}
    for key in shared:
        column = [r[key] for r in values]
        ok = all(isinstance(v, (int, float)) and math.isfinite(v) for v in column)
        out[key] = math.fsum(column) / len(column) if ok else math.nan
    return out


def results_tables(results: Mapping[str, EvalResult]) -> tuple[list[str], dict[str, Any]]:
    """results.md's tables as markdown lines, and their rows for results.json.

    The dataset table (a row per dataset); a benchmark table when datasets merge into benchmarks
    (one file per BBH task, say); a task table when a dataset holds several tasks. The average row
    (two or more benchmarks) ends the benchmark table, or the dataset table when the benchmarks
    are the datasets.
    """
    benchmarks, tasks = benchmark_rows(results)
    merged = list(benchmarks) != list(results)
    average = average_row(benchmarks) if len(benchmarks) > 1 else {}
    main: dict[str, Mapping[str, Any]] = {k: r.metrics for k, r in results.items()}
    if average and not merged:
        main[AVERAGE] = average
    lines = [markdown_table(main), ""]
    if merged:
        rows: dict[str, Mapping[str, Any]] = dict(benchmarks)
        if average:
            rows[AVERAGE] = average
        lines += ["## Per benchmark", "", markdown_table(rows, label="benchmark"), ""]
    if tasks:
        lines += ["## Per task", "", markdown_table(tasks, label="task"), ""]
    return lines, {"benchmarks": benchmarks, "tasks": tasks, "average": average}
