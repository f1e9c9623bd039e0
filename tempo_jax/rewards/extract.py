"""Answer extraction: the last ``\\boxed{...}`` / ``\\fbox{...}`` of a model response.

Linear time, iterative (no recursion), safe on arbitrarily long or unbalanced input: the last
box command decides, and an unclosed brace means "no answer" (``None``), as in the reference
(`rm_physics.py`, spec §3.3). :func:`last_answer_phrase` (the text after the last "answer is" /
"answer:") serves the non-math tasks (:mod:`tempo_jax.rewards.tasks`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable

_COMMANDS = ("\\boxed", "\\fbox")


def match_braces(text: str, open_pos: int) -> int:
    """Index of the ``}`` closing the ``{`` at ``open_pos``, or -1. Escaped braces are skipped."""
    depth = 0
    i = open_pos
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":  # `\{`, `\}` and `\\` are never structural
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _last_command(text: str) -> tuple[int, int]:
    """(start, end-of-name) of the last real ``\\boxed``/``\\fbox`` command, or (-1, -1).

    ``\\boxedfoo`` is a different control word and is skipped. Scans right to left once.
    """
    end = len(text)
    while True:
        best, best_cmd = -1, ""
        for cmd in _COMMANDS:
            pos = text.rfind(cmd, 0, end)
            if pos > best:
                best, best_cmd = pos, cmd
        if best < 0:
            return -1, -1
        after = best + len(best_cmd)
        if after < len(text) and text[after].isalpha():
            end = best  # part of a longer control word: keep looking further left
            continue
        return best, after


def extract_boxed(text: str | None) -> str | None:
    """Content of the last ``\\boxed{...}`` or ``\\fbox{...}`` (also ``\\boxed 5``), else None.

    Returns None when there is no box or when the last box's brace is never closed.
    The content is stripped of surrounding whitespace (it may be the empty string).
    """
    if not text:
        return None
    start, after = _last_command(text)
    if start < 0:
        return None
    i = after
    n = len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    if i < n and text[i] == "{":
        close = match_braces(text, i)
        if close < 0:
            return None
        return text[i + 1 : close].strip()
    # `\boxed 5` form: up to the end of the math span / line.
    j = i
    while j < n and text[j] not in "$\n":
        j += 1
    content = text[i:j].strip()
    return content or None


def strip_boxed(answer: str) -> str:
    """Ground truth helper: un-box an answer that contains ``\\boxed`` (spec §3.3)."""
    if "\\boxed" in answer or "\\fbox" in answer:
        inner = extract_boxed(answer)
        if inner is not None:
            return inner
    return answer.strip()


def extract_answers(responses: Iterable[str]) -> list[str]:
    """The boxed answer of each response, ``""`` where there is none."""
    return [extract_boxed(r) or "" for r in responses]


# ------------------------------------------------------------------ "the answer is ..." phrases
TAIL_CHARS = 100_000  # the non-math tasks read a response's final answer from its last 100k chars
_MAX_OCCURRENCES = 64  # "answer" occurrences tried, last first
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)  # keeps positions, unlike lower()
_PHRASE = re.compile(
    r"answer(?:\*\*)?\s*(?:is\b|would be\b|should be\b|will be\b|:)\s*:?(?:\*\*)?[ \t]*", re.IGNORECASE
)


def tail(text: str | None, chars: int = TAIL_CHARS) -> str:
    """The last ``chars`` characters of ``text`` ("" for None): where final answers are."""
    return (text or "")[-chars:]


def last_answer_phrase(text: str | None, max_chars: int = 1000) -> str | None:
    """The rest of the line after the last "answer is" / "answer:" (case-insensitive), or None.

    Covers "So the answer is X." (BBH's chain-of-thought prompts), "The answer is (B)", "Answer: B",
    "**Answer:** B", "the final answer would be X"; when that line is empty ("Answer:" then a line
    break), the next non-empty line. Reads :func:`tail` only, tries the last 64 occurrences of
    "answer" and reads at most ``max_chars`` characters after the phrase (the result is stripped).
    """
    text = tail(text)
    low = text.translate(_ASCII_LOWER)
    end = len(text)
    for _ in range(_MAX_OCCURRENCES):
        pos = low.rfind("answer", 0, end)
        if pos < 0:
            return None
        m = _PHRASE.match(text, pos, min(len(text), pos + 64))
        if m:
            lines = text[m.end() : m.end() + max_chars].split("\n")
            return next((line.strip() for line in lines if line.strip()), "")
        end = pos
    return None


def same_key(canonical: Callable[[str], str], pred: str, gold: str) -> bool:
    """The verdict of graders that compare canonical forms: equal and not empty."""
    key = canonical(pred)
    return bool(key) and key == canonical(gold)


def never_raises(check: Callable[[str, str], bool], pred: str, gold: str) -> bool:
    """``check(pred, gold)``, False when it raises: a grader must not crash on model text."""
    try:
        return check(pred, gold)
    except Exception:
        return False
