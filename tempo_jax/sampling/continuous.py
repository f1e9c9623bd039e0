"""Continuous batching: a fixed number of decode slots, refilled as rows finish.

The static engine (:func:`tempo_jax.sampling.generate.generate`) decodes a batch until its longest
row stops, so with long-tailed response lengths most slot-steps go to rows that already ended.
Here ``slots`` rows decode at once; when enough of them have stopped, the next pending
(prompt, sample) rows are prefilled and inserted into the freed slots, so the batch stays full
until the work runs out. Same output contract (:class:`SampleOutput`, row i*n+j = sample j of
prompt i, model and sampling log-probs, finish reasons, per-row budgets) and, because a row's
draws depend only on (seed, row, token index) (:func:`~tempo_jax.sampling.methods.row_keys`),
the same tokens as the static engine from the same logits.

The cache is a ring buffer (:class:`~tempo_jax.models.cache.LayerKVCache` with ``ring=True``) of
``prompt_len + cap - 1`` slots (rounded up to a tile), with one write index shared by every row
(each step writes one token per row at the same slot, so a decode step is the static engine's
step). A row is inserted by prefilling its prompt into a small cache of its own and scattering
those keys/values into its ring row at the slots that end just before the write index; the rest of
the row is marked invalid. Keys are stored already rotated (RoPE at their own positions), and
attention orders keys by age modulo the ring, not by slot, so a row never sees what its slot held
before. A row lives at most ``prompt_len + budget - 1`` slots: it never overwrites its own keys.

The host drives the loop (as JetStream's orchestrator does): ``insert`` (jitted, one program per
power-of-two insert size), ``decode`` (a jitted ``while_loop`` that runs until at least
``refill`` slots are free, or until every row is done once nothing is pending), then it copies the
finished rows' outputs back and refills. Everything is deterministic: same seed, same output.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from tempo_jax.models import attention_kernels as kernels
from tempo_jax.models.cache import LayerKVCache, init_layer_cache
from tempo_jax.models.decoder import CausalLM, positions_from_valid
from tempo_jax.parallel.mesh import to_host
from tempo_jax.sampling.generate import (
    SLOT_TILE,
    SampleOutput,
    _constrain_cache,
    _layers_unrolled,
    _place,
    _stop_array,
    advance,
    prepare,
)
from tempo_jax.sampling.memory import check_cache_fits
from tempo_jax.sampling.methods import Greedy, Sampling, row_keys
from tempo_jax.sampling.padding import bucket_length


@dataclasses.dataclass(frozen=True)
class ContinuousStats:
    """What the engine did: ``decode_steps`` loop iterations, ``slot_steps`` slots x iterations
    summed (the slots shrink as the last rows drain), ``insert_rows`` prefilled rows (insert
    batches padded to a power of two included); so slot utilisation = generated tokens /
    (slot_steps + insert_rows)."""

    slots: int
    ring_len: int
    decode_steps: int
    slot_steps: int
    inserts: int
    insert_rows: int
    prefilled_prompts: int  # prompts run through the model (each once per insert, padding included)
    shrinks: int

    def utilisation(self, generated_tokens: int) -> float:
        return generated_tokens / max(self.slot_steps + self.insert_rows, 1)


def ring_length(prompt_len: int, cap: int) -> int:
    """Ring slots: a row's prompt plus every sampled token but the last (never fed back),
    rounded up to :data:`~tempo_jax.sampling.generate.SLOT_TILE`."""
    return -(-(prompt_len + cap - 1) // SLOT_TILE) * SLOT_TILE


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5, 6, 7))
def init_state(cfg, slots: int, ring_len: int, cap: int, dtype, pad_id: int, with_slp: bool, mesh) -> dict:
    """All slots empty (done); the ring cache placed by the batch rule on a mesh."""
    cache = init_layer_cache(cfg, slots, ring_len, dtype)
    # a ring, and never "empty": a decode step always reads it (rows are inserted by scatter)
    cache = _constrain_cache(dataclasses.replace(cache, ring=True, empty=False), mesh)
    state = dict(
        cache=cache,
        tok=jnp.full((slots,), pad_id, jnp.int32),
        pos=jnp.zeros((slots,), jnp.int32),
        row=jnp.zeros((slots,), jnp.int32),
        count=jnp.zeros((slots,), jnp.int32),
        budget=jnp.ones((slots,), jnp.int32),
        done=jnp.ones((slots,), jnp.bool_),  # an empty slot counts as done (free)
        eos=jnp.zeros((slots,), jnp.bool_),
        tokens=jnp.full((slots, cap), pad_id, jnp.int32),
        logprobs=jnp.zeros((slots, cap), jnp.float32),
        steps=jnp.zeros((), jnp.int32),
    )
    if with_slp:
        state["sampling_logprobs"] = jnp.zeros((slots, cap), jnp.float32)
    return state


@functools.partial(jax.jit, static_argnums=(0, 9, 10, 11, 12, 13), donate_argnums=(2,))
def insert(
    graphdef,
    params,
    state: dict,
    tokens: jax.Array,
    valid: jax.Array,
    source: jax.Array,
    slots: jax.Array,
    rows: jax.Array,
    budgets: jax.Array,
    method,
    stop_ids: tuple,
    pad_id: int,
    cache_dtype: str | None,
    mesh: Mesh | None,
    rng: jax.Array,
) -> dict:
    """Prefill the prompts ``tokens`` [U, P] (left-padded) once each and put row ``rows[i]``, a
    sample of prompt ``source[i]``, into slot ``slots[i]`` (an index >= the slot count is
    padding: dropped), its first token sampled from the prefill logits with the row's own key.
    The state is donated: the ring is updated in place."""
    model: CausalLM = nnx.merge(graphdef, params)
    n_ins, plen = len(rows), tokens.shape[1]
    scratch = init_layer_cache(model.cfg, tokens.shape[0], plen, cache_dtype)
    with kernels.on_mesh(mesh):  # a fused attention kernel then runs per shard
        hidden, filled = model.model(tokens, positions_from_valid(valid), valid, scratch)
    assert isinstance(filled, LayerKVCache)
    logits = model.logits_from_hidden(hidden[:, -1])[source]
    filled = jax.tree.map(lambda x: x[source] if x.ndim else x, filled)  # the n samples of a prompt share its KV
    valid = valid[source]
    tok, lp, slp = method.sample_with_logprobs(row_keys(rng, rows, jnp.zeros_like(rows)), logits)
    none = jnp.zeros_like(rows, dtype=jnp.bool_)  # a new row: live, nothing generated yet
    tok, _, count, eos, done = advance(tok, none, jnp.zeros_like(rows), budgets, none, _stop_array(stop_ids), pad_id)

    ring: LayerKVCache = state["cache"]
    at = (ring.index - plen + jnp.arange(plen, dtype=jnp.int32)) % ring.max_len  # the prompt ends before the index
    put = lambda buf, new: buf.at[slots[:, None], :, at[None, :], :].set(
        jnp.swapaxes(new, 1, 2).astype(buf.dtype), mode="drop"
    )
    row_valid = jnp.zeros((n_ins, ring.max_len), jnp.bool_).at[:, at].set(valid)
    cache = LayerKVCache(
        k=tuple(map(put, ring.k, filled.k)),
        v=tuple(map(put, ring.v, filled.v)),
        valid=ring.valid.at[slots].set(row_valid, mode="drop"),
        index=ring.index,
        ring=True,
    )
    cap = state["tokens"].shape[1]
    set_rows = lambda buf, first, fill: buf.at[slots].set(
        jnp.full((n_ins, cap), fill, buf.dtype).at[:, 0].set(first), mode="drop"
    )
    set_slots = lambda buf, new: buf.at[slots].set(new, mode="drop")
    out = dict(state)
    out["cache"] = _constrain_cache(cache, mesh)
    out["tok"] = set_slots(state["tok"], tok)
    out["pos"] = set_slots(state["pos"], jnp.sum(valid, axis=-1).astype(jnp.int32))
    out["row"] = set_slots(state["row"], rows)
    out["count"] = set_slots(state["count"], count)
    out["budget"] = set_slots(state["budget"], budgets)
    out["eos"] = set_slots(state["eos"], eos)
    out["done"] = set_slots(state["done"], done)
    out["tokens"] = set_rows(state["tokens"], tok, pad_id)
    out["logprobs"] = set_rows(state["logprobs"], lp, 0.0)
    if "sampling_logprobs" in state:
        out["sampling_logprobs"] = set_rows(state["sampling_logprobs"], slp, 0.0)
    return out


@functools.partial(jax.jit, static_argnums=(0, 5, 6, 7), donate_argnums=(2,))
def decode(graphdef, params, state: dict, free_target: jax.Array, rng: jax.Array, method, stop_ids: tuple, pad_id: int):
    """Decode every slot until at least ``free_target`` slots are done (free) or all are."""
    model: CausalLM = nnx.merge(graphdef, params)
    stop = _stop_array(stop_ids)
    slots, cap = state["tokens"].shape
    ones = jnp.ones((slots, 1), jnp.bool_)
    slot_ids = jnp.arange(slots)

    def cond(c):
        n_done = jnp.sum(c["done"].astype(jnp.int32))
        return (n_done < free_target) & (n_done < slots)

    def body(c):
        logits, cache = model(c["tok"][:, None], c["pos"][:, None], ones, c["cache"])
        tok, lp, slp = method.sample_with_logprobs(row_keys(rng, c["row"], c["count"]), logits[:, 0])
        tok, live, count, eos, done = advance(tok, c["done"], c["count"], c["budget"], c["eos"], stop, pad_id)
        col = jnp.where(live, c["count"], cap)  # a done slot writes nowhere
        write = lambda buf, x: buf.at[slot_ids, col].set(x, mode="drop")
        out = dict(c)
        out["cache"] = cache
        out["tok"] = tok
        out["pos"] = c["pos"] + 1
        out["tokens"] = write(c["tokens"], tok)
        out["logprobs"] = write(c["logprobs"], lp)
        if "sampling_logprobs" in c:
            out["sampling_logprobs"] = write(c["sampling_logprobs"], slp)
        out["count"], out["eos"], out["done"] = count, eos, done
        out["steps"] = c["steps"] + 1
        return out

    return jax.lax.while_loop(cond, body, state)


@functools.partial(jax.jit, static_argnums=(2,))
def shrink(state: dict, keep: jax.Array, mesh: Mesh | None) -> dict:
    """The state of slots ``keep`` only (every per-slot array indexed, the cache included): once
    nothing is pending, the last rows drain on fewer slots, each step costing less."""
    out = jax.tree.map(lambda x: x[keep] if x.ndim else x, state)
    out["cache"] = _constrain_cache(out["cache"], mesh)
    return out


@jax.jit
def take(state: dict, slots: jax.Array) -> dict:
    """The outputs of the given slots (finished rows) for the host."""
    keys = ("tokens", "logprobs", "sampling_logprobs", "count", "eos")
    return {k: state[k][slots] for k in keys if k in state}


def default_slots(rows: int) -> int:
    """A quarter of the rows (at least one): enough rows wait to keep the slots full."""
    return max(-(-rows // 4), 1)


def generate_continuous(
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
    slots: int | None = None,
    refill: int | None = None,
) -> tuple[SampleOutput, ContinuousStats]:
    """Sample ``n`` responses per prompt with ``slots`` decode slots (default
    :func:`default_slots`); arguments as :func:`~tempo_jax.sampling.generate.generate`.

    ``refill``: insert new rows once this many slots are free (default: an eighth of the slots,
    at least one); fewer means fuller slots but more, smaller prefills and host round trips.
    Returns the output and what the engine did (:class:`ContinuousStats`).
    """
    req = prepare(model, prompts, n, max_new_tokens, stop_ids, pad_id, min_bucket)
    cfg, stop, pad, budgets = req.cfg, req.stop, req.pad, req.budgets
    plen = req.tokens.shape[1]
    total_rows, cap = len(budgets), int(budgets.max())
    n_slots = min(int(slots) if slots else default_slots(total_rows), total_rows)
    if n_slots < 1:
        raise ValueError(f"need at least one decode slot, got slots={slots}")
    shards = 1 if mesh is None else mesh.shape["data"] * mesh.shape["fsdp"]
    n_slots = -(-n_slots // shards) * shards  # the same number of slots on every batch shard
    refill_at = max(int(refill) if refill else n_slots // 8, 1)
    ring_len = ring_length(plen, cap)
    insert_peak = bucket_length(n_slots, 1) * plen / (n_slots * ring_len)
    check_cache_fits(
        cfg,
        n_slots,
        ring_len,
        kv_cache_dtype,
        memory_budget_bytes,
        1 if mesh is None else mesh.size,
        copies=1 + insert_peak,
        samples_per_prompt=1,
    )
    rng = jax.random.key(0) if rng is None else rng
    run = _Run(
        _layers_unrolled(req.graphdef, req.params),
        req.tokens,
        req.valid,
        n,
        budgets,
        (method, stop, pad, kv_cache_dtype, mesh, rng),
        n_slots,
        shards,
        return_sampling_logprobs,
    )
    state = run.sync(init_state(cfg, n_slots, ring_len, cap, kv_cache_dtype, pad, return_sampling_logprobs, mesh))
    while True:
        state = run.insert_pending(state)
        state = run.decode_until_refill(state, refill_at)
        run.collect_finished(state)
        if run.finished():
            break
        state = run.maybe_shrink(state)
    stats = ContinuousStats(slots=n_slots, ring_len=ring_len, decode_steps=run.steps, **run.counts)
    return run.output(), stats


class _Run:
    """The host side of one :func:`generate_continuous` call: which row each slot holds, the
    queue of pending rows, the finished rows' outputs, and the three device programs it drives."""

    def __init__(self, model, tokens, valid, n, budgets, sampling, slots: int, shards: int, with_slp: bool):
        self.graphdef, self.params = model
        self.tokens, self.valid, self.n, self.budgets = tokens, valid, n, budgets
        self.method, self.stop, self.pad, self.cache_dtype, self.mesh, self.rng = sampling
        self.shards = shards
        rows, cap = len(budgets), int(budgets.max())
        self.out = dict(
            tokens=np.full((rows, cap), self.pad, np.int32),
            logprobs=np.zeros((rows, cap), np.float32),
            count=np.zeros((rows,), np.int32),
            eos=np.zeros((rows,), bool),
        )
        if with_slp:
            self.out["sampling_logprobs"] = np.zeros((rows, cap), np.float32)
        self.n_slots = slots  # at the start; the slots shrink as the last rows drain
        self.slot_row = np.full((slots,), -1)  # the row each slot holds (-1: free)
        self.next_row, self.steps = 0, 0
        self.counts = dict(slot_steps=0, inserts=0, insert_rows=0, prefilled_prompts=0, shrinks=0)
        # on fake CPU devices, sharded programs queued back to back can deadlock: wait for each one
        self.sync = jax.block_until_ready if self.mesh is not None else (lambda x: x)

    @property
    def pending(self) -> int:
        return len(self.budgets) - self.next_row

    def insert_pending(self, state: dict) -> dict:
        """Prefill the next pending rows (each prompt once) into the free slots."""
        n_slots = self.n_slots
        free = np.flatnonzero(self.slot_row < 0)
        if not self.pending or not len(free):
            return state
        m = min(len(free), self.pending)
        size = min(bucket_length(m, 1), bucket_length(n_slots, 1))
        rows = np.arange(self.next_row, self.next_row + m)
        pad_rows = np.concatenate([rows, np.full(size - m, rows[-1])])
        to_slots = np.concatenate([free[:m], np.full(size - m, n_slots)])  # n_slots: dropped
        prompts_in, source = np.unique(pad_rows // self.n, return_inverse=True)
        prompts_in = np.concatenate([prompts_in, np.full(bucket_length(len(prompts_in), 1) - len(prompts_in), -1)])
        as_int = lambda x: jnp.asarray(x, jnp.int32)
        state = self.sync(
            insert(
                self.graphdef,
                self.params,
                state,
                _place(self.tokens[prompts_in], self.mesh),
                _place(self.valid[prompts_in], self.mesh),
                as_int(source),
                as_int(to_slots),
                as_int(pad_rows),
                as_int(self.budgets[pad_rows]),
                self.method,
                self.stop,
                self.pad,
                self.cache_dtype,
                self.mesh,
                self.rng,
            )
        )
        self.slot_row[free[:m]] = rows
        self.next_row += m
        self.counts["inserts"] += 1
        self.counts["insert_rows"] += size
        self.counts["prefilled_prompts"] += len(prompts_in)
        return state

    def decode_until_refill(self, state: dict, refill_at: int) -> dict:
        """Decode until ``refill_at`` slots are free (or the pending rows fit); with nothing
        pending, until half the slots are free (to move the rest onto fewer) or all are done."""
        current = len(self.slot_row)
        if self.pending:
            target = min(refill_at, self.pending)
        else:
            target = current - current // 2 if current > self.shards else current
        state = self.sync(
            decode(
                self.graphdef,
                self.params,
                state,
                jnp.asarray(target, jnp.int32),
                self.rng,
                self.method,
                self.stop,
                self.pad,
            )
        )
        steps = int(to_host(state["steps"]))
        self.counts["slot_steps"] += current * (steps - self.steps)
        self.steps = steps
        return state

    def collect_finished(self, state: dict) -> None:
        """Copy the rows that stopped to the host outputs and free their slots."""
        done = np.asarray(to_host(state["done"]))
        finished = np.flatnonzero(done & (self.slot_row >= 0))
        if not len(finished):
            return
        size = bucket_length(len(finished), 1)
        idx = np.concatenate([finished, np.full(size - len(finished), finished[-1])])
        got = to_host(take(state, jnp.asarray(idx, jnp.int32)))
        rows = self.slot_row[finished]
        for key, buf in self.out.items():
            buf[rows] = np.asarray(got[key])[: len(finished)]
        self.slot_row[finished] = -1

    def finished(self) -> bool:
        return not self.pending and bool((self.slot_row < 0).all())

    def maybe_shrink(self, state: dict) -> dict:
        """Once nothing is pending and at most half the slots hold rows, keep only as many slots
        (a power of two, whole per batch shard) as the rows left need."""
        live = np.flatnonzero(self.slot_row >= 0)
        current = len(self.slot_row)
        if self.pending or 2 * len(live) > current or current <= self.shards:
            return state
        size = -(-bucket_length(len(live), 1) // self.shards) * self.shards
        keep = np.concatenate([live, np.flatnonzero(self.slot_row < 0)[: size - len(live)]])
        state = self.sync(shrink(state, jnp.asarray(keep, jnp.int32), self.mesh))
        self.slot_row = self.slot_row[keep]
        self.counts["shrinks"] += 1
        return state

    def output(self) -> SampleOutput:
        lengths = self.out["count"]
        cap = self.out["tokens"].shape[1]
        return SampleOutput(
            prompt_tokens=np.repeat(self.tokens, self.n, axis=0),
            prompt_valid=np.repeat(self.valid, self.n, axis=0),
            tokens=self.out["tokens"],
            mask=np.arange(cap)[None, :] < lengths[:, None],
            lengths=lengths,
            eos=self.out["eos"],
            logprobs=self.out["logprobs"],
            sampling_logprobs=self.out.get("sampling_logprobs"),
            prompt_index=np.repeat(np.arange(len(self.tokens)), self.n),
        )
