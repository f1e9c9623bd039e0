"""Orbax checkpoints of the trainer's state: array pytrees per role plus a JSON ``meta`` record.

One step directory holds one item per role (``actor``, ``critic``, ... — any pytree of
arrays, e.g. a :class:`~tempo_jax.train.state.TrainState`), saved with
``ocp.args.StandardSave``; a ``meta`` item (JSON: data-stream position, resolved config, RNG
seed, metrics summary) and a ``layout`` item (JSON, written by this module: which roles were
saved, which were ``None``, and every leaf's key path, shape and dtype)::

    <directory>/
      4/  actor/  critic/  meta/  layout/  _CHECKPOINT_METADATA
      6/  ...
      2.corrupt-0/        # a step found unreadable by ``restore``, moved aside (never deleted)

Saves are atomic: Orbax writes ``<step>.orbax-checkpoint-tmp-<ts>/`` and renames it to
``<step>/`` only after every item is written, so a process killed mid-save leaves a tmp dir
that is never listed as a step (and is cleaned up the next time a ``Checkpointer`` opens the
directory).

``restore`` checks the checkpoint's ``layout`` against the requested structure first: a
missing role or a different tree/shape is a configuration mismatch and raises
:class:`CheckpointMismatchError` without touching anything. Any other failure to read the
newest step (truncated or missing files, bad JSON, a missing tensor) marks that step corrupt:
it is logged, renamed to ``<step>.corrupt-<n>`` and the previous step is tried. A failure of
the storage rather than the files (permission denied, an I/O error, a timeout, a read-only
file system) says nothing about the checkpoint: it stops the restore and nothing is renamed.
A ``read_only`` checkpointer (``eval --checkpoint``, ``model.init_from``) never renames,
creates or cleans up anything: it logs an unreadable step and tries the previous one.

Multi-process jobs (one shared directory): every process calls ``save``/``restore`` at the same
point; Orbax coordinates the array shards and writes the JSON items from process 0. Checksums are
computed on the global arrays (a collective) and gathered, so every process records and checks the
same numbers. Whether a step could be read is agreed over all processes before anything else
collective runs (a shard only one process reads may be the broken one), and only process 0 moves a
corrupt step aside, between barriers.
"""

from __future__ import annotations

import errno
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from tempo_jax.errors import UserError
from tempo_jax.parallel.distributed import any_process, barrier, is_primary
from tempo_jax.parallel.mesh import to_host

log = logging.getLogger(__name__)

META_ITEM = "meta"
LAYOUT_ITEM = "layout"
_RESERVED = (META_ITEM, LAYOUT_ITEM)
_LAYOUT_FORMAT = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


class CheckpointRestoreError(UserError, RuntimeError):
    """No usable checkpoint could be restored; the message names the directory and what was tried."""


class CheckpointMismatchError(CheckpointRestoreError):
    """The checkpoint is readable but does not hold what was asked for (a role, a tree, a shape)."""


def _leaf_layout(tree: Any, checksums: list[int] | None = None) -> dict[str, list]:
    """``{key path: [shape, dtype(, checksum)]}`` for every leaf of ``tree`` (``None`` subtrees have none)."""
    out = {}
    for i, (path, leaf) in enumerate(jax.tree_util.tree_leaves_with_path(tree)):
        shape = getattr(leaf, "shape", None)
        dtype = getattr(leaf, "dtype", None)
        entry: list[list[int] | str | int | None] = [
            list(shape) if shape is not None else None,
            str(np.dtype(dtype)) if dtype is not None else type(leaf).__name__,
        ]
        if checksums is not None:
            entry.append(checksums[i])
        out[jax.tree_util.keystr(path)] = entry
    return out


def _leaf_checksum(x: jax.Array) -> jax.Array:
    """Position-weighted wrapping uint32 sum of the leaf's bits: exact under any sharding (integer sums
    are associative), and any single changed element changes it (the weights are odd)."""
    x = jnp.asarray(x)
    if x.dtype == jnp.bool_:
        u = x.astype(jnp.uint32)
    elif x.dtype.itemsize <= 4:
        u = jax.lax.bitcast_convert_type(x, jnp.dtype(f"uint{8 * x.dtype.itemsize}")).astype(jnp.uint32)
    else:  # 64-bit: (..., 2) uint32 words
        u = jax.lax.bitcast_convert_type(x, jnp.uint32)
    idx = jnp.zeros(u.shape, jnp.uint32)
    stride = 1
    for dim in reversed(range(u.ndim)):
        idx = idx + jax.lax.broadcasted_iota(jnp.uint32, u.shape, dim) * jnp.uint32(stride % 2**32)
        stride *= u.shape[dim]
    weight = idx * jnp.uint32(2654435761) | jnp.uint32(1)
    return jnp.sum(u * weight, dtype=jnp.uint32)


@jax.jit
def _tree_checksums(tree: Any) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.stack([_leaf_checksum(x) for x in leaves]) if leaves else jnp.zeros((0,), jnp.uint32)


def _checksums(tree: Any) -> list[int]:
    """Per-leaf checksums on the host; a collective when ``tree`` spans several processes (call on all)."""
    return [int(c) for c in np.asarray(to_host(_tree_checksums(tree)))]


def _default_sharding() -> jax.sharding.Sharding:
    return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])


def _as_target(leaf: Any) -> Any:
    """Turn a template leaf into what Orbax restores onto: a ShapeDtypeStruct with a sharding."""
    if isinstance(leaf, jax.ShapeDtypeStruct):
        if leaf.sharding is None:
            return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=_default_sharding())
        return leaf
    if isinstance(leaf, jax.Array):
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=leaf.sharding)
    if isinstance(leaf, (np.ndarray, np.generic)):
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=_default_sharding())
    return leaf


def _describe_mismatch(saved: Mapping[str, list], wanted: Mapping[str, list], limit: int = 5) -> str:
    missing = [k for k in wanted if k not in saved]
    extra = [k for k in saved if k not in wanted]
    shapes = [
        f"{k}: checkpoint {saved[k][0]} vs requested {wanted[k][0]}"
        for k in wanted
        if k in saved and saved[k][0] != wanted[k][0]
    ]
    parts = []
    for label, items in (
        ("not in the checkpoint", missing),
        ("only in the checkpoint", extra),
        ("different shapes", shapes),
    ):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{label}: {', '.join(items[:limit])}{more}")
    return "; ".join(parts)


class Checkpointer:
    """Saves and restores ``{role: pytree | None}`` plus a JSON ``meta`` dict, one directory per step.

    Args:
      directory: root directory (local path or anything ``etils.epath`` understands).
      keep: number of most recent checkpoints to keep (``None`` keeps all).
      save_every: ``save(step, ...)`` writes only when ``step % save_every == 0`` (or ``force``, or
        at a ``jax.distributed`` preemption sync point): Orbax's save-decision policy, see
        :meth:`should_save`.
      async_save: write in a background thread; ``save`` returns once arrays are copied off the
        device, so the caller may donate/overwrite them right away. ``wait()`` blocks until the
        write is committed.
      verify: record a checksum of every leaf at save time and check it after restoring (one
        compiled pass over the arrays each way). Orbax/TensorStore detect truncated and missing
        files but not bytes changed in place; with ``verify`` those are caught too.
    """

    def __init__(
        self,
        directory: str | epath.PathLike,
        *,
        keep: int | None = 3,
        save_every: int = 1,
        async_save: bool = True,
        verify: bool = True,
        read_only: bool = False,
    ):
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be >= 1 (or None to keep every checkpoint), got {keep}")
        if save_every < 1:
            raise ValueError(f"save_every must be >= 1, got {save_every}")
        self.directory = epath.Path(directory)
        self.keep = keep
        self.save_every = save_every
        self.verify = verify
        self.read_only = read_only
        if read_only and not self.directory.is_dir():
            raise CheckpointRestoreError(f"no checkpoint directory {self.directory}")
        policies = ocp.checkpoint_managers
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            # When to save: every `save_every` steps, or at the step where every process has
            # received a preemption notice through jax.distributed's preemption sync manager
            # (never in a process without jax.distributed: reached_preemption is then False).
            # Orbax's default policy would also save the first step of a run (InitialSavePolicy).
            save_decision_policy=policies.AnySavePolicy(
                [policies.FixedIntervalPolicy(save_every), policies.PreemptionCheckpointingPolicy()]
            ),
            save_interval_steps=0 if read_only else 1,  # unused with a policy; 0 spares a read-only warning
            create=not read_only,
            cleanup_tmp_directories=not read_only,  # half-written saves of a killed process
            enable_async_checkpointing=async_save,
            read_only=read_only,
        )
        self._mngr = ocp.CheckpointManager(self.directory, options=options)

    # ------------------------------------------------------------------ listing
    def latest_step(self) -> int | None:
        """The newest committed step (tmp dirs of unfinished saves and moved-aside steps are ignored)."""
        return self._mngr.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._mngr.all_steps())

    # ------------------------------------------------------------------ saving
    def should_save(self, step: int, force: bool = False) -> bool:
        """Whether ``save(step, force=force)`` writes, as far as the step is concerned: never when
        read-only; else ``force``, or Orbax's save-decision policy (``step % save_every == 0`` or a
        ``jax.distributed`` preemption sync point) for a step newer than every checkpoint.

        The policy is consulted even when ``force`` is set: the preemption sync point is meant to
        be checked at every step, on every process.
        """
        if self.read_only:
            return False
        decided = self._mngr.should_save(int(step))
        return bool(force) or bool(decided)

    def save(
        self, step: int, arrays: Mapping[str, Any], meta: Mapping[str, Any] | None = None, force: bool = False
    ) -> bool:
        """Save ``arrays`` (``{role: pytree or None}``) and ``meta`` (JSON-serialisable) as ``step``.

        Returns True if a save was started: when :meth:`should_save` (``step % save_every == 0``,
        or ``force``), and ``step`` is newer than every existing checkpoint (re-saving an existing
        step, e.g. a SIGTERM right after an interval save, is a logged no-op returning False).
        A read-only checkpointer never saves (a logged no-op returning False).
        """
        step = int(step)
        if self.read_only:
            log.warning("not saving step %d: %s was opened read-only", step, self.directory)
            return False
        if not self.should_save(step, force):
            return False
        names = list(arrays)
        for name in names:
            if not isinstance(name, str) or not _NAME_RE.match(name) or name in _RESERVED:
                raise ValueError(
                    f"checkpoint item name {name!r} is not allowed: use letters, digits, '_' or '-', "
                    f"and not one of {_RESERVED}"
                )
        meta = dict(meta or {})
        try:
            json.dumps(meta, allow_nan=True)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"checkpoint meta must be JSON-serialisable (convert arrays with .tolist() / int(...)): {e}"
            ) from e
        existing = self.all_steps()
        if step in existing:
            log.info("checkpoint for step %d already exists in %s; not saving it again", step, self.directory)
            return False
        if existing and step < existing[-1]:
            log.warning(
                "not saving step %d to %s: it is older than the latest checkpoint (step %d)",
                step,
                self.directory,
                existing[-1],
            )
            return False
        layout = {
            "format": _LAYOUT_FORMAT,
            "step": step,
            "items": {
                k: (None if v is None else _leaf_layout(v, _checksums(v) if self.verify else None))
                for k, v in arrays.items()
            },
        }
        items = {k: ocp.args.StandardSave(v) for k, v in arrays.items() if v is not None}
        items[META_ITEM] = ocp.args.JsonSave(meta)
        items[LAYOUT_ITEM] = ocp.args.JsonSave(layout)
        saved = self._mngr.save(step, args=ocp.args.Composite(**items), force=True)
        if saved:
            log.info("saving checkpoint step %d to %s", step, self.directory)
        return bool(saved)

    def wait(self) -> None:
        """Block until any in-flight (async) save is committed; re-raises its error if it failed."""
        self._mngr.wait_until_finished()

    def close(self) -> None:
        """Wait for pending saves and release Orbax's resources."""
        self._mngr.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ restoring
    def restore(self, abstract: Mapping[str, Any], step: int | None = None) -> tuple[int, dict[str, Any], dict]:
        """Restore ``(step, {role: pytree | None}, meta)`` onto the structure and shardings of ``abstract``.

        ``abstract`` has the same roles as the save; its leaves are ``jax.ShapeDtypeStruct`` with
        shardings (e.g. from ``jax.eval_shape``; a missing sharding means the first local device)
        or concrete arrays used as templates. Arrays come back on the requested shardings,
        whatever sharding they were saved from. A role whose template is ``None`` is not read.

        With ``step=None`` the newest step is used; if it is unreadable it is logged, moved aside
        to ``<step>.corrupt-<n>`` and the previous step is tried. An explicit ``step`` is never
        moved aside or substituted: failure raises :class:`CheckpointRestoreError`.
        """
        self.wait()
        self._mngr.reload()
        steps = self.all_steps()
        if step is not None:
            step = int(step)
            if step not in steps:
                raise CheckpointRestoreError(
                    f"no checkpoint for step {step} in {self.directory} (available steps: {steps or 'none'})"
                )
            try:
                return self._restore_step(step, abstract)
            except CheckpointMismatchError:
                raise
            except Exception as e:  # any read failure means this step is unusable
                raise CheckpointRestoreError(
                    f"checkpoint {self._step_path(step)} could not be restored ({type(e).__name__}: {_first_line(e)}); "
                    "restore with step=None to fall back to the newest readable checkpoint"
                ) from e
        if not steps:
            raise CheckpointRestoreError(f"no checkpoints in {self.directory}")
        tried = []
        for s in reversed(steps):
            try:
                return self._restore_step(s, abstract)
            except CheckpointMismatchError:
                raise
            except Exception as e:
                if _is_resource_error(e):  # the host/device, not the checkpoint, is the problem
                    raise
                path = self._step_path(s)
                if _is_storage_error(e):
                    raise CheckpointRestoreError(
                        f"checkpoint {path} could not be read ({type(e).__name__}: {_first_line(e)}): the storage "
                        "failed, not necessarily the checkpoint, so nothing was moved or changed; fix access "
                        "(permissions, mount, network) and run again"
                    ) from e
                if self.read_only:
                    tried.append(f"step {s} ({type(e).__name__}: {_first_line(e)})")
                    log.error(
                        "checkpoint %s cannot be restored (%s: %s); trying the previous one (left in place)",
                        path,
                        type(e).__name__,
                        _first_line(e),
                    )
                    continue
                moved = self._move_aside(s)
                tried.append(f"step {s} ({type(e).__name__}: {_first_line(e)}; moved to {moved.name})")
                log.error(
                    "checkpoint %s is corrupt or incomplete and cannot be restored (%s: %s); moved it aside "
                    "to %s and falling back to the previous checkpoint",
                    path,
                    type(e).__name__,
                    _first_line(e),
                    moved,
                )
        self._mngr.reload()
        raise CheckpointRestoreError(f"no usable checkpoint in {self.directory}: tried " + "; ".join(tried))

    def _step_path(self, step: int) -> epath.Path:
        return self.directory / str(step)

    def _move_aside(self, step: int) -> epath.Path:
        """Rename ``<step>`` to the first free ``<step>.corrupt-<n>`` (primary process only).

        The first barrier lets every process pick the same free name before the rename; the second
        keeps the others from listing the directory before it is done."""
        src = self._step_path(step)
        n = 0
        while (dst := self.directory / f"{step}.corrupt-{n}").exists():
            n += 1
        barrier(f"tempo_jax_checkpoint_move_aside_{step}_start")
        if is_primary():
            src.rename(dst)
        barrier(f"tempo_jax_checkpoint_move_aside_{step}_done")
        self._mngr.reload()
        return dst

    def _restore_step(self, step: int, abstract: Mapping[str, Any]) -> tuple[int, dict[str, Any], dict]:
        """Read ``step`` and check its checksums; raises on every process if it failed on any."""
        error: BaseException | None = None
        try:
            saved, out, meta = self._read_step(step, abstract)
        except Exception as e:  # re-raised below, after the processes agree
            error = e
        # Several processes: a read can fail on one only (a shard only it reads); agree before the
        # checksum pass (a collective) or the decision to move the step aside. No-op on one process.
        if any_process(error is not None) and error is None:
            error = CheckpointRestoreError(
                f"checkpoint {self._step_path(step)} could not be read on another process (see its log)"
            )
        if error is not None:
            raise error
        if self.verify:
            for name, tree in out.items():
                if tree is not None:
                    self._check_sums(name, saved[name], tree)
        return step, out, meta

    def _read_step(self, step: int, abstract: Mapping[str, Any]) -> tuple[dict, dict[str, Any], dict]:
        """``(saved layout items, {role: pytree | None}, meta)`` of ``step``, not yet checksum-verified."""
        layout = self._mngr.restore(step, args=ocp.args.Composite(**{LAYOUT_ITEM: ocp.args.JsonRestore()}))[LAYOUT_ITEM]
        if not isinstance(layout, dict) or layout.get("format") != _LAYOUT_FORMAT or "items" not in layout:
            raise ValueError(f"bad or missing '{LAYOUT_ITEM}' record: {str(layout)[:200]}")
        saved = layout["items"]
        path = self._step_path(step)
        restore_args: dict[str, Any] = {}  # orbax CheckpointArgs per item
        out: dict[str, Any] = {}
        for name, template in abstract.items():
            if name not in saved:
                raise CheckpointMismatchError(
                    f"checkpoint {path} has no '{name}' (it holds: {', '.join(sorted(saved)) or 'nothing'}); "
                    f"pass {{'{name}': None}} to skip it, or start '{name}' from elsewhere"
                )
            if template is None:
                if saved[name] is not None:
                    log.info("checkpoint %s holds '%s' but it was not requested; skipping it", path, name)
                out[name] = None
                continue
            if saved[name] is None:
                raise CheckpointMismatchError(
                    f"checkpoint {path} was saved without '{name}' (it was None), but a '{name}' state was "
                    f"requested; pass {{'{name}': None}} to skip it, or start '{name}' from elsewhere"
                )
            target = jax.tree.map(_as_target, template)
            wanted = _leaf_layout(target)
            if diff := _describe_mismatch(saved[name], wanted):
                raise CheckpointMismatchError(
                    f"checkpoint {path}: '{name}' does not match the requested structure ({diff})"
                )
            restore_args[name] = ocp.args.StandardRestore(target)
        restore_args[META_ITEM] = ocp.args.JsonRestore()
        restored = self._mngr.restore(step, args=ocp.args.Composite(**restore_args))
        meta = restored[META_ITEM]
        if not isinstance(meta, dict):
            raise ValueError(f"bad or missing '{META_ITEM}' record: {str(meta)[:200]}")
        for name in restore_args:
            if name != META_ITEM:
                out[name] = restored[name]
        return saved, out, meta

    @staticmethod
    def _check_sums(name: str, saved: Mapping[str, list], tree: Any) -> None:
        got = _leaf_layout(tree, _checksums(tree))
        bad = [
            k
            for k, (shape, dtype, *sums) in got.items()
            if sums and len(saved[k]) > 2 and saved[k][1] == dtype and saved[k][2] != sums[0]
        ]
        if bad:
            more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
            raise ValueError(
                f"'{name}': restored data does not match the checksums recorded at save time for "
                f"{', '.join(bad[:5])}{more}"
            )


def _is_resource_error(e: BaseException) -> bool:
    return isinstance(e, MemoryError) or "RESOURCE_EXHAUSTED" in str(e)[:2000]


_STORAGE_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EIO,
    errno.ETIMEDOUT,
    errno.EROFS,
    errno.ENOTCONN,
    errno.ESTALE,
    errno.EAGAIN,
}
# how TensorStore and network filesystems spell the same failures inside a message
_STORAGE_MARKERS = (
    "PERMISSION_DENIED",
    "Permission denied",
    "Input/output error",
    "DEADLINE_EXCEEDED",
    "UNAVAILABLE",
    "Read-only file system",
    "Transport endpoint is not connected",
    "Stale file handle",
)


def _is_storage_error(e: BaseException) -> bool:
    """True when ``e`` (or an error it wraps) is the storage failing rather than the files being bad."""
    seen = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (PermissionError, TimeoutError)) or (
            isinstance(cur, OSError) and cur.errno in _STORAGE_ERRNOS
        ):
            return True
        if any(m in str(cur)[:4000] for m in _STORAGE_MARKERS):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _first_line(e: BaseException, limit: int = 300) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else "")[:limit]
