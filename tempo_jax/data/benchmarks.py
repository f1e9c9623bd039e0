"""Loaders for the paper's non-math benchmarks: each release format -> the record schema.

Every benchmark file becomes records ``{id, problem, answer, is_labeled, data_source, instruction
[, options]}`` (:mod:`tempo_jax.data.records`). ``data_source`` names the benchmark (and task) in
verl's convention, so the grader picks each row's answer convention from it
(:mod:`tempo_jax.rewards.tasks`: ``bbh`` exact match, ``agieval`` / ``gpqa`` multiple choice,
``zebra`` logic grid). ``options`` lists a multiple-choice row's option texts (letters A, B, ...
implied) so an option's text can be matched to its letter. ``instruction`` is the benchmark's own
answer-format instruction, used in place of the ``\\boxed{}`` instruction of
:data:`tempo_jax.data.templates.BOXED_INSTRUCTION` (:meth:`~tempo_jax.data.templates.PromptTemplate.render_record`).

Formats, as released (field names checked against the releases and their reference loaders):

* **BBH** -- github.com/suzgunmirac/BIG-Bench-Hard ``bbh/<task>.json``:
  ``{"canary": ..., "examples": [{"input": str, "target": str}, ...]}`` (the repository also had
  ``bbh/<task>.jsonl``, one ``{"input", "target"}`` per line; both are read). ``data_source`` and
  the id prefix are ``bbh/<task>`` (``<task>`` = the file name), ids ``bbh/<task>-<i>``. The
  problem is the input as given (multiple-choice inputs end in ``Options:`` and ``(A) ...`` lines,
  kept as ``options``); the answer is the target (``(C)``, ``True``, ``) ] }``...). Instruction:
  BBH's chain-of-thought convention (``cot-prompts/<task>.txt``: "Let's think step by step." ...
  "So the answer is X."), which the grader's "the answer is" rule reads.
* **AGIEval** -- github.com/ruixiangcui/AGIEval ``data/v1_1/<task>.jsonl`` (``data/v1/`` alike):
  ``{"passage": str|null, "question": str, "options": ["(A)...", ...]|null, "label": "C"|["A","C"]|null,
  "answer": str|null, "other": ...}``. Multiple-choice tasks (options given): the answer is the
  label (a list of labels, in jec-qa-* and gaokao-physics, is joined: ``"AC"``), ``options`` the
  option texts without their ``(A)`` prefixes, and the problem follows AGIEval's zero-shot
  chain-of-thought prompt (``src/dataset_loader.py``: passage, ``Q: <question> Answer Choices: (A)
  ... (B) ...``) with its answer phrase "Therefore, among A through E, the answer is X". Cloze tasks
  (``math``, ``gaokao-mathcloze``; no options): the answer is ``answer`` and the row takes the
  ``\\boxed{}`` instruction (no ``instruction`` field): grade them as maths (``grader.tasks``
  ``agieval/math:math``). ``data_source`` ``agieval/<task>``, ids ``agieval/<task>-<i>``.
* **ZebraLogic** -- Hugging Face ``allenai/ZebraLogicBench`` config ``grid_mode`` (Parquet or JSON
  lines): ``{"id", "size": "3*4", "puzzle": str, "solution": {"header": ["House", "Name", ...],
  "rows": [["1", "Alice", ...], ...]}, "created_at"}``. The answer is the solution as JSON text
  (``{"header": ..., "rows": ...}``); the instruction is ZeroEval's (github.com/WildEval/ZeroEval
  ``src/templates/ZEBRA_GRID.py`` + ``apply_lgp_grid_template``: "Now please solve the above puzzle.
  Present your reasoning and solution in the following json format:" and the ``{"reasoning": "___",
  "solution": {"House 1": {"Name": "___", ...}}}`` template), without its one-shot example puzzle.
  The public release masks the solutions (``"___"``): such rows are test questions without answers
  (accepted as unlabeled data, refused as labeled); graded copies are ``allenai/ZebraLogicBench-private``.
  ``data_source`` ``zebralogic``, ids as given.
* **GPQA** -- Hugging Face ``Idavidrein/gpqa`` ``gpqa_diamond.csv`` (or the same columns as JSON
  lines / Parquet): ``"Question"``, ``"Correct Answer"``, ``"Incorrect Answer 1"`` .. ``3``,
  ``"Record ID"``, ... The four answers are put in an order fixed by the question id (sorted by
  ``sha256("<Record ID>:<k>")``; no random state), so a question's letter is the same on every
  read and machine. The problem is simple-evals' layout (github.com/openai/simple-evals
  ``QUERY_TEMPLATE_MULTICHOICE``: the question, then ``A) ...`` to ``D) ...``) and its instruction
  ("Think step by step before answering. The last line ... 'Answer: $LETTER'"). ``data_source``
  ``gpqa_diamond`` (the file name when it starts with ``gpqa``), ids the ``Record ID``.

:func:`read_source` reads any source for the TFDS builder: a benchmark file (``schema`` one of
:data:`BENCHMARKS`, or ``auto``: recognised by its fields), a benchmark release directory (every
data file in it, in name order: ``bbh/``, AGIEval's ``data/v1_1/``, ZebraLogic's ``grid_mode/``),
else :func:`tempo_jax.data.records.read_records`. Bad rows raise the one-line
:class:`~tempo_jax.data.records.DataError` naming the file and the row (``on_error="skip"``:
counted in the :class:`~tempo_jax.data.records.ReadReport` instead).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import json
import os
import pathlib
import re
from collections.abc import Callable, Iterator
from typing import Any

from tempo_jax.data.records import ON_ERROR, SUFFIXES, DataError, ReadReport, iter_rows, read_records

BENCHMARKS = ("bbh", "agieval", "zebralogic", "gpqa")
SOURCE_SUFFIXES = (*SUFFIXES, ".csv")  # .csv: GPQA's release format
LETTERS = "ABCDEFGHIJKLMNOPQR"  # BBH's longest option list ends at (R)
MASK = "___"  # the public ZebraLogicBench's hidden cells

BBH_INSTRUCTION = (
    '\n\nLet\'s think step by step, then finish your answer with "So the answer is X.", where X is the final answer.'
)
BBH_CHOICE_INSTRUCTION = (
    '\n\nLet\'s think step by step, then finish your answer with "So the answer is (X).", where X is the letter of '
    "the correct option."
)
AGIEVAL_INSTRUCTION = (
    "\n\nLet's think step by step, then finish your answer with \"Therefore, among A through {last}, the answer "
    'is X.", where X is the letter of the correct option.'
)
GPQA_INSTRUCTION = (
    "\n\nThink step by step before answering. The last line of your response should be of the following format: "
    "'Answer: $LETTER' (without quotes) where LETTER is one of {letters}."
)
ZEBRA_INSTRUCTION = (
    "\n\n# Instruction\n\nNow please solve the above puzzle. Present your reasoning and solution in the following "
    "json format:\n\n{template}"
)
_SKIP_HINT = (
    "fix the row, or set data.on_error=skip (on_error='skip' in Python) to leave bad rows out; they are "
    "counted and reported"
)
_OPTION = re.compile(r"^\(([A-R])\)\s?(.*)$")
_LABELED_OPTION = re.compile(r"^\s*\(?([A-Ja-j])\s*[).:]\s*")


class _BadRow(Exception):
    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


@dataclasses.dataclass(frozen=True)
class _Context:
    """What a row parser needs of its file: the task name (file stem) and the default label flag."""

    path: pathlib.Path
    default_is_labeled: bool

    @property
    def task(self) -> str:
        return self.path.stem


# ----------------------------------------------------------------------------- field helpers


def _short(value: Any, n: int = 40) -> str:
    r = repr(value)
    return r if len(r) <= n else r[: n - 3] + "..."


def _text(row: dict, key: str, *, answer: bool = False) -> str:
    """A non-empty string field (an answer may also be a number, read as its text)."""
    if key not in row:
        raise _BadRow(f"missing_{key}", f"missing field {key!r} (row has keys {sorted(row)[:12]})")
    value = row[key]
    if value is None:
        raise _BadRow(f"missing_{key}", f"field {key!r} is null")
    if answer and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _BadRow("non_string_field", f"field {key!r} must be a string, got {type(value).__name__} {_short(value)}")
    if not value.strip():
        raise _BadRow(f"empty_{key}", f"field {key!r} is empty")
    return value


def _labeled(row: dict, ctx: _Context) -> bool:
    flag = row.get("is_labeled")
    return flag if isinstance(flag, bool) else ctx.default_is_labeled


def _record(rid: str, problem: str, answer: str, labeled: bool, source: str, **extra: Any) -> dict:
    rec = {"id": rid, "problem": problem, "answer": answer, "is_labeled": labeled, "data_source": source}
    rec.update({k: v for k, v in extra.items() if v is not None})
    return rec


# ----------------------------------------------------------------------------- BBH


def bbh_options(text: str) -> list[str]:
    """The option texts of a BBH input's ``Options:`` block of ``(A) ...`` lines ([] if none)."""
    head, sep, block = text.rpartition("\nOptions:")
    if not sep:
        return []
    options: list[str] = []
    for line in block.strip().splitlines():
        m = _OPTION.match(line.strip())
        if m is None or len(options) == len(LETTERS) or m.group(1) != LETTERS[len(options)]:
            return []  # "- Yes" lists and free text are not lettered options
        options.append(m.group(2).strip())
    return options


def _bbh(row: dict, index: int, ctx: _Context) -> dict:
    labeled = _labeled(row, ctx)
    problem = _text(row, "input")
    answer = _text(row, "target", answer=True) if labeled or row.get("target") is not None else ""
    options = bbh_options(problem)
    instruction = BBH_CHOICE_INSTRUCTION if options else BBH_INSTRUCTION
    source = f"bbh/{ctx.task}"
    return _record(
        f"{source}-{index}", problem, answer, labeled, source, instruction=instruction, options=options or None
    )


# ----------------------------------------------------------------------------- AGIEval


def _agieval_options(row: dict) -> list[str]:
    options = _as_list(row["options"])
    if not isinstance(options, list) or not all(isinstance(o, str) and o.strip() for o in options):
        raise _BadRow("bad_options", f"field 'options' must be a list of non-empty strings, got {_short(options)}")
    if len(options) > 10:
        raise _BadRow("bad_options", f"field 'options' has {len(options)} options; at most 10 (A-J) are read")
    texts = []
    for i, option in enumerate(options):
        m = _LABELED_OPTION.match(option)
        texts.append(option[m.end() :].strip() if m and m.group(1).upper() == LETTERS[i] else option.strip())
    return texts


def _agieval_label(row: dict, n_options: int) -> str:
    label = row.get("label")
    labels = label if isinstance(label, list) else [label]
    letters = []
    for item in labels:
        letter = item.strip().strip("()").upper() if isinstance(item, str) else None
        if not letter or len(letter) != 1 or letter not in LETTERS[:n_options]:
            raise _BadRow(
                "bad_label",
                f"field 'label' must be an option letter A-{LETTERS[n_options - 1]} (or a list of them), "
                f"got {_short(label)}",
            )
        letters.append(letter)
    return "".join(letters)


def _agieval(row: dict, index: int, ctx: _Context) -> dict:
    labeled = _labeled(row, ctx)
    question = _text(row, "question")
    passage = row.get("passage")
    if passage is not None and not isinstance(passage, str):
        raise _BadRow("non_string_field", f"field 'passage' must be a string or null, got {_short(passage)}")
    lead = f"{passage.strip()}\n\n" if passage and passage.strip() else ""
    source = f"agieval/{ctx.task}"
    rid = f"{source}-{index}"
    if row.get("options") is None or (hasattr(row["options"], "__len__") and not len(row["options"])):
        answer = _text(row, "answer", answer=True) if labeled or row.get("answer") is not None else ""
        return _record(rid, lead + question, answer, labeled, source)  # cloze: the \boxed{} instruction
    options = _agieval_options(row)
    answer = _agieval_label(row, len(options)) if labeled or row.get("label") is not None else ""
    choices = " ".join(f"({LETTERS[i]}) {text}" for i, text in enumerate(options))
    problem = f"{lead}Q: {question.strip()} Answer Choices: {choices}"
    instruction = AGIEVAL_INSTRUCTION.format(last=LETTERS[len(options) - 1])
    return _record(rid, problem, answer, labeled, source, instruction=instruction, options=options)


# ----------------------------------------------------------------------------- ZebraLogic


def _as_list(value: Any) -> Any:
    """A numpy array (Parquet via pandas) as a list; anything else as it is."""
    return value.tolist() if hasattr(value, "tolist") else value


def _grid(row: dict) -> tuple[list[str], list[list[str]]]:
    solution = row.get("solution")
    if isinstance(solution, str):
        try:
            solution = json.loads(solution)
        except json.JSONDecodeError as e:
            raise _BadRow("bad_solution", f"field 'solution' is not JSON ({e.msg})") from None
    if not isinstance(solution, dict):
        raise _BadRow("bad_solution", f"field 'solution' must be {{header, rows}}, got {_short(solution)}")
    header, rows = _as_list(solution.get("header")), _as_list(solution.get("rows"))
    if not isinstance(header, list) or len(header) < 2 or not all(isinstance(h, str) and h for h in header):
        raise _BadRow(
            "bad_solution", f"solution 'header' must list the house column and the attributes, got {_short(header)}"
        )
    rows = [_as_list(r) for r in rows] if isinstance(rows, list) else rows
    if (
        not isinstance(rows, list)
        or not rows
        or not all(isinstance(r, list) and len(r) == len(header) and all(isinstance(c, str) for c in r) for r in rows)
    ):
        raise _BadRow(
            "bad_solution",
            f"solution 'rows' must be lists of {len(header)} strings (one per house), got {_short(rows)}",
        )
    return header, rows


def zebra_template(header: list[str], n_houses: int) -> str:
    """ZeroEval's JSON answer template for a grid with these columns (``header[0]`` is the house)."""
    table = {f"House {i + 1}": {column: MASK for column in header[1:]} for i in range(n_houses)}
    return json.dumps({"reasoning": MASK, "solution": table}, indent=4, ensure_ascii=False)


def _zebra(row: dict, index: int, ctx: _Context) -> dict:
    labeled = _labeled(row, ctx)
    rid = _text(row, "id", answer=True)
    puzzle = _text(row, "puzzle")
    header, rows = _grid(row)
    masked = all(cell.strip() in ("", MASK) for r in rows for cell in r[1:])
    if masked and labeled:
        raise _BadRow(
            "masked_solution",
            "the solution is masked ('___'): the public allenai/ZebraLogicBench hides its answers; use "
            "allenai/ZebraLogicBench-private to grade, or give this file as unlabeled data",
        )
    answer = "" if masked else json.dumps({"header": header, "rows": rows}, ensure_ascii=False)
    instruction = ZEBRA_INSTRUCTION.format(template=zebra_template(header, len(rows)))
    size = row.get("size") if isinstance(row.get("size"), str) else None
    return _record(rid, puzzle, answer, labeled, "zebralogic", instruction=instruction, size=size)


# ----------------------------------------------------------------------------- GPQA


def gpqa_order(question_id: str, n: int = 4) -> list[int]:
    """The fixed option order of a question: indices of [correct, wrong 1, wrong 2, wrong 3]."""
    return sorted(range(n), key=lambda k: hashlib.sha256(f"{question_id}:{k}".encode()).digest())


def _gpqa(row: dict, index: int, ctx: _Context) -> dict:
    labeled = _labeled(row, ctx)
    source = ctx.task if ctx.task.lower().startswith("gpqa") else "gpqa_diamond"
    question = _text(row, "Question")
    answers = [_text(row, "Correct Answer", answer=True)]
    answers += [_text(row, f"Incorrect Answer {k}", answer=True) for k in (1, 2, 3)]
    rid = row.get("Record ID")
    rid = rid.strip() if isinstance(rid, str) and rid.strip() else f"{source}-{index}"
    order = gpqa_order(rid)
    options = [answers[k].strip() for k in order]
    letter = LETTERS[order.index(0)]
    lines = "\n".join(f"{LETTERS[i]}) {text}" for i, text in enumerate(options))
    instruction = GPQA_INSTRUCTION.format(letters=LETTERS[: len(options)])
    rec = _record(rid, f"{question.strip()}\n\n{lines}", letter, labeled, source)
    return {**rec, "instruction": instruction, "options": options}


_PARSERS: dict[str, Callable[[dict, int, _Context], dict]] = {
    "bbh": _bbh,
    "agieval": _agieval,
    "zebralogic": _zebra,
    "gpqa": _gpqa,
}


# ----------------------------------------------------------------------------- files


def _iter_csv(path: pathlib.Path) -> Iterator[tuple[str, Any]]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            for row in reader:
                yield f"line {reader.line_num}", {k: v for k, v in row.items() if k is not None}
    except (csv.Error, UnicodeDecodeError) as e:
        raise DataError(f"unreadable CSV ({e})", path=path, hint="re-export it as UTF-8 CSV with a header row") from e


def _iter_json(path: pathlib.Path, report: ReadReport) -> Iterator[tuple[str, Any]]:
    """A BBH task file ``{"examples": [...]}`` by example; other JSON as records.iter_rows reads it."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("examples"), list):
        for i, example in enumerate(doc["examples"]):
            yield f"example {i}", example
        return
    yield from iter_rows(path, report)


def source_rows(path: str | os.PathLike, report: ReadReport | None = None) -> Iterator[tuple[str, Any]]:
    """``(where, row)`` of a benchmark file (.jsonl, .json, .parquet or .csv)."""
    path = pathlib.Path(path)
    report = report if report is not None else ReadReport(str(path))
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _iter_csv(path)
    if suffix == ".json":
        return _iter_json(path, report)
    return iter_rows(path, report)


def detect(path: str | os.PathLike) -> str | None:
    """The benchmark a file holds, from its first row's fields; None for other files."""
    path = pathlib.Path(path)
    if not path.is_file() or path.suffix.lower() not in SOURCE_SUFFIXES:
        return None
    try:
        row = next(iter(source_rows(path)), None)
    except DataError:
        return None
    if not isinstance(row, tuple) or not isinstance(row[1], dict):
        return None
    keys = set(row[1])
    if keys & {"problem", "prompt"}:
        return None  # our own schemas
    if {"input", "target"} <= keys:
        return "bbh"
    if {"passage", "question", "options", "label"} <= keys:  # AGIEval rows carry all four, null or not
        return "agieval"
    if {"puzzle", "solution"} <= keys:
        return "zebralogic"
    if {"Question", "Correct Answer"} <= keys:
        return "gpqa"
    return None


def data_files(directory: str | os.PathLike) -> list[pathlib.Path]:
    """The data files directly inside a directory, in name order (hidden files left out)."""
    d = pathlib.Path(directory)
    return sorted(
        p for p in d.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SOURCE_SUFFIXES
    )


def is_benchmark_dir(directory: str | os.PathLike) -> bool:
    """A directory whose data files are all benchmark release files (at least one)."""
    files = data_files(directory)
    return bool(files) and all(detect(p) for p in files)


# ----------------------------------------------------------------------------- reading


def read_benchmark(
    path: str | os.PathLike,
    schema: str,
    *,
    default_is_labeled: bool = True,
    on_error: str = "raise",
    max_examples: int = 5,
) -> tuple[list[dict], ReadReport]:
    """One benchmark file -> ``(records, report)`` in file order (formats: the module docstring)."""
    path = pathlib.Path(path)
    if schema not in _PARSERS:
        raise DataError(f"unknown benchmark schema {schema!r}", path=path, hint=f"use one of {BENCHMARKS}")
    if on_error not in ON_ERROR:
        raise DataError(f"unknown on_error {on_error!r}", path=path, hint=f"use one of {ON_ERROR}")
    if not path.is_file():
        raise DataError("file not found", path=path, hint="check the path")
    parse, ctx = _PARSERS[schema], _Context(path, default_is_labeled)
    report = ReadReport(str(path), schema=schema, max_examples=max_examples)
    records: list[dict] = []
    seen: dict[str, str] = {}
    for index, (where, row) in enumerate(source_rows(path, report)):
        report.n_rows += 1
        try:
            if isinstance(row, Exception):  # an undecodable JSON line (records.iter_rows)
                raise _BadRow(getattr(row, "kind", "bad_row"), getattr(row, "reason", str(row)))
            if not isinstance(row, dict):
                raise _BadRow("not_an_object", f"expected a JSON object, got {type(row).__name__} {_short(row)}")
            rec = parse(row, index, ctx)
            if rec["id"] in seen:
                raise _BadRow("duplicate_id", f"duplicate id {rec['id']!r} (first at {seen[rec['id']]})")
            seen[rec["id"]] = where
        except _BadRow as e:
            if on_error == "raise":
                raise DataError(e.reason, path=path, where=where, hint=_SKIP_HINT) from None
            report.add_skip(where, e.reason, e.kind)
            continue
        records.append(rec)
        report.n_ok += 1
    if not records:
        raise DataError(
            f"no usable rows ({report.n_rows} rows read, {report.n_skipped} skipped {dict(report.reasons)})",
            path=path,
            hint=f"check that it is a {schema} release file",
        )
    return records, report


def _merge(into: ReadReport, part: ReadReport, name: str) -> None:
    into.n_rows += part.n_rows
    into.n_ok += part.n_ok
    into.n_skipped += part.n_skipped
    into.n_blank_lines += part.n_blank_lines
    into.reasons.update(part.reasons)
    into.defaulted.update(part.defaulted)
    room = into.max_examples - len(into.examples)
    into.examples.extend(f"{name}, {e}" for e in part.examples[: max(room, 0)])


def _read_directory(directory: pathlib.Path, schema: str, **kwargs: Any) -> tuple[list[dict], ReadReport]:
    files = data_files(directory)
    if not files:
        raise DataError(
            "is a directory without data files",
            path=directory,
            hint="give a benchmark release directory (bbh/, AGIEval's data/v1_1/, ZebraLogic's grid_mode/) or one file",
        )
    report = ReadReport(str(directory), schema=schema, max_examples=kwargs.get("max_examples", 5))
    records: list[dict] = []
    seen: dict[str, str] = {}
    kinds: collections.Counter[str] = collections.Counter()
    for path in files:
        kind = schema if schema in BENCHMARKS else detect(path)
        if kind is None:
            raise DataError(
                "is not a benchmark release file (BBH, AGIEval, ZebraLogic or GPQA)",
                path=path,
                hint="a directory is read as one benchmark release; move other files out or give the file itself",
            )
        recs, part = read_benchmark(path, kind, **kwargs)
        for rec in recs:
            if rec["id"] in seen:
                raise DataError(f"duplicate id {rec['id']!r} (also in {seen[rec['id']]})", path=path)
            seen[rec["id"]] = path.name
        records += recs
        kinds[kind] += 1
        _merge(report, part, path.name)
    report.schema = "+".join(sorted(kinds))
    return records, report


def read_source(
    path: str | os.PathLike,
    schema: str = "auto",
    *,
    question_key: str | None = None,
    answer_key: str | None = None,
    id_key: str | None = None,
    data_source: str | None = None,
    default_is_labeled: bool = True,
    on_error: str = "raise",
    coerce_numbers: bool = False,
    max_examples: int = 5,
) -> tuple[list[dict], ReadReport]:
    """Any source: a benchmark file or release directory (their own ``data_source``, see the module
    docstring), else :func:`~tempo_jax.data.records.read_records` with these settings."""
    path = pathlib.Path(path)
    common: dict[str, Any] = dict(default_is_labeled=default_is_labeled, on_error=on_error, max_examples=max_examples)
    if path.is_dir():
        return _read_directory(path, schema, **common)
    if schema in BENCHMARKS:
        return read_benchmark(path, schema, **common)
    if schema == "auto" and not (question_key or answer_key):
        found = detect(path)
        if found is not None:
            return read_benchmark(path, found, **common)
    if path.suffix.lower() == ".csv":
        raise DataError(
            "a .csv file is read as GPQA only (columns Question, Correct Answer, Incorrect Answer 1-3)",
            path=path,
            hint="convert other tables to .jsonl or .parquet",
        )
    return read_records(
        path,
        schema,
        question_key=question_key,
        answer_key=answer_key,
        id_key=id_key,
        data_source=data_source,
        default_is_labeled=default_is_labeled,
        on_error=on_error,
        coerce_numbers=coerce_numbers,
        max_examples=max_examples,
    )
