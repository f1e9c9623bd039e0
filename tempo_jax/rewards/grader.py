"""Public grading API: answer extraction + each task's equivalence check in a process pool.

    with Grader(num_workers=2, timeout_s=5.0) as g:
        correct = g.grade(responses, answers)          # np.ndarray[bool], task "math"
        rewards = g.outcome_rewards(responses, answers)  # +1 / -1 float32 (spec §1.2 step 3)
        tasks = g.tasks_for(data_sources)              # per row, by data_source (TaskMap)
        correct = g.grade(responses, answers, tasks)   # each row graded by its own task

Each row's task (:mod:`tempo_jax.rewards.tasks`; default ``math``: last ``\\boxed{}`` → the
equivalence cascade) extracts its answer and decides cheap verdicts (for math: empty/degenerate
answers, equal normalised strings, two different integers) in the calling process; everything
else goes to the one pool, once per distinct (task, pred, gold) of the call.
``mode="inprocess"`` runs the checks in this process (soft signal timeouts only, main thread
only): for tiny unit tests and debugging, not for training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from tempo_jax.rewards import equivalence as _eq
from tempo_jax.rewards.pool import GradingPool
from tempo_jax.rewards.tasks import WORKER_FN, TaskMap, expand_tasks, get_task

Pair = tuple[str, str]
Tasks = str | Sequence[str] | None  # one task for every row, one per row, or None (math)


class Grader:
    """Rule-based grader (spec §3.3), the same for every method.

    Args:
      num_workers: pool size (2 on the shared CPU hosts).
      timeout_s: hard wall-clock limit per (pred, gold) pair; a pair over it is wrong and its
        worker is replaced. The in-worker soft budget is ``soft_timeout_frac * timeout_s``
        (the timeout layers and what each is for: :mod:`tempo_jax.rewards.pool`).
      mode: ``"pool"`` (default) or ``"inprocess"``.
      config: cascade knobs (:class:`~tempo_jax.rewards.equivalence.EquivalenceConfig`);
        its ``soft_timeout_s`` is overridden from ``timeout_s`` unless ``keep_soft_timeout``.
      start_method: pool start method (default forkserver, else spawn).
      task_map: ``data_source`` → task for :meth:`tasks_for` (default: the built-in prefixes).
    """

    def __init__(
        self,
        num_workers: int = 2,
        timeout_s: float = 5.0,
        *,
        mode: str = "pool",
        config: _eq.EquivalenceConfig | None = None,
        soft_timeout_frac: float = 0.8,
        keep_soft_timeout: bool = False,
        start_method: str | None = None,
        memory_limit_mb: int | None = 4096,
        task_map: TaskMap | None = None,
    ):
        if mode not in ("pool", "inprocess"):
            raise ValueError(f"mode must be 'pool' or 'inprocess', got {mode!r}")
        config = config or _eq.EquivalenceConfig()
        if not keep_soft_timeout:
            config = dataclasses.replace(config, soft_timeout_s=soft_timeout_frac * timeout_s)
        self.config = config
        self.mode = mode
        self.timeout_s = timeout_s
        self.task_map = task_map or TaskMap()
        self.last_call_stats: dict[str, int] = {}
        self._pool: GradingPool | None = None
        if mode == "pool":
            self._pool = GradingPool(
                num_workers=num_workers, timeout_s=timeout_s, start_method=start_method, memory_limit_mb=memory_limit_mb
            )

    # ------------------------------------------------------------------------------ the API
    def equivalent_pairs(self, pairs: Iterable[Pair], tasks: Tasks = None) -> list[bool]:
        """Is each ``pred`` equivalent to its ``gold`` under its task (default math)? Repeated
        (task, pred, gold) triples are graded once."""
        pairs = [(p or "", g or "") for p, g in pairs]
        names = expand_tasks(tasks, len(pairs))
        keyed = [(t, p, g) for t, (p, g) in zip(names, pairs)]
        verdict: dict[tuple[str, str, str], bool] = {}
        todo: list[tuple[str, str, str]] = []
        for key in dict.fromkeys(keyed):
            quick = get_task(key[0]).quick_verdict(key[1], key[2], self.config)
            if quick is None:
                todo.append(key)
            else:
                verdict[key] = quick
        if todo:
            if self._pool is not None:
                items = [(t, get_task(t).module, p, g) for t, p, g in todo]
                out = self._pool.map(items, fn=WORKER_FN, kwargs={"config": self.config}, on_failure=False)
            else:
                out = [get_task(t).equivalent(p, g, self.config) for t, p, g in todo]
            verdict.update(zip(todo, (x is True for x in out)))
        self.last_call_stats = {"pairs": len(pairs), "distinct": len(verdict), "sent_to_workers": len(todo)}
        return [verdict[k] for k in keyed]

    def grade(self, responses: Sequence[str], answers: Sequence[str], tasks: Tasks = None) -> np.ndarray:
        """Boolean correctness of each response's answer (its task's ``extract``; math: the last
        boxed one) against its gold answer. ``tasks``: one name for all rows, one per row, or None
        (math)."""
        if len(responses) != len(answers):
            raise ValueError(f"{len(responses)} responses but {len(answers)} answers")
        names = expand_tasks(tasks, len(responses))
        preds = [get_task(t).extract(r) or "" for t, r in zip(names, responses)]
        golds = [get_task(t).gold(a or "") for t, a in zip(names, answers)]
        return np.asarray(self.equivalent_pairs(zip(preds, golds), names), dtype=bool)

    def outcome_rewards(self, responses: Sequence[str], answers: Sequence[str], tasks: Tasks = None) -> np.ndarray:
        """+1.0 for a correct response, -1.0 otherwise (float32)."""
        return np.where(self.grade(responses, answers, tasks), 1.0, -1.0).astype(np.float32)

    def tasks_for(self, data_sources: Iterable[str | None]) -> list[str]:
        """Each row's task name, from its ``data_source`` (:class:`~tempo_jax.rewards.tasks.TaskMap`)."""
        return self.task_map.tasks_for(data_sources)

    # ------------------------------------------------------------------------------ plumbing
    @property
    def pool(self) -> GradingPool | None:
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Grader(mode={self.mode!r}, timeout_s={self.timeout_s}, pool={self._pool!r})"
