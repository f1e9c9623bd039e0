"""Decoder building blocks (NNX): RMSNorm, grouped-query attention with a KV cache, SwiGLU MLP.

Parameter names mirror the Hugging Face module names so the safetensors mapping stays a
table of renames and transposes, not code.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from tempo_jax.models.config import ModelConfig
from tempo_jax.models.rope import apply_rope

NO_WINDOW = 1 << 30  # window size used for full-attention layers


def _init(std: float = 0.02):
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


def _linear(cfg: ModelConfig, n_in: int, n_out: int, bias: bool, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(n_in, n_out, use_bias=bias, dtype=cfg.jnp_dtype, param_dtype=cfg.jnp_param_dtype,
                      kernel_init=_init(), bias_init=nnx.initializers.zeros_init(), rngs=rngs)


def attend(q: jax.Array, k: jax.Array, v: jax.Array, q_slots: jax.Array, kv_valid: jax.Array,
           window: jax.Array | int) -> jax.Array:
    """Causal (optionally sliding-window) GQA attention.

    q [B, Lq, H, D]; k, v [B, S, KVH, D]; q_slots [Lq] is the absolute slot of each query in
    the key sequence; kv_valid [B, S] marks real (non-pad, already written) keys. A key at
    slot s is visible to a query at slot t iff valid, s <= t and s > t - window (HF's rule).
    """
    b, lq, h, d = q.shape
    kvh = k.shape[2]
    q = q.reshape(b, lq, kvh, h // kvh, d)
    scores = jnp.einsum("bqkgd,bskd->bkgqs", q, k, preferred_element_type=jnp.float32)
    scores = scores * (d ** -0.5)
    k_slots = jnp.arange(k.shape[1], dtype=jnp.int32)
    causal = (k_slots[None, :] <= q_slots[:, None]) & (k_slots[None, :] > q_slots[:, None] - window)
    mask = causal[None, :, :] & kv_valid[:, None, :]
    scores = jnp.where(mask[:, None, None, :, :], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bkgqs,bskd->bqkgd", probs, v)
    return out.reshape(b, lq, h * d)


class Attention(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        h, d = cfg.hidden_size, cfg.head_dim
        self.q_proj = _linear(cfg, h, cfg.num_heads * d, cfg.qkv_bias, rngs)
        self.k_proj = _linear(cfg, h, cfg.num_kv_heads * d, cfg.qkv_bias, rngs)
        self.v_proj = _linear(cfg, h, cfg.num_kv_heads * d, cfg.qkv_bias, rngs)
        self.o_proj = _linear(cfg, cfg.num_heads * d, h, False, rngs)
        if cfg.qk_norm == "head":
            self.q_norm = RMSNorm(d, cfg.rms_norm_eps, cfg)
            self.k_norm = RMSNorm(d, cfg.rms_norm_eps, cfg)
        elif cfg.qk_norm == "full":
            self.q_norm = RMSNorm(cfg.num_heads * d, cfg.rms_norm_eps, cfg)
            self.k_norm = RMSNorm(cfg.num_kv_heads * d, cfg.rms_norm_eps, cfg)

    def __call__(self, x, cos, sin, q_slots, kv_valid, window, kv_cache=None, write_index=None):
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
        if kv_cache is not None:
            # Only the new rows are returned; the decoder writes them into its stacked buffer
            # once, so a decode step costs O(new tokens) in cache writes.
            k_cache, v_cache = kv_cache
            new_rows = (k.astype(k_cache.dtype), v.astype(v_cache.dtype))
            start = (0, write_index, 0, 0)
            k = jax.lax.dynamic_update_slice(k_cache, new_rows[0], start).astype(q.dtype)
            v = jax.lax.dynamic_update_slice(v_cache, new_rows[1], start).astype(q.dtype)
        else:
            new_rows = None
        out = attend(q, k, v, q_slots, kv_valid, window)
        return self.o_proj(out), new_rows


class MLP(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        h, i = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = _linear(cfg, h, i, False, rngs)
        self.up_proj = _linear(cfg, h, i, False, rngs)
        self.down_proj = _linear(cfg, i, h, False, rngs)

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

    def __call__(self, x, cos, sin, q_slots, kv_valid, window, kv_cache=None, write_index=None):
        if self.post_norm:
            a, new_cache = self.self_attn(x, cos, sin, q_slots, kv_valid, window, kv_cache, write_index)
            h = x + self.post_attention_layernorm(a)
            return h + self.post_feedforward_layernorm(self.mlp(h)), new_cache
        a, new_cache = self.self_attn(self.input_layernorm(x), cos, sin, q_slots, kv_valid, window,
                                      kv_cache, write_index)
        h = x + a
        return h + self.mlp(self.post_attention_layernorm(h)), new_cache
