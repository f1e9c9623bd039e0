"""Sampling methods as small frozen dataclasses, composable as temperature -> top-k -> top-p.

Each method maps raw logits to the logits of the distribution actually sampled from
(``-inf`` outside the kept set); :class:`Greedy` is the argmax limit.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

NEG_INF = -jnp.inf


@dataclasses.dataclass(frozen=True)
class Greedy:
    """Argmax decoding (the sampling distribution is a point mass)."""

    def transform(self, logits: jax.Array) -> jax.Array:
        best = jnp.argmax(logits, axis=-1)
        return jnp.where(jnp.arange(logits.shape[-1]) == best[..., None], 0.0, NEG_INF)

    def sample(self, rng: jax.Array, logits: jax.Array) -> jax.Array:
        del rng
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class Sampling:
    """Temperature, then top-k (k <= 0: off), then top-p (p >= 1: off) — the reference's order."""

    temperature: float = 1.0
    top_k: int = -1
    top_p: float = 1.0

    def __post_init__(self):
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (use Greedy() for argmax), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def transform(self, logits: jax.Array) -> jax.Array:
        logits = logits.astype(jnp.float32) / self.temperature
        if self.top_k > 0 and self.top_k < logits.shape[-1]:
            kth = jax.lax.top_k(logits, self.top_k)[0][..., -1:]
            logits = jnp.where(logits < kth, NEG_INF, logits)
        if self.top_p < 1.0:
            sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
            probs = jax.nn.softmax(sorted_logits, axis=-1)
            before = jnp.cumsum(probs, axis=-1) - probs  # mass strictly above each sorted token
            keep_sorted = before < self.top_p  # always keeps the top token
            threshold = jnp.min(jnp.where(keep_sorted, sorted_logits, jnp.inf), axis=-1, keepdims=True)
            logits = jnp.where(logits < threshold, NEG_INF, logits)
        return logits

    def sample(self, rng: jax.Array, logits: jax.Array) -> jax.Array:
        return jax.random.categorical(rng, self.transform(logits), axis=-1).astype(jnp.int32)


def Temperature(t: float) -> Sampling:  # noqa: N802 - reads as a method name in configs
    return Sampling(temperature=t)


def TopK(k: int, temperature: float = 1.0) -> Sampling:  # noqa: N802
    return Sampling(temperature=temperature, top_k=k)


def TopP(p: float, temperature: float = 1.0) -> Sampling:  # noqa: N802
    return Sampling(temperature=temperature, top_p=p)


SamplingMethod = Greedy | Sampling
