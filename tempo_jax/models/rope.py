"""Rotary position embeddings with the HF scaling variants (default, linear, llama3, yarn).

Frequencies are computed in float32 the way transformers does, so logits match HF at 1e-4.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from tempo_jax.models.config import ConfigError, RopeConfig


def inv_freq_and_scale(rope: RopeConfig, head_dim: int) -> tuple[np.ndarray, float]:
    """Inverse frequencies [head_dim // 2] and the cos/sin post-scale (yarn's attention factor)."""
    dim = head_dim
    exponent = np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)
    base = np.float32(rope.theta)
    inv_freq = (np.float32(1.0) / (base**exponent)).astype(np.float32)
    if rope.type == "default":
        return inv_freq, 1.0
    if rope.type == "linear":
        return (inv_freq / np.float32(rope.factor)).astype(np.float32), 1.0
    if rope.type == "llama3":
        return _llama3(inv_freq, rope), 1.0
    if rope.type == "yarn":
        return _yarn(rope, dim)
    raise ConfigError(f"unsupported rope type {rope.type!r}; supported: default, linear, llama3, yarn")


def _llama3(inv_freq: np.ndarray, rope: RopeConfig) -> np.ndarray:
    if rope.original_max_position_embeddings is None:
        raise ConfigError("llama3 rope scaling needs original_max_position_embeddings")
    old_len = rope.original_max_position_embeddings
    low_wavelen = old_len / rope.low_freq_factor
    high_wavelen = old_len / rope.high_freq_factor
    wavelen = (2 * math.pi / inv_freq).astype(np.float32)
    scaled = np.where(wavelen > low_wavelen, inv_freq / np.float32(rope.factor), inv_freq).astype(np.float32)
    smooth = ((old_len / wavelen - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor)).astype(
        np.float32
    )
    smoothed = ((1 - smooth) * scaled / np.float32(rope.factor) + smooth * scaled).astype(np.float32)
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return np.where(medium, smoothed, scaled).astype(np.float32)


def _yarn(rope: RopeConfig, dim: int) -> tuple[np.ndarray, float]:
    if rope.original_max_position_embeddings is None:
        raise ConfigError("yarn rope scaling needs original_max_position_embeddings")
    factor = rope.factor

    def mscale_of(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    attention_factor = rope.attention_factor
    if attention_factor is None:
        if rope.mscale and rope.mscale_all_dim:
            attention_factor = mscale_of(factor, rope.mscale) / mscale_of(factor, rope.mscale_all_dim)
        else:
            attention_factor = mscale_of(factor)
    beta_fast = rope.beta_fast or 32
    beta_slow = rope.beta_slow or 1
    base = rope.theta
    orig = rope.original_max_position_embeddings

    def correction_dim(rotations: float) -> float:
        return (dim * math.log(orig / (rotations * 2 * math.pi))) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if rope.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float32) - low) / (high - low), 0, 1).astype(np.float32)
    pos_freqs = (np.float32(base) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim))).astype(np.float32)
    extrapolation = 1.0 / pos_freqs
    interpolation = 1.0 / (np.float32(factor) * pos_freqs)
    extra_factor = 1 - ramp
    inv_freq = interpolation * (1 - extra_factor) + extrapolation * extra_factor
    return inv_freq.astype(np.float32), float(attention_factor)


def rope_cos_sin(positions: jnp.ndarray, rope: RopeConfig, head_dim: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """cos/sin tables [B, L, head_dim] for integer positions [B, L], in float32."""
    inv_freq, scale = inv_freq_and_scale(rope, head_dim)
    freqs = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)[None, None, :]
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb) * scale, jnp.sin(emb) * scale


def apply_rope(x: jnp.ndarray, cos: jnp.ndarray, sin: jnp.ndarray) -> jnp.ndarray:
    """Rotate-half RoPE on x [B, L, heads, D] (HF's non-interleaved layout)."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    cos = cos[:, :, None, :].astype(x.dtype)
    sin = sin[:, :, None, :].astype(x.dtype)
    return x * cos + rotated * sin
