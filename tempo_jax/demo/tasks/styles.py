"""Two solution styles for the arithmetic chains: a careful one and a hasty one with a systematic flaw.

The demo needs a task where a critic grounded on labeled questions can read evidence that
majority voting cannot (DESIGN.md, "The CPU demo's science"). Here the evidence is the
*structure* of a solution, not a recomputation of its arithmetic:

* **careful** -- one operation per line (:func:`tempo_jax.demo.tasks.arithmetic.format_solution`)::

      Compute 7+8-3+9.      =15-3+9
                            =12+9
                            =\\boxed{21}

* **hasty** -- two operations per line, done the way a hurried solver does them in its head:
  the units digits are combined and the carry or borrow is dropped (the tens digit is copied)::

      Compute 7+8-3+9.      =2+9           (7+8-3: units 7+8-3 = 12, the carry is dropped)
                            =\\boxed{1}     (2+9: units 11, the carry is dropped)

The hasty rule is exact when no carry or borrow occurs and deterministic otherwise, so hasty
solutions of one question *agree* on the same wrong value (a systematic error, the kind voting
amplifies), while careful solutions are right unless the model slips. A line of a hasty
solution drops two operands, a careful one drops one: which style a solution used is readable
from its layout alone (counting operands), which a critic trained on labeled questions can
learn -- the demo measures whether it does.

The stage-0 corpus (:func:`make_problems`) mixes the styles with a per-level hasty share (long
chains are more often written hastily, as people skip steps in long calculations), so the base
model's answers to hard test questions are mostly hasty, the majority answer is often wrong,
and some careful samples are right.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence

from tempo_jax.demo.tasks import arithmetic

STYLES = ("careful", "hasty")
BINARY_OP = re.compile(r"(?<=\d)[+\-*]")  # an operator after a digit (a hasty line may start negative)


def _hasty_line(parts: Sequence[str]) -> list[str]:
    """One hasty line: the next operation is done, the one after it is dropped (two operands gone)."""
    value = arithmetic.reduce_once(parts[:3])
    return value + list(parts[5:]) if len(parts) >= 5 else value


def _check_hasty(expr: str) -> None:
    if "*" in expr:
        raise ValueError(f"the hasty style covers + and - only: {expr!r}")


def hasty_steps(expr: str) -> list[str]:
    """Every line of the hasty solution: the expression, then two operations per line (the second lost)."""
    _check_hasty(expr)
    return arithmetic.solution_steps(expr, _hasty_line)


def hasty_value(expr: str) -> int:
    """The answer the hasty style arrives at (the true value only when the lost terms cancel)."""
    return int(hasty_steps(expr)[-1])


def format_solution(expr: str, style: str) -> str:
    """The worked solution in ``style``; both end with ``=\\boxed{answer}``."""
    if style == "careful":
        return arithmetic.format_solution(expr)
    if style != "hasty":
        raise ValueError(f"unknown style {style!r}; choose one of {STYLES}")
    _check_hasty(expr)
    return arithmetic.format_solution(expr, _hasty_line)


def response_style(problem: str, response: str) -> str | None:
    """``"careful"``, ``"hasty"`` or None (mixed/malformed), from the operator counts per line."""
    try:
        ops = len(arithmetic.tokenize_expression(arithmetic.expression_of(problem))) // 2
    except ValueError:
        return None
    counts = [len(BINARY_OP.findall(line)) for line in response.strip().split("\n")]
    if not counts:
        return None
    careful = list(range(ops - 1, -1, -1))
    hasty = [max(ops - 2 * (i + 1), 0) for i in range(-(-ops // 2))]
    if counts == careful and ops > 1:  # one operation: both styles write one line
        return "careful"
    if counts == hasty and ops > 1:
        return "hasty"
    return None


def with_style(record: dict, style: str) -> dict:
    """A task record rewritten in ``style`` (``answer`` stays the true value)."""
    expr = arithmetic.expression_of(record["problem"])
    return {**record, "solution": format_solution(expr, style), "style": style}


def make_problems(
    level: int,
    count: int,
    seed: int = 0,
    split: str = "sft",
    hasty_share: float = 0.5,
    exclude=(),
    verb: str = "Compute",
) -> list[dict]:
    """:func:`tempo_jax.demo.tasks.arithmetic.make_problems` with each solution written in a style drawn
    with probability ``hasty_share`` of hasty (deterministic in the arguments)."""
    if not 0.0 <= hasty_share <= 1.0:
        raise ValueError(f"hasty_share must be in [0, 1], got {hasty_share}")
    rng = random.Random(f"style|{level}|{seed}|{split}|{hasty_share}|{verb}")
    records = arithmetic.make_problems(level, count, seed=seed, split=split, exclude=exclude, verb=verb)
    return [with_style(r, "hasty" if rng.random() < hasty_share else "careful") for r in records]


def make_mixture(
    levels: Sequence[int],
    count: int,
    seed: int = 0,
    split: str = "sft",
    hasty_share: Mapping[int, float] | float = 0.5,
    weights: Sequence[float] | None = None,
    exclude=(),
    verb: str = "Compute",
) -> list[dict]:
    """:func:`tempo_jax.demo.tasks.arithmetic.make_mixture` with styles drawn per level."""
    records = arithmetic.make_mixture(
        levels, count, seed=seed, split=split, weights=weights, exclude=exclude, verb=verb
    )
    shares = hasty_share if isinstance(hasty_share, Mapping) else {lvl: hasty_share for lvl in levels}
    rng = random.Random(f"style-mix|{seed}|{split}|{verb}")
    return [with_style(r, "hasty" if rng.random() < shares[r["level"]] else "careful") for r in records]
