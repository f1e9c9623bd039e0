"""Jitted rollout: prefill once per prompt, fan the cache out to n samples, decode in a while loop.

The decode loop stops as soon as every sequence has emitted a stop token (or at
``max_new_tokens``) and returns, for every sampled token, its log-prob under the model's own
distribution (PPO/GSPO's old log-probs) and optionally under the sampling distribution.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from tempo_jax.models.cache import KVCache, init_cache
from tempo_jax.models.decoder import CausalLM
from tempo_jax.sampling.memory import check_cache_fits
from tempo_jax.sampling.methods import Greedy, Sampling
from tempo_jax.sampling.padding import left_pad

BATCH_AXES = ("data", "fsdp")


@dataclasses.dataclass
class SampleOutput:
    """Rollouts; row ``i * n + j`` is sample j of prompt i."""

    prompt_tokens: np.ndarray  # [R, P] left-padded
    prompt_valid: np.ndarray  # [R, P]
    tokens: np.ndarray  # [R, T] response tokens, pad after the end
    mask: np.ndarray  # [R, T] True on response tokens (the stop token included)
    lengths: np.ndarray  # [R]
    eos: np.ndarray  # [R] True if the sequence ended with a stop token
    logprobs: np.ndarray  # [R, T] under the model's distribution (0 where masked)
    sampling_logprobs: np.ndarray | None  # [R, T] under the sampling distribution
    prompt_index: np.ndarray  # [R]

    @property
    def finish_reasons(self) -> list[str]:
        return ["eos" if e else "length" for e in self.eos]


def _batch_sharding(mesh: Mesh | None, rows: int, ndim: int):
    if mesh is None:
        return None
    size = mesh.shape["data"] * mesh.shape["fsdp"]
    axes = BATCH_AXES if rows % size == 0 else None
    return NamedSharding(mesh, P(axes, *([None] * (ndim - 1))))


def _constrain(x, mesh, spec_fn):
    return x if mesh is None else jax.lax.with_sharding_constraint(x, spec_fn(x))


def _cache_spec(mesh: Mesh, cache: KVCache) -> KVCache:
    rows = cache.valid.shape[0]
    size = mesh.shape["data"] * mesh.shape["fsdp"]
    b = BATCH_AXES if rows % size == 0 else None
    heads = "tensor" if cache.k.shape[3] % mesh.shape["tensor"] == 0 else None
    kv = NamedSharding(mesh, P(None, b, None, heads, None))
    return KVCache(k=kv, v=kv, valid=NamedSharding(mesh, P(b, None)), index=NamedSharding(mesh, P()))


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6, 7))
def prefill(graphdef, state, tokens, valid, max_len: int, cache_dtype: str | None, mesh: Mesh | None, n: int):
    """Run each prompt once, then fan out to n samples: last-position logits [B*n, V], the
    cache [.., B*n, ..] and the next positions [B*n]."""
    model: CausalLM = nnx.merge(graphdef, state)
    positions = jnp.maximum(jnp.cumsum(valid.astype(jnp.int32), axis=-1) - 1, 0)
    cache = init_cache(model.cfg, tokens.shape[0], max_len, cache_dtype)
    if mesh is not None:
        cache = jax.lax.with_sharding_constraint(cache, _cache_spec(mesh, cache))
    hidden, cache = model.model(tokens, positions, valid, cache)
    logits = model.logits_from_hidden(hidden[:, -1:])[:, 0]
    logits, cache, next_pos = fan_out(logits, cache, jnp.sum(valid, axis=-1).astype(jnp.int32), n)
    if mesh is not None:
        cache = jax.lax.with_sharding_constraint(cache, _cache_spec(mesh, cache))
    return logits, cache, next_pos


def fan_out(logits, cache: KVCache, next_pos, n: int):
    """Repeat each prompt's state n times (row i*n+j = sample j of prompt i)."""
    rep = functools.partial(jnp.repeat, repeats=n, total_repeat_length=None)
    return (rep(logits, axis=0),
            KVCache(k=rep(cache.k, axis=1), v=rep(cache.v, axis=1), valid=rep(cache.valid, axis=0), index=cache.index),
            rep(next_pos, axis=0))


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6, 7), donate_argnums=(3,))
def decode(graphdef, state, logits, cache: KVCache, max_new_tokens: int, method, stop_ids: tuple, pad_id: int,
           pos, rng):
    """Sample until every row stopped or ``max_new_tokens``.

    The cache is donated and returned, so the loop updates it in place (no second copy)."""
    model: CausalLM = nnx.merge(graphdef, state)
    rows = logits.shape[0]
    stop = jnp.asarray(stop_ids if stop_ids else (-1,), jnp.int32)
    carry = dict(
        step=jnp.zeros((), jnp.int32), logits=logits, cache=cache, pos=pos,
        done=jnp.zeros((rows,), jnp.bool_), eos=jnp.zeros((rows,), jnp.bool_),
        tokens=jnp.full((rows, max_new_tokens), pad_id, jnp.int32),
        logprobs=jnp.zeros((rows, max_new_tokens), jnp.float32),
        sampling_logprobs=jnp.zeros((rows, max_new_tokens), jnp.float32),
        lengths=jnp.zeros((rows,), jnp.int32),
    )

    def cond(c):
        return (c["step"] < max_new_tokens) & ~jnp.all(c["done"])

    def body(c):
        key = jax.random.fold_in(rng, c["step"])
        tok = method.sample(key, c["logits"])
        lp = jnp.take_along_axis(jax.nn.log_softmax(c["logits"], axis=-1), tok[:, None], axis=-1)[:, 0]
        slp = jnp.take_along_axis(jax.nn.log_softmax(method.transform(c["logits"]), axis=-1),
                                  tok[:, None], axis=-1)[:, 0]
        live = ~c["done"]
        tok = jnp.where(live, tok, pad_id)
        lp, slp = jnp.where(live, lp, 0.0), jnp.where(live, slp, 0.0)
        col = (0, c["step"])
        hit = live & jnp.any(tok[:, None] == stop[None, :], axis=-1)
        out = dict(c)
        out["tokens"] = jax.lax.dynamic_update_slice(c["tokens"], tok[:, None], col)
        out["logprobs"] = jax.lax.dynamic_update_slice(c["logprobs"], lp[:, None], col)
        out["sampling_logprobs"] = jax.lax.dynamic_update_slice(c["sampling_logprobs"], slp[:, None], col)
        out["lengths"] = c["lengths"] + live.astype(jnp.int32)
        out["eos"] = c["eos"] | hit
        out["done"] = c["done"] | hit
        next_logits, out["cache"] = model(tok[:, None], c["pos"][:, None], jnp.ones((rows, 1), jnp.bool_), c["cache"])
        out["logits"] = next_logits[:, 0]
        out["pos"] = c["pos"] + 1
        out["step"] = c["step"] + 1
        return out

    final = jax.lax.while_loop(cond, body, carry)
    return {k: final[k] for k in ("tokens", "logprobs", "sampling_logprobs", "lengths", "eos")}, final["cache"]


def generate(model: CausalLM | tuple, prompts: Sequence[Sequence[int]] | tuple[np.ndarray, np.ndarray], *,
             n: int = 1, max_new_tokens: int = 128, method: Greedy | Sampling = Sampling(),
             stop_ids: Sequence[int] | None = None, pad_id: int | None = None, rng: jax.Array | None = None,
             kv_cache_dtype: str | None = None, mesh: Mesh | None = None, min_bucket: int = 16,
             memory_budget_bytes: int | None = None, return_sampling_logprobs: bool = False) -> SampleOutput:
    """Sample ``n`` responses for each prompt.

    ``model`` is a CausalLM or its ``(graphdef, state)`` split. ``prompts`` are token-id lists
    (left-padded here to a power-of-two bucket) or an already padded ``(tokens, valid)`` pair.
    ``stop_ids`` default to the model config's EOS ids.
    """
    graphdef, state = nnx.split(model) if isinstance(model, nnx.Module) else model
    cfg = graphdef_cfg(graphdef, state)
    stop = tuple(int(s) for s in (stop_ids if stop_ids is not None else cfg.eos_ids))
    pad = int(pad_id if pad_id is not None else (cfg.pad_token_id if cfg.pad_token_id is not None else 0))
    if isinstance(prompts, tuple) and len(prompts) == 2 and isinstance(prompts[0], np.ndarray):
        tokens, valid = prompts
    else:
        tokens, valid = left_pad(prompts, pad, min_bucket)
    if max_new_tokens < 1 or n < 1:
        raise ValueError(f"need n >= 1 and max_new_tokens >= 1, got n={n}, max_new_tokens={max_new_tokens}")
    batch, plen = tokens.shape
    max_len = plen + max_new_tokens
    devices = 1 if mesh is None else mesh.size
    check_cache_fits(cfg, batch * (n + 1), max_len, kv_cache_dtype, memory_budget_bytes, devices)
    rng = jax.random.key(0) if rng is None else rng
    sharding = _batch_sharding(mesh, batch, 2)
    tokens_j = jnp.asarray(tokens) if sharding is None else jax.device_put(tokens, sharding)
    valid_j = jnp.asarray(valid) if sharding is None else jax.device_put(valid, sharding)
    logits, cache, next_pos = prefill(graphdef, state, tokens_j, valid_j, max_len, kv_cache_dtype, mesh, n)
    out, cache = decode(graphdef, state, logits, cache, max_new_tokens, method, stop, pad, next_pos, rng)
    del cache
    out = jax.device_get(out)
    t = np.asarray(out["tokens"])
    lengths = np.asarray(out["lengths"])
    mask = np.arange(max_new_tokens)[None, :] < lengths[:, None]
    return SampleOutput(
        prompt_tokens=np.repeat(tokens, n, axis=0), prompt_valid=np.repeat(valid, n, axis=0), tokens=t, mask=mask,
        lengths=lengths, eos=np.asarray(out["eos"]), logprobs=np.asarray(out["logprobs"]),
        sampling_logprobs=np.asarray(out["sampling_logprobs"]) if return_sampling_logprobs else None,
        prompt_index=np.repeat(np.arange(batch), n))


def graphdef_cfg(graphdef, state):
    """The ModelConfig of a split model (held as static data in the graphdef)."""
    return nnx.merge(graphdef, state).cfg
