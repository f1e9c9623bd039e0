"""The ``multiple_choice`` task (AGIEval, GPQA, MMLU / MMLU-Pro style): the chosen option letter.

Gold: an option letter ``A``-``J`` (also written ``(B)``, ``B.``, ``\\boxed{B}``), or the option's
text for rows that store the text (then compared as normalised text). A loader that has a row's
options turns an option text into its letter with :func:`to_letter` (gold or prediction alike).

Extraction (:func:`extract`), the first rule that yields an answer wins; it reads the response's
last 100k characters (:func:`tempo_jax.rewards.extract.tail`):

1. the last ``\\boxed{...}`` (our prompts ask for one): its letter when it holds one (``B``,
   ``(B)``, ``\\text{B}``, ``B) 12``, ``B. Paris``), else its text;
2. the last "answer is X" / "answer: X" phrase (:func:`~tempo_jax.rewards.extract.last_answer_phrase`;
   "The answer is (B)" is AGIEval's few-shot convention, whose parser takes the letter after
   "answer is" on the last line; GPQA's simple-evals asks for "Answer: $LETTER"): its leading
   letter, e.g. "(B)", "B", "$B$", "**B**", "B) Paris";
3. a last non-empty line that is only an option letter (``B``, ``(B)``, ``B.``, ``**B**``);
4. otherwise the text of the phrase of rule 2 (for text golds), else None.

A letter is an uppercase ``A``-``J`` not followed by a letter or digit, or a lowercase one in
parentheses / before ``)``, or alone. AGIEval's zero-shot fallback (the first capital letter
anywhere) is not used: "I" and "A" are words. Two answers are equivalent when both reduce to the
same letter, or to the same normalised text (lower-case, punctuation and extra spaces dropped).
Everything is linear string work on bounded input: decided in the calling process, never parsed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tempo_jax.rewards.extract import extract_boxed, last_answer_phrase, never_raises, same_key, tail

LETTERS = "ABCDEFGHIJ"
MAX_ANSWER_CHARS = 1000  # longer answers are wrong
_WRAPPERS = re.compile(r"^\\(?:text|textbf|textrm|mathrm|mathbf|boxed|fbox)\s*\{(.*)\}$", re.DOTALL)
_EDGE = " \t\r\n*`$_\"'"
_LETTER = re.compile(r"\(\s*([A-Ja-j])\s*\)|([A-J])(?![A-Za-z0-9])|([a-j])(?:\)|\.?$)")
_LONE = re.compile(r"^[\s*`$_(\[]*([A-J])[\s*`$_)\].:]*$")
_NON_WORD = re.compile(r"[\W_]+")


def _unwrap(s: str) -> str:
    """Strip markdown/maths decoration and ``\\text{}``/``\\boxed{}`` wrappers around an answer."""
    for _ in range(8):
        s = s.strip(_EDGE)
        m = _WRAPPERS.match(s)
        if m is None:
            return s
        s = m.group(1)
    return s.strip(_EDGE)


def letter_of(answer: str | None) -> str | None:
    """The option letter an answer starts with (``"(B) Paris"`` → ``"B"``), else None."""
    if not answer or len(answer) > MAX_ANSWER_CHARS:
        return None
    m = _LETTER.match(_unwrap(answer))
    if m is None:
        return None
    return next(g for g in m.groups() if g).upper()


def _text(answer: str) -> str:
    return " ".join(_NON_WORD.sub(" ", answer.lower()).split())


def canonical(answer: str | None) -> str:
    """The voting key: the option letter, else the normalised text ("" for no answer)."""
    if not answer or len(answer) > MAX_ANSWER_CHARS:
        return ""
    return letter_of(answer) or _text(_unwrap(answer))


def to_letter(answer: str, options: Sequence[str]) -> str:
    """``answer`` as a letter when it is one, or equal (normalised) to one of ``options`` (in
    order A, B, ...); otherwise ``answer`` unchanged. For loaders whose gold is the option text."""
    letter = letter_of(answer)
    if letter is not None:
        return letter
    key = _text(_unwrap(answer))
    for letter, option in zip(LETTERS, options):
        if key and _text(_unwrap(option)) == key:
            return letter
    return answer


def extract(response: str | None) -> str | None:
    """The chosen letter (or, failing that, the answer text) of a response; None if none."""
    text = tail(response)
    if not text:
        return None
    boxed = extract_boxed(text)
    if boxed:
        return letter_of(boxed) or boxed[:MAX_ANSWER_CHARS]
    phrase = last_answer_phrase(text, MAX_ANSWER_CHARS)
    letter = letter_of(phrase)
    if letter is not None:
        return letter
    last_line = next((line for line in reversed(text[-200:].splitlines()) if line.strip()), "")
    lone = _LONE.match(last_line)
    if lone is not None:
        return lone.group(1)
    phrase = (phrase or "").rstrip(".").strip()
    return phrase or None


def quick_verdict(pred: str, gold: str, config: object = None) -> bool:
    """Always decided here: same letter, or same normalised text. ``config`` is unused."""
    return same_key(canonical, pred, gold)


def equivalent(pred: str, gold: str, config: object = None) -> bool:
    """The pool-side check: the same verdict as :func:`quick_verdict` (never raises)."""
    return never_raises(quick_verdict, pred, gold)
