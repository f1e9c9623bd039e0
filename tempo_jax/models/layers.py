"""Decoder building blocks (NNX): RMSNorm, grouped-query attention with a KV cache, SwiGLU MLP.

Parameter names mirror the Hugging Face module names so the safetensors mapping stays a
table of renames and transposes, not code.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from tempo_jax.models import attention_kernels as kernels
from tempo_jax.models.config import ModelConfig
from tempo_jax.models.rope import apply_rope

NO_WINDOW = 1 << 30  # window size used for full-attention layers


def param_init(std: float = 0.02):
    return nnx.initializers.normal(stddev=std)


class RMSNorm(nnx.Module):
    """RMSNorm computed in float32 (as HF does), scaled by a learned weight."""

    def __init__(self, size: int, eps: float, cfg: ModelConfig):
        self.weight = nnx.Param(jnp.ones((size,), cfg.jnp_param_dtype))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = x.dtype
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (self.weight[...].astype(jnp.float32) * x32).astype(dtype)


def linear(cfg: ModelConfig, n_in: int, n_out: int, bias: bool, rngs: nnx.Rngs) -> nnx.Linear:
    """A projection in the model's dtypes and initialisation (bias zero at init)."""
    return nnx.Linear(
        n_in,
        n_out,
        use_bias=bias,
        dtype=cfg.jnp_dtype,
        param_dtype=cfg.jnp_param_dtype,
        kernel_init=param_init(),
        bias_init=nnx.initializers.zeros_init(),
        rngs=rngs,
    )


def attention_mask(q_slots: jax.Array, kv_valid: jax.Array, window: jax.Array | int, ring: bool = False) -> jax.Array:
    """[B, Lq, S] bool: a key at slot s is visible to a query at slot t iff it is valid, s <= t and
    s > t - window (HF's rule). q_slots [Lq] are the queries' absolute slots; kv_valid [B, S] marks
    real (non-pad, already written) keys. Computed once per forward, shared by the layers.

    ``ring``: the slots are a ring buffer (the continuous-batching cache): a key's age is
    (t - s) mod S and it is visible iff valid and younger than the window; slots a row has not
    written since it was (re)filled are invalid, so no key from the future is ever valid."""
    k_slots = jnp.arange(kv_valid.shape[1], dtype=jnp.int32)
    if ring:
        causal = (q_slots[:, None] - k_slots[None, :]) % kv_valid.shape[1] < window
    else:
        causal = (k_slots[None, :] <= q_slots[:, None]) & (k_slots[None, :] > q_slots[:, None] - window)
    return causal[None, :, :] & kv_valid[:, None, :]


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class MaskSpec:
    """The inputs of :func:`attention_mask` rather than the mask itself, so that attention over a
    long sequence can build it one query chunk at a time (a [B, L, L] mask of a 16k-token batch
    is as large as the scores it guards)."""

    q_slots: jax.Array
    kv_valid: jax.Array
    window: jax.Array | int
    ring: bool = dataclasses.field(default=False, metadata=dict(static=True))
    # the keys are the queries' own tokens (no cache read): training forwards and prefill into an
    # empty cache; only then may attention take the model's fused kernel
    self_only: bool = dataclasses.field(default=False, metadata=dict(static=True))

    def dense(self) -> jax.Array:
        return attention_mask(self.q_slots, self.kv_valid, self.window, self.ring)


def attend_chunked(q: jax.Array, k: jax.Array, v: jax.Array, spec: MaskSpec, chunk: int) -> jax.Array:
    """:func:`attend` one block of ``chunk`` queries at a time (``lax.scan`` over blocks).

    The block is rematerialised (``jax.checkpoint``), so training keeps no [B, H, L, S] scores or
    probabilities: the backward pass recomputes one block's scores at a time. Peak attention
    memory goes from O(L * S) to O(chunk * S) for one extra QK^T product per block. The scan (not
    a Python loop) is what bounds it: unrolled blocks let XLA schedule all recomputations at once.
    ``chunk <= 0`` or a sequence no longer than ``chunk``: plain :func:`attend`.
    """
    b, length, h, d = q.shape
    if chunk <= 0 or length <= chunk:
        return attend(q, k, v, spec.dense())
    blocks = -(-length // chunk)
    pad = blocks * chunk - length  # padded queries repeat the last slot; their outputs are dropped
    q_blocks = jnp.pad(q, ((0, 0), (0, pad), (0, 0), (0, 0))).reshape(b, blocks, chunk, h, d).swapaxes(0, 1)
    slots = jnp.concatenate([spec.q_slots, jnp.broadcast_to(spec.q_slots[-1:], (pad,))]).reshape(blocks, chunk)

    @jax.checkpoint
    def block(q_block, q_slots):
        return attend(q_block, k, v, attention_mask(q_slots, spec.kv_valid, spec.window, spec.ring))

    _, out = jax.lax.scan(lambda _, xs: (None, block(*xs)), None, (q_blocks, slots))
    return out.swapaxes(0, 1).reshape(b, blocks * chunk, h * d)[:, :length]


def attend(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """Grouped-query attention.

    q [B, Lq, H, D]; k, v [B, KVH, S, D] (the cache layout: a contiguous [S, D] matrix per
    sequence and KV head, so both products read it in place); mask [B, Lq, S] from
    :func:`attention_mask`. Query head h uses KV head h // (H // KVH), as HF's ``repeat_kv``.
    """
    b, lq, h, d = q.shape
    kvh = k.shape[1]
    q = q.reshape(b, lq, kvh, h // kvh, d)
    scores = jnp.einsum("bqkgd,bksd->bkgqs", q, k, preferred_element_type=jnp.float32)
    scores = scores * (d**-0.5)
    scores = jnp.where(mask[:, None, None, :, :], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bkgqs,bksd->bqkgd", probs, v)
    return out.reshape(b, lq, h * d)


class Attention(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        h, d = cfg.hidden_size, cfg.head_dim
        self.q_proj = linear(cfg, h, cfg.num_heads * d, cfg.qkv_bias, rngs)
        self.k_proj = linear(cfg, h, cfg.num_kv_heads * d, cfg.qkv_bias, rngs)
        self.v_proj = linear(cfg, h, cfg.num_kv_heads * d, cfg.qkv_bias, rngs)
        self.o_proj = linear(cfg, cfg.num_heads * d, h, False, rngs)
        if cfg.qk_norm == "head":
            self.q_norm = RMSNorm(d, cfg.rms_norm_eps, cfg)
            self.k_norm = RMSNorm(d, cfg.rms_norm_eps, cfg)
        elif cfg.qk_norm == "full":
            self.q_norm = RMSNorm(cfg.num_heads * d, cfg.rms_norm_eps, cfg)
            self.k_norm = RMSNorm(cfg.num_kv_heads * d, cfg.rms_norm_eps, cfg)

    def __call__(self, x, cos, sin, mask, kv_cache=None, write_index=None):
        """x [B, L, hidden]; mask: a :class:`MaskSpec` (or a dense [B, L, S] mask from
        :func:`attention_mask`). ``kv_cache``: this layer's
        (k, v) buffers [B, KVH, S, D] (or None: attend to x itself); the new rows are written at
        slot ``write_index`` and the updated buffers returned (None without a cache)."""
        cfg = self.cfg
        b, length, _ = x.shape
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if cfg.qk_norm == "full":
            q, k = self.q_norm(q), self.k_norm(k)
        q = q.reshape(b, length, cfg.num_heads, cfg.head_dim)
        k = k.reshape(b, length, cfg.num_kv_heads, cfg.head_dim)
        v = v.reshape(b, length, cfg.num_kv_heads, cfg.head_dim)
        if cfg.qk_norm == "head":
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k, v = jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2)  # [B, KVH, L, D]
        self_only = isinstance(mask, MaskSpec) and mask.self_only
        if kv_cache is not None:
            k_cache, v_cache = kv_cache
            start = (0, 0, write_index, 0)
            k_cache = jax.lax.dynamic_update_slice(k_cache, k.astype(k_cache.dtype), start)
            v_cache = jax.lax.dynamic_update_slice(v_cache, v.astype(v_cache.dtype), start)
            kv_cache = (k_cache, v_cache)
            if not self_only:
                k, v = k_cache.astype(q.dtype), v_cache.astype(q.dtype)
        impl = kernels.resolve(cfg.attention_impl, cfg.dtype) if self_only else "xla"
        if impl != "xla":
            out = self._fused(q, k, v, mask, impl)
        elif isinstance(mask, MaskSpec):
            out = attend_chunked(q, k, v, mask, cfg.attention_chunk)
        else:
            out = attend(q, k, v, mask)
        return self.o_proj(out), kv_cache

    def _fused(self, q, k, v, mask: MaskSpec, impl: str):
        """The fused kernel; a layer window traced by the layer scan picks one of the model's two."""
        run = lambda window: kernels.self_attention(
            q, k, v, mask.kv_valid, window, impl.removesuffix("_interpret"), interpret=impl.endswith("_interpret")
        )
        if isinstance(mask.window, int):
            return run(mask.window)
        sliding = self.cfg.sliding_window or NO_WINDOW
        return jax.lax.cond(mask.window == NO_WINDOW, lambda: run(NO_WINDOW), lambda: run(sliding))


class MLP(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        h, i = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = linear(cfg, h, i, False, rngs)
        self.up_proj = linear(cfg, h, i, False, rngs)
        self.down_proj = linear(cfg, i, h, False, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.down_proj(jax.nn.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nnx.Module):
    """One decoder layer; pre-norm (Qwen/Llama) or post-norm (OLMo 2/3) residual order."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.post_norm = cfg.norm_placement == "post"
        self.self_attn = Attention(cfg, rngs)
        self.mlp = MLP(cfg, rngs)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, cfg)
        if self.post_norm:
            self.post_feedforward_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, cfg)
        else:
            self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, cfg)

    def __call__(self, x, cos, sin, mask, kv_cache=None, write_index=None):
        if self.post_norm:
            a, kv_cache = self.self_attn(x, cos, sin, mask, kv_cache, write_index)
            h = x + self.post_attention_layernorm(a)
            return h + self.post_feedforward_layernorm(self.mlp(h)), kv_cache
        a, kv_cache = self.self_attn(self.input_layernorm(x), cos, sin, mask, kv_cache, write_index)
        h = x + a
        return h + self.mlp(self.post_attention_layernorm(h)), kv_cache
