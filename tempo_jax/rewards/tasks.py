"""Grading tasks: a registry of answer conventions, chosen per row by the row's ``data_source``.

A :class:`Task` says how to read a response's final answer and how to compare it with a gold one:

* ``extract(response) -> str | None``: the answer, by the benchmark's published convention;
* ``quick_verdict(pred, gold, config) -> bool | None``: cheap decisions, in the calling process
  (None: ask a worker);
* ``equivalent(pred, gold, config) -> bool``: the full check, run in a grading-pool worker
  (a module-level function, pickled by name; it never raises);
* ``canonical(pred) -> str``: the key of exact-mode TTRL votes ("" for no answer);
* ``gold(answer) -> str``: a row's gold answer as graded.

``config`` is the grader's :class:`~tempo_jax.rewards.equivalence.EquivalenceConfig` (only
``math`` reads it). Registered tasks:

=================== ===================================================================
``math``            last ``\\boxed{}`` → the equivalence cascade (:mod:`.equivalence`)
``multiple_choice`` the chosen option letter A-J (:mod:`.choice`: AGIEval, GPQA, MMLU)
``exact_match``     normalised final answer after "the answer is" (:mod:`.exact_match`: BBH)
``logic_grid``      a JSON solution table, all cells right (:mod:`.logic_grid`: ZebraLogic)
=================== ===================================================================

Every task's answers share the one grading pool: its workers run :func:`equivalent_in_worker`,
which takes the task's name, so process isolation, the hard per-answer timeout and the memory
limit hold for all of them. A task registered outside this package must be registered when its
module is imported (a worker that does not know the name imports ``Task.module``).

Which task grades a row (:class:`TaskMap`): its ``data_source`` (verl's convention; the file stem
by default) is looked up case-insensitively among the map's keys: an exact key wins, otherwise the
longest key that the data_source starts with (``bbh`` matches ``bbh_date_understanding``),
otherwise the default task (``math``). The built-in keys (:data:`DEFAULT_SOURCES`) are extended
and overridden by the config's ``grader.tasks`` (``"bbh:exact_match,my_set:multiple_choice"`` or a
mapping); ``grader.default_task`` names the fallback.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tempo_jax.rewards import choice, exact_match, logic_grid
from tempo_jax.rewards import equivalence as _eq
from tempo_jax.rewards.extract import extract_boxed, strip_boxed
from tempo_jax.rewards.normalize import normalize_answer

DEFAULT_TASK = "math"
WORKER_FN = "tempo_jax.rewards.tasks:equivalent_in_worker"  # the pool's task function


@dataclasses.dataclass(frozen=True)
class Task:
    """One answer convention (see the module docstring for each field's contract)."""

    name: str
    extract: Callable[[str | None], str | None]
    quick_verdict: Callable[..., bool | None]
    equivalent: Callable[..., bool]
    canonical: Callable[[str], str]
    gold: Callable[[str], str] = str.strip
    description: str = ""

    @property
    def module(self) -> str:
        """The module that defines (and registers) the task's worker-side check."""
        return self.equivalent.__module__


TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add ``task`` to :data:`TASKS` (a second task of the same name replaces the first).

    ``task.equivalent`` must be a module-level function (the workers find it by name)."""
    fn = task.equivalent
    module = importlib.import_module(fn.__module__)
    if getattr(module, fn.__qualname__, None) is not fn:
        raise ValueError(f"task {task.name!r}: equivalent must be a module-level function, got {fn!r}")
    TASKS[task.name] = task
    return task


def task_names() -> tuple[str, ...]:
    return tuple(sorted(TASKS))


def get_task(name: str) -> Task:
    task = TASKS.get(name)
    if task is None:
        raise ValueError(f"unknown grading task {name!r}; registered: {', '.join(task_names())}")
    return task


def expand_tasks(tasks: str | Iterable[str] | None, n: int, unit: str = "rows") -> list[str]:
    """``tasks`` (None = math, one name, or one per item) as ``n`` registered task names
    (ValueError for an unknown name or a wrong count)."""
    if tasks is None:
        return [DEFAULT_TASK] * n
    if isinstance(tasks, str):
        get_task(tasks)
        return [tasks] * n
    names = list(tasks)
    if len(names) != n:
        raise ValueError(f"{n} {unit} but {len(names)} tasks")
    for name in set(names):
        get_task(name)
    return names


def equivalent_in_worker(task: str, module: str, pred: str, gold: str, config: Any = None) -> bool:
    """The pool's function: ``task``'s ``equivalent`` (``module`` registers it when unknown here)."""
    if task not in TASKS and module:
        importlib.import_module(module)
    return get_task(task).equivalent(pred, gold, config)


def _math_quick_verdict(pred: str, gold: str, config: Any = None) -> bool | None:
    return _eq.quick_verdict(pred, gold, config or _eq.DEFAULT_CONFIG)


def _math_equivalent(pred: str, gold: str, config: Any = None) -> bool:
    return _eq.is_equivalent(pred, gold, config or _eq.DEFAULT_CONFIG)


register_task(
    Task("math", extract_boxed, _math_quick_verdict, _math_equivalent, normalize_answer, strip_boxed, "\\boxed{} maths")
)
for _module, _name, _what in (
    (choice, "multiple_choice", "option letter (AGIEval, GPQA, MMLU)"),
    (exact_match, "exact_match", "normalised exact match (BIG-Bench Hard)"),
    (logic_grid, "logic_grid", "JSON solution grid (ZebraLogic)"),
):
    register_task(
        Task(_name, _module.extract, _module.quick_verdict, _module.equivalent, _module.canonical, str.strip, _what)
    )

# ------------------------------------------------------------------------ data_source -> task

# Built-in prefixes; the config's grader.tasks extends and overrides them.
DEFAULT_SOURCES: dict[str, str] = {
    "bbh": "exact_match",
    "agieval": "multiple_choice",
    "agieval/math": "math",  # AGIEval's cloze tasks are maths answers
    "agieval/gaokao-mathcloze": "math",
    "gpqa": "multiple_choice",
    "mmlu": "multiple_choice",
    "zebra": "logic_grid",
}


def parse_sources(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"bbh:exact_match, agieval:multiple_choice"`` (or a mapping) as ``{data_source: task}``.

    Keys are lower-cased; an empty spec is an empty map. Raises ValueError for a malformed entry
    or an unknown task (the message lists the registered ones)."""
    if not spec:
        return {}
    if isinstance(spec, str):
        items = []
        for entry in spec.split(","):
            if not entry.strip():
                continue
            source, sep, task = entry.rpartition(":")
            if not sep or not source.strip() or not task.strip():
                raise ValueError(f"grader task entry {entry.strip()!r} is not 'data_source:task'")
            items.append((source, task))
    else:
        items = list(spec.items())
    out = {}
    for source, task in items:
        get_task(str(task).strip())
        out[str(source).strip().lower()] = str(task).strip()
    return out


@dataclasses.dataclass(frozen=True)
class TaskMap:
    """``data_source`` → task name (the rule: the module docstring)."""

    sources: Mapping[str, str] = dataclasses.field(default_factory=lambda: dict(DEFAULT_SOURCES))
    default: str = DEFAULT_TASK

    def __post_init__(self):
        get_task(self.default)
        for task in self.sources.values():
            get_task(task)

    @classmethod
    def from_config(cls, tasks: str | Mapping[str, str] | None = "", default: str = DEFAULT_TASK) -> TaskMap:
        """The built-in prefixes, extended and overridden by ``tasks`` (config ``grader.tasks``)."""
        return cls({**DEFAULT_SOURCES, **parse_sources(tasks)}, default or DEFAULT_TASK)

    def task_for(self, data_source: str | None) -> str:
        source = (data_source or "").strip().lower()
        if source in self.sources:
            return self.sources[source]
        best = ""
        for key in self.sources:
            if key and source.startswith(key) and len(key) > len(best):
                best = key
        return self.sources[best] if best else self.default

    def tasks_for(self, data_sources: Iterable[str | None]) -> list[str]:
        return [self.task_for(s) for s in data_sources]
