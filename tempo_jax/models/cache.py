"""The KV cache, owned by the model: one stacked buffer for all layers plus slot bookkeeping."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from tempo_jax.models.config import ModelConfig


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class KVCache:
    """k, v: [layers, batch, slots, kv_heads, head_dim]; valid: [batch, slots] marks slots that
    hold a real token (left padding stays False); index: the next slot to write (int32 scalar,
    shared by the batch because prompts are left-padded to a common length)."""

    k: jax.Array
    v: jax.Array
    valid: jax.Array
    index: jax.Array

    @property
    def max_len(self) -> int:
        return self.k.shape[2]


def cache_bytes(cfg: ModelConfig, batch: int, max_len: int, dtype: str | None = None) -> int:
    """Bytes the cache of this shape occupies, computed before anything is allocated."""
    itemsize = jnp.dtype(dtype or cfg.dtype).itemsize
    kv = 2 * cfg.num_layers * batch * max_len * cfg.num_kv_heads * cfg.head_dim * itemsize
    return kv + batch * max_len + 4


def init_cache(cfg: ModelConfig, batch: int, max_len: int, dtype: str | None = None) -> KVCache:
    shape = (cfg.num_layers, batch, max_len, cfg.num_kv_heads, cfg.head_dim)
    dt = jnp.dtype(dtype or cfg.dtype)
    return KVCache(k=jnp.zeros(shape, dt), v=jnp.zeros(shape, dt),
                   valid=jnp.zeros((batch, max_len), jnp.bool_), index=jnp.zeros((), jnp.int32))
