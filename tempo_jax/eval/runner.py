"""Evaluation runner written against callables (the model-driven sampler is plugged in by the caller).

``evaluate(questions, sample_fn, grader_fn, n=16)``:

* ``questions``: records with ``id``, ``answer`` and ``problem`` (or a ready ``prompt``).
* ``sample_fn(prompts: list[str], n) -> list[list[{"text", "length", "finish_reason"}]]``,
  n samples per prompt (the reference evaluates with T=1.0, top_p=1.0, n=16). A sample may
  also carry ``"value"`` (V_T) if the sampler computes it.
* ``grader_fn(responses: list[str], answers: list[str]) -> (correct bool array, extracted)``,
  called once per chunk on the flattened samples; one marked ``takes_data_sources`` (as
  ``model_eval.make_grader_fn``'s is) also gets ``data_sources=`` (each row's question's).
* ``value_fn(prompts: list[str], responses: list[list[str]]) -> [Q][n] values`` (optional).

The returned :class:`EvalResult` holds every sample, per-question statistics and the
dataset metrics of :func:`tempo_jax.eval.metrics.summarize`; ``write(out_dir, name)``
writes ``<name>_samples.jsonl``, ``<name>_results.md``, ``<name>_summary.json`` and
``<name>_pass_at_k.png``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tempo_jax import storage
from tempo_jax.data.templates import render_prompt
from tempo_jax.eval import metrics as M
from tempo_jax.eval import plots

SampleFn = Callable[[list, int], list]
GraderFn = Callable[..., tuple]  # (responses, answers[, data_sources=]) -> (correct, extracted)


def json_safe(x: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


_PCT = ("avg@", "pass@", "maj@", "best@", "worst@")


def _fmt(key: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if key.startswith(_PCT):
        return f"{100.0 * v:.1f}"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def default_columns(metrics: Mapping[str, Any]) -> list[str]:
    """Compact paper columns: avg@n, pass@k (k >= 2), maj@(largest k), distinct answers, length,
    answer-frequency and critic AUROCs (within questions) and ECE when present. Everything else
    stays in the JSON summary."""
    keys = list(metrics)
    cols = ["n_questions", "n_samples"] + [k for k in keys if k.startswith("avg@")]
    cols += [k for k in keys if k.startswith("pass@") and k != "pass@1"]
    maj = [k for k in keys if k.startswith("maj@")]
    cols += maj[-1:]
    cols += [
        k
        for k in (
            "distinct_answers",
            "no_answer_frac",
            "length/mean",
            "frequency/auroc_within",
            "critic/auroc",
            "critic/auroc_within",
            "critic/ece",
        )
        if k in metrics
    ]
    return cols


def markdown_table(
    rows: Mapping[str, Mapping[str, Any]], columns: Sequence[str] | None = None, *, label: str = "dataset"
) -> str:
    """``{dataset: metrics}`` -> a markdown table (accuracy-like columns in %); ``label`` heads the name column."""
    if columns is None:
        seen: dict[str, None] = {}
        for m in rows.values():
            for k in default_columns(m):
                seen.setdefault(k, None)
        columns = list(seen)
    head = f"| {label} | " + " | ".join(columns) + " |"
    sep = "|---|" + "---:|" * len(columns)
    body = ["| " + name + " | " + " | ".join(_fmt(c, m.get(c)) for c in columns) + " |" for name, m in rows.items()]
    return "\n".join([head, sep, *body])


@dataclasses.dataclass
class EvalResult:
    dataset: str | None
    n: int
    ks: tuple[int, ...]
    samples: list[dict]  # one row per sample (question_id, sample, response, extracted, ...)
    per_question: list[dict]
    metrics: dict[str, Any]
    seconds: float = 0.0

    @property
    def pass_at_k(self) -> dict[int, float]:
        return {int(k.split("@")[1]): v for k, v in self.metrics.items() if k.startswith("pass@")}

    def flat_metrics(self, prefix: str | None = None) -> dict[str, Any]:
        """Metrics keyed ``eval/<dataset>/<metric>`` (the trainer's metrics-JSONL convention)."""
        prefix = f"eval/{self.dataset or 'eval'}/" if prefix is None else prefix
        return {prefix + k: v for k, v in self.metrics.items()}

    def to_markdown(self, dataset_name: str | None = None) -> str:
        name = dataset_name or self.dataset or "eval"
        lines = [f"## {name}", "", markdown_table({name: self.metrics}), ""]
        fin = {k[len("finish/") :]: v for k, v in self.metrics.items() if k.startswith("finish/")}
        extra = []
        if fin:
            extra.append("finish reasons: " + ", ".join(f"{k} {v}" for k, v in fin.items()))
        ln = [f"{k.split('/')[1]} {_fmt(k, self.metrics[k])}" for k in self.metrics if k.startswith("length/")]
        if ln:
            extra.append("response length (tokens): " + ", ".join(ln))
        crit = [f"{k.split('/')[1]} {_fmt(k, self.metrics[k])}" for k in self.metrics if k.startswith("critic/")]
        if crit:
            extra.append("critic: " + ", ".join(crit))
        mb = [f"{k} {_fmt(k, v)}" for k, v in self.metrics.items() if k.startswith(("maj@", "best@", "worst@"))]
        if mb:
            extra.append("maj/best/worst@k (%): " + ", ".join(mb))
        extra.append(
            f"n={self.n} samples per question; accuracy columns in %; avg@n = pass@1; pass@k unbiased; "
            "maj@k/best@k/worst@k are expectations over k draws with replacement (see tempo_jax.eval.metrics)"
        )
        return "\n".join(lines + [f"- {e}" for e in extra]) + "\n"

    def write(
        self, out_dir: str | os.PathLike, dataset_name: str | None = None, *, plot: bool = True
    ) -> dict[str, storage.Path]:
        name = dataset_name or self.dataset or "eval"
        out = storage.as_path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "samples": out / f"{name}_samples.jsonl",
            "table": out / f"{name}_results.md",
            "summary": out / f"{name}_summary.json",
        }
        with paths["samples"].open("w", encoding="utf-8") as f:
            for s in self.samples:
                f.write(json.dumps(json_safe(s), ensure_ascii=False) + "\n")
        paths["table"].write_text(self.to_markdown(name), encoding="utf-8")
        summary = {
            "dataset": name,
            "n": self.n,
            "ks": list(self.ks),
            "seconds": self.seconds,
            "metrics": self.metrics,
            "per_question": self.per_question,
        }
        paths["summary"].write_text(json.dumps(json_safe(summary), indent=1, ensure_ascii=False), encoding="utf-8")
        if plot and self.pass_at_k:
            paths["pass_at_k_png"] = plots.plot_pass_at_k(
                {name: self.pass_at_k}, out / f"{name}_pass_at_k.png", title=f"{name}: pass@k (n={self.n})"
            )
        return paths


def _default_prompt(q: dict) -> str:
    if isinstance(q.get("prompt"), str):
        return q["prompt"]

    return render_prompt(q["problem"], "plain")


def _check_questions(questions: Sequence[dict]) -> None:
    if not questions:
        raise ValueError("evaluate: no questions")
    for i, q in enumerate(questions):
        for key in ("id", "answer"):
            if not isinstance(q.get(key), str):
                raise ValueError(f"evaluate: question {i} needs a string {key!r}, got {q.get(key)!r}")
        if not isinstance(q.get("problem"), str) and not isinstance(q.get("prompt"), str):
            raise ValueError(f"evaluate: question {i} ({q['id']}) has neither 'problem' nor 'prompt'")


def _check_samples(questions: Sequence[dict], out: Sequence, n: int) -> None:
    """``sample_fn``'s answer for a chunk: n dicts with a string ``text`` and a ``length`` per question."""
    if len(out) != len(questions):
        raise ValueError(f"sample_fn returned {len(out)} lists for {len(questions)} prompts")
    for q, samples in zip(questions, out):
        if len(samples) != n:
            raise ValueError(f"sample_fn returned {len(samples)} samples for question {q['id']}, expected n={n}")
        for j, s in enumerate(samples):
            if not isinstance(s, Mapping) or not isinstance(s.get("text"), str) or s.get("length") is None:
                raise ValueError(
                    f"sample {j} of question {q['id']} must be a dict with a string 'text' "
                    f"and an integer 'length' (response tokens), got {s!r:.120}"
                )


def _sample_rows(questions, texts, extracted, correct, lengths, finish, values, ks) -> tuple[list, list]:
    """(one row per sample, one row per question with its pass@k) for the samples and results files."""
    n = correct.shape[1]
    samples, per_question = [], []
    for qi, q in enumerate(questions):
        for j in range(n):
            samples.append(
                {
                    "question_id": q["id"],
                    "sample": j,
                    "answer": q["answer"],
                    "response": texts[qi][j],
                    "extracted": extracted[qi][j],
                    "correct": bool(correct[qi, j]),
                    "length": lengths[qi][j],
                    "finish_reason": finish[qi][j],
                    "value": float(values[qi][j]) if values is not None else None,
                }
            )
        c = int(correct[qi].sum())
        pq = {
            "id": q["id"],
            "answer": q["answer"],
            "n_correct": c,
            "avg": c / n,
            "distinct_answers": M.distinct_answers(extracted[qi]),
        }
        if isinstance(q.get("data_source"), str):  # the benchmark/task, for per-task tables (eval/tables.py)
            pq["data_source"] = q["data_source"]
        pq.update({f"pass@{k}": M.pass_at_k(n, c, k) for k in ks if k <= n})
        per_question.append(pq)
    return samples, per_question


def evaluate(
    questions: Sequence[dict],
    sample_fn: SampleFn,
    grader_fn: GraderFn,
    *,
    n: int = 16,
    value_fn: Callable | None = None,
    ks: Sequence[int] = M.DEFAULT_KS,
    prompt_fn: Callable[[dict], str] | None = None,
    chunk_size: int | None = None,
    dataset_name: str | None = None,
    method: str = "exact",
) -> EvalResult:
    """Sample n responses per question, grade them and compute the metrics (module docstring).

    ``prompt_fn(question) -> str`` builds prompts (default: the question's ``prompt`` field,
    else the plain template with the boxed instruction); ``chunk_size`` questions are sampled
    and graded per call (default: all at once).
    """
    _check_questions(questions)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    t0 = time.perf_counter()
    prompt_fn = prompt_fn or _default_prompt
    chunk = chunk_size or len(questions)
    texts, lengths, finish, correct, extracted, values = [], [], [], [], [], []
    has_values = value_fn is not None
    for start in range(0, len(questions), chunk):
        qs = questions[start : start + chunk]
        prompts = [prompt_fn(q) for q in qs]
        out = sample_fn(prompts, n)
        _check_samples(qs, out, n)
        c_texts, c_len, c_fin, c_val = [], [], [], []
        for samples in out:
            c_texts.append([s["text"] for s in samples])
            c_len.append([int(s["length"]) for s in samples])
            c_fin.append([str(s.get("finish_reason", "unknown")) for s in samples])
            c_val.append([s.get("value") for s in samples])
        flat = [t for row in c_texts for t in row]
        answers = [q["answer"] for q in qs for _ in range(n)]
        if getattr(grader_fn, "takes_data_sources", False):  # grade each row by its data_source's task
            ok, ext = grader_fn(flat, answers, data_sources=[q.get("data_source") for q in qs for _ in range(n)])
        else:
            ok, ext = grader_fn(flat, answers)
        ok = np.asarray(ok, dtype=bool).reshape(-1)
        ext = list(ext)
        if len(ok) != len(flat) or len(ext) != len(flat):
            raise ValueError(f"grader_fn returned {len(ok)} correct / {len(ext)} extracted for {len(flat)} responses")
        if value_fn is not None:
            v = np.asarray(value_fn(prompts, c_texts), dtype=np.float64)
            if v.shape != (len(qs), n):
                raise ValueError(f"value_fn returned shape {v.shape}, expected {(len(qs), n)}")
            c_val = v.tolist()
        elif start == 0:
            has_values = all(x is not None for row in c_val for x in row)
        elif has_values and any(x is None for row in c_val for x in row):
            raise ValueError("sample_fn gave 'value' for some chunks but not others")
        texts += c_texts
        lengths += c_len
        finish += c_fin
        values += c_val
        correct += [ok[i * n : (i + 1) * n] for i in range(len(qs))]
        extracted += [ext[i * n : (i + 1) * n] for i in range(len(qs))]

    correct_arr = np.stack(correct)
    summary = M.summarize(
        correct_arr,
        extracted,
        lengths=lengths,
        finish_reasons=finish,
        values=values if has_values else None,
        ks=ks,
        method=method,
    )
    samples, per_question = _sample_rows(
        questions, texts, extracted, correct_arr, lengths, finish, values if has_values else None, ks
    )
    return EvalResult(
        dataset=dataset_name,
        n=n,
        ks=tuple(k for k in ks if k <= n),
        samples=samples,
        per_question=per_question,
        metrics=summary,
        seconds=time.perf_counter() - t0,
    )


def write_results_table(results: Mapping[str, EvalResult], where: str | os.PathLike) -> storage.Path:
    """One markdown table over several datasets (rows) -- the paper table."""
    path = storage.as_path(where)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown_table({k: r.metrics for k, r in results.items()}) + "\n", encoding="utf-8")
    return path
