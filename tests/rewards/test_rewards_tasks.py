"""The task registry: selection by data_source, mixed batches through the real pool, and every
task's adversarial answers graded wrong within the hard timeout (workers replaced when killed)."""

import json
import os
import time

import numpy as np
import pytest

from tempo_jax.rewards import Grader
from tempo_jax.rewards.tasks import DEFAULT_SOURCES, TASKS, Task, TaskMap, get_task, parse_sources, register_task
from tempo_jax.testing import grading_tasks

TIMEOUT_S = 1.5
MARGIN_S = 1.5  # kill + respawn bookkeeping on a loaded 2-core host
GRID_GOLD = json.dumps({"header": ["House", "Name", "Pet"], "rows": [["1", "Alice", "cat"], ["2", "Bob", "dog"]]})
GRID_RIGHT = (
    'Done.\n{"reasoning": "...", "solution": '
    '{"House 1": {"Name": "Alice", "Pet": "cat"}, "House 2": {"Name": "Bob", "Pet": "dog"}}}'
)
GRID_WRONG = GRID_RIGHT.replace('"dog"', '"fish"')


# ------------------------------------------------------------------------------ the registry


def test_built_in_tasks_are_registered():
    assert {"math", "multiple_choice", "exact_match", "logic_grid"} <= set(TASKS)
    with pytest.raises(ValueError, match="registered: .*exact_match.*logic_grid.*math.*multiple_choice"):
        get_task("essay")


def test_equivalent_must_be_module_level():
    with pytest.raises(ValueError, match="module-level"):
        register_task(Task("bad", str, lambda p, g, c=None: None, lambda p, g, c=None: True, str))
    assert "bad" not in TASKS


@pytest.mark.parametrize(
    "source,task",
    [
        ("bbh", "exact_match"),
        ("bbh_date_understanding", "exact_match"),
        ("BBH-boolean_expressions", "exact_match"),  # case-insensitive
        ("agieval_lsat_ar", "multiple_choice"),
        ("agieval/lsat-ar", "multiple_choice"),
        ("agieval/math", "math"),  # AGIEval's cloze tasks
        ("agieval/gaokao-mathcloze", "math"),
        ("bbh/date_understanding", "exact_match"),
        ("gpqa_diamond", "multiple_choice"),
        ("gpqa_diamond", "multiple_choice"),
        ("mmlu_pro", "multiple_choice"),
        ("zebralogic", "logic_grid"),
        ("aime24", "math"),
        ("math500", "math"),
        ("", "math"),
        (None, "math"),
    ],
)
def test_default_map(source, task):
    assert TaskMap().task_for(source) == task


def test_config_entries_extend_and_override_by_longest_prefix():
    m = TaskMap.from_config("agieval_math:math, my_quiz:multiple_choice,bbh_word:exact_match", default="exact_match")
    assert m.task_for("agieval_math_cloze") == "math"  # longer prefix than the built-in "agieval"
    assert m.task_for("agieval_sat_math") == "multiple_choice"
    assert m.task_for("my_quiz") == "multiple_choice"
    assert m.task_for("unknown_set") == "exact_match"  # the default task
    assert TaskMap.from_config({"zebralogic": "exact_match"}).task_for("zebralogic") == "exact_match"
    assert m.tasks_for(["bbh", "aime24"]) == ["exact_match", "exact_match"]


@pytest.mark.parametrize("spec", ["bbh", "bbh:", ":math", "bbh:essay"])
def test_bad_specs_name_the_problem(spec):
    with pytest.raises(ValueError, match="data_source:task|registered"):
        parse_sources(spec)
    with pytest.raises(ValueError):
        TaskMap.from_config("", default="essay")


def test_parse_sources():
    assert parse_sources("") == {} and parse_sources(None) == {}
    assert parse_sources(" BBH : exact_match ,, ") == {"bbh": "exact_match"}
    assert set(DEFAULT_SOURCES.values()) <= set(TASKS)


# ------------------------------------------------------------------------------ the pool


@pytest.fixture(scope="module")
def grader(tmp_path_factory):
    path = tmp_path_factory.mktemp("tasks")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(path)  # the workers' cwd: a `touch pwned` would land here
        with Grader(num_workers=2, timeout_s=TIMEOUT_S) as g:
            g.pool.wait_ready()
            yield g, path


def test_mixed_batch_each_row_by_its_own_task(grader):
    g, _ = grader
    rows = [
        ("so \\boxed{\\frac{1}{2}}", "0.5", "math", True),
        ("The answer is (B).", "B", "math", False),  # math wants a box
        ("The answer is (B).", "B", "multiple_choice", True),
        ("Answer: C", "(B)", "multiple_choice", False),
        ("So the answer is (A).", "(A)", "exact_match", True),
        ("So the answer is 3.0.", "3", "exact_match", True),
        (GRID_RIGHT, GRID_GOLD, "logic_grid", True),
        (GRID_WRONG, GRID_GOLD, "logic_grid", False),
        ("\\boxed{B}", "B", "math", True),
    ]
    responses, answers, tasks, expected = (list(c) for c in zip(*rows))
    assert g.grade(responses, answers, tasks).tolist() == expected
    assert g.outcome_rewards(responses, answers, tasks).tolist() == [1.0 if e else -1.0 for e in expected]
    sources = ["math500", "math500", "agieval_lsat", "gpqa", "bbh_date", "bbh_count", "zebralogic", "zebralogic", "x"]
    assert g.tasks_for(sources) == tasks
    assert g.grade(["The answer is (B)."], ["B"], "multiple_choice").tolist() == [True]
    assert g.grade(["The answer is (B)."], ["B"]).tolist() == [False]  # default: math
    with pytest.raises(ValueError, match="rows but"):
        g.grade(responses, answers, tasks[:-1])
    with pytest.raises(ValueError, match="registered"):
        g.grade(["x"], ["y"], "essay")


def test_same_strings_under_two_tasks_are_two_verdicts(grader):
    g, _ = grader
    got = g.equivalent_pairs([("(B)", "B"), ("(B)", "B")], ["math", "multiple_choice"])
    assert got[1] is True
    assert g.last_call_stats["distinct"] == 2


def _adversarial() -> list[str]:
    return [
        "x" * 10_000_000,  # 10 MB, no answer
        "The answer is " + "B" * 10_000_000,  # 10 MB on the answer line
        "{" * 10_000 + "[" * 10_000 + "(" * 10_000,  # unbalanced brackets
        "}" * 10_000 + "]" * 10_000,
        '{"solution": ' + '{"a":' * 100_000 + "1" + "}" * 100_001,  # 100k-deep JSON
        "[" * 100_000 + "]" * 100_000,
        '{"solution": {"House 1": ' + "[" * 20_000 + "]" * 20_000 + "}}",  # deep, but small enough for a worker
        "The answer is __import__('os').system('touch pwned')",
        "\\boxed{__import__('os').system('touch pwned')}",
        '{"solution": {"House 1": {"Name": "__import__(\'os\').system(\'touch pwned\')"}}}',
    ]


@pytest.mark.parametrize("task,gold", [("multiple_choice", "B"), ("exact_match", "True"), ("logic_grid", GRID_GOLD)])
def test_adversarial_answers_are_wrong_within_the_timeout(grader, task, gold):
    g, path = grader
    for response in _adversarial():
        t = time.perf_counter()
        assert g.grade([response], [gold], task).tolist() == [False], response[:60]
        assert time.perf_counter() - t < TIMEOUT_S + MARGIN_S, response[:60]
    t = time.perf_counter()
    assert not g.grade(_adversarial(), [gold] * len(_adversarial()), task).any()
    assert time.perf_counter() - t < TIMEOUT_S + MARGIN_S
    assert not (path / "pwned").exists() and not os.path.exists("pwned")
    assert g.pool.stats.crashes == 0
    assert g.grade([GRID_RIGHT, "Answer: B"], [GRID_GOLD, "B"], ["logic_grid", "multiple_choice"]).all()


def test_hard_timeout_and_memory_limit_hold_for_every_task(grader):
    """A task that never returns is killed at the hard timeout and its worker replaced; one that
    allocates past the workers' memory limit fails. The worker learns both tasks by importing the
    module that registers them."""
    g, _ = grader
    assert grading_tasks.HANG.module == "tempo_jax.testing.grading_tasks"
    before = dict(vars(g.pool.stats))
    pids = set(g.pool.pids)
    t = time.perf_counter()
    out = g.grade(["Answer: B", "Answer: B", "Answer: B"], ["B"] * 3, ["test_hang", "test_hog", "multiple_choice"])
    assert out.tolist() == [False, False, True]
    assert time.perf_counter() - t < TIMEOUT_S + MARGIN_S
    assert g.pool.stats.timeouts - before["timeouts"] == 1
    assert g.pool.stats.task_errors - before["task_errors"] == 1  # MemoryError under RLIMIT_AS
    deadline = time.monotonic() + 60
    while len(g.pool.pids) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pids - set(g.pool.pids)) == 1  # exactly the hung worker was replaced
    assert g.grade([GRID_RIGHT], [GRID_GOLD], "logic_grid").tolist() == [True]


def test_inprocess_mode_grades_every_task():
    g = Grader(mode="inprocess")
    out = g.grade(
        [GRID_RIGHT, GRID_WRONG, "So the answer is valid."],
        [GRID_GOLD, GRID_GOLD, "valid"],
        ["logic_grid", "logic_grid", "exact_match"],
    )
    assert out.dtype == np.bool_ and out.tolist() == [True, False, True]
