"""D_L ∪ D_U prompt stream with per-row ``is_labeled``, seeded epochs and exact resume.

Semantics (the reference's single shuffled dataloader over a mixed parquet, spec §1.2/§6):

* The pool is D_L (rows flagged ``is_labeled=True``) followed by D_U (``is_labeled=False``),
  D_U optionally repeated whole ``ceil(replicate_unlabeled_to / |D_U|)`` times so that small
  test sets fill a batch and every question appears equally often.
* Epoch ``e`` visits the pool in the order ``np.random.default_rng([seed, e]).permutation``:
  a pure function of ``(seed, epoch)``, so the stream position is just ``(epoch, offset)``.
* Batches are always ``batch_size`` rows. ``drop_last=True`` (reference) drops an epoch's
  tail that cannot fill a batch; ``drop_last=False`` carries it into the next batch, so every
  row of every epoch is served.
* ``state()`` / ``restore()`` save and restore that position (plus a fingerprint of the data
  and settings, checked on restore) -- resuming draws exactly the batches an uninterrupted
  stream would.

Rows are shallow copies of the input records with ``is_labeled`` set by membership and a
``replica`` index (0 for the first copy). D_U rows keep their answers; using them only for
logging is the trainer's job. Pass only ``labeled`` (stage 1) or only ``unlabeled`` (TTRL,
EMPO) for single-set streams.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence

import numpy as np

_STATE_VERSION = 1


class MixedStream:
    def __init__(
        self,
        labeled_records: Sequence[dict] = (),
        unlabeled_records: Sequence[dict] = (),
        *,
        batch_size: int,
        seed: int = 1,
        replicate_unlabeled_to: int | None = None,
        drop_last: bool = True,
        shuffle: bool = True,
    ):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        labeled, unlabeled = list(labeled_records), list(unlabeled_records)
        if not labeled and not unlabeled:
            raise ValueError("MixedStream needs labeled and/or unlabeled records; both are empty")
        if replicate_unlabeled_to is not None:
            if replicate_unlabeled_to <= 0:
                raise ValueError(f"replicate_unlabeled_to must be positive, got {replicate_unlabeled_to}")
            if not unlabeled:
                raise ValueError("replicate_unlabeled_to is set but there are no unlabeled records")
        copies = 1 if replicate_unlabeled_to is None else max(1, math.ceil(replicate_unlabeled_to / len(unlabeled)))
        rows = [{**r, "is_labeled": True, "replica": 0} for r in labeled]
        rows += [{**r, "is_labeled": False, "replica": c} for c in range(copies) for r in unlabeled]
        if drop_last and len(rows) < batch_size:
            raise ValueError(
                f"batch_size={batch_size} is larger than the pool ({len(labeled)} labeled + "
                f"{len(unlabeled)}x{copies} unlabeled rows) and drop_last=True; set "
                "replicate_unlabeled_to, lower batch_size, or use drop_last=False"
            )
        self._rows = rows
        self.n_labeled, self.n_unlabeled, self.unlabeled_copies = len(labeled), len(unlabeled), copies
        self.batch_size, self.seed, self.drop_last, self.shuffle = batch_size, seed, drop_last, shuffle
        self.replicate_unlabeled_to = replicate_unlabeled_to
        self._fingerprint = self._make_fingerprint()
        self._epoch, self._offset, self._batches = 0, 0, 0
        self._order = self._epoch_order(0)

    # -- constructors --------------------------------------------------------------------

    @classmethod
    def from_records(cls, records: Sequence[dict], **kwargs) -> MixedStream:
        """Split one list (e.g. a mixed verl parquet) by each row's ``is_labeled`` field."""
        missing = [i for i, r in enumerate(records) if not isinstance(r.get("is_labeled"), bool)]
        if missing:
            raise ValueError(f"records {missing[:5]} have no boolean 'is_labeled'")
        return cls([r for r in records if r["is_labeled"]], [r for r in records if not r["is_labeled"]], **kwargs)

    @classmethod
    def labeled_only(cls, records: Sequence[dict], **kwargs) -> MixedStream:
        return cls(records, (), **kwargs)

    @classmethod
    def unlabeled_only(cls, records: Sequence[dict], **kwargs) -> MixedStream:
        return cls((), records, **kwargs)

    # -- iteration -----------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return "mixed" if self.n_labeled and self.n_unlabeled else ("labeled" if self.n_labeled else "unlabeled")

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def pool_size(self) -> int:
        return len(self._rows)

    @property
    def batches_per_epoch(self) -> float:
        n = len(self._rows)
        return n // self.batch_size if self.drop_last else n / self.batch_size

    def _epoch_order(self, epoch: int) -> np.ndarray:
        n = len(self._rows)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def _advance_epoch(self) -> None:
        self._epoch += 1
        self._offset = 0
        self._order = self._epoch_order(self._epoch)

    def next_batch(self) -> list[dict]:
        """The next ``batch_size`` rows (fresh dict copies)."""
        idx: list[int] = []
        while len(idx) < self.batch_size:
            remaining = len(self._order) - self._offset
            need = self.batch_size - len(idx)
            if remaining <= 0 or (self.drop_last and not idx and remaining < need):
                self._advance_epoch()
                continue
            take = min(need, remaining)
            idx.extend(self._order[self._offset : self._offset + take].tolist())
            self._offset += take
        self._batches += 1
        return [dict(self._rows[i]) for i in idx]

    def __iter__(self) -> Iterator[list[dict]]:
        while True:
            yield self.next_batch()

    # -- resume --------------------------------------------------------------------------

    def _make_fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(
            json.dumps(
                [
                    self.batch_size,
                    self.seed,
                    self.drop_last,
                    self.shuffle,
                    self.n_labeled,
                    self.n_unlabeled,
                    self.unlabeled_copies,
                ]
            ).encode()
        )
        for r in self._rows:
            h.update(str(r.get("id", "")).encode() + b"\x00" + (b"L" if r["is_labeled"] else b"U"))
        return h.hexdigest()[:16]

    def state(self) -> dict:
        """JSON-serialisable position; :meth:`restore` on an identically built stream resumes exactly."""
        return {
            "version": _STATE_VERSION,
            "epoch": self._epoch,
            "offset": self._offset,
            "batches_drawn": self._batches,
            "fingerprint": self._fingerprint,
        }

    def restore(self, state: dict) -> None:
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"MixedStream state version {state.get('version')} != {_STATE_VERSION}")
        if state["fingerprint"] != self._fingerprint:
            raise ValueError(
                "MixedStream state was saved for different data or settings (fingerprint "
                f"{state['fingerprint']} != {self._fingerprint}); rebuild the stream with the same "
                "records, order, batch_size, seed, replication and drop_last"
            )
        self._epoch, self._offset, self._batches = (
            int(state["epoch"]),
            int(state["offset"]),
            int(state["batches_drawn"]),
        )
        self._order = self._epoch_order(self._epoch)
        if not 0 <= self._offset <= len(self._order):
            raise ValueError(f"MixedStream state offset {self._offset} out of range")

    def __repr__(self) -> str:
        return (
            f"MixedStream(mode={self.mode}, labeled={self.n_labeled}, unlabeled={self.n_unlabeled}"
            f"x{self.unlabeled_copies}, batch_size={self.batch_size}, seed={self.seed}, epoch={self._epoch})"
        )
