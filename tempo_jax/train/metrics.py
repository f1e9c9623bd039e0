"""Per-step metrics: a JSONL file (the source of truth), TensorBoard scalars, a tqdm bar and optional
sinks (Weights & Biases, :mod:`tempo_jax.train.wandb_logger`).

Both files go through :mod:`tempo_jax.storage`, so a ``gs://`` run directory holds them too: the
JSONL object is rewritten with each new line, and TensorBoard's event file is written by
:class:`ObjectRecordWriter` (registered with tensorboardX for ``gs://``) instead of tensorboardX's
own google-cloud-storage writer, so that one path layer serves every file of a run.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from tensorboardX import SummaryWriter, record_writer
from tqdm.auto import tqdm

from tempo_jax import storage
from tempo_jax.errors import UserError

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.jsonl"


class MetricsFileError(UserError, ValueError):
    """A ``metrics.jsonl`` line other than the last cannot be read (the file was edited or damaged)."""


# Keys shown in the progress bar, in order, when present.
BAR_KEYS = ("reward/mean", "acc/labeled", "acc/unlabeled", "actor/pg_loss", "critic/vf_loss", "critic/explained_var")


def to_float(value: Any) -> float:
    return float(np.asarray(value))


class ObjectRecordWriter:
    """A TensorBoard event file in an object store: records are buffered and the whole object is
    uploaded on each flush (object stores cannot append; scalar event files stay small)."""

    def __init__(self, path: str):
        self.path = path
        self._buffer = io.BytesIO()

    def write(self, data: bytes) -> None:
        self._buffer.write(data)

    def flush(self) -> None:
        storage.as_path(self.path).write_bytes(self._buffer.getvalue())

    def close(self) -> None:
        self.flush()


class ObjectRecordWriterFactory:
    def open(self, path: str) -> ObjectRecordWriter:
        return ObjectRecordWriter(path)

    def directory_check(self, path: str) -> None:
        """Object stores need no folders."""


record_writer.register_writer_factory("gs", ObjectRecordWriterFactory())


class MetricsSink(Protocol):
    """Another backend for each row, e.g. :class:`tempo_jax.train.wandb_logger.WandbLogger`."""

    def log(self, step: int, row: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class MetricsWriter:
    def __init__(
        self,
        run_dir: str,
        total_steps: int,
        start_step: int = 0,
        tensorboard: bool = True,
        progress_bar: bool = True,
        sinks: Sequence[MetricsSink] = (),
    ):
        self._sinks = tuple(sinks)
        storage.makedirs(run_dir)
        self.path = storage.join(run_dir, METRICS_FILE)
        self._truncate_after(start_step)
        self._tb = None
        if tensorboard:
            self._tb = SummaryWriter(storage.join(run_dir, "tensorboard"))
        self._bar = None
        if progress_bar:
            self._bar = tqdm(total=total_steps, initial=start_step, desc="train", dynamic_ncols=True)

    def _truncate_after(self, step: int) -> None:
        """On resume, drop lines of steps after the checkpoint (they will be recomputed), and a
        last line torn by a crash mid-write."""
        if not storage.isfile(self.path):
            return
        original = storage.read_text(self.path)
        rows, lines = _parse_lines(original, self.path)
        kept = [ln.rstrip("\n") + "\n" for row, ln in zip(rows, lines) if row.get("step", 0) <= step]
        if "".join(kept) != original:
            storage.write_text(self.path, "".join(kept))

    def write(self, step: int, metrics: dict[str, Any], advance: bool = True) -> None:
        row: dict[str, float | str] = {"step": int(step)}
        row.update({k: (to_float(v) if not isinstance(v, str) else v) for k, v in sorted(metrics.items())})
        storage.append_text(self.path, json.dumps(row, allow_nan=True) + "\n")
        if self._tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, float) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()
        for sink in self._sinks:
            sink.log(step, {k: v for k, v in row.items() if k != "step"})
        if self._bar is not None:
            shown = {
                k.split("/")[-1] if k.startswith("acc/") else k.split("/")[-1]: f"{row[k]:.3g}"
                for k in BAR_KEYS
                if k in row
            }
            self._bar.set_postfix(shown, refresh=False)
            if advance:
                self._bar.update(1)

    def close(self) -> None:
        for sink in self._sinks:
            sink.close()
        if self._tb is not None:
            self._tb.close()
        if self._bar is not None:
            self._bar.close()


class NullMetricsWriter:
    """The writer of processes other than the primary in a multi-process job: writes nothing, so the
    shared ``metrics.jsonl`` gets one line per step."""

    def write(self, step: int, metrics: dict[str, Any], advance: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def _parse_lines(text: str, path: str) -> tuple[list[dict], list[str]]:
    """Rows and their lines of ``text`` (the contents of ``path``); a torn last line (a crash
    mid-write) is dropped with a warning, a bad line elsewhere is an error that names it."""
    lines = [ln for ln in io.StringIO(text) if ln.strip()]  # split on "\n" only, as reading the file does
    rows = []
    for i, ln in enumerate(lines):
        try:
            rows.append(json.loads(ln))
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:
                log.warning("%s: dropping its last line, cut short by an interrupted write", path)
                return rows, lines[:-1]
            raise MetricsFileError(
                f"{path}, line {i + 1}: not a JSON object ({err.msg}); repair or delete that "
                "line (metrics are also in the run's TensorBoard events)"
            ) from None
    return rows, lines


def read_metrics(run_dir: str) -> list[dict]:
    path = storage.join(run_dir, METRICS_FILE)
    return _parse_lines(storage.read_text(path), path)[0]
