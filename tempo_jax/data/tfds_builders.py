"""TFDS datasets over local files, prepared as ``array_record`` and read without TensorFlow.

Every source (a named dataset such as ``aime24`` or any JSONL/JSON/Parquet path in one of the
schemas of :mod:`tempo_jax.data.records`, or a benchmark release file or directory of
:mod:`tempo_jax.data.benchmarks`: BBH, AGIEval, ZebraLogic, GPQA) becomes a ``GeneratorBasedBuilder`` with a single
``BuilderConfig`` describing it. The config name carries a digest of the file's bytes and the
reader settings, so editing the file (or changing a key) prepares a fresh copy instead of
reading a stale one. Prepared data lives under the TFDS cache dir as
``<tfds_dir>/tempo_local_records/<label>_<digest>/1.0.0/*.array_record-*``.

Reading uses ``builder.as_data_source(split)`` (random access over ``array_record``); only
``tfds.load`` / ``as_dataset`` would need TensorFlow. Records come back as dicts of bytes in
TFDS's shuffled order; :func:`load_records` decodes them and restores file order using the
stored ``index`` field.

Directories, each resolved as: function argument > environment variable > default.
* source data: ``data_dir`` > ``$TEMPO_JAX_DATA_DIR`` > ``../shared/data`` (relative to the cwd)
* prepared cache: ``tfds_dir`` > ``$TEMPO_JAX_TFDS_DIR`` > ``~/.cache/tempo_jax/tfds``
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import re
import types
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core.utils import tqdm_utils

from tempo_jax import storage
from tempo_jax.data.benchmarks import SOURCE_SUFFIXES, data_files, is_benchmark_dir, read_source
from tempo_jax.data.records import RECORD_KEYS, DataError, ReadReport, local_data_file

log = logging.getLogger(__name__)

DATA_DIR_ENV = "TEMPO_JAX_DATA_DIR"
TFDS_DIR_ENV = "TEMPO_JAX_TFDS_DIR"
DEFAULT_DATA_DIR = pathlib.Path("..") / "shared" / "data"
DEFAULT_TFDS_DIR = pathlib.Path("~") / ".cache" / "tempo_jax" / "tfds"
BUILDER_NAME = "tempo_local_records"
_FORMAT_VERSION = "4"  # bump when the stored features or reader semantics change (3: messages, 4: extra)


@dataclasses.dataclass(frozen=True)
class NamedDataset:
    file: str
    split: str
    description: str


NAMED_DATASETS: dict[str, NamedDataset] = {
    "aime24": NamedDataset("aime24.jsonl", "test", "AIME 2024 I+II (30)"),
    "aime25": NamedDataset("aime25.jsonl", "test", "AIME 2025 I+II (30)"),
    "math500": NamedDataset("math500.jsonl", "test", "MATH-500 (500)"),
    "gsm8k_test": NamedDataset("gsm8k_test.jsonl", "test", "GSM8K test (1319)"),
    "math_train": NamedDataset("math_train.jsonl", "train", "MATH train (7470), D_L candidate"),
    "aime_1983_2023": NamedDataset("aime_1983_2023.jsonl", "train", "AIME 1983-2023 (975), D_L candidate"),
    # the non-math benchmarks, as released (tempo_jax/data/benchmarks.py); copy them into the data dir
    "bbh": NamedDataset("bbh", "test", "BIG-Bench Hard: the release's bbh/ directory (27 tasks, 6511)"),
    "agieval": NamedDataset("agieval", "test", "AGIEval: a directory of data/v1_1/<task>.jsonl files"),
    "zebralogic": NamedDataset("zebralogic", "test", "ZebraLogic grid_mode (1000): a directory of its files"),
    "gpqa_diamond": NamedDataset("gpqa_diamond.csv", "test", "GPQA-Diamond (198), held out"),
}


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Source-data directory: argument > ``$TEMPO_JAX_DATA_DIR`` > ``../shared/data``."""
    d = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return pathlib.Path(d).expanduser().resolve()


def resolve_tfds_dir(tfds_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Prepared-data cache directory: argument > ``$TEMPO_JAX_TFDS_DIR`` > ``~/.cache/tempo_jax/tfds``."""
    d = tfds_dir if tfds_dir is not None else os.environ.get(TFDS_DIR_ENV) or DEFAULT_TFDS_DIR
    return pathlib.Path(d).expanduser().resolve()


def resolve_source(
    name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None
) -> tuple[pathlib.Path, str, str]:
    """Map a dataset name or file path to ``(path, default split, label)``."""
    s = str(name_or_path)
    if s in NAMED_DATASETS:
        spec = NAMED_DATASETS[s]
        root = resolve_data_dir(data_dir)
        path = root / spec.file
        if not path.exists():
            raise DataError(
                f"dataset {s!r} expects {spec.file} in the data dir {root}, which does not have it",
                path=path,
                hint=f"set data.data_dir (data_dir= in Python) or ${DATA_DIR_ENV} "
                "to the directory holding the shared data files",
            )
        return path, spec.split, s
    if storage.is_remote(s):  # a file in a bucket: read from a local copy
        local = local_data_file(s)
        return local, "train", local.stem
    p = pathlib.Path(s).expanduser()
    if p.suffix.lower() in SOURCE_SUFFIXES or os.sep in s or p.exists():
        if not p.exists():
            raise DataError("file not found", path=p, hint="check the path")
        if p.is_dir() and not is_benchmark_dir(p):
            raise DataError(
                "is a directory, not a data file",
                path=p,
                hint="give one .jsonl, .json or .parquet file inside it, or a benchmark release directory "
                "(BBH's bbh/, AGIEval's data/v1_1/, ZebraLogic's grid_mode/)",
            )
        return p.resolve(), "train", p.name if p.is_dir() else p.stem
    raise DataError(
        f"unknown dataset name {s!r}",
        hint=f"use one of {sorted(NAMED_DATASETS)} (files in the data dir, set by data_dir= or "
        f"${DATA_DIR_ENV}) or a path to a .jsonl/.json/.parquet file",
    )


# ----------------------------------------------------------------------------- builder


@dataclasses.dataclass(eq=False)
class LocalSourceConfig(tfds.core.BuilderConfig):
    """One local source file and the reader settings (see :func:`read_records`)."""

    source: str = ""
    split: str = "train"
    schema: str = "auto"
    question_key: str | None = None
    answer_key: str | None = None
    id_key: str | None = None
    data_source: str | None = None
    default_is_labeled: bool = True
    on_error: str = "raise"
    coerce_numbers: bool = False

    def reader_kwargs(self) -> dict:
        return dict(
            schema=self.schema,
            question_key=self.question_key,
            answer_key=self.answer_key,
            id_key=self.id_key,
            data_source=self.data_source,
            default_is_labeled=self.default_is_labeled,
            on_error=self.on_error,
            coerce_numbers=self.coerce_numbers,
        )


# tensorflow_datasets ships no type information, so mypy sees an Any base and checks the keyword
# against object.__init_subclass__; tfds's RegisteredDataset.__init_subclass__ takes it.
class LocalRecordsBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):  # type: ignore[call-arg]
    """Base class; :func:`make_builder` derives one subclass per source with its config."""

    name = BUILDER_NAME
    VERSION = tfds.core.Version("1.0.0")

    # TFDS 4.9.10 resolves `code_path` through the optional `importlib_resources` package for
    # builders that live in a package, and fails without it. Our builder has no checksums or
    # other files next to its code, so point it at this file directly.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        return epath.Path(__file__)

    RELEASE_NOTES = {"1.0.0": "Normalised {id, problem, answer, is_labeled, data_source} + index."}

    # TFDS prints "Downloading and preparing dataset Unknown size ..." to stdout for every
    # source; nothing is downloaded here, so say what happens once, at debug level.
    def _log_download_bytes(self) -> None:
        log.debug("preparing %s from %s", self.builder_config.name, self.builder_config.source)

    def _log_download_done(self) -> None:
        log.debug("prepared %s in %s", self.builder_config.name, self.data_dir)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Question/answer records read from a local file by tempo_jax.data.records.",
            features=tfds.features.FeaturesDict(
                {
                    "id": tfds.features.Text(),
                    "problem": tfds.features.Text(),
                    "answer": tfds.features.Text(),
                    "is_labeled": np.bool_,
                    "data_source": tfds.features.Text(),
                    "messages": tfds.features.Text(),  # JSON of a verl row's chat messages; "" = none
                    "extra": tfds.features.Text(),  # JSON of other record fields (options, instruction); "" = none
                    "index": np.int64,  # position among the kept rows of the source file
                }
            ),
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        cfg: LocalSourceConfig = self.builder_config
        records, report = read_source(cfg.source, **cfg.reader_kwargs())
        self.info.metadata["source"] = cfg.source
        self.info.metadata["read_report"] = report.to_dict()
        return {cfg.split: self._generate_examples(records)}

    def _generate_examples(self, records):
        for i, rec in enumerate(records):
            messages = json.dumps(rec["messages"], ensure_ascii=False) if rec.get("messages") else ""
            extra = {k: v for k, v in rec.items() if k not in (*RECORD_KEYS, "messages")}
            row = {k: rec[k] for k in RECORD_KEYS}
            extra_json = json.dumps(extra, ensure_ascii=False) if extra else ""
            yield i, {**row, "messages": messages, "extra": extra_json, "index": i}


def _file_digest(path: pathlib.Path) -> str:
    """sha256 of a file's bytes; of a (benchmark) directory: of its data files' names and bytes."""
    h = hashlib.sha256()
    for file in data_files(path) if path.is_dir() else [path]:
        if path.is_dir():
            h.update(file.name.encode() + b"\x00")
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _label(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", s).strip("_").lower() or "data"


def make_builder(
    name_or_path: str | os.PathLike,
    *,
    split: str | None = None,
    data_dir: str | os.PathLike | None = None,
    tfds_dir: str | os.PathLike | None = None,
    schema: str = "auto",
    question_key: str | None = None,
    answer_key: str | None = None,
    id_key: str | None = None,
    data_source: str | None = None,
    default_is_labeled: bool = True,
    on_error: str = "raise",
    coerce_numbers: bool = False,
) -> LocalRecordsBuilder:
    """A (not yet prepared) TFDS builder for a named dataset or a local file."""
    path, default_split, label = resolve_source(name_or_path, data_dir)
    split = split or default_split
    if not re.fullmatch(r"\w+", split):
        raise DataError(f"bad split name {split!r}", hint="use letters, digits and underscores, e.g. 'train'")
    settings: dict[str, Any] = dict(
        schema=schema,
        question_key=question_key,
        answer_key=answer_key,
        id_key=id_key,
        data_source=data_source or label,
        default_is_labeled=default_is_labeled,
        on_error=on_error,
        coerce_numbers=coerce_numbers,
        split=split,
        fmt=_FORMAT_VERSION,
    )
    digest = hashlib.sha256((_file_digest(path) + json.dumps(settings, sort_keys=True)).encode()).hexdigest()[:12]
    cfg = LocalSourceConfig(
        name=f"{_label(label)}_{digest}",
        version=LocalRecordsBuilder.VERSION,
        description=f"{path} ({split})",
        source=str(path),
        split=split,
        **{k: v for k, v in settings.items() if k not in ("split", "fmt")},
    )
    cls = types.new_class(
        "TempoLocalRecords",
        (LocalRecordsBuilder,),
        {"skip_registration": True},
        lambda ns: ns.update({"BUILDER_CONFIGS": [cfg], "name": BUILDER_NAME, "__module__": __name__}),
    )
    return cls(config=cfg.name, data_dir=str(resolve_tfds_dir(tfds_dir)), file_format="array_record")


@contextlib.contextmanager
def _quiet_tfds():
    """Hide TFDS's progress bars and its "variant folder has no dataset_info.json" warning.
    Both describe TFDS internals (a local file becoming ``array_record``), not anything the
    user can act on, and they flooded every demo and training log.
    """

    absl_log = logging.getLogger("absl")
    level, bars = absl_log.level, tqdm_utils._active
    absl_log.setLevel(logging.ERROR)
    tfds.display_progress_bar(False)
    try:
        yield
    finally:
        absl_log.setLevel(level)
        tfds.display_progress_bar(bars)


def prepare(name_or_path: str | os.PathLike, **kwargs) -> LocalRecordsBuilder:
    """:func:`make_builder` then prepare it (a no-op when the cache already holds it)."""
    with _quiet_tfds():
        builder = make_builder(name_or_path, **kwargs)
        if not builder.is_prepared():
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(
                    download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS
                )
            )
    report = read_report(builder)
    if report is not None and report.n_skipped:
        log.warning("dataset %s was prepared with skipped rows: %s", name_or_path, report)
    return builder


def read_report(builder: LocalRecordsBuilder) -> ReadReport | None:
    """The :class:`ReadReport` stored with a prepared dataset (skip counts survive caching)."""
    d = builder.info.metadata.get("read_report") if builder.info.metadata is not None else None
    return ReadReport.from_dict(d) if d else None


def as_data_source(name_or_path: str | os.PathLike, split: str | None = None, **kwargs):
    """Random-access TFDS data source (``len``, ``[i]``; values are bytes, order shuffled)."""
    builder = prepare(name_or_path, split=split, **kwargs)
    return builder.as_data_source(builder.builder_config.split)


def decode_example(ex: dict) -> dict:
    """A TFDS example (bytes) -> the normalised record of :mod:`records` (plus ``index``; plus
    ``messages`` for a verl row)."""
    dec = lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v)
    rec = {
        "id": dec(ex["id"]),
        "problem": dec(ex["problem"]),
        "answer": dec(ex["answer"]),
        "is_labeled": bool(ex["is_labeled"]),
        "data_source": dec(ex["data_source"]),
        "index": int(ex["index"]),
    }
    messages = dec(ex.get("messages", b""))
    if messages:
        rec["messages"] = json.loads(messages)
    extra = dec(ex.get("extra", b""))
    if extra:
        rec.update({k: v for k, v in json.loads(extra).items() if k not in rec})
    return rec


def load_records(name_or_path: str | os.PathLike, split: str | None = None, *, return_report: bool = False, **kwargs):
    """Prepare (if needed) and read all records in file order -> ``list[dict]``.

    Keyword arguments are those of :func:`make_builder`. With ``return_report=True`` returns
    ``(records, ReadReport)``.
    """
    builder = prepare(name_or_path, split=split, **kwargs)
    source = builder.as_data_source(builder.builder_config.split)
    n = len(source)
    examples = source.__getitems__(list(range(n))) if n else []
    records = sorted((decode_example(ex) for ex in examples), key=lambda r: r["index"])
    for r in records:
        del r["index"]
    if return_report:
        return records, read_report(builder)
    return records
