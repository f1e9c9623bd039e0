"""Rewards: answer extraction, the rule-based grader (process pool), TTRL voting, EMPO entropy.

Grading tasks (``math``, ``multiple_choice``, ``exact_match``, ``logic_grid``) are registered in
:mod:`tempo_jax.rewards.tasks` and chosen per row by its ``data_source`` (``TaskMap``).

Pure: never imports a model or JAX. Attributes load lazily so grading workers, which import
this package, only pay for what they use (no numpy there; sympy/math-verify only in workers).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "extract_boxed": "extract",
    "strip_boxed": "extract",
    "extract_answers": "extract",
    "normalize_answer": "normalize",
    "is_degenerate": "normalize",
    "EquivalenceConfig": "equivalence",
    "is_equivalent": "equivalence",
    "quick_verdict": "equivalence",
    "GradingPool": "pool",
    "Grader": "grader",
    "ttrl_rewards": "voting",
    "cluster_answers": "voting",
    "majority_correct": "voting",
    "VoteResult": "voting",
    "Clustering": "voting",
    "empo_rewards": "entropy",
    "EntropyResult": "entropy",
    "semantic_entropy": "entropy",
    "Task": "tasks",
    "TASKS": "tasks",
    "TaskMap": "tasks",
    "register_task": "tasks",
    "get_task": "tasks",
    "task_names": "tasks",
    "cell_accuracy": "logic_grid",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tempo_jax.rewards' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tempo_jax.rewards.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
