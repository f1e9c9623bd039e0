"""results.md / results.json over several benchmarks: per-task rows of a dataset holding several
tasks (BBH's bbh/<task>), benchmarks merged from several datasets, and the unweighted average."""

import json
import math

import numpy as np
import pytest

from tempo_jax.eval.model_eval import write_combined
from tempo_jax.eval.runner import evaluate
from tempo_jax.eval.tables import AVERAGE_NOTE, average_row, benchmark_of, benchmark_rows

N = 4


def _result(name: str, questions: list[tuple[str, int]]):
    """An EvalResult whose question i (data_source, k) gets k of N samples right."""
    qs = [
        {"id": f"{name}-{i}", "problem": str(k), "answer": "1", "data_source": s} for i, (s, k) in enumerate(questions)
    ]

    def sample_fn(prompts, n):
        return [[{"text": "1" if j < int(p) else "0", "length": 1} for j in range(n)] for p in prompts]

    def grader_fn(responses, answers):
        return np.array([r == a for r, a in zip(responses, answers)]), list(responses)

    return evaluate(qs, sample_fn, grader_fn, n=N, ks=(1, 2, 4), prompt_fn=lambda q: q["problem"], dataset_name=name)


@pytest.fixture
def results():
    return {
        "bbh": _result("bbh", [("bbh/boolean_expressions", 4), ("bbh/boolean_expressions", 0), ("bbh/navigate", 2)]),
        "agieval": _result("agieval", [("agieval/lsat-ar", 1)]),
        "zebralogic": _result("zebralogic", [("zebralogic", 4), ("zebralogic", 0)]),
    }


def test_tasks_benchmarks_and_the_unweighted_average(results, tmp_path):
    assert benchmark_of("bbh/navigate") == "bbh" and benchmark_of("zebralogic") == "zebralogic"
    assert results["bbh"].per_question[2]["data_source"] == "bbh/navigate"
    benchmarks, tasks = benchmark_rows(results)
    assert list(benchmarks) == ["bbh", "agieval", "zebralogic"]
    assert benchmarks["bbh"] == results["bbh"].metrics  # one dataset: its own row, every column
    assert tasks["bbh/boolean_expressions"]["avg@4"] == pytest.approx(0.5)
    assert tasks["bbh/navigate"] == pytest.approx(
        {
            "n_questions": 1,
            "n_samples": 4,
            "avg@4": 0.5,
            "pass@1": 0.5,
            "pass@2": 5 / 6,
            "pass@4": 1.0,
        }
    )
    average = average_row(benchmarks)
    # BBH 6/12 = 0.5, AGIEval 0.25, ZebraLogic 0.5: each benchmark counts once (not 11/24 over questions)
    assert average["avg@4"] == pytest.approx((0.5 + 0.25 + 0.5) / 3)
    assert average["maj@4"] == pytest.approx(np.mean([benchmarks[b]["maj@4"] for b in benchmarks]))

    write_combined(results, tmp_path, {"n": N}, plot=False)
    table = (tmp_path / "results.md").read_text()
    assert "## Per benchmark" not in table  # the benchmarks are the datasets
    main, task_table = table.split("## Per task")
    assert main.count("\n| average | – | – | 41.7 |") == 1
    assert "| task |" in task_table and "| bbh/navigate | 1 | 4 | 50.0 |" in task_table
    assert "| agieval/lsat-ar |" not in task_table  # one task: the dataset row says it all
    assert f"- {AVERAGE_NOTE}" in table
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["average"]["avg@4"] == pytest.approx(average["avg@4"])
    assert set(doc["benchmarks"]) == {"bbh", "agieval", "zebralogic"} and set(doc["tasks"]) == set(tasks)


def test_one_file_per_task_is_merged_into_its_benchmark(tmp_path):
    results = {
        "boolean_expressions": _result("boolean_expressions", [("bbh/boolean_expressions", 4)] * 3),
        "navigate": _result("navigate", [("bbh/navigate", 0)]),
        "math500": _result("math500", [("math500", 2)] * 2),
    }
    benchmarks, tasks = benchmark_rows(results)
    assert list(benchmarks) == ["bbh", "math500"] and not tasks
    assert benchmarks["bbh"]["n_questions"] == 4 and benchmarks["bbh"]["avg@4"] == pytest.approx(0.75)  # by size
    write_combined(results, tmp_path, {"n": N}, plot=False)
    table = (tmp_path / "results.md").read_text()
    main, merged = table.split("## Per benchmark")
    assert "| average |" not in main and "| benchmark |" in merged
    assert "| bbh | 4 | 4 | 75.0 |" in merged and "| average | – | – | 62.5 |" in merged


def test_one_dataset_has_no_average_and_nan_stays_nan(tmp_path):
    only = {"aime24": _result("aime24", [("aime24", 1)])}
    write_combined(only, tmp_path, {"n": N}, plot=False)
    assert "average" not in (tmp_path / "results.md").read_text()
    assert math.isnan(average_row({"a": {"avg@4": 0.5}, "b": {"avg@4": math.nan}})["avg@4"])
    assert average_row({"a": {"avg@4": 0.5, "pass@8": 1.0}, "b": {"avg@4": 0.7}}) == {"avg@4": pytest.approx(0.6)}
