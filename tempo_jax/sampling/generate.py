"""Jitted rollout: prefill once per prompt, fan the cache out to n samples, decode in a while loop.

The decode loop stops as soon as every sequence has emitted a stop token or reached its length
budget and returns, for every sampled token, its log-prob under the model's own distribution
(PPO/GSPO's old log-probs) and optionally under the sampling distribution.

``max_new_tokens`` is one budget for every row or a budget per prompt (or per row): the largest
sizes the buffers and cache windows (static shapes), the budgets themselves are a traced array in
the loop state, so other budgets under the same cap reuse the compiled programs. A row stops at
its budget (finish reason ``length``) with the same tokens and log-probs as the first tokens of
a longer budget (same batch, same ``rng``); rows that have stopped idle until the batch ends.

Performance notes (CPU numbers in ``benchmarks/sampler.py``):

* the cache is the per-layer layout (:class:`~tempo_jax.models.cache.LayerKVCache`): a decode step
  writes one row per layer in place and attention reads the buffers without copies;
* attention reads every slot of the buffer, so the buffer grows with the sequence: decoding runs
  in segments over cache *windows* (:func:`cache_windows`, growing geometrically up to the full
  length), each a compiled ``while_loop`` (loop state and cache donated); between segments the
  cache is copied into the next window, and decoding stops early once every row has finished;
* a step samples with one uniform per row (:func:`tempo_jax.sampling.methods.draw`) and gets the
  log-prob from the same pass; no full log_softmax is materialised.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from tempo_jax.models import attention_kernels as kernels
from tempo_jax.models.cache import LayerKVCache, init_layer_cache, resize
from tempo_jax.models.config import ModelConfig
from tempo_jax.models.decoder import CausalLM, positions_from_valid
from tempo_jax.parallel.mesh import batch_axes, batch_sharding, to_host
from tempo_jax.sampling.memory import check_cache_fits
from tempo_jax.sampling.methods import Greedy, Sampling, row_keys
from tempo_jax.sampling.padding import left_pad


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


SLOT_TILE = 16  # TPU tiles bf16 (and f32) rows in groups of 16 (8): window lengths are multiples of it


def cache_windows(
    prompt_len: int, max_new_tokens: int, min_window: int = 64, growth: float = 1.5, align: int = 32
) -> list[int]:
    """Cache lengths the decode segments run with.

    Attention reads every slot of the buffer, so a decode step costs in proportion to the window,
    not to the filled length: windows grow geometrically (x ``growth``, multiples of ``align``),
    from the smallest one holding the prompt and a new token (at least ``min_window``) up to the
    full length ``prompt_len + max_new_tokens - 1`` (the last sampled token is never fed back),
    rounded up to a multiple of :data:`SLOT_TILE`. Each window is one compiled decode loop; a
    window within sqrt(growth) of the full length is skipped. Steps then attend over about 1.2x
    the filled length on average instead of the full one.

    The rounding matters on TPU: for a slot count that is not a multiple of the tile, XLA lays the
    cache arguments out differently from the loop and copies the whole cache in and out of every
    decode call (``tempo-jax plan``, Qwen3-8B on v5p-64: decode temporaries 22.5 -> 3.9 GiB per chip).
    """
    total = prompt_len + max_new_tokens - 1
    align = max(int(align), 1)
    w = max(int(min_window), prompt_len + 1)
    w = -(-w // align) * align
    sizes = []
    while w * growth**0.5 < total:
        sizes.append(w)
        w = max(-(-int(w * growth) // align) * align, w + align)
    return sizes + [-(-total // SLOT_TILE) * SLOT_TILE]


def cache_shardings(mesh: Mesh, cache: LayerKVCache) -> Any:
    """Cache placement, a pytree like ``cache`` with a NamedSharding per leaf: rows by the batch rule
    (:func:`~tempo_jax.parallel.mesh.batch_axes`), KV heads over ``tensor`` when they divide."""
    b = batch_axes(mesh, cache.valid.shape[0])
    heads = "tensor" if cache.k[0].shape[1] % mesh.shape["tensor"] == 0 else None
    by_rank = {4: P(b, heads, None, None), 2: P(b, None), 0: P()}  # k and v, valid, index
    return jax.tree.map(lambda x: NamedSharding(mesh, by_rank[len(x.shape)]), cache)


def _constrain_cache(cache: LayerKVCache, mesh: Mesh | None) -> LayerKVCache:
    return cache if mesh is None else jax.lax.with_sharding_constraint(cache, cache_shardings(mesh, cache))


def advance(tok, done, length, budget, eos, stop: jax.Array, pad_id: int):
    """The stop rule of both engines, for one sampled token per row: a row already done emits
    pad; a live row grows by one, hits eos on a stop token and is done on eos or at its budget.
    Returns (token, live, new length, new eos, new done)."""
    live = ~done
    tok = jnp.where(live, tok, pad_id)
    hit = live & jnp.any(tok[:, None] == stop[None, :], axis=-1)
    length = length + live.astype(jnp.int32)
    return tok, live, length, eos | hit, done | hit | (length >= budget)


def _record(c: dict, tok, lp, slp, stop: jax.Array, pad_id: int) -> dict:
    """Write the token sampled at step ``c['step']`` (pad once a row is done) and update the flags."""
    tok, live, lengths, eos, done = advance(tok, c["done"], c["lengths"], c["budget"], c["eos"], stop, pad_id)
    col = (0, c["step"])
    out = dict(c)
    out["tok"] = tok
    out["tokens"] = jax.lax.dynamic_update_slice(c["tokens"], tok[:, None], col)
    out["logprobs"] = jax.lax.dynamic_update_slice(c["logprobs"], jnp.where(live, lp, 0.0)[:, None], col)
    if "sampling_logprobs" in c:
        out["sampling_logprobs"] = jax.lax.dynamic_update_slice(
            c["sampling_logprobs"], jnp.where(live, slp, 0.0)[:, None], col
        )
    out["lengths"], out["eos"], out["done"] = lengths, eos, done
    out["step"] = c["step"] + 1
    return out


def _stop_array(stop_ids: tuple) -> jax.Array:
    return jnp.asarray(stop_ids if stop_ids else (-1,), jnp.int32)


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6, 7, 8, 9, 10, 11, 12))
def prefill(
    graphdef,
    state,
    tokens,
    valid,
    cache_len: int,
    cache_dtype: str | None,
    mesh: Mesh | None,
    n: int,
    max_new_tokens: int,
    method,
    stop_ids: tuple,
    pad_id: int,
    with_sampling_logprobs: bool,
    rng,
    budgets=None,
):
    """Run each prompt once into a ``cache_len``-slot cache, fan out to n samples (row i*n+j =
    sample j of prompt i) and sample the first token: the decode loop state. ``budgets`` [rows]
    are the rows' new-token budgets (default: ``max_new_tokens``, the buffers' width, for all)."""
    model: CausalLM = nnx.merge(graphdef, state)
    positions = positions_from_valid(valid)
    cache = _constrain_cache(init_layer_cache(model.cfg, tokens.shape[0], cache_len, cache_dtype), mesh)
    with kernels.on_mesh(mesh):  # a fused attention kernel then runs per shard
        hidden, filled = model.model(tokens, positions, valid, cache)
    assert isinstance(filled, LayerKVCache)  # the decoder returns the cache in the layout it was given
    cache = filled
    logits = model.logits_from_hidden(hidden[:, -1])
    next_pos = jnp.sum(valid, axis=-1).astype(jnp.int32)
    if n > 1:
        rep = functools.partial(jnp.repeat, repeats=n, axis=0)
        logits, next_pos = rep(logits), rep(next_pos)
        cache = LayerKVCache(
            k=tuple(map(rep, cache.k)), v=tuple(map(rep, cache.v)), valid=rep(cache.valid), index=cache.index
        )
    cache = _constrain_cache(cache, mesh)
    rows = logits.shape[0]
    carry = dict(
        step=jnp.zeros((), jnp.int32),
        tok=jnp.zeros((rows,), jnp.int32),
        pos=next_pos,
        cache=cache,
        done=jnp.zeros((rows,), jnp.bool_),
        eos=jnp.zeros((rows,), jnp.bool_),
        tokens=jnp.full((rows, max_new_tokens), pad_id, jnp.int32),
        logprobs=jnp.zeros((rows, max_new_tokens), jnp.float32),
        lengths=jnp.zeros((rows,), jnp.int32),
        budget=jnp.full((rows,), max_new_tokens, jnp.int32)
        if budgets is None
        else jnp.minimum(jnp.asarray(budgets, jnp.int32), max_new_tokens),
    )
    if with_sampling_logprobs:
        carry["sampling_logprobs"] = jnp.zeros((rows, max_new_tokens), jnp.float32)
    keys = row_keys(rng, jnp.arange(rows, dtype=jnp.int32), jnp.zeros((rows,), jnp.int32))
    tok, lp, slp = method.sample_with_logprobs(keys, logits)
    return _record(carry, tok, lp, slp, _stop_array(stop_ids), pad_id)


@functools.partial(jax.jit, static_argnums=(0, 5, 6, 7), donate_argnums=(2,))
def decode(graphdef, state, carry: dict, end, rng, method, stop_ids: tuple, pad_id: int) -> dict:
    """Feed the last token and sample the next one until step ``end`` (exclusive) or every row
    has stopped. The loop state (cache included) is donated: updated in place, no second copy."""
    model: CausalLM = nnx.merge(graphdef, state)
    stop = _stop_array(stop_ids)
    rows = carry["tok"].shape[0]
    ones = jnp.ones((rows, 1), jnp.bool_)
    row_ids = jnp.arange(rows, dtype=jnp.int32)

    def cond(c):
        return (c["step"] < end) & ~jnp.all(c["done"])

    def body(c):
        logits, cache = model(c["tok"][:, None], c["pos"][:, None], ones, c["cache"])
        keys = row_keys(rng, row_ids, jnp.full((rows,), c["step"], jnp.int32))
        tok, lp, slp = method.sample_with_logprobs(keys, logits[:, 0])
        out = _record(c, tok, lp, slp, stop, pad_id)
        out["cache"] = cache
        out["pos"] = c["pos"] + 1
        return out

    return jax.lax.while_loop(cond, body, carry)


@functools.partial(jax.jit, static_argnums=(1, 2))
def grow(carry: dict, cache_len: int, mesh: Mesh | None) -> dict:
    """Copy the loop state's cache into a ``cache_len``-slot one (no donation: no buffer of the old
    shape could be reused; the old cache is freed when the caller drops it)."""
    out = dict(carry)
    out["cache"] = _constrain_cache(resize(carry["cache"], cache_len), mesh)
    return out


def _layers_unrolled(graphdef, state):
    """A scan_layers model as the equivalent unrolled one (same parameters, sliced per layer): the
    decode step then updates each layer's cache in place instead of stacking it per step."""
    cfg: ModelConfig = nnx.merge(graphdef, state).cfg
    if not cfg.scan_layers:
        return graphdef, state
    target_graphdef, target = nnx.split(nnx.eval_shape(lambda: CausalLM(cfg.replace(scan_layers=False), nnx.Rngs(0))))
    source = {_names(p): leaf for p, leaf in jax.tree_util.tree_leaves_with_path(state)}

    def take(path, _):
        names = _names(path)
        if "layers" not in names:
            return source[names]
        at = names.index("layers") + 1
        return source[names[:at] + names[at + 1 :]][int(names[at])]

    return target_graphdef, jax.tree_util.tree_map_with_path(take, target)


def _names(path) -> tuple:
    names = tuple(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)
    return names[:-1] if names and names[-1] == "value" else names


def row_budgets(max_new_tokens: int | Sequence[int] | np.ndarray, batch: int, n: int) -> np.ndarray:
    """The new-token budget of each of the ``batch * n`` rows (int32): ``max_new_tokens`` is one
    int for every row, one per prompt (its n samples share it) or one per row (row i*n+j = sample
    j of prompt i). Raises ValueError for n < 1, a budget < 1, a non-integer or a wrong length."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"need n >= 1 samples per prompt, got n={n!r}")
    if isinstance(max_new_tokens, (int, np.integer)) and not isinstance(max_new_tokens, bool):
        if not 1 <= max_new_tokens <= np.iinfo(np.int32).max:
            raise ValueError(f"need 1 <= max_new_tokens < 2**31, got {max_new_tokens}")
        return np.full((batch * n,), int(max_new_tokens), np.int32)
    values = np.asarray(max_new_tokens)
    if values.ndim != 1 or values.dtype == bool or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(
            "max_new_tokens must be an int or a 1-D sequence of ints (one per prompt or per row), "
            f"got {type(max_new_tokens).__name__} of dtype {values.dtype} and shape {values.shape}"
        )
    if len(values) not in (batch, batch * n):
        rows = f" or {batch * n} (one per row)" if n > 1 else ""
        raise ValueError(f"max_new_tokens has {len(values)} budgets; need {batch} (one per prompt){rows}")
    bad = np.flatnonzero((values < 1) | (values > np.iinfo(np.int32).max))
    if len(bad):
        raise ValueError(f"every budget must be in [1, 2**31): max_new_tokens[{bad[0]}] = {values[bad[0]]}")
    return (np.repeat(values, n) if len(values) == batch else values).astype(np.int32)


def _check_memory(cfg, windows: list[int], batch: int, n: int, dtype, budget_bytes, mesh: Mesh | None) -> None:
    """Peak cache memory, in caches of batch*n rows x the full length: prefill + fan-out, or a
    window and the next one during a resize (:func:`~tempo_jax.sampling.memory.check_cache_fits`)."""
    total = windows[-1]
    peaks = [windows[0] / total * ((1 + 1 / n) if n > 1 else 1)]
    peaks += [(a + b) / total for a, b in zip(windows, windows[1:])]
    devices = 1 if mesh is None else mesh.size
    check_cache_fits(cfg, batch * n, total, dtype, budget_bytes, devices, copies=max(peaks), samples_per_prompt=n)


def _place(x: np.ndarray, mesh: Mesh | None) -> jax.Array:
    """A batch array on the device(s): rows by the batch rule on a mesh."""
    return jnp.asarray(x) if mesh is None else jax.device_put(x, batch_sharding(mesh, x.shape))


@dataclasses.dataclass(frozen=True)
class Request:
    """A sampling call's inputs as both engines use them: the split model and its config, the
    stop and pad ids (defaults from the config), left-padded prompts and every row's budget."""

    graphdef: Any
    params: Any
    cfg: ModelConfig
    stop: tuple[int, ...]
    pad: int
    tokens: np.ndarray  # [B, P]
    valid: np.ndarray  # [B, P]
    budgets: np.ndarray  # [B * n]


def prepare(model, prompts, n: int, max_new_tokens, stop_ids, pad_id, min_bucket: int) -> Request:
    """:class:`Request` from :func:`generate`'s arguments (see there)."""
    graphdef, params = nnx.split(model) if isinstance(model, nnx.Module) else model
    cfg = graphdef_cfg(graphdef, params)
    stop = tuple(int(s) for s in (stop_ids if stop_ids is not None else cfg.eos_ids))
    pad = int(pad_id if pad_id is not None else (cfg.pad_token_id if cfg.pad_token_id is not None else 0))
    if isinstance(prompts, tuple) and len(prompts) == 2 and isinstance(prompts[0], np.ndarray):
        tokens, valid = prompts
    else:
        tokens, valid = left_pad(prompts, pad, min_bucket)
    budgets = row_budgets(max_new_tokens, tokens.shape[0], n)
    return Request(graphdef, params, cfg, stop, pad, tokens, valid, budgets)


def generate(
    model: CausalLM | tuple,
    prompts: Sequence[Sequence[int]] | tuple[np.ndarray, np.ndarray],
    *,
    n: int = 1,
    max_new_tokens: int | Sequence[int] | np.ndarray = 128,
    method: Greedy | Sampling = Sampling(),
    stop_ids: Sequence[int] | None = None,
    pad_id: int | None = None,
    rng: jax.Array | None = None,
    kv_cache_dtype: str | None = None,
    mesh: Mesh | None = None,
    min_bucket: int = 16,
    memory_budget_bytes: int | None = None,
    return_sampling_logprobs: bool = False,
    min_window: int = 64,
) -> SampleOutput:
    """Sample ``n`` responses for each prompt.

    ``model`` is a CausalLM or its ``(graphdef, state)`` split. ``prompts`` are token-id lists
    (left-padded here to a power-of-two bucket) or an already padded ``(tokens, valid)`` pair.
    ``stop_ids`` default to the model config's EOS ids. ``min_window`` is the smallest cache
    window of the segmented decode (:func:`cache_windows`). ``max_new_tokens`` is one budget or
    one per prompt or per row (:func:`row_budgets`); the output is as wide as the largest.
    This is the static engine; :func:`tempo_jax.sampling.engines.sample` chooses between it and
    continuous batching.
    """
    req = prepare(model, prompts, n, max_new_tokens, stop_ids, pad_id, min_bucket)
    graphdef, state, cfg, stop, pad = req.graphdef, req.params, req.cfg, req.stop, req.pad
    tokens, valid, budgets = req.tokens, req.valid, req.budgets
    batch, plen = tokens.shape
    cap = int(budgets.max())
    windows = cache_windows(plen, cap, min_window)
    _check_memory(cfg, windows, batch, n, kv_cache_dtype, memory_budget_bytes, mesh)
    rng = jax.random.key(0) if rng is None else rng
    graphdef, state = _layers_unrolled(graphdef, state)
    # On fake CPU devices, sharded programs queued back to back can deadlock in XLA's collectives:
    # with a mesh, wait for each one.
    sync = jax.block_until_ready if mesh is not None else (lambda x: x)
    carry = sync(
        prefill(
            graphdef,
            state,
            _place(tokens, mesh),
            _place(valid, mesh),
            windows[0],
            kv_cache_dtype,
            mesh,
            n,
            cap,
            method,
            stop,
            pad,
            return_sampling_logprobs,
            rng,
            _place(budgets, mesh),
        )
    )
    start = 1  # the first token was sampled from the prefill logits
    for i, window in enumerate(windows):
        end = min(window - plen + 1, cap)
        if end <= start:
            continue
        if i:
            if bool(jax.device_get(jnp.all(carry["done"]))):
                break
            carry = sync(grow(carry, window, mesh))
        carry = sync(decode(graphdef, state, carry, jnp.asarray(end, jnp.int32), rng, method, stop, pad))
        start = end
    carry.pop("cache")
    carry.pop("budget")
    out = to_host(carry)  # gathers rows other hosts hold (multi-host)
    lengths = np.asarray(out["lengths"])
    mask = np.arange(cap)[None, :] < lengths[:, None]
    return SampleOutput(
        prompt_tokens=np.repeat(tokens, n, axis=0),
        prompt_valid=np.repeat(valid, n, axis=0),
        tokens=np.asarray(out["tokens"]),
        mask=mask,
        lengths=lengths,
        eos=np.asarray(out["eos"]),
        logprobs=np.asarray(out["logprobs"]),
        sampling_logprobs=np.asarray(out["sampling_logprobs"]) if return_sampling_logprobs else None,
        prompt_index=np.repeat(np.arange(batch), n),
    )


def graphdef_cfg(graphdef, state):
    """The ModelConfig of a split model (held as static data in the graphdef)."""
    return nnx.merge(graphdef, state).cfg
