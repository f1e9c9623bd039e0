"""Weights & Biases as an optional metrics sink beside ``metrics.jsonl`` and TensorBoard (``log.wandb``).

The run's resolved config becomes the W&B run config and every ``metrics.jsonl`` row is logged at its
step. The W&B run id is kept in the run directory (``wandb_run_id.txt``), so ``--resume`` continues
the same W&B run. W&B's own files (its offline transaction log, console capture) stay on local disk:
under the run directory when that is local, else under ``$WANDB_DIR`` or a cache folder.

wandb is an extra (``pip install 'tempo-jax[wandb]'``): this module imports without it, and a run
with ``log.wandb=True`` stops at once with a message that says what to install.
"""

from __future__ import annotations

import json
import os
from typing import Any, Literal

import ml_collections

from tempo_jax import storage
from tempo_jax.errors import UserError

try:
    import wandb
except ImportError:  # the optional extra is not installed
    wandb = None  # type: ignore[assignment, unused-ignore]

RUN_ID_FILE = "wandb_run_id.txt"
# log.wandb_mode -> wandb.init(mode=...); "" = wandb's default: $WANDB_MODE, else online
MODES: dict[str, Literal["online", "offline", "disabled"] | None] = {
    "": None,
    "online": "online",
    "offline": "offline",
    "disabled": "disabled",
}
LOCAL_CACHE = os.path.join("~", ".cache", "tempo_jax", "wandb")
MISSING = "log.wandb=True needs the wandb package, which is not installed: pip install 'tempo-jax[wandb]'"


class WandbMissingError(UserError, ImportError):
    """``log.wandb=True`` but wandb cannot be imported."""


def config_errors(cfg: ml_collections.ConfigDict) -> list[str]:
    """What is wrong with the ``log.wandb*`` settings (for ``validate``)."""
    log_cfg = cfg.log
    if not log_cfg.get("wandb", False):
        return []
    errors = [] if wandb is not None else [MISSING]
    mode = log_cfg.get("wandb_mode", "")
    if mode not in MODES:
        errors.append(f"log.wandb_mode={mode!r} must be 'online', 'offline', 'disabled' or '' ($WANDB_MODE)")
    return errors


def local_dir(run_dir: str) -> str:
    """Where W&B writes its files: the run directory when local, else ``$WANDB_DIR`` or a cache folder."""
    if not storage.is_remote(run_dir):
        return run_dir
    return os.environ.get("WANDB_DIR") or os.path.expanduser(LOCAL_CACHE)


class WandbLogger:
    """One W&B run for one run directory; ``log`` takes a ``metrics.jsonl`` row (``step`` removed)."""

    def __init__(
        self,
        run_dir: str,
        config: dict[str, Any],
        project: str = "tempo_jax",
        entity: str = "",
        name: str = "",
        mode: str = "",
    ):
        if wandb is None:
            raise WandbMissingError(MISSING)
        id_path = storage.join(run_dir, RUN_ID_FILE)
        run_id = storage.read_text(id_path).strip() if storage.isfile(id_path) else None
        directory = local_dir(run_dir)
        os.makedirs(directory, exist_ok=True)
        self.run = wandb.init(
            project=project or None,
            entity=entity or None,
            name=name or os.path.basename(run_dir.rstrip("/")),
            mode=MODES[mode],
            dir=directory,
            config=config,
            id=run_id,
            resume="allow",
        )
        if run_id is None and self.run.settings.mode != "disabled":
            storage.write_text(id_path, self.run.id + "\n")

    def log(self, step: int, row: dict[str, Any]) -> None:
        self.run.log(row, step=step)

    def close(self) -> None:
        self.run.finish()


def wandb_sinks(cfg: ml_collections.ConfigDict, run_dir: str) -> list[WandbLogger]:
    """The W&B sink ``cfg.log`` asks for (a started W&B run), or none."""
    log_cfg = cfg.log
    if not log_cfg.get("wandb", False):
        return []
    logger = WandbLogger(
        run_dir,
        json.loads(cfg.to_json_best_effort()),
        project=log_cfg.get("wandb_project", "tempo_jax"),
        entity=log_cfg.get("wandb_entity", ""),
        name=log_cfg.get("wandb_name", ""),
        mode=log_cfg.get("wandb_mode", ""),
    )
    return [logger]
