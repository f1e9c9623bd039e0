"""Host-side (NumPy) group filters, run between rollout and update.

TEMPO's semi-supervised filtering (spec §1.2 step 5): drop a prompt iff it is labeled and
its n rewards are all equal; keep every unlabeled prompt; accumulate kept prompts over
generation batches until a training batch is full (at most ``max_gen_batches`` generation
batches, then a hard error); truncate to the first ``target_groups`` groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def _group_index(group_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique ids in order of first appearance, per-row index into them)."""
    uniq, first, inverse = np.unique(group_ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return uniq[order], rank[inverse.reshape(-1)]


def constant_labeled_groups(
    scores: np.ndarray, group_ids: np.ndarray, is_labeled: np.ndarray, tol: float = 1e-6
) -> np.ndarray:
    """Row keep-mask [B] bool: a group is dropped iff it is labeled and the (population) std of
    its rewards is < ``tol`` (all-correct or all-wrong); unlabeled groups are always kept.

    As the TEMPO trainer (``np.std``, no exception for one-row groups: a labeled singleton
    has std 0 and is dropped — verl's DAPO filter would keep it). A group whose rows disagree
    on ``is_labeled`` is an error.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    group_ids = np.asarray(group_ids).reshape(-1)
    labeled = np.asarray(is_labeled).reshape(-1).astype(bool)
    if not (scores.size == group_ids.size == labeled.size):
        raise ValueError(
            f"scores, group_ids, is_labeled must have one entry per row; got sizes "
            f"{scores.size}, {group_ids.size}, {labeled.size}"
        )
    _, gidx = _group_index(group_ids)
    n_groups = int(gidx.max()) + 1 if gidx.size else 0
    count = np.bincount(gidx, minlength=n_groups).astype(np.float64)
    n_lab = np.bincount(gidx, weights=labeled.astype(np.float64), minlength=n_groups)
    mixed = (n_lab > 0) & (n_lab < count)
    if mixed.any():
        bad = group_ids[np.isin(gidx, np.flatnonzero(mixed))][0]
        raise ValueError(f"group {bad!r} mixes labeled and unlabeled rows; is_labeled must be per prompt")
    mean = np.bincount(gidx, weights=scores, minlength=n_groups) / count
    var = np.bincount(gidx, weights=(scores - mean[gidx]) ** 2, minlength=n_groups) / count
    drop_group = (n_lab > 0) & (np.sqrt(var) < tol)
    return ~drop_group[gidx]


def confidence_filter(max_frequency_per_group: np.ndarray, lower: float = 0.3, upper: float = 1.0) -> np.ndarray:
    """Keep-mask: ``lower <= max_frequency <= upper`` elementwise (TTRL/EMPO prompt filter:
    keep a prompt iff its majority-cluster frequency is in [lower, upper]). Pass one value per
    row (each row carrying its group's max frequency) to get a row mask. Off by default at the
    call site, as in every released baseline script (spec §4)."""
    f = np.asarray(max_frequency_per_group, dtype=np.float64)
    return (f >= lower) & (f <= upper)


class GroupAccumulator:
    """Accumulate kept groups over generation batches until ``target_groups`` are collected.

    ``add(batch, keep_rows_mask)`` keeps the masked rows of ``batch`` (a dict of NumPy arrays
    with a leading row axis and a ``group_key`` entry) and returns True once at least
    ``target_groups`` groups are held. ``take()`` returns the first ``target_groups`` groups (in
    arrival order; surplus groups are discarded, spec §1.2 step 5) as one dict, with
    ``group_key`` renumbered 0..target_groups−1 so ids of different generation batches never
    collide, and resets. If ``max_gen_batches`` (> 0) additions do not fill it, ``add`` raises
    ``ValueError`` explaining what to change; ``max_gen_batches <= 0`` means unbounded.

    Counts for metrics: ``stats()`` for the cycle in progress, ``last_stats`` for the cycle
    last taken (the reference logs its counter after resetting it, always 0; we don't).
    """

    def __init__(self, target_groups: int, max_gen_batches: int = 10, *, group_key: str = "group_ids"):
        if target_groups <= 0:
            raise ValueError(f"target_groups must be positive, got {target_groups}")
        self.target_groups = int(target_groups)
        self.max_gen_batches = int(max_gen_batches)
        self.group_key = group_key
        self.last_stats: dict[str, int] = {}
        self._reset()

    def _reset(self) -> None:
        self._parts: list[dict[str, np.ndarray]] = []  # kept rows, with local group index
        self._group_sizes: list[int] = []  # per kept group, in arrival order
        self._gen_batches = 0
        self._kept_groups = 0
        self._filtered_groups = 0
        self._seen_rows = 0

    @property
    def num_groups(self) -> int:
        return self._kept_groups

    @property
    def full(self) -> bool:
        return self._kept_groups >= self.target_groups

    def stats(self) -> dict[str, int]:
        return {
            "gen_batches": self._gen_batches,
            "kept_groups": self._kept_groups,
            "filtered_groups": self._filtered_groups,
            "target_groups": self.target_groups,
        }

    def add(self, batch: Mapping[str, Any], keep_rows_mask: np.ndarray) -> bool:
        if self.group_key not in batch:
            raise KeyError(f"batch has no {self.group_key!r} entry (keys: {sorted(batch)})")
        gids = np.asarray(batch[self.group_key]).reshape(-1)
        n = gids.size
        keep = np.asarray(keep_rows_mask).reshape(-1).astype(bool)
        if keep.size != n:
            raise ValueError(f"keep_rows_mask has {keep.size} entries for {n} rows")
        for k, v in batch.items():
            if np.shape(v)[:1] != (n,):
                raise ValueError(f"batch[{k!r}] has leading dim {np.shape(v)[:1]}, expected ({n},)")
        self._gen_batches += 1
        self._seen_rows += n

        _, gidx = _group_index(gids)
        n_groups = int(gidx.max()) + 1 if n else 0
        kept_per_group = np.bincount(gidx[keep], minlength=n_groups)
        kept_groups = np.flatnonzero(kept_per_group > 0)  # in order of first appearance
        self._filtered_groups += n_groups - kept_groups.size
        if kept_groups.size:
            # Reorder kept rows group by group (arrival order), so truncation is by whole groups.
            rows = np.flatnonzero(keep)
            rows = rows[np.argsort(gidx[rows], kind="stable")]
            part = {k: np.asarray(v)[rows] for k, v in batch.items()}
            self._parts.append(part)
            self._group_sizes.extend(int(kept_per_group[g]) for g in kept_groups)
            self._kept_groups += kept_groups.size

        if not self.full and self.max_gen_batches > 0 and self._gen_batches >= self.max_gen_batches:
            raise ValueError(
                f"group filter: after {self._gen_batches} generation batches only "
                f"{self._kept_groups} groups were kept, {self.target_groups} are needed "
                f"({self._filtered_groups} groups were filtered out, e.g. labeled groups whose "
                f"rewards were all equal). Raise max_num_gen_batches (now {self.max_gen_batches}; <= 0 means "
                f"unbounded), make D_L harder if most labeled prompts are all-correct (or easier "
                f"if all-wrong), mix more unlabeled prompts per batch, or use a bigger generation batch."
            )
        return self.full

    def take(self) -> dict[str, np.ndarray]:
        if not self.full:
            raise ValueError(
                f"GroupAccumulator.take(): only {self._kept_groups} of {self.target_groups} groups "
                f"collected; call add() until it returns True"
            )
        sizes = np.asarray(self._group_sizes[: self.target_groups])
        n_rows = int(sizes.sum())
        out = {k: np.concatenate([p[k] for p in self._parts], axis=0)[:n_rows] for k in self._parts[0]}
        out[self.group_key] = np.repeat(np.arange(self.target_groups, dtype=np.int32), sizes)
        self.last_stats = dict(self.stats(), surplus_groups=self._kept_groups - self.target_groups, rows=n_rows)
        self._reset()
        return out
