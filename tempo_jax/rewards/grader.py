"""Public grading API: boxed-answer extraction + the equivalence cascade in a process pool.

    with Grader(num_workers=2, timeout_s=5.0) as g:
        correct = g.grade(responses, answers)          # np.ndarray[bool]
        rewards = g.outcome_rewards(responses, answers)  # +1 / -1 float32 (spec §1.2 step 3)

Cheap verdicts (empty/degenerate answers, equal normalised strings, two different integers) are
made in the calling process; everything else goes to the pool, once per distinct (pred, gold)
pair of the call. ``mode="inprocess"`` runs the cascade in this process (soft signal timeouts
only, main thread only): for tiny unit tests and debugging, not for training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from tempo_jax.rewards import equivalence as _eq
from tempo_jax.rewards.extract import extract_boxed, strip_boxed
from tempo_jax.rewards.pool import GradingPool

Pair = tuple[str, str]


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
    ):
        if mode not in ("pool", "inprocess"):
            raise ValueError(f"mode must be 'pool' or 'inprocess', got {mode!r}")
        config = config or _eq.EquivalenceConfig()
        if not keep_soft_timeout:
            config = dataclasses.replace(config, soft_timeout_s=soft_timeout_frac * timeout_s)
        self.config = config
        self.mode = mode
        self.timeout_s = timeout_s
        self.last_call_stats: dict[str, int] = {}
        self._pool: GradingPool | None = None
        if mode == "pool":
            self._pool = GradingPool(
                num_workers=num_workers, timeout_s=timeout_s, start_method=start_method, memory_limit_mb=memory_limit_mb
            )

    # ------------------------------------------------------------------------------ the API
    def equivalent_pairs(self, pairs: Iterable[Pair]) -> list[bool]:
        """Is each ``pred`` equivalent to its ``gold``? Repeated pairs are graded once."""
        pairs = [(p or "", g or "") for p, g in pairs]
        verdict: dict[Pair, bool] = {}
        todo: list[Pair] = []
        for pair in dict.fromkeys(pairs):
            quick = _eq.quick_verdict(pair[0], pair[1], self.config)
            if quick is None:
                todo.append(pair)
            else:
                verdict[pair] = quick
        if todo:
            if self._pool is not None:
                out = self._pool.map(todo, kwargs={"config": self.config}, on_failure=False)
            else:
                out = [_eq.is_equivalent(p, g, self.config) for p, g in todo]
            verdict.update(zip(todo, (x is True for x in out)))
        self.last_call_stats = {"pairs": len(pairs), "distinct": len(verdict), "sent_to_workers": len(todo)}
        return [verdict[p] for p in pairs]

    def grade(self, responses: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        """Boolean correctness of each response's last boxed answer against its gold answer."""
        if len(responses) != len(answers):
            raise ValueError(f"{len(responses)} responses but {len(answers)} answers")
        preds = [extract_boxed(r) or "" for r in responses]
        golds = [strip_boxed(a or "") for a in answers]
        return np.asarray(self.equivalent_pairs(zip(preds, golds)), dtype=bool)

    def outcome_rewards(self, responses: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        """+1.0 for a correct response, -1.0 otherwise (float32)."""
        return np.where(self.grade(responses, answers), 1.0, -1.0).astype(np.float32)

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
