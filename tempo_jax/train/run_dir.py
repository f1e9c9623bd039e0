"""What a run directory already holds, and the guards that keep a new run from erasing it.

A fresh run (no ``--resume``) into a directory that has checkpoints or metrics would cut
``metrics.jsonl``, overwrite the export and config and leave old checkpoints for a later
``--resume`` to mix with new settings; ``--resume`` with no usable checkpoint but a recorded
history would restart from step 0 over it. Both stop here, before anything is written.
"""

from __future__ import annotations

import dataclasses
import uuid

from tempo_jax import storage
from tempo_jax.errors import UserError
from tempo_jax.train.metrics import METRICS_FILE, read_metrics

CHECKPOINTS = "checkpoints"


class RunDirError(UserError):
    """The run directory's contents do not fit the request (fresh run over history, resume without checkpoint)."""


@dataclasses.dataclass(frozen=True)
class RunHistory:
    checkpoint_steps: tuple[int, ...]
    metric_steps: int  # distinct steps recorded in metrics.jsonl
    set_aside: tuple[str, ...] = ()  # checkpoints moved aside as unreadable (``<step>.corrupt-N``)

    @property
    def empty(self) -> bool:
        return not (self.checkpoint_steps or self.metric_steps or self.set_aside)

    def describe(self) -> str:
        parts = []
        if self.checkpoint_steps:
            parts.append(
                f"checkpoints at steps {', '.join(map(str, self.checkpoint_steps[-3:]))}"
                + (" (latest last)" if len(self.checkpoint_steps) > 1 else "")
            )
        if self.set_aside:
            parts.append(f"unreadable checkpoints set aside as {', '.join(self.set_aside[-3:])}")
        if self.metric_steps:
            parts.append(f"{METRICS_FILE} with {self.metric_steps} step(s)")
        return " and ".join(parts)


def run_history(run_dir: str) -> RunHistory:
    """Committed checkpoint steps (names that are whole numbers) and metric steps, read without changing anything."""
    names = storage.listdir(storage.join(run_dir, CHECKPOINTS))
    steps = sorted(int(n) for n in names if n.isdigit())
    metrics = storage.join(run_dir, METRICS_FILE)
    metric_steps = len({r.get("step") for r in read_metrics(run_dir)}) if storage.isfile(metrics) else 0
    return RunHistory(tuple(steps), metric_steps, tuple(n for n in names if ".corrupt-" in n))


def ensure_fresh(run_dir: str) -> None:
    """Refuse a new run into a directory that holds an earlier run's history."""
    if not storage.isdir(run_dir):
        return
    history = run_history(run_dir)
    if not history.empty:
        raise RunDirError(
            f"run directory {run_dir} already holds a run ({history.describe()}); continue it with "
            "--resume, or give a new --config.run_dir (nothing was changed)"
        )


def ensure_writable(run_dir: str) -> None:
    """Create ``run_dir`` and write/remove a probe file in it and in its checkpoint directory.

    A read-only or full location otherwise shows up only at the first save, inside Orbax's
    background thread, as a traceback followed by minutes of timeouts."""
    ckpt_dir = storage.join(run_dir, CHECKPOINTS)
    for d in [run_dir] + ([ckpt_dir] if storage.isdir(ckpt_dir) else []):
        probe = storage.join(d, f".tempo_jax_write_probe_{uuid.uuid4().hex}")
        try:
            storage.makedirs(d)
            with storage.open_file(probe, "w") as fh:
                fh.write("probe")
            storage.as_path(probe).unlink()
        except OSError as err:
            raise RunDirError(
                f"cannot write to {d} ({err.strerror or err}); training needs a writable run "
                "directory: fix its permissions or mount, or give another --config.run_dir"
            ) from err


def ensure_resumable(run_dir: str, latest_step: int | None) -> None:
    """Refuse ``--resume`` that would restart from step 0 although the run had saved checkpoints.

    A run that crashed before its first save has only metrics of steps that will be recomputed
    the same way, so it restarts (with a warning from the trainer).
    """
    if latest_step is not None:
        return
    history = run_history(run_dir)
    if history.checkpoint_steps or history.set_aside:
        raise RunDirError(
            f"--resume: no usable checkpoint in {storage.join(run_dir, CHECKPOINTS)}, but the run "
            f"has {history.describe()}; nothing was changed. Check that the checkpoints are "
            "readable, or start a new run in another --config.run_dir"
        )
