"""The grading cascade for one (prediction, gold) pair — run inside a pool worker.

Stages (first success wins, spec §3.3 order):
  0. reject degenerate answers (empty, too long, highly repetitive, absurdly nested) as wrong;
  1. normalised ("mathd") string equality; two different plain integers are decided wrong here;
  2. a restricted sympy comparison: tuples/intervals/sets split at top-level commas, exact
     equality for rationals, numeric relative tolerance 2e-3 otherwise (a float against an
     integer gold must be that integer), ``simplify`` for expressions with variables;
  3. math-verify: ``parse`` (LaTeX with boxed priority 0 + plain expressions, first match, no
     fallback) and ``verify(gold, pred, numeric_precision=3)``.
Stages 2-3 are retried on the text after the last "=" of the prediction when that differs.
The verdict is the OR of the stages, so their order only decides where time is spent: the
sympy stage costs ~0.1-3 ms, math-verify ~1-70 ms (its ANTLR parser is slow on parentheses).

Safety: model text is never given to ``eval``/``exec``/``sympify``. math-verify parses LaTeX with
latex2sympy (a grammar, no eval) and its plain-expression extractor only matches digits and
operators. The sympy stage translates a small LaTeX subset to Python syntax, then accepts only
digits, ``+-*/().``, single-letter names and ``sqrt``/``pi``/``oo`` (no ``_``, quotes, brackets,
attribute access) before ``parse_expr(evaluate=False)`` with an empty ``__builtins__`` and a
whitelisted namespace. Expressions whose magnitude bound exceeds 10**100000 (``9^{9^{9^9}}``)
are rejected before anything evaluates them.

Heavy imports (sympy, math-verify) happen lazily, so the parent process can import this module
for :func:`quick_verdict` and :class:`EquivalenceConfig` without loading them.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import re
import signal
import threading
import time
from contextlib import contextmanager
from typing import Any

from tempo_jax.rewards import normalize as _norm
from tempo_jax.rewards.extract import match_braces

# ---------------------------------------------------------------------------------- the config


@dataclasses.dataclass(frozen=True)
class EquivalenceConfig:
    """Knobs of the cascade (picklable; sent with each task)."""

    max_chars: int = _norm.DEFAULT_MAX_CHARS  # longer answers are wrong without parsing
    repetitive_chars: int = _norm.DEFAULT_REPETITIVE_CHARS  # longer + repetitive → wrong
    max_nesting: int = _norm.DEFAULT_MAX_NESTING  # deeper bracket nesting → wrong
    rel_tol: float = 2e-3  # sympy stage numeric relative tolerance
    numeric_precision: int = 3  # math-verify verify(numeric_precision=...)
    soft_timeout_s: float | None = 4.0  # in-worker budget per pair (signal timer; main thread)
    use_math_verify: bool = True
    use_sympy: bool = True
    retry_after_equals: bool = True


DEFAULT_CONFIG = EquivalenceConfig()


def quick_verdict(pred: str, gold: str, config: EquivalenceConfig = DEFAULT_CONFIG) -> bool | None:
    """Cheap, safe in-process verdict: True/False when decided by stages 0-1, else None."""
    if not pred or not gold or not pred.strip() or not gold.strip():
        return False
    for s in (pred, gold):
        if _norm.is_degenerate(s, config.max_chars, config.repetitive_chars, config.max_nesting):
            return False
    a, b = _norm.normalize_answer(pred), _norm.normalize_answer(gold)
    if a and a == b:
        return True
    if _INT_RE.match(a) and _INT_RE.match(b):
        return False  # distinct canonical integers: no later stage can match them
    return None


_INT_RE = re.compile(r"^-?\d+$")


def _candidates(pred: str, config: EquivalenceConfig) -> list[str]:
    cands = [pred]
    if config.retry_after_equals and "=" in pred:
        tail = pred.rsplit("=", 1)[1].strip()
        if tail and tail != pred.strip():
            cands.append(tail)
    return cands


# ----------------------------------------------------------------------------- soft deadlines


class SoftTimeout(BaseException):
    """Raised by the in-worker timer; a BaseException so library `except Exception` lets it by."""


def _on_alarm(signum, frame):  # pragma: no cover - exercised through timeouts
    raise SoftTimeout()


@contextmanager
def soft_deadline(seconds: float | None):
    """Interrupt Python code after ``seconds`` (main thread only; otherwise a no-op).

    C-level loops (e.g. a huge integer power) are not interruptible: the pool's hard
    wall-clock timeout is the backstop for those.
    """
    if (
        seconds is None
        or seconds <= 0
        or threading.current_thread() is not threading.main_thread()
        or not hasattr(signal, "setitimer")
    ):
        yield
        return
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _run_stage(fn, budget: float | None, *args) -> bool:
    try:
        with soft_deadline(budget):
            return bool(fn(*args))
    except (SoftTimeout, Exception):  # RecursionError and MemoryError are Exceptions too
        return False


# ------------------------------------------------------------------------------ math-verify


@functools.lru_cache(maxsize=1)
def _math_verify():
    import math_verify  # heavy: sympy + latex2sympy

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    cfg = [math_verify.LatexExtractionConfig(boxed_match_priority=0), math_verify.ExprExtractionConfig()]
    return math_verify, cfg


def _mv_parse_uncached(s: str):
    mv, cfg = _math_verify()
    return mv.parse(
        "\\boxed{" + s + "}",
        extraction_config=cfg,
        fallback_mode="no_fallback",
        extraction_mode="first_match",
        parsing_timeout=None,
    )


@functools.lru_cache(maxsize=2048)
def _mv_parse_gold(s: str):
    return _mv_parse_uncached(s)


def math_verify_equal(pred: str, gold: str, numeric_precision: int = 3) -> bool:
    """Stage 2: math-verify parse + verify (gold parse is cached: golds repeat n times)."""
    mv, _ = _math_verify()
    g = _mv_parse_gold(gold)
    if not g:
        return False
    p = _mv_parse_uncached(pred)
    if not p or any(_astronomical(x) for x in p):
        return False
    return bool(mv.verify(g, p, numeric_precision=numeric_precision, timeout_seconds=None))


# ------------------------------------------------------------------------ restricted sympy


@functools.lru_cache(maxsize=1)
def _sympy_env():
    import sympy
    from sympy.parsing import sympy_parser as sp

    transformations = (sp.auto_symbol, sp.auto_number, sp.implicit_multiplication, sp.convert_xor)
    global_dict = {
        "__builtins__": {},
        "Integer": sympy.Integer,
        "Float": sympy.Float,
        "Rational": sympy.Rational,
        "Symbol": sympy.Symbol,
        "Add": sympy.Add,
        "Mul": sympy.Mul,
        "Pow": sympy.Pow,
    }
    local_dict = {"sqrt": sympy.sqrt, "pi": sympy.pi, "oo": sympy.oo}
    return sympy, sp, transformations, global_dict, local_dict


ALLOWED_NAMES = frozenset({"sqrt", "pi", "oo"})
# Names the generated Python code may reference (checked in tests through `co_names`).
ALLOWED_CODE_NAMES = frozenset({"Integer", "Float", "Rational", "Symbol", "Add", "Mul", "Pow"}) | ALLOWED_NAMES
_SAFE_CHARS_RE = re.compile(r"^[0-9A-Za-z+\-*/().]*$")
_BAD_DOT_RE = re.compile(r"(?<![0-9])\.|\.(?![0-9])|\.[0-9]+\.")
_NAME_RE = re.compile(r"[A-Za-z]+")
_SIMPLE_REPLACEMENTS = (
    ("\\cdot", "*"),
    ("\\times", "*"),
    ("\\div", "/"),
    ("\\pi", "pi"),
    ("\\infty", "oo"),
    ("^", "**"),
    ("{", "("),
    ("}", ")"),
)


def _replace_command_groups(s: str, cmd: str, nargs: int, template) -> str | None:
    """Replace ``\\cmd{a}{b}`` (innermost-last first) using ``template(*args)``; None if malformed."""
    while True:
        j = s.rfind(cmd)
        if j < 0:
            return s
        k = j + len(cmd)
        if k < len(s) and s[k].isalpha():
            return None
        args = []
        opt = None
        if cmd == "\\sqrt" and k < len(s) and s[k] == "[":
            close = s.find("]", k)
            if close < 0:
                return None
            opt, k = s[k + 1 : close], close + 1
        for _ in range(nargs):
            if k >= len(s) or s[k] != "{":
                return None
            end = match_braces(s, k)
            if end < 0:
                return None
            args.append(s[k + 1 : end])
            k = end + 1
        s = s[:j] + template(*args, opt=opt) + s[k:]


def latex_to_python(s: str) -> str | None:
    """Translate a normalised answer (one element, no top-level comma) to whitelisted Python."""
    frac = _replace_command_groups(s, "\\frac", 2, lambda a, b, opt: f"(({a})/({b}))")
    if frac is None:
        return None
    out = _replace_command_groups(
        frac, "\\sqrt", 1, lambda a, opt: f"sqrt({a})" if not opt else f"(({a})**(1/({opt})))"
    )
    if out is None:
        return None
    for old, new in _SIMPLE_REPLACEMENTS:
        out = out.replace(old, new)
    if not out or not is_safe_expression(out):
        return None
    return out


def is_safe_expression(s: str) -> bool:
    """Whitelist gate before parse_expr: arithmetic on numbers, single letters, sqrt/pi/oo."""
    if len(s) > 2 * _norm.DEFAULT_MAX_CHARS or not _SAFE_CHARS_RE.match(s) or _BAD_DOT_RE.search(s):
        return False
    return all(len(name) == 1 or name in ALLOWED_NAMES for name in _NAME_RE.findall(s))


def safe_parse(s: str):
    """Parse a whitelisted expression string with ``evaluate=False``; None if unsafe/invalid."""
    if not is_safe_expression(s):
        return None
    sympy, sp, transformations, global_dict, local_dict = _sympy_env()
    try:
        return sp.parse_expr(
            s,
            local_dict=dict(local_dict),
            global_dict=dict(global_dict),
            transformations=transformations,
            evaluate=False,
        )
    except (Exception, RecursionError):
        return None


def _log10_bound(expr) -> float:
    """Upper bound on log10|value| of a parsed expression (inf when astronomically large)."""
    sympy = _sympy_env()[0]
    if expr.is_Number:
        try:
            v = abs(float(expr))
        except (OverflowError, TypeError, ValueError):
            return math.inf
        return math.log10(v) if v > 1 else 0.0
    if expr.is_Pow:
        base = _log10_bound(expr.base)
        exp = _log10_bound(expr.exp)
        if exp > 300:
            return math.inf if base > 0 else 0.0
        return base * (10.0**exp) + 1.0
    if isinstance(expr, (sympy.Add, sympy.Mul)):
        return sum(_log10_bound(a) for a in expr.args) + 1.0
    if expr.args and getattr(expr.func, "__name__", "") in _FAST_GROWING:
        arg = max(_log10_bound(a) for a in expr.args)
        if arg > 300:
            return math.inf
        n = 10.0**arg  # n! ~ n^n
        return n * max(1.0, math.log10(n + 1.0)) + 1.0
    return sum((_log10_bound(a) for a in expr.args), 1.0)


_FAST_GROWING = frozenset(
    {
        "factorial",
        "factorial2",
        "subfactorial",
        "gamma",
        "loggamma",
        "binomial",
        "RisingFactorial",
        "FallingFactorial",
        "fibonacci",
        "lucas",
        "tribonacci",
        "catalan",
        "bell",
        "bernoulli",
        "euler",
        "harmonic",
        "primorial",
        "prime",
    }
)


MAX_LOG10 = 1e5  # numbers beyond 10**100000 are not answers; evaluating them can hang in C


def _astronomical(expr) -> bool:
    sympy = _sympy_env()[0]
    if not isinstance(expr, sympy.Basic):
        return False
    try:
        return _log10_bound(expr) > MAX_LOG10
    except Exception:
        return False


def _split_top_level(s: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return parts


def _outer_brackets(s: str) -> tuple[str, str, str] | None:
    """('(', ')', inner) when one bracket pair encloses the whole string, else None."""
    if s.startswith("\\{") and s.endswith("\\}"):
        return "{", "}", s[2:-2]
    if len(s) < 2 or s[0] not in "([" or s[-1] not in ")]":
        return None
    depth = 0
    for i, c in enumerate(s):
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
            if depth == 0 and i != len(s) - 1:
                return None
    return s[0], s[-1], s[1:-1]


def _structure(s: str):
    """('scalar', str) | ('ordered', open, close, [str]) | ('unordered', [str])."""
    br = _outer_brackets(s)
    if br is not None:
        op, cl, inner = br
        elems = _split_top_level(inner)
        if op == "{":
            return ("unordered", elems)
        if len(elems) >= 2:
            return ("ordered", op, cl, elems)
    elems = _split_top_level(s)
    if len(elems) >= 2:
        return ("unordered", elems)
    return ("scalar", s)


def _scalar(s: str):
    py = latex_to_python(s)
    if py is None:
        return None
    expr = safe_parse(py)
    if expr is None or _astronomical(expr):
        return None
    return expr


def _scalars_equal(pred, gold, rel_tol: float) -> bool:
    sympy = _sympy_env()[0]
    p, g = pred.doit(), gold.doit()
    if p.free_symbols or g.free_symbols:
        if p.free_symbols != g.free_symbols:
            return False
        return sympy.simplify(p - g) == 0
    if p.is_Rational and g.is_Rational:  # exact numbers must match exactly (1/3 vs 2/6 ok)
        return p == g
    if p == g:
        return True
    vp, vg = complex(sympy.N(p, 30)), complex(sympy.N(g, 30))
    if not all(map(_finite, (vp, vg))):
        return False
    diff = abs(vp - vg)
    if g.is_Integer:  # integer golds (AIME 0-999): a float prediction must be that integer
        return diff <= 1e-9 * max(1.0, abs(vg))
    return diff <= rel_tol * abs(vg) or diff <= 1e-12


def _finite(z: complex) -> bool:
    return math.isfinite(z.real) and math.isfinite(z.imag)


def sympy_equal(pred: str, gold: str, rel_tol: float = 2e-3) -> bool:
    """Stage 3 on raw answer strings (normalised here)."""
    a, b = _structure(_norm.normalize_answer(pred)), _structure(_norm.normalize_answer(gold))
    if a[0] != b[0]:
        return False
    if a[0] == "ordered":
        if a[1:3] != b[1:3] or len(a[3]) != len(b[3]):
            return False
        pairs = list(zip(a[3], b[3]))
        return all(_element_equal(x, y, rel_tol) for x, y in pairs)
    if a[0] == "unordered":
        if len(a[1]) != len(b[1]):
            return False
        remaining = list(b[1])
        for x in a[1]:
            hit = next((k for k, y in enumerate(remaining) if _element_equal(x, y, rel_tol)), None)
            if hit is None:
                return False
            remaining.pop(hit)
        return True
    return _element_equal(a[1], b[1], rel_tol)


def _element_equal(x: str, y: str, rel_tol: float) -> bool:
    if x and x == y:
        return True
    px, py = _scalar(x), _scalar(y)
    if px is None or py is None:
        return False
    return _scalars_equal(px, py, rel_tol)


# ------------------------------------------------------------------------------- the cascade


def is_equivalent(pred: str, gold: str, config: EquivalenceConfig = DEFAULT_CONFIG) -> bool:
    """Full cascade for one pair; never raises (bad input is simply wrong)."""
    try:
        quick = quick_verdict(pred, gold, config)
        if quick is not None:
            return quick
        cands = _candidates(pred, config)
        if len(cands) > 1 and _norm.strings_match(cands[1], gold):
            return True
        budget = config.soft_timeout_s
        deadline = None if budget is None else time.monotonic() + budget
        stages: list[tuple[Any, tuple]] = []
        for c in cands:
            if config.use_sympy:
                stages.append((sympy_equal, (c, gold, config.rel_tol)))
        for c in cands:
            if config.use_math_verify:
                stages.append((math_verify_equal, (c, gold, config.numeric_precision)))
        for k, (fn, args) in enumerate(stages):
            if deadline is None:
                stage_budget = None
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # Leave every later stage a share, so one slow parse cannot starve them.
                stage_budget = remaining / max(1, len(stages) - k) * 1.5
                stage_budget = min(stage_budget, remaining)
            if _run_stage(fn, stage_budget, *args):
                return True
        return False
    except (Exception, SoftTimeout):  # a grader must not crash on model text
        return False


def warmup() -> None:
    """Import the heavy libraries and exercise each stage once (worker start-up)."""
    is_equivalent("\\frac{1}{2}", "0.5")
    is_equivalent("x=2\\sqrt{2}", "\\sqrt{8}")
    is_equivalent("(1,2)", "(1, 2.0)")
