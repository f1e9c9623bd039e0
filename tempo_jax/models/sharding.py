"""One PartitionSpec per parameter role, over mesh axes ('data', 'fsdp', 'tensor').

Declared here next to the model so that loading, training and the TPU planner all shard the
same way. Stacked (scan) layers get a leading unsharded layer axis. Meshes themselves are built
by :func:`tempo_jax.parallel.mesh.make_mesh`.
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")

# (last path element(s) -> spec over the parameter's own dims). Kernels are [in, out].
_RULES: list[tuple[tuple[str, ...], P]] = [
    (("embed_tokens", "embedding"), P("tensor", "fsdp")),
    (("lm_head", "kernel"), P("fsdp", "tensor")),
    (("score", "kernel"), P("fsdp", None)),
    (("score", "bias"), P(None)),
    (("q_proj", "kernel"), P("fsdp", "tensor")),
    (("k_proj", "kernel"), P("fsdp", "tensor")),
    (("v_proj", "kernel"), P("fsdp", "tensor")),
    (("q_proj", "bias"), P("tensor")),
    (("k_proj", "bias"), P("tensor")),
    (("v_proj", "bias"), P("tensor")),
    (("o_proj", "kernel"), P("tensor", "fsdp")),
    (("gate_proj", "kernel"), P("fsdp", "tensor")),
    (("up_proj", "kernel"), P("fsdp", "tensor")),
    (("down_proj", "kernel"), P("tensor", "fsdp")),
    (("weight",), P(None)),  # every norm
]


def spec_for(path: tuple, ndim: int, stacked: bool) -> P:
    """PartitionSpec of the parameter at ``path`` (a tuple of names/indices)."""
    names = tuple(str(p) for p in path)
    for suffix, spec in _RULES:
        if names[-len(suffix) :] == suffix:
            base = tuple(spec)
            if stacked and "layers" in names:
                base = (None,) + base
            if len(base) != ndim:
                raise ValueError(f"sharding rule for {'/'.join(names)} has {len(base)} dims, parameter has {ndim}")
            return P(*base)
    raise ValueError(f"no sharding rule for parameter {'/'.join(names)}; add one in tempo_jax/models/sharding.py")


def _fit(spec: P, shape: tuple[int, ...], mesh: Mesh) -> P:
    """Drop mesh axes that do not divide a dimension (tiny test models on big meshes)."""
    out: list[str | tuple[str, ...] | None] = []
    for dim, axis in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
        if axis is None:
            out.append(None)
            continue
        axes = axis if isinstance(axis, tuple) else (axis,)
        size = int(np.prod([mesh.shape[a] for a in axes]))
        out.append(axis if dim % size == 0 else None)
    return P(*out)


def state_shardings(state: nnx.State, mesh: Mesh | None, stacked: bool) -> nnx.State:
    """A State of NamedShardings matching ``state`` (abstract or concrete)."""
    if mesh is None:
        device = jax.devices()[0]
        return jax.tree.map(lambda _: jax.sharding.SingleDeviceSharding(device), state)

    def one(path, leaf):
        names = tuple(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)
        names = names[:-1] if names and names[-1] == "value" else names
        return NamedSharding(mesh, _fit(spec_for(names, len(leaf.shape), stacked), leaf.shape, mesh))

    return jax.tree_util.tree_map_with_path(one, state)
