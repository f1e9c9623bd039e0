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
