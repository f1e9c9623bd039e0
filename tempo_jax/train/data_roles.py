"""Which rows are D_L and which D_U: each row's own ``is_labeled`` flag decides.

The reference keeps one mixed train file whose ``reward_model.is_labeled`` flags say which
rows are test questions. Membership in ``data.labeled`` alone must therefore never make a row
labeled, or test answers would be trained on.
"""

from __future__ import annotations

import logging

import ml_collections

from tempo_jax.data.tfds_builders import load_records
from tempo_jax.train.config import RecipeError

log = logging.getLogger(__name__)


def _records(names: str, cfg, labeled: bool) -> list[dict]:
    """The rows of one source, or of several comma-separated ones in order (e.g. the non-math
    benchmarks); ``labeled`` is the role they were given (rows without a flag take it)."""
    kwargs = {"data_dir": cfg.data.data_dir} if cfg.data.data_dir else {}
    rows: list[dict] = []
    for name in (n.strip() for n in names.split(",")):
        if name:
            rows += load_records(
                name,
                on_error=cfg.data.on_error,
                coerce_numbers=cfg.data.coerce_numbers,
                default_is_labeled=labeled,
                **kwargs,
            )
    return rows


def load_roles(cfg: ml_collections.ConfigDict) -> tuple[list[dict], list[dict]]:
    """(D_L, D_U) rows for the method, each row's own ``is_labeled`` flag deciding its role.

    The reference keeps one mixed train file whose ``reward_model.is_labeled`` flags say which
    rows are test questions; given as ``data.labeled``, its unlabeled rows join D_U (methods
    that use it) and are never trained on with their answers. A row flagged labeled inside
    ``data.unlabeled`` contradicts the setting and is refused.
    """
    uses_labeled = cfg.method not in ("ttrl", "empo")
    uses_unlabeled = cfg.method not in ("stage1", "zero_rl_ppo")
    mixed = _records(cfg.data.labeled, cfg, labeled=True) if cfg.data.labeled else []
    labeled = [r for r in mixed if r["is_labeled"]]
    flagged = [r for r in mixed if not r["is_labeled"]]
    unlabeled = list(flagged)
    if cfg.data.unlabeled and cfg.data.unlabeled != cfg.data.labeled:
        rows = _records(cfg.data.unlabeled, cfg, labeled=False)
        contradicting = [r["id"] for r in rows if r["is_labeled"]]
        if contradicting:
            raise RecipeError(
                f"data.unlabeled={cfg.data.unlabeled!r} has {len(contradicting)} row(s) flagged is_labeled=true "
                f"(e.g. {contradicting[:3]}); test questions are unlabeled: drop the flag, or give a mixed file as "
                "data.labeled, where each row's flag decides"
            )
        unlabeled += rows
    if flagged:
        where = "join D_U" if uses_unlabeled else f"are left out (method {cfg.method} trains on D_L only)"
        log.warning(
            "data.labeled=%s: %d row(s) flagged is_labeled=false %s; their answers are never used for training",
            cfg.data.labeled,
            len(flagged),
            where,
        )
    labeled = labeled[: cfg.data.labeled_limit or None] if uses_labeled else []
    unlabeled = unlabeled[: cfg.data.unlabeled_limit or None] if uses_unlabeled else []
    if uses_unlabeled and not unlabeled:
        raise RecipeError(
            f"method {cfg.method} needs unlabeled test questions (D_U) but none were found: set "
            "data.unlabeled, or give a mixed file with is_labeled=false rows as data.labeled"
        )
    if uses_labeled and not labeled:
        raise RecipeError(
            f"method {cfg.method} needs labeled questions (D_L) but data.labeled="
            f"{cfg.data.labeled!r} has no row flagged is_labeled=true"
        )
    return labeled, unlabeled
