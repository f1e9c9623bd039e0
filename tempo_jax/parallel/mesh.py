"""Meshes from the config, train-state and batch placement, and host <-> global array movement.

Axes are ``('data', 'fsdp', 'tensor')`` (:data:`tempo_jax.models.sharding.MESH_AXES`). Parameters
follow the per-role rules of :mod:`tempo_jax.models.sharding`; each optimizer-state leaf that
mirrors the parameters (Adam's ``mu``/``nu``) takes its parameter's sharding, everything else in
the optimizer state (counts) is replicated. Batch rows are split over ``('data', 'fsdp')``.

The same code runs on one device (``mesh=None``: every helper is a no-op), on fake CPU devices,
and on a multi-host TPU slice: there each process holds only its devices' rows, so host data
becomes a global array with :func:`host_to_global` (``jax.make_array_from_process_local_data``)
and comes back with :func:`to_host` (an all-gather when rows live on other hosts).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.experimental import mesh_utils, multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from tempo_jax.errors import UserError
from tempo_jax.models.sharding import MESH_AXES, state_shardings

log = logging.getLogger(__name__)

BATCH_AXES = ("data", "fsdp")


class MeshError(UserError, ValueError):
    """A mesh shape that cannot be built on the available devices; the message says what to change."""


# ---------------------------------------------------------------------------------------------- meshes
def resolve_shape(shape: Sequence[int], num_devices: int, what: str = "mesh.shape") -> tuple[int, int, int]:
    """``shape`` as three positive ints whose product is ``num_devices``; one entry may be -1 (inferred)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != len(MESH_AXES):
        raise MeshError(f"{what}={shape} must have {len(MESH_AXES)} entries, one per mesh axis {MESH_AXES}")
    if shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
        raise MeshError(f"{what}={shape}: entries must be positive (one may be -1 to use the remaining devices)")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if num_devices % known:
            raise MeshError(f"{what}={shape}: {num_devices} devices do not split into {known} x (-1)")
        shape = tuple(num_devices // known if s == -1 else s for s in shape)
    if math.prod(shape) != num_devices:
        hint = ", ".join(str(s) for s in suggest_shapes(num_devices)[:4])
        raise MeshError(
            f"{what}={shape} uses {math.prod(shape)} devices but {num_devices} are available "
            f"(jax.device_count()); use a shape whose product is {num_devices}, e.g. {hint}, "
            "or put -1 on one axis"
        )
    data, fsdp, tensor = shape  # three entries (checked above)
    return data, fsdp, tensor


def suggest_shapes(num_devices: int) -> list[tuple[int, int, int]]:
    """A few (data, fsdp, tensor) shapes for ``num_devices``: pure FSDP first, then tensor 2/4/8."""
    out = [(1, num_devices, 1)]
    for t in (2, 4, 8):
        if num_devices % t == 0 and num_devices // t >= 1:
            out.append((1, num_devices // t, t))
    out.append((num_devices, 1, 1))
    return list(dict.fromkeys(out))


def make_mesh(shape: Sequence[int], devices: Sequence[Any] | None = None) -> Mesh:
    """The ``('data', 'fsdp', 'tensor')`` mesh over ``devices`` (all of them by default); the one
    mesh constructor of the package.

    The device order comes from ``mesh_utils.create_device_mesh`` (what ``jax.make_mesh`` calls):
    on TPU it follows the physical topology, so the innermost (tensor) axis maps to neighbouring
    chips; on CPU/GPU it is the devices' order (by id on GPU). Not ``jax.make_mesh`` itself
    (JAX 0.10): where both succeed the order is the same (checked on v4-32, v5e-16, v5p-64 and
    v6e-64 topologies), but ``jax.make_mesh`` (a) makes ``Explicit`` axes unless told otherwise,
    while the package is written for ``Auto`` ones, (b) refuses to split a physical TPU axis
    except on v5e, so common shapes fail (v5p-64 ``(2, 8, 2)``, v6e-64 ``(1, 16, 4)``), and
    (c) rejects multi-slice device lists. Here a physical axis may be split, and a topology
    ``create_device_mesh`` cannot arrange falls back to the plain row-major order."""
    devices = list(jax.devices() if devices is None else devices)
    shape = resolve_shape(shape, len(devices))
    try:
        grid = mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)
    except Exception:  # an unusual topology: plain row-major order
        grid = np.array(devices).reshape(shape)
    return Mesh(grid, MESH_AXES)


def mesh_from_config(cfg) -> Mesh | None:
    """The training mesh of ``cfg.mesh.shape``; ``(1, 1, 1)`` means one device, no mesh (None)."""
    shape = tuple(cfg.mesh.shape)
    if shape == (1, 1, 1):
        if jax.device_count() > 1:
            log.warning(
                "mesh.shape=(1, 1, 1): training on one of %d devices; set mesh.shape (e.g. %s) to use them",
                jax.device_count(),
                suggest_shapes(jax.device_count())[0],
            )
        return None
    return make_mesh(shape)


def rollout_mesh_from_config(cfg, train_mesh: Mesh | None) -> Mesh | None:
    """The mesh rollouts run on: the training mesh unless ``cfg.mesh.rollout_shape`` names another
    arrangement of the same devices (e.g. ``(8, 1, 4)``: weights replicated over ``data`` and split
    over ``tensor``, so decoding does not all-gather FSDP shards every token)."""
    shape = tuple(cfg.mesh.get("rollout_shape", ()) or ())
    if not shape or (train_mesh is None and shape == (1, 1, 1)):
        return train_mesh
    devices = train_mesh.devices.flatten().tolist() if train_mesh is not None else jax.devices()
    shape = resolve_shape(shape, len(devices), "mesh.rollout_shape")
    if train_mesh is not None and shape == tuple(train_mesh.shape[a] for a in MESH_AXES):
        return train_mesh
    return make_mesh(shape, devices)


def validate_mesh_config(cfg, num_devices: int | None = None) -> list[str]:
    """Problems with ``cfg.mesh`` (for ``train.config.validate``); empty when fine."""
    errors = []
    num = jax.device_count() if num_devices is None else num_devices
    shapes = [("mesh.shape", tuple(cfg.mesh.shape))]
    if tuple(cfg.mesh.get("rollout_shape", ()) or ()):
        shapes.append(("mesh.rollout_shape", tuple(cfg.mesh.rollout_shape)))
    for what, shape in shapes:
        if shape == (1, 1, 1):
            continue
        try:
            resolve_shape(shape, num, what)
        except MeshError as err:
            errors.append(str(err))
    return errors


# ---------------------------------------------------------------------------------------------- states
def _replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def train_state_shardings(state, mesh: Mesh, stacked: bool):
    """Shardings for a :class:`~tempo_jax.train.state.TrainState` (abstract or concrete): parameters
    by role, optimizer-state subtrees shaped like the parameters mirror them, the rest replicated."""
    params_sh = state_shardings(state.params, mesh, stacked)
    params_def = jax.tree.structure(state.params)

    def opt(node):
        if isinstance(node, nnx.State) and jax.tree.structure(node) == params_def:
            return params_sh
        return jax.tree.map(lambda _: _replicated(mesh), node)

    opt_sh = jax.tree.map(opt, state.opt_state, is_leaf=lambda x: isinstance(x, nnx.State))
    return type(state)(params=params_sh, opt_state=opt_sh, step=_replicated(mesh))


def place(x, sharding: jax.sharding.Sharding):
    """Put ``x`` (host or device array) on ``sharding``; works when the sharding spans other hosts."""
    if isinstance(x, jax.Array) and x.sharding == sharding:
        return x
    if sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return jax.device_put(x, sharding)  # global -> global resharding
    host = np.asarray(jax.device_get(x))
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def shard_train_state(state, mesh: Mesh | None, stacked: bool):
    """``state`` placed on ``mesh``; without one, every leaf committed to the default device.

    Committing matters: parameters loaded from a checkpoint are committed, fresh scalars (step,
    optimizer counts) are not, and a jitted update's outputs all are, so the second update would
    see other argument placements than the first and compile again (minutes at paper scale)."""
    if mesh is None:
        return jax.device_put(state, jax.devices()[0])
    shardings = train_state_shardings(state, mesh, stacked)
    return jax.block_until_ready(jax.tree.map(place, state, shardings))


def reshard(tree, shardings):
    """``tree`` moved onto ``shardings`` (e.g. actor parameters onto the rollout mesh)."""
    return jax.block_until_ready(jax.tree.map(place, tree, shardings))


# ---------------------------------------------------------------------------------------------- batches
def batch_axes(mesh: Mesh | jax.sharding.AbstractMesh, rows: int) -> tuple[str, str] | None:
    """The batch rule: the mesh axes ``rows`` are split over -- :data:`BATCH_AXES` (data x fsdp)
    when they divide evenly, else ``None`` (replicated). The entry for dim 0 of a PartitionSpec."""
    size = mesh.shape["data"] * mesh.shape["fsdp"]
    return BATCH_AXES if rows % size == 0 else None


def batch_spec(mesh: Mesh, rows: int) -> P:
    """Rows over ``('data', 'fsdp')`` when they divide evenly, else replicated (:func:`batch_axes`)."""
    axes = batch_axes(mesh, rows)
    return P(axes) if axes else P()


def batch_sharding(mesh: Mesh, shape: Sequence[int]) -> NamedSharding:
    """Placement of a batch array of ``shape`` (:func:`batch_spec` of its rows; scalars replicated)."""
    if not len(shape):
        return _replicated(mesh)
    return NamedSharding(mesh, batch_spec(mesh, int(shape[0])))


def local_rows(sharding: jax.sharding.Sharding, global_shape: Sequence[int]) -> slice | None:
    """The contiguous range of rows (dim 0) this process's devices hold, or None if not contiguous."""
    global_shape = tuple(global_shape)
    if not global_shape:
        return slice(None)
    rows: set[int] = set()
    for index in sharding.addressable_devices_indices_map(global_shape).values():
        # jax annotates the values ``Index | None`` but fills them from devices_indices_map (never None)
        assert index is not None
        rows.update(range(*index[0].indices(global_shape[0])))
    if not rows:
        return None
    lo, hi = min(rows), max(rows) + 1
    return slice(lo, hi) if len(rows) == hi - lo else None


def host_to_global(x: np.ndarray, sharding: jax.sharding.Sharding) -> jax.Array:
    """A global array from a host array every process holds in full (same values on every host).

    Each process contributes only the rows its devices hold (``make_array_from_process_local_data``),
    which is also how a host that read only its own shard of the data would call it."""
    x = np.asarray(x)
    if sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    rows = local_rows(sharding, x.shape)
    if rows is None:
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
    return jax.make_array_from_process_local_data(sharding, x[rows], x.shape)


def shard_batch(batch: dict[str, Any], mesh: Mesh | None) -> dict[str, jax.Array]:
    """Host arrays -> device arrays, rows over ``('data', 'fsdp')`` on ``mesh`` (plain arrays without one)."""
    if mesh is None:
        return {k: jax.numpy.asarray(v) for k, v in batch.items()}
    return {k: host_to_global(v, batch_sharding(mesh, np.shape(v))) for k, v in batch.items()}


def to_host(tree):
    """Device arrays -> NumPy, gathering rows held by other processes when there are any."""

    def one(x):
        if not isinstance(x, jax.Array):
            return x
        if x.is_fully_addressable:
            return np.asarray(x)
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(one, tree)


# ---------------------------------------------------------------------------------------------- activations
def constrain_rows(tree):
    """Shard the leading (row) axis of every array in ``tree`` over ``('data', 'fsdp')`` when a mesh
    with those axes is active (``jax.set_mesh``) and the rows divide; a no-op otherwise.

    Used at the inputs of the training forwards: without it, the reshape of a batch into
    [mini, micro, rows] lets the partitioner put the batch split on the scanned axis, and each
    device then runs the whole micro-batch."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or not set(BATCH_AXES) <= set(mesh.axis_names):
        return tree
    if mesh.shape["data"] * mesh.shape["fsdp"] == 1:
        return tree

    def one(x):
        if not hasattr(x, "shape") or not x.shape or batch_axes(mesh, x.shape[0]) is None:
            return x
        return jax.lax.with_sharding_constraint(x, P(BATCH_AXES))

    return jax.tree.map(one, tree)


def on_mesh(fn, mesh: Mesh | None, out_shardings=None, donate_argnums=(), block: bool = True):
    """``fn`` (jitted or not) run with ``mesh`` active, optionally with pinned output shardings
    (e.g. a train state that must keep its layout step after step), and blocked on its result:
    on fake CPU devices back-to-back sharded programs can deadlock (ENV_NOTES)."""
    if mesh is None:
        return fn
    jitted = (
        jax.jit(fn, out_shardings=out_shardings, donate_argnums=donate_argnums) if out_shardings is not None else fn
    )

    return MeshProgram(fn, jitted, mesh, block)


class MeshProgram:
    """What :func:`on_mesh` returns: a callable running ``jitted`` with ``mesh`` active, with
    ``lower`` for abstract arguments and ``__wrapped__`` the original ``fn``."""

    def __init__(self, fn: Callable, jitted: Callable, mesh: Mesh, block: bool):
        self.__wrapped__ = fn
        self._jitted = jitted
        self._mesh = mesh
        self._block = block

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with jax.set_mesh(self._mesh):
            out = self._jitted(*args, **kwargs)
        return jax.block_until_ready(out) if self._block else out

    def lower(self, *args: Any, **kwargs: Any) -> Any:
        """The same program lowered for abstract arguments (``tempo-jax plan`` compiles it for a TPU slice)."""
        jitted = self._jitted
        with jax.set_mesh(self._mesh):
            return (jitted if hasattr(jitted, "lower") else jax.jit(jitted)).lower(*args, **kwargs)
