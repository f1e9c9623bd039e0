"""Paired comparisons of per-question metrics, with standard errors (numbers carry their noise).

Two evaluations of the same questions (before/after training, or method A/B after training)
differ by sampling noise per question; the paired difference d_q = b_q - a_q removes the
question-difficulty variance that unpaired intervals would include. For Q questions the change
is mean(d) with standard error std(d, ddof=1) / sqrt(Q).

Several seeds are independent experiments (their own data draw, model init and sampling); their
changes are combined as the mean of the per-seed means, with the standard error
sqrt(sum_s SE_s^2) / K of that mean (every seed's questions weigh alike) -- the evaluation noise.
The spread of the per-seed means (``seed_std``) is reported beside it: it also holds the
training runs' own variability, which K = 3 seeds can only show, not pin down.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Change:
    """A mean paired difference with its standard error (``n`` = questions, or seeds x questions)."""

    mean: float
    se: float
    n: int
    per_seed: tuple[float, ...] = ()

    @property
    def significant(self) -> bool:
        """|mean| > 2 SE (about a 95% two-sided test)."""
        return bool(self.se > 0 and abs(self.mean) > 2.0 * self.se) or bool(self.se == 0 and self.mean != 0)

    @property
    def seed_std(self) -> float:
        return float(np.std(self.per_seed, ddof=1)) if len(self.per_seed) > 1 else float("nan")

    def format(self, digits: int = 3) -> str:
        """``+0.062 ± 0.015*`` (the star marks |mean| > 2 SE)."""
        if math.isnan(self.mean):
            return "–"
        star = "*" if self.significant else ""
        return f"{self.mean:+.{digits}f} ± {self.se:.{digits}f}{star}"


def paired_change(before: Mapping[str, float], after: Mapping[str, float]) -> Change:
    """Mean of ``after[q] - before[q]`` over the questions both hold, with its standard error."""
    common = [q for q in before if q in after]
    if not common:
        raise ValueError("the two evaluations share no question id")
    d = np.array([after[q] - before[q] for q in common], dtype=np.float64)
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
    return Change(float(d.mean()), se, len(d), (float(d.mean()),))


def combine_seeds(changes: Sequence[Change]) -> Change:
    """The mean over independent seeds of their changes; SE = sqrt(sum SE_s^2) / K."""
    if not changes:
        raise ValueError("no seeds to combine")
    k = len(changes)
    mean = float(np.mean([c.mean for c in changes]))
    se = float(math.sqrt(sum(c.se**2 for c in changes)) / k)
    return Change(mean, se, sum(c.n for c in changes), tuple(c.mean for c in changes))
