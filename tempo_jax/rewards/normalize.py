"""String normalisation of final answers (the "mathd" stage of the grader, spec §3.3).

Pure string code (no sympy), bounded time on bounded input: callers reject answers longer than
a configured limit before normalising (see :func:`is_degenerate`). The rules follow the MATH
(Hendrycks) ``strip_string`` and Minerva ``normalize_final_answer`` conventions: strip
``\\text{}``/units/spaces/``\\left``/``\\right``/dollars/degrees/percent, ``\\dfrac``→``\\frac``,
``\\frac12``→``\\frac{1}{2}``, ``a/b``→``\\frac{a}{b}``, leading zeros of integers, trailing zeros
of decimals, a short left-hand side (``x = 5``→``5``), a trailing period.
"""

from __future__ import annotations

import re

from tempo_jax.rewards.extract import match_braces

# ----------------------------------------------------------------------------------- degenerate
DEFAULT_MAX_CHARS = 1000
DEFAULT_REPETITIVE_CHARS = 128
DEFAULT_MAX_NESTING = 16  # math-verify's ANTLR parser is exponential in bracket nesting
_NGRAM = 8
_MIN_DISTINCT_NGRAM_RATIO = 0.2  # legit long MATH answers (matrices) are >= 0.47; loops < 0.11


def nesting_depth(s: str) -> int:
    """Deepest nesting of ``{}``/``()``/``[]`` (unmatched closers ignored)."""
    depth = best = 0
    for c in s:
        if c in "{([":
            depth += 1
            if depth > best:
                best = depth
        elif c in "})]" and depth > 0:
            depth -= 1
    return best


def is_repetitive(s: str, min_chars: int = DEFAULT_REPETITIVE_CHARS) -> bool:
    """True for a string longer than ``min_chars`` made mostly of one repeated chunk."""
    if len(s) <= min_chars:
        return False
    total = len(s) - _NGRAM + 1
    distinct = len({s[i : i + _NGRAM] for i in range(total)})
    return distinct / total < _MIN_DISTINCT_NGRAM_RATIO


def is_degenerate(
    s: str,
    max_chars: int = DEFAULT_MAX_CHARS,
    repetitive_chars: int = DEFAULT_REPETITIVE_CHARS,
    max_nesting: int = DEFAULT_MAX_NESTING,
) -> bool:
    """Answers graded wrong without parsing: too long, highly repetitive, or absurdly nested."""
    return len(s) > max_chars or is_repetitive(s, repetitive_chars) or nesting_depth(s) > max_nesting


# ------------------------------------------------------------------------------- brace helpers
def unwrap_command(s: str, name: str, keep: bool = True) -> str:
    """Replace every ``\\name{X}`` by ``X`` (or by nothing when ``keep`` is False).

    Iterative; nested wrappers unwrap because the search resumes where the group started.
    """
    cmd = "\\" + name
    i = 0
    while True:
        j = s.find(cmd, i)
        if j < 0:
            return s
        k = j + len(cmd)
        if k < len(s) and s[k].isalpha():  # a longer control word, e.g. \textbf vs \text
            i = k
            continue
        while k < len(s) and s[k] == " ":
            k += 1
        if k >= len(s) or s[k] != "{":
            s = s[:j] + s[k:]  # bare command (e.g. \displaystyle): drop it
            i = j
            continue
        end = match_braces(s, k)
        if end < 0:
            return s
        s = s[:j] + (s[k + 1 : end] if keep else "") + s[end + 1 :]
        i = j


# ---------------------------------------------------------------------------------- the rules
_TEXT_WRAPPERS = (
    "text",
    "textbf",
    "textit",
    "textrm",
    "textnormal",
    "textsf",
    "texttt",
    "mathrm",
    "mathbf",
    "mathit",
    "mathsf",
    "mathtt",
    "mbox",
    "hbox",
    "operatorname",
    "boxed",
    "fbox",
    "displaystyle",
)
_UNIT_WORDS = (
    "square units",
    "sq units",
    "square feet",
    "square inches",
    "square meters",
    "square cm",
    "units",
    "unit",
    "degrees",
    "degree",
    "radians",
    "cm",
    "centimeters",
    "centimeter",
    "mm",
    "millimeters",
    "km",
    "kilometers",
    "meters",
    "meter",
    "inches",
    "inch",
    "feet",
    "foot",
    "ft",
    "yards",
    "yard",
    "miles",
    "mile",
    "mph",
    "kph",
    "km/h",
    "hours",
    "hour",
    "hrs",
    "minutes",
    "minute",
    "mins",
    "seconds",
    "second",
    "secs",
    "days",
    "day",
    "weeks",
    "week",
    "months",
    "years",
    "year",
    "dollars",
    "dollar",
    "cents",
    "cent",
    "pounds",
    "pound",
    "ounces",
    "ounce",
    "grams",
    "gram",
    "kg",
    "kilograms",
    "liters",
    "liter",
    "gallons",
    "gallon",
    "people",
    "persons",
    "students",
    "ways",
    "points",
    "marbles",
    "cookies",
    "apples",
    "coins",
    "times",
    "sq",
    "square",
    "cubic",
    "percent",
)
_UNITS_RE = re.compile(
    r"(?<![\\A-Za-z])(?:"
    + "|".join(re.escape(u) for u in sorted(_UNIT_WORDS, key=len, reverse=True))
    + r")(?:\s*\^\s*\{?\s*[23]\s*\}?)?(?![A-Za-z])",
    re.IGNORECASE,
)
_LEFT_RIGHT_RE = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?:\.|(?![A-Za-z]))")
_DEGREE_RE = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\^\s*\{\s*\\degree\s*\}|\\degree|\\circ|°")
_SPACING_RE = re.compile(r"\\[,;:! ]|\\q?quad(?![A-Za-z])|~")
_FRAC_ALIASES_RE = re.compile(r"\\[dt]frac(?![A-Za-z])")
_SHORT_LHS_RE = re.compile(r"^[A-Za-z](?:_\{?\w+\}?|\(\w\))?=|^[A-Za-z]{2}=")
_INT_SLASH_RE = re.compile(r"^(-?)(\d+)/(\d+)$")
_LEADING_ZEROS_RE = re.compile(r"(?<![\d.])0+(?=\d)")
_DECIMAL_RE = re.compile(r"(?<![\d.])(\d+)\.(\d+)(?![\d.])")
_THOUSANDS_RE = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_CHOICE_RE = re.compile(r"^\(?([A-Ea-e])\)?$")


def _fix_fracs(s: str) -> str:
    """``\\frac12``→``\\frac{1}{2}``, ``\\frac1{2}``→``\\frac{1}{2}``, ``\\frac{1}2``→``\\frac{1}{2}``."""
    parts = s.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if not part:
            continue
        if part[0] == "{":
            end = match_braces(part, 0)
            if end < 0:
                out += part
                continue
            num, rest = part[: end + 1], part[end + 1 :]
        else:
            num, rest = "{" + part[0] + "}", part[1:]
        if rest and rest[0] != "{":
            out += num + "{" + rest[0] + "}" + rest[1:]
        else:
            out += num + rest
    return out


def _fix_sqrt(s: str) -> str:
    """``\\sqrt2``→``\\sqrt{2}``."""
    return re.sub(r"\\sqrt(?![A-Za-z{\[])\s*([0-9A-Za-z])", r"\\sqrt{\1}", s)


def _normalize_decimal(m: re.Match) -> str:
    whole, frac = m.group(1), m.group(2).rstrip("0")
    return whole + ("." + frac if frac else "")


def normalize_answer(answer: str | None) -> str:
    """Canonical string form of a final answer ('' for None/empty). Never raises."""
    if not answer:
        return ""
    s = str(answer)
    s = s.replace("\n", " ").replace("\r", " ").replace("\t", " ").strip()
    # delimiters and display commands
    s = _LEFT_RIGHT_RE.sub("", s)
    s = _FRAC_ALIASES_RE.sub(r"\\frac", s)
    s = s.replace("\\!", "")
    s = _SPACING_RE.sub(" ", s)
    s = s.replace("\\\\", "\\")
    s = _DEGREE_RE.sub("", s)
    s = s.replace("\\$", "").replace("$", "")
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace("{,}", "")  # 1{,}000
    s = s.replace("infinity", "\\infty")
    s = s.replace("\\varnothing", "\\emptyset")
    s = s.replace("\\dots", "\\ldots").replace("\\cdots", "\\ldots")
    # \text{...} and friends keep their content; unit words then go
    for name in _TEXT_WRAPPERS:
        if "\\" + name in s:
            s = unwrap_command(s, name)
    if any(ch.isdigit() for ch in s):
        stripped = _UNITS_RE.sub("", s).strip()
        if stripped:
            s = stripped
    # whitespace is never significant
    s = s.replace(" ", "")
    s = s.rstrip(".").rstrip("\\").rstrip(".")
    # short left-hand side: "x=5", "k=5" (not "x+y=5")
    if s.count("=") == 1 and _SHORT_LHS_RE.match(s):
        s = s.split("=", 1)[1]
    # fractions and roots
    s = _fix_sqrt(_fix_fracs(s))
    m = _INT_SLASH_RE.match(s)
    if m:
        s = f"{m.group(1)}\\frac{{{m.group(2)}}}{{{m.group(3)}}}"
    # numbers
    if _THOUSANDS_RE.match(s):
        s = s.replace(",", "")
    if s.startswith("."):
        s = "0" + s
    elif s.startswith("-."):
        s = "-0" + s[1:]
    s = _LEADING_ZEROS_RE.sub("", s)
    s = _DECIMAL_RE.sub(_normalize_decimal, s)
    if s in ("-0", "+0"):
        s = "0"
    if s.startswith("+") and len(s) > 1:
        s = s[1:]
    m = _CHOICE_RE.match(s)
    if m:
        s = m.group(1).upper()
    return s


def strings_match(pred: str, gold: str) -> bool:
    """Stage 1 of the cascade: equal non-empty normalised strings."""
    a, b = normalize_answer(pred), normalize_answer(gold)
    return bool(a) and a == b
