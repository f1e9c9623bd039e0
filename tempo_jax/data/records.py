"""Read question/answer datasets from local JSONL, JSON and Parquet files, with validation.

Three input schemas map to one normalised record
``{"id": str, "problem": str, "answer": str, "is_labeled": bool, "data_source": str}``:

* ``"tempo"`` -- our files: ``{"id", "problem", "answer"}`` per row (optional ``is_labeled``,
  ``data_source``, and ``options`` -- a multiple-choice row's option texts, letters A, B, ... implied --
  and ``instruction`` -- the row's own answer-format instruction, see :mod:`tempo_jax.data.templates`,
  both kept in the record); other fields are ignored.
* ``"hf"`` -- Hugging Face style rows with configurable ``question_key`` / ``answer_key`` /
  ``id_key`` (dotted paths such as ``"meta.id"`` reach into nested dicts). Without ``id_key``
  the id is ``"<data_source>-<row>"`` (row = 0-based position in the file).
* ``"verl"`` -- the verl RL row: ``prompt`` (chat messages; the problem is the content of the
  last ``user`` message), ``data_source``, ``reward_model.{ground_truth, is_labeled}``,
  optional ``extra_info``. The id is ``"<data_source>-<row>"`` unless ``id_key`` is given.
  Its records also carry ``messages``: the prompt's ``{role, content}`` messages as given (a
  system prompt included), which :mod:`tempo_jax.data.templates` renders in order.
* ``"auto"`` picks ``verl`` when a row has ``prompt`` and ``reward_model``, ``tempo`` when it
  has ``problem`` and ``answer``, and ``hf`` when ``question_key``/``answer_key`` are given.

Malformed input never disappears silently: with ``on_error="raise"`` (default) the first bad
row raises :class:`DataError` naming the file, the line (JSONL) or row (Parquet), the problem
and what to do; with ``on_error="skip"`` bad rows are left out and counted in the returned
:class:`ReadReport` (counts per reason and the first examples), which is also logged.
Defaults that were applied (a verl row without ``is_labeled``, a row without ``data_source``)
are counted in the report as well.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq

from tempo_jax import storage
from tempo_jax.errors import UserError

log = logging.getLogger(__name__)

SCHEMAS = ("auto", "tempo", "hf", "verl")
ON_ERROR = ("raise", "skip")
SUFFIXES = (".jsonl", ".json", ".parquet")
RECORD_KEYS = ("id", "problem", "answer", "is_labeled", "data_source")
OPTIONAL_KEYS = ("options", "instruction")  # kept from tempo rows (and set by data/benchmarks.py)


class DataError(UserError, ValueError):
    """A dataset file or dataset name cannot be used; the message says where and what to do."""

    def __init__(
        self, problem: str, *, path: str | os.PathLike | None = None, where: str | None = None, hint: str | None = None
    ):
        self.path = None if path is None else str(path)
        self.where = where
        self.problem = problem
        self.hint = hint
        loc = ", ".join(x for x in (self.path, where) if x)
        msg = f"{loc}: {problem}" if loc else problem
        if hint:
            msg += f". {hint[:1].upper()}{hint[1:]}"
        super().__init__(msg)


@dataclasses.dataclass
class ReadReport:
    """What a read kept, skipped (with reasons) and defaulted. ``str(report)`` is a summary."""

    path: str
    schema: str = ""
    n_rows: int = 0  # rows seen (blank JSONL lines excluded)
    n_ok: int = 0
    n_skipped: int = 0
    n_blank_lines: int = 0
    reasons: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    examples: list = dataclasses.field(default_factory=list)  # first "where: reason" strings
    defaulted: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    max_examples: int = 5

    def add_skip(self, where: str, reason: str, kind: str) -> None:
        self.n_skipped += 1
        self.reasons[kind] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(f"{where}: {reason}")

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "schema": self.schema,
            "n_rows": self.n_rows,
            "n_ok": self.n_ok,
            "n_skipped": self.n_skipped,
            "n_blank_lines": self.n_blank_lines,
            "reasons": dict(self.reasons),
            "examples": list(self.examples),
            "defaulted": dict(self.defaulted),
        }

    @classmethod
    def from_dict(cls, d: dict) -> ReadReport:
        return cls(
            path=d["path"],
            schema=d.get("schema", ""),
            n_rows=d["n_rows"],
            n_ok=d["n_ok"],
            n_skipped=d["n_skipped"],
            n_blank_lines=d.get("n_blank_lines", 0),
            reasons=collections.Counter(d.get("reasons", {})),
            examples=list(d.get("examples", [])),
            defaulted=collections.Counter(d.get("defaulted", {})),
        )

    def __str__(self) -> str:
        s = f"{self.path} [{self.schema}]: {self.n_ok}/{self.n_rows} rows kept"
        if self.n_skipped:
            s += f", {self.n_skipped} skipped {dict(self.reasons)}; first: " + " | ".join(self.examples)
        if self.defaulted:
            s += f"; defaults applied {dict(self.defaulted)}"
        return s


class _RowError(Exception):
    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


# ----------------------------------------------------------------------------- row sources


def _check_path(path: pathlib.Path) -> None:
    if not path.exists():
        raise DataError(
            "file not found", path=path, hint="check the path (or TEMPO_JAX_DATA_DIR / data_dir for named datasets)"
        )
    if path.is_dir():
        raise DataError("is a directory, expected a .jsonl, .json or .parquet file", path=path)
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(
            f"unsupported file type {path.suffix!r}",
            path=path,
            hint="use .jsonl (one JSON object per line), .json or .parquet",
        )


def _iter_jsonl(path: pathlib.Path, report: ReadReport) -> Iterator[tuple[str, Any]]:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            where = f"line {lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield where, _RowError("bad_encoding", f"not valid UTF-8 ({e.reason} at byte {e.start})")
                continue
            if not line.strip():
                report.n_blank_lines += 1
                continue
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as e:
                yield where, _RowError("broken_json", f"broken JSON ({e.msg} at column {e.colno})")


def _iter_json(path: pathlib.Path, report: ReadReport) -> Iterator[tuple[str, Any]]:
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    if not head.startswith(b"["):
        yield from _iter_jsonl(path, report)  # a .json file holding JSON lines
        return
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f"line {e.lineno}" if isinstance(e, json.JSONDecodeError) else None
        raise DataError(
            f"broken JSON array ({e})",
            path=path,
            where=where,
            hint="fix the file or convert it to JSON lines (then bad lines can be skipped)",
        ) from e
    for i, item in enumerate(items):
        yield f"item {i}", item


def _iter_parquet(path: pathlib.Path, report: ReadReport) -> Iterator[tuple[str, Any]]:
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for non-Parquet bytes
        raise DataError(
            f"unreadable Parquet file ({type(e).__name__}: {e})",
            path=path,
            hint="check that it is a complete Parquet file (re-export it with "
            "pandas.DataFrame.to_parquet or pyarrow.parquet.write_table)",
        ) from e
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=1024):
            for item in batch.to_pylist():
                yield f"row {row}", item
                row += 1
    except DataError:
        raise
    except Exception as e:
        raise DataError(
            f"unreadable Parquet data after row {row} ({type(e).__name__}: {e})",
            path=path,
            where=f"row {row}",
            hint="the file is truncated or corrupt; re-export it",
        ) from e


def local_data_file(path: str | os.PathLike) -> pathlib.Path:
    """``path`` as a local path: a ``gs://`` file is read from a local copy
    (:func:`tempo_jax.storage.local_copy`), a missing one is a :class:`DataError`."""
    if storage.is_remote(path):
        if not storage.isfile(path):
            raise DataError("file not found", path=path, hint="check the bucket path (gsutil ls)")
        return pathlib.Path(storage.local_copy(path))
    return pathlib.Path(path)


def iter_rows(path: str | os.PathLike, report: ReadReport | None = None) -> Iterator[tuple[str, Any]]:
    """Yield ``(where, row)`` for each row; ``row`` is a ``_RowError`` for an undecodable line."""
    path = local_data_file(path)
    _check_path(path)
    report = report if report is not None else ReadReport(str(path))
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _iter_parquet(path, report)
    if suffix == ".json":
        return _iter_json(path, report)
    return _iter_jsonl(path, report)


# ----------------------------------------------------------------------------- field helpers


def _get(row: dict, key: str) -> tuple[bool, Any]:
    cur: Any = row
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def _as_str(value: Any, key: str, *, coerce: bool, required_nonempty: bool = True) -> str:
    if isinstance(value, str):
        s = value
    elif coerce and isinstance(value, (int, float)) and not isinstance(value, bool):
        s = str(value)
    else:
        raise _RowError(
            "non_string_field",
            f"field {key!r} must be a string, got "
            f"{type(value).__name__} {_short(value)}"
            + ("" if coerce else " (set data.coerce_numbers=True to accept numbers)"),
        )
    if required_nonempty and not s.strip():
        raise _RowError(f"empty_{key.split('.')[-1]}", f"field {key!r} is empty")
    return s


def _required(row: dict, key: str, *, coerce: bool) -> str:
    found, value = _get(row, key)
    if found and value is None:
        raise _RowError(f"missing_{key.split('.')[-1]}", f"field {key!r} is null")
    if not found:
        raise _RowError(f"missing_{key.split('.')[-1]}", f"missing field {key!r} (row has keys {sorted(row)[:12]})")
    return _as_str(value, key, coerce=coerce)


def _short(value: Any, n: int = 40) -> str:
    r = repr(value)
    return r if len(r) <= n else r[: n - 3] + "..."


def _bool_field(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_":  # numpy bool from Parquet/pandas
        return bool(value)
    raise _RowError("non_bool_field", f"field {key!r} must be a boolean, got {type(value).__name__} {_short(value)}")


# ----------------------------------------------------------------------------- schemas


@dataclasses.dataclass(frozen=True)
class _Options:
    schema: str
    question_key: str | None
    answer_key: str | None
    id_key: str | None
    data_source: str
    default_is_labeled: bool
    coerce_numbers: bool


def _detect_schema(row: dict, opts: _Options) -> str:
    if opts.question_key or opts.answer_key:
        return "hf"
    if "prompt" in row and "reward_model" in row:
        return "verl"
    if "problem" in row:  # the answer may be missing on an unlabeled test question
        return "tempo"
    raise _RowError(
        "unknown_schema",
        f"cannot tell the schema from keys {sorted(row)[:12]}; expected "
        "{id, problem, answer}, verl {prompt, reward_model, ...}, or pass "
        "question_key=/answer_key= for other files",
    )


def _is_labeled(row: dict, opts: _Options, report: ReadReport, labeled_key: str, count_defaults: bool) -> bool:
    """The row's own flag, else the default (counted where the schema expects the flag)."""
    found, lab = _get(row, labeled_key)
    if found and lab is not None:
        return _bool_field(lab, labeled_key)
    if count_defaults:
        report.defaulted["is_labeled"] += 1
    return opts.default_is_labeled


def _answer(row: dict, key: str, opts: _Options, labeled: bool) -> str:
    """Required on labeled rows; an unlabeled test question may have none ("" = unknown)."""
    found, value = _get(row, key)
    if not labeled and (not found or value is None):
        return ""
    return _required(row, key, coerce=opts.coerce_numbers)


def _common_tail(row: dict, rec: dict, opts: _Options, report: ReadReport, count_defaults: bool) -> dict:
    """Fill data_source from the row or the default (counted where the schema expects it)."""
    found, src = _get(row, "data_source")
    if found and src is not None:
        rec["data_source"] = _as_str(src, "data_source", coerce=False)
    else:
        rec["data_source"] = opts.data_source
        if count_defaults:
            report.defaulted["data_source"] += 1
    return rec


def _optional(row: dict) -> dict:
    """A tempo row's ``options`` (non-empty strings) and ``instruction`` (a string), when given."""
    out: dict[str, Any] = {}
    options = row.get("options")
    if options is not None and hasattr(options, "tolist"):  # numpy array from Parquet
        options = options.tolist()
    if options is not None:
        if not isinstance(options, list) or not all(isinstance(o, str) and o.strip() for o in options):
            raise _RowError(
                "bad_options", f"field 'options' must be a list of non-empty strings, got {_short(options)}"
            )
        out["options"] = list(options)
    if row.get("instruction") is not None:
        out["instruction"] = _as_str(row["instruction"], "instruction", coerce=False, required_nonempty=False)
    return out


def _parse_tempo(row: dict, index: int, opts: _Options, report: ReadReport) -> dict:
    labeled = _is_labeled(row, opts, report, "is_labeled", count_defaults=False)
    rec = {
        "id": _required(row, opts.id_key or "id", coerce=opts.coerce_numbers),
        "problem": _required(row, "problem", coerce=False),
        "answer": _answer(row, "answer", opts, labeled),
        "is_labeled": labeled,
    }
    rec = _common_tail(row, rec, opts, report, count_defaults=False)
    return {**{k: rec[k] for k in RECORD_KEYS}, **_optional(row)}


def _parse_hf(row: dict, index: int, opts: _Options, report: ReadReport) -> dict:
    if not opts.question_key or not opts.answer_key:
        raise DataError(
            "schema 'hf' needs question_key= and answer_key=", hint="e.g. question_key='question', answer_key='answer'"
        )
    labeled = _is_labeled(row, opts, report, "is_labeled", count_defaults=False)
    problem = _required(row, opts.question_key, coerce=False)
    rec = {"problem": problem, "answer": _answer(row, opts.answer_key, opts, labeled), "is_labeled": labeled}
    found, src = _get(row, "data_source")
    ds = src if found and isinstance(src, str) and src else opts.data_source
    rec["id"] = _required(row, opts.id_key, coerce=True) if opts.id_key else f"{ds}-{index}"
    rec = _common_tail(row, rec, opts, report, count_defaults=False)
    return {k: rec[k] for k in RECORD_KEYS}


def _parse_verl(row: dict, index: int, opts: _Options, report: ReadReport) -> dict:
    found, prompt = _get(row, "prompt")
    if not found or prompt is None:
        raise _RowError("missing_prompt", "missing field 'prompt' (a list of chat messages)")
    if hasattr(prompt, "tolist"):  # numpy array from pandas-written Parquet
        prompt = prompt.tolist()
    if not isinstance(prompt, list) or not prompt:
        raise _RowError(
            "bad_prompt", f"field 'prompt' must be a non-empty list of {{role, content}} messages, got {_short(prompt)}"
        )
    problem = None
    messages = []
    for j, m in enumerate(prompt):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise _RowError("bad_prompt", f"prompt[{j}] must be a {{role, content}} dict, got {_short(m)}")
        role = _as_str(m["role"], f"prompt[{j}].role", coerce=False)
        content = _as_str(m["content"], f"prompt[{j}].content", coerce=False, required_nonempty=role == "user")
        messages.append({"role": role, "content": content})
        if role == "user":
            problem = content
    if problem is None:
        raise _RowError("missing_problem", "prompt has no 'user' message")
    found, rm = _get(row, "reward_model")
    if not found or not isinstance(rm, dict):
        raise _RowError("missing_answer", "missing field 'reward_model' (a dict with 'ground_truth')")
    labeled = _is_labeled(row, opts, report, "reward_model.is_labeled", count_defaults=True)
    answer = _answer(row, opts.answer_key or "reward_model.ground_truth", opts, labeled)
    found, src = _get(row, "data_source")
    ds = _as_str(src, "data_source", coerce=False) if found and src is not None else opts.data_source
    rid = _required(row, opts.id_key, coerce=True) if opts.id_key else f"{ds}-{index}"
    rec = {"id": rid, "problem": problem, "answer": answer, "is_labeled": labeled}
    rec = _common_tail(row, rec, opts, report, count_defaults=True)
    return {**{k: rec[k] for k in RECORD_KEYS}, "messages": messages}


_PARSERS = {"tempo": _parse_tempo, "hf": _parse_hf, "verl": _parse_verl}


# ----------------------------------------------------------------------------- public API


def read_records(
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
    """Read and validate one file; returns ``(records, report)`` in file order.

    ``data_source`` defaults to the file stem (used when a row has none). ``on_error`` is
    ``"raise"`` (first bad row -> :class:`DataError`) or ``"skip"`` (count it in the report).
    File-level problems (missing file, unreadable Parquet, broken JSON array) always raise.
    """
    path = pathlib.Path(path)
    if schema not in SCHEMAS:
        raise DataError(f"unknown schema {schema!r}", path=path, hint=f"use one of {SCHEMAS}")
    if on_error not in ON_ERROR:
        raise DataError(f"unknown on_error {on_error!r}", path=path, hint=f"use one of {ON_ERROR}")
    if schema == "hf" and not (question_key and answer_key):
        raise DataError(
            "schema 'hf' needs question_key= and answer_key=",
            path=path,
            hint="e.g. question_key='question', answer_key='answer'",
        )
    opts = _Options(
        schema, question_key, answer_key, id_key, data_source or path.stem, default_is_labeled, coerce_numbers
    )
    report = ReadReport(str(path), schema=schema, max_examples=max_examples)
    records: list[dict] = []
    seen_ids: dict[str, str] = {}
    detected = None if schema == "auto" else schema
    index = -1
    for where, row in iter_rows(path, report):
        index += 1
        report.n_rows += 1
        try:
            if isinstance(row, _RowError):
                raise row
            if not isinstance(row, dict):
                raise _RowError("not_an_object", f"expected a JSON object, got {type(row).__name__} {_short(row)}")
            if detected is None:
                detected = _detect_schema(row, opts)
                report.schema = f"auto->{detected}"
            rec = _PARSERS[detected](row, index, opts, report)
            if rec["id"] in seen_ids:
                raise _RowError("duplicate_id", f"duplicate id {rec['id']!r} (first at {seen_ids[rec['id']]})")
            seen_ids[rec["id"]] = where
        except _RowError as e:
            if on_error == "raise":
                raise DataError(
                    e.reason,
                    path=path,
                    where=where,
                    hint="fix the row, or set data.on_error=skip (on_error='skip' in Python) to "
                    "leave bad rows out; they are counted and reported",
                ) from None
            report.add_skip(where, e.reason, e.kind)
            continue
        records.append(rec)
        report.n_ok += 1
    if report.n_skipped:
        log.warning("skipped malformed rows: %s", report)
    if not records:
        raise DataError(
            f"no usable rows ({report.n_rows} rows read, {report.n_skipped} skipped {dict(report.reasons)})",
            path=path,
            hint="check the file and the schema/key settings",
        )
    return records, report


def read_tempo_jsonl(path: str | os.PathLike, **kwargs) -> tuple[list[dict], ReadReport]:
    """Our ``{id, problem, answer}`` files (see :func:`read_records` for keyword arguments)."""
    return read_records(path, "tempo", **kwargs)


def read_hf(
    path: str | os.PathLike, question_key: str, answer_key: str, id_key: str | None = None, **kwargs
) -> tuple[list[dict], ReadReport]:
    """HF-style JSONL/Parquet with configurable keys (see :func:`read_records`)."""
    return read_records(path, "hf", question_key=question_key, answer_key=answer_key, id_key=id_key, **kwargs)


def read_verl(path: str | os.PathLike, **kwargs) -> tuple[list[dict], ReadReport]:
    """verl rows (``prompt``, ``data_source``, ``reward_model``) from JSONL or Parquet."""
    return read_records(path, "verl", **kwargs)


def validate_record(rec: dict, where: str = "record") -> dict:
    """Check a normalised record built in code (e.g. a synthetic task); returns it unchanged."""
    for k in RECORD_KEYS:
        if k not in rec:
            raise DataError(f"missing field {k!r}", where=where)
    for k in ("id", "problem", "answer", "data_source"):
        if not isinstance(rec[k], str):
            raise DataError(f"field {k!r} must be a string, got {type(rec[k]).__name__}", where=where)
    for k in ("id", "problem", "answer"):
        if not rec[k].strip():
            raise DataError(f"field {k!r} is empty", where=where)
    if not isinstance(rec["is_labeled"], bool):
        raise DataError("field 'is_labeled' must be a boolean", where=where)
    return rec
