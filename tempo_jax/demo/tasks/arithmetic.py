"""Multi-step integer arithmetic: a synthetic, verifiable reasoning task with difficulty levels.

A problem is a chain of integer operations, e.g. ``Compute 37+58-21+94.``; its worked
solution rewrites the expression one operation at a time (multiplication first, then left to
right) and writes the last step straight into ``\\boxed{}``::

    =95-21+94
    =74+94
    =\\boxed{168}

Each line depends only on the line above it, so a small model can learn the step from easy
levels and apply it to longer chains -- with an error rate per step that compounds with the
number of steps: harder levels are solved *sometimes*, the regime TEMPO's demo needs.
Difficulty (:data:`LEVELS`) is the number of operations, the operand range and whether
``*`` appears. Every intermediate value stays in ``[0, max_value]``.

Splits never overlap: every problem text is assigned to exactly one split by a hash of the
text (:func:`split_of`), and :func:`make_problems` keeps only texts of the requested split, so
``sft``, ``train`` (D_L), ``val`` (held-out labeled) and ``test`` (D_U) are disjoint for every
level and seed. Ids are derived from the text (``arith-L{level}-{split}-{sha1[:12]}``): stable
across runs, orders and counts. Generation is deterministic in ``(level, count, seed, split)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
from collections.abc import Callable, Iterable, Sequence

PROBLEM_PREFIX = "Compute "
# Problem phrasings: the same expressions asked in different words, as different sources
# (a textbook, a contest) ask them. The split of a problem depends on its expression only.
VERBS = ("Compute", "Evaluate")
SPLITS = ("sft", "train", "val", "test")
# Share of the problem space per split (hash buckets out of 100).
SPLIT_BUCKETS = {"sft": (0, 55), "train": (55, 80), "val": (80, 85), "test": (85, 100)}


@dataclasses.dataclass(frozen=True)
class LevelSpec:
    """One difficulty level: ``num_ops`` operations on operands in ``[1, max_operand]``.

    ``ops`` are the allowed operators; ``*`` takes its right operand from ``[2, max_factor]``
    (a single-digit factor keeps products in range). ``max_value`` bounds every intermediate.
    """

    num_ops: int
    max_operand: int
    ops: str = "+-"
    max_factor: int = 9
    max_value: int = 999

    def __post_init__(self):
        if self.num_ops < 1:
            raise ValueError(f"num_ops must be >= 1, got {self.num_ops}")
        if self.max_operand < 2:
            raise ValueError(f"max_operand must be >= 2, got {self.max_operand}")
        if not self.ops or set(self.ops) - set("+-*"):
            raise ValueError(f"ops must be a non-empty subset of '+-*', got {self.ops!r}")


# Level k: k operations (+ or -) on single-digit operands, every intermediate in [0, 99].
# The CPU demo (tempo_jax/demo/tasks/demo_setup.py) trains on levels 2-4: its 3-layer, 96-wide model
# solves careful level-4 chains 60-85% of the time after stage 0; copying a long tail and
# subtraction with a borrow are the error-prone steps. Level 1 has only ~130 distinct problems,
# level 2 ~2,900.
LEVELS: dict[int, LevelSpec] = {k: LevelSpec(num_ops=k, max_operand=9, max_value=99) for k in range(1, 9)}


def level_spec(level: int | LevelSpec) -> LevelSpec:
    if isinstance(level, LevelSpec):
        return level
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose one of {sorted(LEVELS)} or pass a LevelSpec")
    return LEVELS[level]


# ----------------------------------------------------------------------------- expressions


def tokenize_expression(expr: str) -> list[str]:
    """``"37+58*2"`` -> ``["37", "+", "58", "*", "2"]`` (non-negative integers and + - *)."""
    parts = re.findall(r"\d+|[+\-*]", expr)
    if "".join(parts) != expr:
        raise ValueError(f"not an expression of integers and + - *: {expr!r}")
    return parts


def _apply(a: int, op: str, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    raise ValueError(f"unknown operator {op!r}")


def reduce_once(parts: Sequence[str]) -> list[str]:
    """Apply one operation: the leftmost ``*`` if any, else the leftmost ``+``/``-``."""
    parts = list(parts)
    if len(parts) < 3:
        raise ValueError("nothing left to reduce")
    i = parts.index("*") if "*" in parts else 1
    value = _apply(int(parts[i - 1]), parts[i], int(parts[i + 1]))
    return parts[: i - 1] + [str(value)] + parts[i + 2 :]


Step = Callable[[Sequence[str]], list[str]]


def solution_steps(expr: str, step: Step = reduce_once) -> list[str]:
    """Every line of the worked solution: the expression, then one ``step`` per line (by default
    one operation; :mod:`tempo_jax.demo.tasks.styles` passes its hasty rule)."""
    parts = tokenize_expression(expr)
    lines = [expr]
    while len(parts) > 1:
        parts = step(parts)
        lines.append("".join(parts))
    return lines


def evaluate(expr: str) -> int:
    """The value of ``expr`` (``*`` before ``+``/``-``, left to right)."""
    return int(solution_steps(expr)[-1])


def format_solution(expr: str, step: Step = reduce_once) -> str:
    """The worked solution: one ``=...`` line per operation, the last one ``=\\boxed{answer}``.

    The expression itself is not restated (the prompt holds it), which keeps rollouts short:
    a chain of k single-digit operations costs about k^2 + 2k response tokens.
    """
    lines = solution_steps(expr, step)[1:]
    body = ["=" + line for line in lines[:-1]] + ["=\\boxed{" + lines[-1] + "}"]
    return "\n".join(body)


def problem_text(expr: str, verb: str = "Compute") -> str:
    if verb not in VERBS:
        raise ValueError(f"unknown phrasing {verb!r}; choose one of {VERBS}")
    return f"{verb} {expr}."


def verb_of(problem: str) -> str:
    """The phrasing of a problem text (its first word)."""
    verb = problem.split(" ", 1)[0]
    if verb not in VERBS or not problem.endswith("."):
        raise ValueError(f"not an arithmetic problem: {problem!r}")
    return verb


def expression_of(problem: str) -> str:
    """Inverse of :func:`problem_text` (any phrasing)."""
    return problem[len(verb_of(problem)) + 1 : -1]


def format_prompt(problem: str) -> str:
    """The ChatML prompt the demo uses: identical to ``tempo_jax.data.templates.render_prompt(
    problem, "qwen3", instruction=None)`` (no boxed instruction: the SFT data teaches it)."""
    return f"<|im_start|>user\n{problem}<|im_end|>\n<|im_start|>assistant\n"


# ----------------------------------------------------------------------------- generation


def _sample_expression(spec: LevelSpec, rng: random.Random) -> str | None:
    """One random chain; None when an intermediate value leaves ``[0, max_value]``."""
    parts = [str(rng.randint(1, spec.max_operand))]
    for _ in range(spec.num_ops):
        op = rng.choice(spec.ops)
        hi = spec.max_factor if op == "*" else spec.max_operand
        parts += [op, str(rng.randint(2 if op == "*" else 1, hi))]
    # Reject any chain whose intermediate values go negative or out of range.
    cur = list(parts)
    while len(cur) > 1:
        cur = reduce_once(cur)
        if any(t not in "+-*" and not 0 <= int(t) <= spec.max_value for t in cur):
            return None
    return "".join(parts)


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def split_of(problem: str) -> str:
    """The split a problem belongs to: a fixed function of its expression (every phrasing of one
    expression lands in the same split, so no split shares a computation with another)."""
    bucket = int(_hash("split:" + problem_text(expression_of(problem)))[:8], 16) % 100
    for name, (lo, hi) in SPLIT_BUCKETS.items():
        if lo <= bucket < hi:
            return name
    raise AssertionError("split buckets do not cover [0, 100)")


def problem_id(problem: str, level: int | str, split: str) -> str:
    return f"arith-L{level}-{split}-{_hash(problem)[:12]}"


def make_problems(
    level: int | LevelSpec,
    count: int,
    seed: int = 0,
    split: str = "train",
    *,
    exclude: Iterable[str] = (),
    max_misses: int = 20000,
    strict: bool = True,
    verb: str = "Compute",
) -> list[dict]:
    """``count`` distinct problems of one level from one split, deterministic in the arguments.

    Returns records ``{id, problem, answer, solution, level, split}`` (``answer`` is a string,
    the project's schema). ``exclude`` removes given problem texts. If the level's problem
    space within the split is too small for ``count`` (``max_misses`` draws in a row without a
    new problem) it raises, or with ``strict=False`` returns the problems found. Asking for more
    problems with the same arguments extends the list (the first ``count`` stay the same).
    ``verb`` picks the phrasing (:data:`VERBS`); the same arguments with another verb give the
    same expressions in other words.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    spec = level_spec(level)
    level_name = level if isinstance(level, int) else "x"
    rng = random.Random(f"arith|{spec}|{seed}|{split}")
    seen = set(exclude)
    out: list[dict] = []
    misses = 0  # consecutive draws that gave nothing new
    while len(out) < count:
        misses += 1
        if misses > max_misses:
            if not strict:
                break
            raise ValueError(
                f"level {level!r} split {split!r}: found only {len(out)} of {count} distinct problems; "
                "ask for fewer or use a harder level"
            )
        expr = _sample_expression(spec, rng)
        if expr is None:
            continue
        text = problem_text(expr, verb)
        if text in seen or split_of(text) != split:
            continue
        seen.add(text)
        misses = 0
        out.append(
            dict(
                id=problem_id(text, level_name, split),
                problem=text,
                answer=str(evaluate(expr)),
                solution=format_solution(expr),
                level=level_name,
                split=split,
            )
        )
    return out


def _shares(count: int, weights: Sequence[float]) -> list[int]:
    """``count`` split proportionally to ``weights`` (remainder round-robin over positive weights)."""
    total = sum(weights)
    out = [int(count * w / total) for w in weights]
    positive = [i for i, w in enumerate(weights) if w > 0]
    for j in range(count - sum(out)):
        out[positive[j % len(positive)]] += 1
    return out


def make_mixture(
    levels: Sequence[int],
    count: int,
    seed: int = 0,
    split: str = "sft",
    weights: Sequence[float] | None = None,
    exclude: Iterable[str] = (),
    verb: str = "Compute",
) -> list[dict]:
    """``count`` problems spread over ``levels`` (proportional to ``weights``), shuffled
    deterministically; per-level sub-seeds keep levels independent.

    A level whose split holds fewer problems than its share (level 1 has ~130 problems in all)
    contributes all it has and the other levels make up the difference. ``exclude`` removes
    given problem texts (e.g. a training set, to draw a held-out set from the same split).
    """
    exclude = frozenset(exclude)
    weights = list(weights) if weights is not None else [1.0] * len(levels)
    if not levels or len(weights) != len(levels) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError("need at least one level and one non-negative weight per level, not all zero")
    if len(set(levels)) != len(levels):
        raise ValueError(f"levels repeat: {tuple(levels)}; use weights to change the shares")
    counts = _shares(count, weights)
    parts = [
        make_problems(lvl, c, seed=seed, split=split, strict=False, exclude=exclude, verb=verb)
        for lvl, c in zip(levels, counts)
    ]
    while True:  # levels that ran out hand their remaining share to the levels that did not
        deficit = count - sum(len(p) for p in parts)
        open_ = [i for i, p in enumerate(parts) if len(p) == counts[i] and weights[i] > 0]
        if deficit <= 0 or not open_:
            break
        for i, extra in zip(open_, _shares(deficit, [weights[i] for i in open_])):
            counts[i] += extra
            parts[i] = make_problems(
                levels[i], counts[i], seed=seed, split=split, strict=False, exclude=exclude, verb=verb
            )
    out = [r for p in parts for r in p]
    if len(out) < count:
        raise ValueError(
            f"levels {tuple(levels)} split {split!r} hold only {len(out)} distinct problems, "
            f"{count} asked; add harder levels or ask for fewer"
        )
    random.Random(f"mix|{seed}|{split}").shuffle(out)
    return out


# ----------------------------------------------------------------------------- checking


BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def boxed_answer(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (no nesting; the grader does the general case)."""
    found = BOXED.findall(text)
    return found[-1].strip() if found else None


def is_correct(response: str, answer: str) -> bool:
    got = boxed_answer(response)
    if got is None:
        return False
    try:
        return int(got) == int(answer)
    except ValueError:
        return False
