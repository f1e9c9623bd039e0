"""Array conventions shared by the estimators and losses: float32 math, masks as 0/1 floats,
targets without gradient."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def f32(x) -> jax.Array:
    return jnp.asarray(x, jnp.float32)


def mask_f32(mask) -> jax.Array:
    """A response mask (bool, int or float) as 0/1 float32."""
    return (jnp.asarray(mask) > 0).astype(jnp.float32)


def stop_grad(x):
    return jax.lax.stop_gradient(x)
