"""The ``logic_grid`` task (ZebraLogic, grid mode): a JSON solution table graded cell by cell.

Source: ZebraLogic (WildEval/ZebraLogic, allenai/ZebraLogicBench ``grid_mode``) stores each
puzzle's ``solution`` as ``{"header": ["House", "Name", ...], "rows": [["1", "Alice", ...], ...]}``
and asks the model for JSON ``{"reasoning": "...", "solution": {"House 1": {"Name": "Alice", ...},
...}}``; its scorer (ZeroEval's ``eval_zebra_grid``) takes the last complete JSON object of the
output, reads its ``solution``, and compares every cell of the gold table, lower-cased and
stripped (a list value counts by its first element, extra cells are ignored). A puzzle is solved
when every cell is right.

Both layouts are accepted on either side (gold or prediction): header/rows, a house table
``{"House 1": {...}}``, or an object with a ``solution`` key holding either. House keys
``House 1`` / ``house 1`` / ``1`` are one key; column names and values compare case-insensitively.
Rewards are ±1, so the task's verdict (:func:`equivalent`) is whole-puzzle correctness; the cell
accuracy is :func:`cell_accuracy` (:func:`score` gives the counts) for metrics.

Extraction (:func:`extract`) reads the response's last 200k characters and returns JSON text:
the object under the last ``"solution":`` key (braces matched with JSON strings respected), else
the content of the last ``\\boxed{...}`` when it is an object (our prompts ask for a box), else
the last complete top-level ``{...}`` of the last 50k characters (braces counted as ZeroEval
does), at most 50k characters each; None when there is none. Parsing is ``json.loads``
(never ``eval``) after a check that brackets nest at most 32 deep, so huge, unbalanced or deeply
nested answers are wrong, not slow. Equal tables are one cluster for TTRL / EMPO.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tempo_jax.rewards.extract import extract_boxed, tail

SCAN_CHARS = 200_000  # of a response's end searched for the "solution" key
MAX_JSON_CHARS = 50_000  # an extracted object (a 10-house x 10-attribute grid is ~5k)
MAX_DEPTH = 32
_SOLUTION_KEY = re.compile(r'"solution"\s*:\s*\{')
_STRUCTURAL = re.compile(r'[{}"\\]')
_BRACKETS = re.compile(r'[{}\[\]"\\]')
_HOUSE = re.compile(r"^(?:house\s*)?#?\s*(\d+)$")

Table = dict[str, dict[str, str]]


def _object_at(text: str, start: int) -> str | None:
    """The JSON object opening at ``text[start] == "{"`` (strings respected), or None."""
    depth, in_string, escaped = 0, False, False
    for m in _STRUCTURAL.finditer(text, start, min(len(text), start + MAX_JSON_CHARS)):
        c, i = m.group(), m.start()
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":  # the next character is escaped; the regex only sees it if it is structural
                escaped = i + 1 < len(text) and text[i + 1] in '{}"\\'
            elif c == '"':
                in_string = False
            continue
        if c == '"':
            in_string = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return None


def _last_object(text: str) -> str | None:
    """The last complete top-level ``{...}`` of ``text``, braces counted (ZeroEval's rule)."""
    depth, start, last = 0, -1, None
    for m in re.finditer(r"[{}]", text):
        if m.group() == "{":
            if depth == 0:
                start = m.start()
            depth += 1
        elif depth > 0:
            depth -= 1
            if depth == 0:
                last = (start, m.end())
    return text[last[0] : last[1]] if last else None


def extract(response: str | None) -> str | None:
    """The JSON text of a response's solution (see the module docstring), or None."""
    text = tail(response, SCAN_CHARS)
    end = len(text)
    for _ in range(16):  # the last "solution" keys that open an object
        pos = text.rfind('"solution"', 0, end)
        if pos < 0:
            break
        m = _SOLUTION_KEY.match(text, pos)
        if m is not None:
            found = _object_at(text, m.end() - 1)
            if found is not None:
                return found
        end = pos
    boxed = extract_boxed(text[-MAX_JSON_CHARS:])
    if boxed and boxed.startswith("{"):
        return boxed
    return _last_object(text[-MAX_JSON_CHARS:])


def _depth(s: str) -> int:
    """Deepest nesting of ``{}``/``[]`` outside JSON strings (unmatched closers ignored)."""
    depth = best = 0
    in_string = escaped = False
    for m in _BRACKETS.finditer(s):
        c = m.group()
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = m.end() < len(s) and s[m.end()] in '{}[]"\\'
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            depth += 1
            best = max(best, depth)
        elif depth > 0:
            depth -= 1
    return best


def _load(text: str | None) -> Any:
    if not text or len(text) > MAX_JSON_CHARS or _depth(text) > MAX_DEPTH:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _cell(value: Any) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def _house(key: Any) -> str:
    key = str(key).strip().lower()
    m = _HOUSE.match(key)
    return f"house {int(m.group(1))}" if m else key


def _from_header_rows(obj: dict) -> Table | None:
    header, rows = obj.get("header"), obj.get("rows")
    if not isinstance(header, list) or not isinstance(rows, list) or len(header) < 2:
        return None
    columns = [str(h).strip().lower() for h in header[1:]]
    table: Table = {}
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(header):
            return None
        house = _house(row[0]) if _HOUSE.match(str(row[0]).strip().lower()) else f"house {i + 1}"
        table[house] = {c: _cell(v) for c, v in zip(columns, row[1:])}
    return table


def _table(obj: Any) -> Table | None:
    if isinstance(obj, dict) and isinstance(obj.get("solution"), dict):
        obj = obj["solution"]
    if not isinstance(obj, dict) or not obj:
        return None
    if "header" in obj and "rows" in obj:
        return _from_header_rows(obj)
    table: Table = {}
    for house, cells in obj.items():
        if not isinstance(cells, dict):
            return None
        table[_house(house)] = {str(c).strip().lower(): _cell(v) for c, v in cells.items()}
    return table


def parse_table(text: str | None) -> Table | None:
    """A solution as ``{"house N": {column: value}}`` (all lower-case), or None if unreadable.

    ``text`` is JSON (either layout, see the module docstring) or a whole response."""
    try:
        table = _table(_load(text.strip() if text else None))
        if table is None and text and len(text) > 0:
            table = _table(_load(extract(text)))
        return table
    except Exception:  # a grader must not crash on model text
        return None


def score(pred: str | None, gold: str | None) -> tuple[int, int]:
    """(right cells, gold cells) of a predicted solution against the gold one."""
    gold_table = parse_table(gold)
    if not gold_table:
        return 0, 0
    total = sum(len(cells) for cells in gold_table.values())
    pred_table = parse_table(pred) or {}
    right = 0
    for house, cells in gold_table.items():
        guess = pred_table.get(house, {})
        right += sum(1 for column, value in cells.items() if value and guess.get(column) == value)
    return right, total


def cell_accuracy(pred: str | None, gold: str | None) -> float:
    """Fraction of the gold table's cells the prediction gets right (0.0 without a gold table)."""
    right, total = score(pred, gold)
    return right / total if total else 0.0


def canonical(answer: str | None) -> str:
    """The voting key: the parsed table as sorted JSON ("" when unreadable)."""
    table = parse_table(answer)
    return json.dumps(table, sort_keys=True) if table else ""


def quick_verdict(pred: str, gold: str, config: object = None) -> bool | None:
    """Empty or oversized answers are wrong here; the rest is parsed in a worker."""
    if not pred or not gold or not pred.strip() or not gold.strip():
        return False
    if len(pred) > MAX_JSON_CHARS or len(gold) > MAX_JSON_CHARS:
        return False
    return None


def equivalent(pred: str, gold: str, config: object = None) -> bool:
    """Whole-puzzle correctness: every cell of ``gold``'s table right in ``pred``'s (never raises)."""
    try:
        right, total = score(pred, gold)
        return total > 0 and right == total
    except Exception:  # a grader must not crash on model text
        return False
