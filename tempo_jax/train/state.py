"""Train state for one role (actor or critic): parameters, optimizer state, step counter.

The NNX graph definition stays outside the pytree (it is static), so the state can be
donated to a jitted update and saved by Orbax as plain arrays.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from tempo_jax.parallel.mesh import train_state_shardings


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class TrainState:
    params: nnx.State
    opt_state: optax.OptState
    step: jax.Array


def create_train_state(model: nnx.Module, tx: optax.GradientTransformation) -> tuple[nnx.GraphDef, TrainState]:
    graphdef, params = nnx.split(model, nnx.Param)
    return graphdef, TrainState(params=params, opt_state=tx.init(params), step=jnp.zeros((), jnp.int32))


def merge(graphdef: nnx.GraphDef, params: nnx.State) -> nnx.Module:
    return nnx.merge(graphdef, params)


def abstract_train_state(model: nnx.Module, tx: optax.GradientTransformation, mesh=None, stacked: bool = False):
    """The train state's shapes and dtypes, no arrays; on ``mesh`` each leaf carries the sharding the
    trainer gives it (restore straight onto the mesh, or compile for it without allocating)."""
    state = jax.eval_shape(lambda: create_train_state(model, tx)[1])
    if mesh is None:
        return state
    shardings = train_state_shardings(state, mesh, stacked)
    return jax.tree.map(lambda x, sh: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sh), state, shardings)
