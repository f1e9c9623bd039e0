"""The KV cache, owned by the model.

Two layouts of the same content:

* :class:`KVCache` — one stacked buffer for all layers, ``[layers, batch, slots, kv_heads, head_dim]``
  (the public, checkpoint-friendly view);
* :class:`LayerKVCache` — one buffer per layer, ``[batch, kv_heads, slots, head_dim]``: each
  (sequence, head) owns a contiguous ``[slots, head_dim]`` matrix, so a decode step writes its new
  row in place and both attention products read the buffer directly (no per-step copy or
  transpose). The sampler decodes with this one.
"""

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


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class LayerKVCache:
    """k, v: tuples (one entry per layer) of [batch, kv_heads, slots, head_dim]; valid and
    index as in :class:`KVCache`. ``ring``: the slots are a ring buffer (continuous batching):
    the write index wraps around and attention orders keys by age, not slot
    (:func:`~tempo_jax.models.layers.attention_mask`). ``empty``: nothing written yet (a fresh
    cache, static): a prefill then attends over its own tokens only, through the model's fused
    kernel (:mod:`~tempo_jax.models.attention_kernels`), and writes them."""

    k: tuple[jax.Array, ...]
    v: tuple[jax.Array, ...]
    valid: jax.Array
    index: jax.Array
    ring: bool = dataclasses.field(default=False, metadata=dict(static=True))
    empty: bool = dataclasses.field(default=False, metadata=dict(static=True))

    @property
    def max_len(self) -> int:
        return self.k[0].shape[2]


def cache_bytes(cfg: ModelConfig, batch: int, max_len: int, dtype: str | None = None) -> int:
    """Bytes the cache of this shape occupies (either layout), computed before anything is allocated."""
    itemsize = jnp.dtype(dtype or cfg.dtype).itemsize
    kv = 2 * cfg.num_layers * batch * max_len * cfg.num_kv_heads * cfg.head_dim * itemsize
    return kv + batch * max_len + 4


def init_cache(cfg: ModelConfig, batch: int, max_len: int, dtype: str | None = None) -> KVCache:
    shape = (cfg.num_layers, batch, max_len, cfg.num_kv_heads, cfg.head_dim)
    dt = jnp.dtype(dtype or cfg.dtype)
    return KVCache(
        k=jnp.zeros(shape, dt),
        v=jnp.zeros(shape, dt),
        valid=jnp.zeros((batch, max_len), jnp.bool_),
        index=jnp.zeros((), jnp.int32),
    )


def init_layer_cache(cfg: ModelConfig, batch: int, max_len: int, dtype: str | None = None) -> LayerKVCache:
    shape = (batch, cfg.num_kv_heads, max_len, cfg.head_dim)
    dt = jnp.dtype(dtype or cfg.dtype)
    zeros = tuple(jnp.zeros(shape, dt) for _ in range(cfg.num_layers))
    return LayerKVCache(
        k=zeros,
        v=tuple(jnp.zeros(shape, dt) for _ in range(cfg.num_layers)),
        valid=jnp.zeros((batch, max_len), jnp.bool_),
        index=jnp.zeros((), jnp.int32),
        empty=True,
    )


def to_layers(cache: KVCache) -> LayerKVCache:
    """The per-layer view of a stacked cache (copies)."""
    split = lambda x: tuple(jnp.swapaxes(x[i], 1, 2) for i in range(x.shape[0]))
    return LayerKVCache(k=split(cache.k), v=split(cache.v), valid=cache.valid, index=cache.index)


def to_stacked(cache: LayerKVCache) -> KVCache:
    """The stacked view of a per-layer cache (copies)."""
    stack = lambda xs: jnp.stack([jnp.swapaxes(x, 1, 2) for x in xs])
    return KVCache(k=stack(cache.k), v=stack(cache.v), valid=cache.valid, index=cache.index)


def resize(cache: LayerKVCache, max_len: int) -> LayerKVCache:
    """The same cache with ``max_len`` slots (new slots empty and invalid; dropped slots must be unused)."""
    old = cache.max_len
    if max_len == old:
        return cache
    if max_len < old:
        cut = lambda x: x[:, :, :max_len]
        return LayerKVCache(
            k=tuple(map(cut, cache.k)), v=tuple(map(cut, cache.v)), valid=cache.valid[:, :max_len], index=cache.index
        )
    pad = lambda x: jnp.pad(x, ((0, 0), (0, 0), (0, max_len - old), (0, 0)))
    return LayerKVCache(
        k=tuple(map(pad, cache.k)),
        v=tuple(map(pad, cache.v)),
        valid=jnp.pad(cache.valid, ((0, 0), (0, max_len - old))),
        index=cache.index,
    )
