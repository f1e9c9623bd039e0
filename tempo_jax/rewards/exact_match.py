"""The ``exact_match`` task (BIG-Bench Hard): a normalised string match of the final answer.

Source: BBH's chain-of-thought prompts (github.com/suzgunmirac/BIG-Bench-Hard, ``cot-prompts/``)
end every exemplar with "So the answer is <target>.", and BBH scores the text after "the answer
is" by exact match against the target. Targets look like ``True`` (boolean_expressions), ``(A)``
(date_understanding and the other multiple-choice tasks), ``Yes`` / ``no`` / ``valid``, a word list
``apple banana cherry`` (word_sorting), ``-42`` (multistep_arithmetic_two), ``7``
(object_counting), ``) ] }`` (dyck_languages).

Extraction (:func:`extract`), first that applies, on the response's last 100k characters:

1. the last ``\\boxed{...}`` (our prompts ask for one);
2. the rest of the line after the last "the answer is" / "answer:"
   (:func:`~tempo_jax.rewards.extract.last_answer_phrase`), a final "." dropped;
3. None.

Normalisation (:func:`canonical`; two answers match when their keys are equal and non-empty):

* decoration goes: ``\\text{}``/``\\textbf{}``/``\\boxed{}`` wrappers, markdown ``**``/backticks,
  ``$``, surrounding quotes, a final period;
* an option label, alone or before the option's text, is the label: ``(A)``, ``A)``, ``(a)``,
  ``(A) 10/27/2019`` and a lone ``A`` all read ``(a)`` (letters A-R: BBH's largest option list);
* a number is its value: ``3`` == ``3.0`` == ``+3``; ``1,000`` == ``1000`` (comma thousands only);
* any other text is compared case-insensitively with punctuation turned into spaces and runs of
  spaces collapsed (``apple, banana`` == ``apple banana``; ``True`` == ``true``); text made only
  of punctuation (dyck_languages) keeps it and drops the spaces (``) ] }`` == ``)]}``).

No synonyms: ``Yes`` is not ``True``, ``seven`` is not ``7``. Linear string work on bounded input,
decided in the calling process.
"""

from __future__ import annotations

import decimal
import re

from tempo_jax.rewards.extract import extract_boxed, last_answer_phrase, never_raises, same_key, tail

MAX_ANSWER_CHARS = 2000  # longer answers are wrong (BBH's longest targets are word lists of ~300 chars)
_WRAPPERS = re.compile(
    r"^\\(?:text|textbf|textit|textrm|texttt|mathrm|mathbf|mathtt|boxed|fbox)\s*\{(.*)\}$", re.DOTALL
)
_EDGE = " \t\r\n*`$\"'"
_LABEL = re.compile(r"^(?:\(\s*([A-Ra-r])\s*\)|([A-Ra-r])\))(?:\s|$)|^([A-R])$")
_NUMBER = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?$|^[+-]?\.\d+$")
_NON_WORD = re.compile(r"[\W_]+")


def _unwrap(s: str) -> str:
    for _ in range(8):
        s = s.strip(_EDGE)
        if s.endswith("."):
            s = s[:-1].rstrip(_EDGE)
        m = _WRAPPERS.match(s)
        if m is None:
            return s
        s = m.group(1)
    return s.strip(_EDGE)


def _number(s: str) -> str | None:
    if len(s) > 100 or not _NUMBER.match(s):
        return None
    try:
        value = decimal.Decimal(s.replace(",", ""))
    except decimal.InvalidOperation:
        return None
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def canonical(answer: str | None) -> str:
    """The comparison (and voting) key of an answer; "" for no answer."""
    if not answer or len(answer) > MAX_ANSWER_CHARS:
        return ""
    s = _unwrap(answer)
    label = _LABEL.match(s)
    if label is not None:
        return "(" + next(g for g in label.groups() if g).lower() + ")"
    number = _number(s)
    if number is not None:
        return number
    words = " ".join(_NON_WORD.sub(" ", s.lower()).split())
    if words:
        return words
    return "".join(s.split())  # punctuation only (dyck_languages): spaces do not count


def extract(response: str | None) -> str | None:
    """The final answer of a response (boxed, else after the last "the answer is"), or None."""
    text = tail(response)
    if not text:
        return None
    answer = extract_boxed(text)
    if answer is None:
        answer = last_answer_phrase(text, MAX_ANSWER_CHARS)
    if answer is None:
        return None
    answer = answer.strip()
    if answer.endswith("."):
        answer = answer[:-1].rstrip()
    return answer or None


def quick_verdict(pred: str, gold: str, config: object = None) -> bool:
    """Always decided here: equal non-empty keys. ``config`` is unused."""
    return same_key(canonical, pred, gold)


def equivalent(pred: str, gold: str, config: object = None) -> bool:
    """The pool-side check: the same verdict as :func:`quick_verdict` (never raises)."""
    return never_raises(quick_verdict, pred, gold)
